import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateQuery,
  QueryCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { NewApiKey } from "./api-key";
import { decodeCursor, encodeCursor } from "./cursor";
import { conflict, notFound } from "./errors";
import type { KeyRecord } from "./key-lifecycle";
import { apiKeyKey, endpointKey, keySortKey, PROFILE, tenantKey } from "./keys";
import {
  type DedicatedEndpoint,
  dedicatedEndpointOf,
  type Tenant,
  type TenantStatus,
  UPDATABLE_FIELDS,
} from "./tenant";

export type { KeyRecord, KeyStatus } from "./key-lifecycle";

export interface EndpointClaim {
  tenantId: string;
  model: string;
}

const notExists = "attribute_not_exists(#pk)";

/** Tenants, their API keys (by hash) and dedicated-endpoint claims, in one DynamoDB table. */
export class TenantStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** Stores a new tenant and its first key. The plaintext key is never written. */
  async create(tenant: Tenant, key: NewApiKey): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          pk: tenantKey(tenant.id),
          sk: PROFILE,
          type: "tenant",
          ...directoryEntry(tenant.id),
          ...tenant,
        },
        ConditionExpression: notExists,
        ExpressionAttributeNames: { "#pk": "pk" },
      }),
    );
    await this.addKey(tenant.id, key, tenant.createdAt);
  }

  async addKey(tenantId: string, key: NewApiKey, createdAt = new Date().toISOString()): Promise<KeyRecord> {
    const record: KeyRecord = { tenantId, keyId: key.keyId, hint: key.hint, status: "active", createdAt };
    await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          pk: apiKeyKey(key.hash),
          sk: "KEY",
          type: "apiKey",
          gsi1pk: tenantKey(tenantId),
          gsi1sk: keySortKey(key.keyId),
          ...record,
        },
        ConditionExpression: notExists,
        ExpressionAttributeNames: { "#pk": "pk" },
      }),
    );
    return record;
  }

  async get(tenantId: string): Promise<Tenant | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: tenantKey(tenantId), sk: PROFILE } }),
    );
    return Item ? toTenant(Item) : undefined;
  }

  /** Suspends or resumes a tenant; the authorizer denies a suspended tenant's keys. */
  async setStatus(tenantId: string, status: Tenant["status"]): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: tenantKey(tenantId), sk: PROFILE },
          UpdateExpression: "SET #status = :status, #updatedAt = :now ADD #version :one",
          ConditionExpression: "attribute_exists(#pk)",
          ExpressionAttributeNames: {
            "#pk": "pk",
            "#status": "status",
            "#updatedAt": "updatedAt",
            "#version": "version",
          },
          ExpressionAttributeValues: { ":status": status, ":now": new Date().toISOString(), ":one": 1 },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException)
        throw notFound("tenant_not_found", `No tenant ${tenantId}`);
      throw err;
    }
  }

  async findKey(hash: string): Promise<KeyRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: apiKeyKey(hash), sk: "KEY" } }),
    );
    return Item ? toKeyRecord(Item) : undefined;
  }

  async endpointClaim(endpointName: string): Promise<EndpointClaim | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { pk: endpointKey(endpointName), sk: "ENDPOINT" } }),
    );
    return Item ? { tenantId: Item.tenantId, model: Item.model } : undefined;
  }

  /**
   * Dedicates an endpoint to a tenant's model. The endpoint is claimed first (one tenant per
   * dedicated endpoint), then recorded on the profile; an endpoint it replaces is released.
   */
  async setDedicatedEndpoint(tenantId: string, model: string, endpoint: DedicatedEndpoint): Promise<Tenant> {
    const pk = endpointKey(endpoint.endpointName);
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk,
            sk: "ENDPOINT",
            type: "endpointClaim",
            tenantId,
            model,
            gsi1pk: tenantKey(tenantId),
            gsi1sk: pk,
          },
          ConditionExpression: `${notExists} OR (#tenantId = :tenantId AND #model = :model)`,
          ExpressionAttributeNames: { "#pk": "pk", "#tenantId": "tenantId", "#model": "model" },
          ExpressionAttributeValues: { ":tenantId": tenantId, ":model": model },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        throw conflict(
          "endpoint_already_dedicated",
          `endpointName: ${endpoint.endpointName} is already dedicated to another tenant or model`,
          "endpointName",
        );
      }
      throw err;
    }

    let before: Tenant;
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: tenantKey(tenantId), sk: PROFILE },
          UpdateExpression: "SET #endpoints.#model = :endpoint, #updatedAt = :now ADD #version :one",
          ConditionExpression: "attribute_exists(#pk) AND #status <> :deleted",
          ExpressionAttributeNames: {
            "#pk": "pk",
            "#endpoints": "endpoints",
            "#model": model,
            "#updatedAt": "updatedAt",
            "#version": "version",
            "#status": "status",
          },
          ExpressionAttributeValues: {
            ":endpoint": endpoint,
            ":now": new Date().toISOString(),
            ":one": 1,
            ":deleted": "deleted",
          },
          ReturnValues: "ALL_OLD",
        }),
      );
      before = toTenant(result.Attributes ?? {});
    } catch (err) {
      await this.releaseClaim(endpoint.endpointName, tenantId);
      if (err instanceof ConditionalCheckFailedException)
        throw notFound("tenant_not_found", `No tenant ${tenantId}`);
      throw err;
    }
    const replaced = dedicatedEndpointOf(before, model);
    if (replaced && replaced.endpointName !== endpoint.endpointName) {
      await this.releaseClaim(replaced.endpointName, tenantId);
    }
    return { ...before, endpoints: { ...before.endpoints, [model]: endpoint } };
  }

  /** Drops an endpoint claim if (and only if) this tenant holds it. */
  async releaseClaim(endpointName: string, tenantId: string): Promise<void> {
    try {
      await this.db.send(
        new DeleteCommand({
          TableName: this.tableName,
          Key: { pk: endpointKey(endpointName), sk: "ENDPOINT" },
          ConditionExpression: "#tenantId = :tenantId",
          ExpressionAttributeNames: { "#tenantId": "tenantId" },
          ExpressionAttributeValues: { ":tenantId": tenantId },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /** The profile, read consistently, with the revision an admin write must find unchanged. */
  async getVersioned(tenantId: string): Promise<{ tenant: Tenant; version: number } | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { pk: tenantKey(tenantId), sk: PROFILE },
        ConsistentRead: true,
      }),
    );
    if (!Item) return undefined;
    return { tenant: toTenant(Item), version: typeof Item.version === "number" ? Item.version : 0 };
  }

  /** Tenants a page at a time, in id order: one Query of the tenant directory (byTenant, `TENANTS`). */
  async list(page: { limit: number; cursor?: string }): Promise<{ tenants: Tenant[]; nextCursor?: string }> {
    const fits = (p: Record<string, string>) =>
      p.gsi1pk === TENANT_DIRECTORY && p.sk === PROFILE && p.pk === p.gsi1sk && Object.keys(p).length === 4;
    const start = page.cursor ? decodeCursor(page.cursor, fits) : undefined;
    const result = await this.db.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: "byTenant",
        KeyConditionExpression: "#g = :directory",
        ExpressionAttributeNames: { "#g": "gsi1pk" },
        ExpressionAttributeValues: { ":directory": TENANT_DIRECTORY },
        Limit: page.limit,
        ...(start ? { ExclusiveStartKey: start } : {}),
      }),
    );
    const last = result.LastEvaluatedKey as Record<string, string> | undefined;
    return {
      tenants: (result.Items ?? []).map(toTenant),
      ...(last ? { nextCursor: encodeCursor(last) } : {}),
    };
  }

  /** Writes the updatable fields of `next`, provided nobody changed the profile since `version` was read. */
  async update(next: Tenant, version: number, now = new Date()): Promise<void> {
    const names: Record<string, string> = {
      "#pk": "pk",
      "#status": "status",
      "#updatedAt": "updatedAt",
      "#g": "gsi1pk",
      "#gs": "gsi1sk",
    };
    const directory = directoryEntry(next.id);
    const values: Record<string, unknown> = {
      ":now": now.toISOString(),
      ":deleted": "deleted",
      ":g": directory.gsi1pk,
      ":gs": directory.gsi1sk,
    };
    // Profiles written before the directory existed join it on their next update.
    const set = ["#updatedAt = :now", "#g = :g", "#gs = :gs"];
    const remove: string[] = [];
    for (const field of UPDATABLE_FIELDS) {
      names[`#${field}`] = field;
      const value = next[field];
      if (value === undefined) remove.push(`#${field}`);
      else {
        set.push(`#${field} = :${field}`);
        values[`:${field}`] = value;
      }
    }
    const removal = remove.length > 0 ? ` REMOVE ${remove.join(", ")}` : "";
    await this.writeProfile(next.id, version, {
      UpdateExpression: `SET ${set.join(", ")}${removal}`,
      ConditionExpression: "#status <> :deleted",
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
  }

  /** Suspends, resumes or deletes, provided the status is still `from`. */
  async transitionStatus(tenantId: string, from: TenantStatus, to: TenantStatus, now = new Date()) {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: tenantKey(tenantId), sk: PROFILE },
          UpdateExpression: "SET #status = :to, #updatedAt = :now ADD #version :one",
          ConditionExpression: "#status = :from",
          ExpressionAttributeNames: { "#status": "status", "#updatedAt": "updatedAt", "#version": "version" },
          ExpressionAttributeValues: { ":from": from, ":to": to, ":now": now.toISOString(), ":one": 1 },
        }),
      );
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw changedMeanwhile(tenantId);
      throw err;
    }
  }

  /**
   * Soft delete: the profile turns `deleted` (the authorizer denies it, no key can be added), then
   * every key is revoked and every endpoint claim released. The data stays until an erase.
   */
  async markDeleted(tenantId: string, version: number, now = new Date()) {
    const before = await this.writeProfile(tenantId, version, {
      UpdateExpression: "SET #status = :deleted, #endpoints = :none, #updatedAt = :now",
      ConditionExpression: "#status <> :deleted",
      ExpressionAttributeNames: { "#status": "status", "#endpoints": "endpoints", "#updatedAt": "updatedAt" },
      ExpressionAttributeValues: { ":deleted": "deleted", ":none": {}, ":now": now.toISOString() },
    });
    const keysRevoked: string[] = [];
    for (const key of await this.listKeys(tenantId)) {
      if (key.status !== "active") continue;
      await this.revokeKey(tenantId, key.keyId, now);
      keysRevoked.push(key.keyId);
    }
    const endpointsReleased: string[] = [];
    for (const endpoint of Object.values(before.endpoints)) {
      await this.releaseClaim(endpoint.endpointName, tenantId);
      endpointsReleased.push(endpoint.endpointName);
    }
    return { keysRevoked, endpointsReleased };
  }

  /** A tenant's keys (through byTenant), newest first would need a sort the caller can do; by key id here. */
  async listKeys(tenantId: string): Promise<KeyRecord[]> {
    const items = await this.byTenant(tenantId, "KEY#");
    return items.map(toKeyRecord);
  }

  async findKeyById(tenantId: string, keyId: string): Promise<KeyRecord | undefined> {
    const [item] = await this.byTenant(tenantId, keySortKey(keyId), true);
    return item ? toKeyRecord(item) : undefined;
  }

  /** Revokes a key of this tenant; the authorizer refuses it from its next run. */
  async revokeKey(tenantId: string, keyId: string, now = new Date()): Promise<KeyRecord> {
    return this.updateKey(tenantId, keyId, {
      UpdateExpression: "SET #status = :revoked, #revokedAt = :now",
      ExpressionAttributeNames: { "#revokedAt": "revokedAt" },
      ExpressionAttributeValues: { ":revoked": "revoked", ":now": now.toISOString() },
    });
  }

  /** Ends a rotated key's life at `expiresAt`, naming its replacement. */
  async expireKey(tenantId: string, keyId: string, expiresAt: Date, replacedBy: string): Promise<KeyRecord> {
    return this.updateKey(tenantId, keyId, {
      UpdateExpression: "SET #expiresAt = :expiresAt, #replacedBy = :replacedBy",
      ConditionExpression: "attribute_not_exists(#expiresAt)",
      ExpressionAttributeNames: { "#expiresAt": "expiresAt", "#replacedBy": "replacedBy" },
      ExpressionAttributeValues: { ":expiresAt": expiresAt.toISOString(), ":replacedBy": replacedBy },
    });
  }

  /** Stamps a key as used now, unless a stamp newer than `staleBefore` is already there (one write per window). */
  async touchKey(hash: string, now: Date, staleBefore: Date): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: apiKeyKey(hash), sk: "KEY" },
          UpdateExpression: "SET #lastUsedAt = :now",
          ConditionExpression:
            "attribute_exists(#pk) AND (attribute_not_exists(#lastUsedAt) OR #lastUsedAt < :stale)",
          ExpressionAttributeNames: { "#pk": "pk", "#lastUsedAt": "lastUsedAt" },
          ExpressionAttributeValues: { ":now": now.toISOString(), ":stale": staleBefore.toISOString() },
        }),
      );
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /** Takes a model's dedicated endpoint off the profile (routing stops), then releases the claim. */
  async removeDedicatedEndpoint(
    tenantId: string,
    model: string,
    now = new Date(),
  ): Promise<DedicatedEndpoint> {
    let before: Tenant;
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: tenantKey(tenantId), sk: PROFILE },
          UpdateExpression: "REMOVE #endpoints.#model SET #updatedAt = :now ADD #version :one",
          ConditionExpression: "attribute_exists(#endpoints.#model)",
          ExpressionAttributeNames: {
            "#endpoints": "endpoints",
            "#model": model,
            "#updatedAt": "updatedAt",
            "#version": "version",
          },
          ExpressionAttributeValues: { ":now": now.toISOString(), ":one": 1 },
          ReturnValues: "ALL_OLD",
        }),
      );
      before = toTenant(result.Attributes ?? {});
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        throw notFound(
          "endpoint_not_found",
          `model: tenant ${tenantId} has no dedicated endpoint for '${model}'`,
          "model",
        );
      }
      throw err;
    }
    const removed = dedicatedEndpointOf(before, model) as DedicatedEndpoint;
    await this.releaseClaim(removed.endpointName, tenantId);
    return removed;
  }

  /**
   * Deletes every item of a tenant in this table: keys first (access stops), then endpoint claims,
   * then the profile. Returns how many items went. The audit trail is the AuditLog's to erase.
   */
  async eraseItems(tenantId: string): Promise<number> {
    let erased = 0;
    const owned = await this.byTenant(tenantId, "");
    const isKey = (item: Record<string, unknown>) => String(item.gsi1sk).startsWith("KEY#");
    for (const item of [...owned.filter(isKey), ...owned.filter((item) => !isKey(item))]) {
      await this.db.send(new DeleteCommand({ TableName: this.tableName, Key: { pk: item.pk, sk: item.sk } }));
      erased += 1;
    }
    const profile = await this.db.send(
      new DeleteCommand({
        TableName: this.tableName,
        Key: { pk: tenantKey(tenantId), sk: PROFILE },
        ReturnValues: "ALL_OLD",
      }),
    );
    return erased + (profile.Attributes ? 1 : 0);
  }

  /** Items keyed by something else that belong to the tenant (byTenant index), by sort-key prefix or exact key. */
  private async byTenant(
    tenantId: string,
    sortKey: string,
    exact = false,
  ): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    const pages = paginateQuery(
      { client: this.db },
      {
        TableName: this.tableName,
        IndexName: "byTenant",
        // DynamoDB refuses an empty key value, even as a prefix: no prefix means the whole partition.
        ...(sortKey === ""
          ? {
              KeyConditionExpression: "#g = :g",
              ExpressionAttributeNames: { "#g": "gsi1pk" },
              ExpressionAttributeValues: { ":g": tenantKey(tenantId) },
            }
          : {
              KeyConditionExpression: exact ? "#g = :g AND #s = :s" : "#g = :g AND begins_with(#s, :s)",
              ExpressionAttributeNames: { "#g": "gsi1pk", "#s": "gsi1sk" },
              ExpressionAttributeValues: { ":g": tenantKey(tenantId), ":s": sortKey },
            }),
      },
    );
    for await (const page of pages) items.push(...(page.Items ?? []));
    return items;
  }

  private async updateKey(
    tenantId: string,
    keyId: string,
    change: {
      UpdateExpression: string;
      ConditionExpression?: string;
      ExpressionAttributeNames: Record<string, string>;
      ExpressionAttributeValues: Record<string, unknown>;
    },
  ): Promise<KeyRecord> {
    const [item] = await this.byTenant(tenantId, keySortKey(keyId), true);
    if (!item) throw notFound("key_not_found", `keyId: tenant ${tenantId} has no key ${keyId}`, "keyId");
    const condition = ["#tenantId = :tenantId", "#status = :active", change.ConditionExpression];
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: item.pk, sk: "KEY" },
          UpdateExpression: change.UpdateExpression,
          ConditionExpression: condition.filter(Boolean).join(" AND "),
          ExpressionAttributeNames: {
            ...change.ExpressionAttributeNames,
            "#tenantId": "tenantId",
            "#status": "status",
          },
          ExpressionAttributeValues: {
            ...change.ExpressionAttributeValues,
            ":tenantId": tenantId,
            ":active": "active",
          },
          ReturnValues: "ALL_NEW",
        }),
      );
      return toKeyRecord(result.Attributes ?? {});
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) {
        throw conflict("key_changed", `key ${keyId} was revoked or rotated meanwhile`, "keyId");
      }
      throw err;
    }
  }

  /** One conditional UpdateItem on the profile that must find `version` unchanged; returns the old profile. */
  private async writeProfile(
    tenantId: string,
    version: number,
    change: {
      UpdateExpression: string;
      ConditionExpression: string;
      ExpressionAttributeNames: Record<string, string>;
      ExpressionAttributeValues: Record<string, unknown>;
    },
  ): Promise<Tenant> {
    // Profiles written before revisions existed have none: they count as revision 0.
    const unchanged = version === 0 ? "attribute_not_exists(#version)" : "#version = :version";
    try {
      const result = await this.db.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: tenantKey(tenantId), sk: PROFILE },
          UpdateExpression: `${change.UpdateExpression} ADD #version :one`,
          ConditionExpression: `attribute_exists(#pk) AND ${unchanged} AND ${change.ConditionExpression}`,
          ExpressionAttributeNames: {
            ...change.ExpressionAttributeNames,
            "#pk": "pk",
            "#version": "version",
          },
          ExpressionAttributeValues: {
            ...change.ExpressionAttributeValues,
            ":one": 1,
            ...(version === 0 ? {} : { ":version": version }),
          },
          ReturnValues: "ALL_OLD",
        }),
      );
      return toTenant(result.Attributes ?? {});
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) throw changedMeanwhile(tenantId);
      throw err;
    }
  }
}

/** Every profile is also an entry of the tenant directory, so listing tenants is a Query, never a Scan. */
const TENANT_DIRECTORY = "TENANTS";
const directoryEntry = (tenantId: string) => ({ gsi1pk: TENANT_DIRECTORY, gsi1sk: tenantKey(tenantId) });

const changedMeanwhile = (tenantId: string) =>
  conflict(
    "tenant_changed",
    `tenant ${tenantId} was changed by another call meanwhile; read it again and retry`,
  );

function toKeyRecord(item: Record<string, unknown>): KeyRecord {
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

function toTenant(item: Record<string, unknown>): Tenant {
  const { id, name, tier, status, compliance, regions, endpoints, models, limits, limiterShards, createdAt } =
    item as unknown as Tenant;
  return {
    id,
    name,
    tier,
    status,
    compliance: compliance ?? [],
    ...(regions ? { regions } : {}),
    endpoints: endpoints ?? {},
    ...(models ? { models } : {}),
    ...(limits && Object.keys(limits).length > 0 ? { limits } : {}),
    ...(limiterShards && limiterShards > 1 ? { limiterShards } : {}),
    createdAt,
  };
}
