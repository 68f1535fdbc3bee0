/**
 * API keys as stored: one item per key under its hash (`KEY#<sha256>`, what the authorizer reads), and a
 * reference in the tenant's own partition (`TENANT#<id>#` / `KEY#<keyId>`, holding the hash) written in
 * the same transaction, so a tenant's keys are found from the base table with consistent reads.
 */
import type { NewApiKey } from "./api-key";
import { isConditionFailed } from "./dynamodb/client";
import type { BatchGetOutput } from "./dynamodb/operations";
import { conflict } from "./errors";
import type { KeyRecord } from "./key-state";
import { apiKeyKey, keySortKey, tenantKey } from "./keys";
import { RETURN_OLD, type Table, type Write } from "./transaction";

const KEY_SK = "KEY";

/** A key's record and the hash its item is stored under. */
export interface StoredKey {
  record: KeyRecord;
  hash: string;
}

/** What the authorizer reads: one consistent GetItem by the presented key's hash. */
export async function findKeyByHash(table: Table, hash: string): Promise<KeyRecord | undefined> {
  const { Item } = await table.db.get({
    TableName: table.name,
    Key: { pk: apiKeyKey(hash), sk: KEY_SK },
    ConsistentRead: true,
  });
  return Item ? toKeyRecord(Item) : undefined;
}

/** One key of a tenant by id: its reference, then the key item, both read consistently. */
export async function findKeyById(
  table: Table,
  tenantId: string,
  keyId: string,
): Promise<StoredKey | undefined> {
  const { Item: ref } = await table.db.get({
    TableName: table.name,
    Key: { pk: tenantKey(tenantId), sk: keySortKey(keyId) },
    ConsistentRead: true,
  });
  if (typeof ref?.hash !== "string") return undefined;
  const record = await findKeyByHash(table, ref.hash);
  return record?.tenantId === tenantId ? { record, hash: ref.hash } : undefined;
}

/** The hashes of a tenant's keys, from its partition (consistent, paginated). */
export async function keyHashes(table: Table, tenantId: string): Promise<string[]> {
  const hashes: string[] = [];
  const pages = table.db.queryPages({
    TableName: table.name,
    KeyConditionExpression: "#pk = :pk AND begins_with(#sk, :key)",
    ExpressionAttributeNames: { "#pk": "pk", "#sk": "sk" },
    ExpressionAttributeValues: { ":pk": tenantKey(tenantId), ":key": keySortKey("") },
    ConsistentRead: true,
  });
  for await (const page of pages) {
    for (const item of page.Items ?? []) if (typeof item.hash === "string") hashes.push(item.hash);
  }
  return hashes;
}

/** Every key of a tenant with its state, read consistently (BatchGetItem, 100 at a time). */
export async function listKeys(table: Table, tenantId: string): Promise<StoredKey[]> {
  const hashes = await keyHashes(table, tenantId);
  const found: StoredKey[] = [];
  for (let start = 0; start < hashes.length; start += 100) {
    let keys: Record<string, unknown>[] | undefined = hashes
      .slice(start, start + 100)
      .map((hash) => ({ pk: apiKeyKey(hash), sk: KEY_SK }));
    while (keys && keys.length > 0) {
      const result: BatchGetOutput = await table.db.batchGet({
        RequestItems: { [table.name]: { Keys: keys, ConsistentRead: true } },
      });
      for (const item of result.Responses?.[table.name] ?? []) {
        if (item.tenantId !== tenantId) continue;
        found.push({ record: toKeyRecord(item), hash: String(item.pk).slice(apiKeyKey("").length) });
      }
      keys = result.UnprocessedKeys?.[table.name]?.Keys;
    }
  }
  return found;
}

/** Stamps a key as used now, unless a stamp newer than `staleBefore` is already there (one write per window). */
export async function touchKey(table: Table, hash: string, now: Date, staleBefore: Date): Promise<void> {
  try {
    await table.db.update({
      TableName: table.name,
      Key: { pk: apiKeyKey(hash), sk: KEY_SK },
      UpdateExpression: "SET #lastUsedAt = :now",
      ConditionExpression:
        "attribute_exists(#pk) AND (attribute_not_exists(#lastUsedAt) OR #lastUsedAt < :stale)",
      ExpressionAttributeNames: { "#pk": "pk", "#lastUsedAt": "lastUsedAt" },
      ExpressionAttributeValues: { ":now": now.toISOString(), ":stale": staleBefore.toISOString() },
    });
  } catch (err) {
    if (!isConditionFailed(err)) throw err;
  }
}

/** A new key: its item and its reference. The plaintext is never written. */
export function keyCreation(
  table: Table,
  tenantId: string,
  key: NewApiKey,
  createdAt: string,
): { record: KeyRecord; writes: Write[] } {
  const record: KeyRecord = { tenantId, keyId: key.keyId, hint: key.hint, status: "active", createdAt };
  const taken = () => new Error(`key ${key.keyId} collides with a stored key`);
  const put = (item: Record<string, unknown>): Write => ({
    action: {
      Put: {
        TableName: table.name,
        Item: item,
        ConditionExpression: "attribute_not_exists(#pk)",
        ExpressionAttributeNames: { "#pk": "pk" },
      },
    },
    refused: taken,
  });
  return {
    record,
    writes: [
      put({ pk: apiKeyKey(key.hash), sk: KEY_SK, type: "apiKey", ...record }),
      put({
        pk: tenantKey(tenantId),
        sk: keySortKey(key.keyId),
        type: "keyRef",
        keyId: key.keyId,
        hash: key.hash,
      }),
    ],
  };
}

interface KeyChange {
  update: string;
  condition?: string;
  names?: Record<string, string>;
  values?: Record<string, unknown>;
}

/** A write to a key item that must still be this tenant's and active; refused: 409 `key_changed`. */
function updateActiveKey(table: Table, key: StoredKey, change: KeyChange): Write {
  const condition = ["#tenantId = :tenantId", "#status = :active", change.condition].filter(Boolean);
  return {
    action: {
      Update: {
        TableName: table.name,
        Key: { pk: apiKeyKey(key.hash), sk: KEY_SK },
        UpdateExpression: change.update,
        ConditionExpression: condition.join(" AND "),
        ExpressionAttributeNames: { ...change.names, "#tenantId": "tenantId", "#status": "status" },
        ExpressionAttributeValues: {
          ...change.values,
          ":tenantId": key.record.tenantId,
          ":active": "active",
        },
        ...RETURN_OLD,
      },
    },
    refused: () =>
      conflict("key_changed", `key ${key.record.keyId} was revoked or rotated meanwhile`, "keyId"),
  };
}

/** Revokes an active key; the authorizer refuses it from its next run. */
export function keyRevocation(table: Table, key: StoredKey, now: Date): Write {
  return updateActiveKey(table, key, {
    update: "SET #status = :revoked, #revokedAt = :now",
    names: { "#revokedAt": "revokedAt" },
    values: { ":revoked": "revoked", ":now": now.toISOString() },
  });
}

/** Ends a rotated key's life at `expiresAt`, naming its replacement; a rotation is final. */
export function keyExpiry(table: Table, key: StoredKey, expiresAt: Date, replacedBy: string): Write {
  return updateActiveKey(table, key, {
    update: "SET #expiresAt = :expiresAt, #replacedBy = :replacedBy",
    condition: "attribute_not_exists(#expiresAt)",
    names: { "#expiresAt": "expiresAt", "#replacedBy": "replacedBy" },
    values: { ":expiresAt": expiresAt.toISOString(), ":replacedBy": replacedBy },
  });
}

/** Deletes a key item (if it is still there and this tenant's) and its reference: erase. */
export function keyDeletion(table: Table, tenantId: string, keyId: string, hash: string): Write[] {
  return [
    {
      action: {
        Delete: {
          TableName: table.name,
          Key: { pk: apiKeyKey(hash), sk: KEY_SK },
          ConditionExpression: "attribute_not_exists(#pk) OR #tenantId = :tenantId",
          ExpressionAttributeNames: { "#pk": "pk", "#tenantId": "tenantId" },
          ExpressionAttributeValues: { ":tenantId": tenantId },
        },
      },
      refused: () => new Error(`key item ${keyId} belongs to another tenant`),
    },
    {
      action: { Delete: { TableName: table.name, Key: { pk: tenantKey(tenantId), sk: keySortKey(keyId) } } },
    },
  ];
}

export function toKeyRecord(item: Record<string, unknown>): KeyRecord {
  const { tenantId, keyId, hint, status, createdAt, expiresAt, replacedBy, revokedAt, lastUsedAt } =
    item as unknown as KeyRecord;
  return {
    tenantId,
    keyId,
    hint,
    status,
    createdAt,
    ...(expiresAt ? { expiresAt } : {}),
    ...(replacedBy ? { replacedBy } : {}),
    ...(revokedAt ? { revokedAt } : {}),
    ...(lastUsedAt ? { lastUsedAt } : {}),
  };
}
