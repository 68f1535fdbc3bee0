/**
 * Reads and writes of the endpoint table (docs/adr/0012-fair-share.md): one GetItem for a view of
 * an endpoint, and the two conditional writes that only happen while it is contended.
 */
import { type DynamoClient, isConditionFailed } from "./dynamodb/client";
import {
  ACTIVE_PREFIX,
  CONTENTION_WINDOW_MICROS,
  type EndpointState,
  endpointKey,
  toEndpointState,
} from "./endpoint-state";

export class EndpointStateStore {
  constructor(
    private readonly db: DynamoClient,
    private readonly tableName: string,
  ) {}

  /** The endpoint's state; eventually consistent, as a view refreshed every second needs no more. */
  async read(endpointName: string): Promise<EndpointState> {
    const { Item } = await this.db.get({ TableName: this.tableName, Key: endpointKey(endpointName) });
    return toEndpointState(Item);
  }

  /**
   * Marks the endpoint contended for a window from `now`, unless another instance already did for
   * more than half a window: so all instances together renew it about twice a window. Returns the
   * mark's end as it now stands (ours, or the other's when ours was not needed).
   */
  async markContended(endpointName: string, now: number): Promise<number | undefined> {
    const until = now + CONTENTION_WINDOW_MICROS;
    try {
      await this.db.update({
        TableName: this.tableName,
        Key: endpointKey(endpointName),
        UpdateExpression: "SET #until = :until",
        ConditionExpression: "attribute_not_exists(#until) OR #until < :renewBefore",
        ExpressionAttributeNames: { "#until": "contendedUntil" },
        ExpressionAttributeValues: { ":until": until, ":renewBefore": now + CONTENTION_WINDOW_MICROS / 2 },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      });
      return until;
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      const current = err.item?.contendedUntil;
      return current === undefined ? undefined : Number(current);
    }
  }

  /** Registers the tenant as active on the endpoint with its weight, seen now. */
  async register(endpointName: string, tenantId: string, weight: number, now: number): Promise<void> {
    await this.db.update({
      TableName: this.tableName,
      Key: endpointKey(endpointName),
      UpdateExpression: "SET #tenant = :entry",
      ExpressionAttributeNames: { "#tenant": `${ACTIVE_PREFIX}${tenantId}` },
      ExpressionAttributeValues: { ":entry": { weight, seen: now } },
    });
  }

  /** Forgets the tenant on the endpoint (its erase); never creates the item. */
  async forget(endpointName: string, tenantId: string): Promise<void> {
    try {
      await this.db.update({
        TableName: this.tableName,
        Key: endpointKey(endpointName),
        UpdateExpression: "REMOVE #tenant",
        ConditionExpression: "attribute_exists(pk)",
        ExpressionAttributeNames: { "#tenant": `${ACTIVE_PREFIX}${tenantId}` },
      });
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
    }
  }
}
