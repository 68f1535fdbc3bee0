/**
 * The circuit breaker's writes on an endpoint's item (docs/adr/0013-circuit-breaker-and-fallback.md).
 * None on a healthy call. A failing call ADDs to its bucket; the failure that crosses the threshold
 * opens it (conditional, so one opening however many instances see it); half-open, one conditional
 * write claims the probe and one more closes or reopens it. Reads come with fair share's view
 * (EndpointStateStore.read), so the breaker never reads on its own.
 */
import { type BreakerState, FAILURE_PREFIX, toBreakerState } from "./circuit-breaker";
import { type DynamoClient, isConditionFailed } from "./dynamodb/client";
import type { UpdateInput } from "./dynamodb/operations";
import { endpointKey } from "./endpoint-state";

export class CircuitBreakerStore {
  constructor(
    private readonly db: DynamoClient,
    private readonly tableName: string,
  ) {}

  /** Counts one failure in `bucket`, drops the `stale` buckets, and returns the breaker as it now stands. */
  async recordFailure(endpointName: string, bucket: number, stale: number[]): Promise<BreakerState> {
    const names: Record<string, string> = { "#bucket": `${FAILURE_PREFIX}${bucket}` };
    for (const [i, b] of stale.entries()) names[`#stale${i}`] = `${FAILURE_PREFIX}${b}`;
    const remove = stale.length > 0 ? ` REMOVE ${stale.map((_, i) => `#stale${i}`).join(", ")}` : "";
    const { Attributes } = await this.db.update({
      TableName: this.tableName,
      Key: endpointKey(endpointName),
      UpdateExpression: `ADD #bucket :one${remove}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ":one": 1 },
      ReturnValues: "ALL_NEW",
    });
    return toBreakerState(Attributes);
  }

  /** Opens a closed breaker until `until`; false when it was already open (another instance opened it). */
  async open(endpointName: string, until: number): Promise<boolean> {
    return this.conditional({
      TableName: this.tableName,
      Key: endpointKey(endpointName),
      UpdateExpression: "SET #openUntil = :until",
      ConditionExpression: "attribute_not_exists(#openUntil)",
      ExpressionAttributeNames: { "#openUntil": "openUntil" },
      ExpressionAttributeValues: { ":until": until },
    });
  }

  /**
   * Claims the half-open probe until `claim` for the opening that ended at `openUntil`: true for
   * one caller only; the others keep treating the breaker as open.
   */
  async claimProbe(endpointName: string, openUntil: number, now: number, claim: number): Promise<boolean> {
    return this.conditional({
      TableName: this.tableName,
      Key: endpointKey(endpointName),
      UpdateExpression: "SET #probeUntil = :claim",
      ConditionExpression:
        "#openUntil = :openUntil AND #openUntil <= :now AND (attribute_not_exists(#probeUntil) OR #probeUntil <= :now)",
      ExpressionAttributeNames: { "#openUntil": "openUntil", "#probeUntil": "probeUntil" },
      ExpressionAttributeValues: { ":openUntil": openUntil, ":now": now, ":claim": claim },
    });
  }

  /**
   * The probe succeeded: closed, its failure `buckets` removed and older ones forgotten (`closedAt`).
   * False when the claim was no longer held.
   */
  async close(endpointName: string, claim: number, now: number, buckets: number[]): Promise<boolean> {
    const names: Record<string, string> = {
      "#openUntil": "openUntil",
      "#probeUntil": "probeUntil",
      "#closedAt": "closedAt",
    };
    for (const [i, b] of buckets.entries()) names[`#bucket${i}`] = `${FAILURE_PREFIX}${b}`;
    const remove = ["#openUntil", "#probeUntil", ...buckets.map((_, i) => `#bucket${i}`)].join(", ");
    return this.conditional({
      TableName: this.tableName,
      Key: endpointKey(endpointName),
      UpdateExpression: `SET #closedAt = :now REMOVE ${remove}`,
      ConditionExpression: "#probeUntil = :claim",
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ":claim": claim, ":now": now },
    });
  }

  /** The probe failed: open again until `until`. False when the claim was no longer held. */
  async reopen(endpointName: string, claim: number, until: number): Promise<boolean> {
    return this.conditional({
      TableName: this.tableName,
      Key: endpointKey(endpointName),
      UpdateExpression: "SET #openUntil = :until REMOVE #probeUntil",
      ConditionExpression: "#probeUntil = :claim",
      ExpressionAttributeNames: { "#openUntil": "openUntil", "#probeUntil": "probeUntil" },
      ExpressionAttributeValues: { ":claim": claim, ":until": until },
    });
  }

  /** One conditional write: true when applied, false when its condition refused it. */
  private async conditional(input: UpdateInput): Promise<boolean> {
    try {
      await this.db.update(input);
      return true;
    } catch (err) {
      if (isConditionFailed(err)) return false;
      throw err;
    }
  }
}
