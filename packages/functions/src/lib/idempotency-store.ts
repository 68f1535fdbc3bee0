/**
 * Powertools Idempotency's records in DynamoDB, written and read through Atrium's own client
 * (DynamoClient) instead of Powertools' DynamoDBPersistenceLayer, which needs the AWS SDK's client
 * and so its cost on every cold start (docs/adr/0016-dynamodb-client.md). The items, conditions and
 * errors are that layer's as Atrium configures it: one partition per store (`pk`), the hashed key as
 * `sk`, Powertools' default attribute names. So a record either one wrote, the other reads and takes
 * over the same way, and a deploy that mixes the two is safe. Hashing, payload validation and expiry
 * are Powertools' own (BasePersistenceLayer); only the four DynamoDB calls are here.
 */
import { type DynamoClient, isConditionFailed } from "@atrium/core/dynamodb/client";
import type { Item } from "@atrium/core/dynamodb/operations";
import {
  IdempotencyItemAlreadyExistsError,
  IdempotencyItemNotFoundError,
  IdempotencyRecordStatus,
} from "@aws-lambda-powertools/idempotency";
import { BasePersistenceLayer, IdempotencyRecord } from "@aws-lambda-powertools/idempotency/persistence";

type RecordOptions = ConstructorParameters<typeof IdempotencyRecord>[0];

/** Powertools' default attribute names (PERSISTENCE_ATTRIBUTE_KEY_MAPPINGS), with Atrium's key names. */
const PK = "pk";
const SK = "sk";
const STATUS = "status";
const EXPIRY = "expiration";
const IN_PROGRESS_EXPIRY = "in_progress_expiration";
const DATA = "data";
const VALIDATION = "validation";

/**
 * A record may be taken when it is not there, when it has expired (epoch seconds), or when it is
 * still in progress but its call's time has run out (epoch milliseconds). A completed record holds
 * its key until it expires, and so does an in-progress one whose call did not say how long it had.
 */
const TAKEABLE = [
  "attribute_not_exists(#id)",
  "#expiry < :now",
  "(#status = :inprogress AND attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)",
].join(" OR ");

export interface DynamoIdempotencyStoreOptions {
  client: DynamoClient;
  tableName: string;
  /** The records' `pk` (Powertools' staticPkValue); each hashed key is a sort key in it. */
  partition: string;
}

export class DynamoIdempotencyStore extends BasePersistenceLayer {
  readonly #client: DynamoClient;
  readonly #tableName: string;
  readonly #partition: string;

  constructor(options: DynamoIdempotencyStoreOptions) {
    super();
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#partition = options.partition;
  }

  protected override async _getRecord(idempotencyKey: string): Promise<IdempotencyRecord> {
    const { Item } = await this.#client.get({
      TableName: this.#tableName,
      Key: this.#key(idempotencyKey),
      ConsistentRead: true,
    });
    if (!Item) throw new IdempotencyItemNotFoundError();
    return recordOf(Item);
  }

  protected override async _putRecord(record: IdempotencyRecord): Promise<void> {
    const item: Item = {
      ...this.#key(record.idempotencyKey),
      [EXPIRY]: record.expiryTimestamp,
      [STATUS]: record.getStatus(),
    };
    if (record.inProgressExpiryTimestamp !== undefined) {
      item[IN_PROGRESS_EXPIRY] = record.inProgressExpiryTimestamp;
    }
    if (this.isPayloadValidationEnabled() && record.payloadHash !== undefined) {
      item[VALIDATION] = record.payloadHash;
    }
    const now = Date.now();
    try {
      await this.#client.put({
        TableName: this.#tableName,
        Item: item,
        ConditionExpression: TAKEABLE,
        ExpressionAttributeNames: {
          "#id": PK,
          "#expiry": EXPIRY,
          "#in_progress_expiry": IN_PROGRESS_EXPIRY,
          "#status": STATUS,
        },
        ExpressionAttributeValues: {
          ":now": now / 1000,
          ":now_in_millis": now,
          ":inprogress": IdempotencyRecordStatus.INPROGRESS,
        },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      });
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      // Powertools' message, word for word (the new record never has a sort key, so it says undefined).
      throw new IdempotencyItemAlreadyExistsError(
        `Failed to put record for already existing idempotency key: ${record.idempotencyKey} and sort key: ${record.sortKey}`,
        err.item && recordOf(err.item),
      );
    }
  }

  protected override async _updateRecord(record: IdempotencyRecord): Promise<void> {
    const sets = ["#expiry = :expiry", "#status = :status"];
    const names: Record<string, string> = { "#expiry": EXPIRY, "#status": STATUS };
    const values: Item = { ":expiry": record.expiryTimestamp, ":status": record.getStatus() };
    if (record.responseData !== undefined) {
      sets.push("#response_data = :response_data");
      names["#response_data"] = DATA;
      values[":response_data"] = record.responseData;
    }
    if (this.isPayloadValidationEnabled()) {
      sets.push("#validation_key = :validation_key");
      names["#validation_key"] = VALIDATION;
      values[":validation_key"] = record.payloadHash;
    }
    // Unconditional, as Powertools': a record deleted meanwhile is written again, complete.
    await this.#client.update({
      TableName: this.#tableName,
      Key: this.#key(record.idempotencyKey),
      UpdateExpression: `SET ${sets.join(", ")}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  protected override async _deleteRecord(record: IdempotencyRecord): Promise<void> {
    await this.#client.delete({ TableName: this.#tableName, Key: this.#key(record.idempotencyKey) });
  }

  #key(idempotencyKey: string): Item {
    return { [PK]: this.#partition, [SK]: idempotencyKey };
  }
}

/**
 * A stored item as Powertools reads it. Its `idempotencyKey` is the item's partition key, not the
 * hashed key (that is `sortKey`): Powertools' own quirk with a composite key, kept so records compare
 * equal whichever layer read them.
 */
function recordOf(item: Item): IdempotencyRecord {
  return new IdempotencyRecord({
    idempotencyKey: item[PK] as string,
    sortKey: item[SK] as string,
    status: item[STATUS] as RecordOptions["status"],
    expiryTimestamp: item[EXPIRY] as number | undefined,
    inProgressExpiryTimestamp: item[IN_PROGRESS_EXPIRY] as number | undefined,
    responseData: item[DATA] as RecordOptions["responseData"],
    payloadHash: item[VALIDATION] as string | undefined,
  });
}
