import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import type { NewApiKey } from "./api-key";
import { conflict, notFound } from "./errors";
import { apiKeyKey, endpointKey, keySortKey, PROFILE, tenantKey } from "./keys";
import type { DedicatedEndpoint, Tenant } from "./tenant";

export type KeyStatus = "active" | "revoked";

/** What the authorizer learns from a presented key's hash. */
export interface KeyRecord {
  tenantId: string;
  keyId: string;
  hint: string;
  status: KeyStatus;
  createdAt: string;
}

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
        Item: { pk: tenantKey(tenant.id), sk: PROFILE, type: "tenant", ...tenant },
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
          UpdateExpression: "SET #status = :status, #updatedAt = :now",
          ConditionExpression: "attribute_exists(#pk)",
          ExpressionAttributeNames: { "#pk": "pk", "#status": "status", "#updatedAt": "updatedAt" },
          ExpressionAttributeValues: { ":status": status, ":now": new Date().toISOString() },
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
    if (!Item) return undefined;
    const { tenantId, keyId, hint, status, createdAt } = Item;
    return { tenantId, keyId, hint, status, createdAt };
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
          UpdateExpression: "SET #endpoints.#model = :endpoint, #updatedAt = :now",
          ConditionExpression: "attribute_exists(#pk)",
          ExpressionAttributeNames: {
            "#pk": "pk",
            "#endpoints": "endpoints",
            "#model": model,
            "#updatedAt": "updatedAt",
          },
          ExpressionAttributeValues: { ":endpoint": endpoint, ":now": new Date().toISOString() },
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
    const replaced = before.endpoints[model];
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
}

function toTenant(item: Record<string, unknown>): Tenant {
  const { id, name, tier, status, compliance, regions, endpoints, limits, limiterShards, createdAt } =
    item as unknown as Tenant;
  return {
    id,
    name,
    tier,
    status,
    compliance: compliance ?? [],
    ...(regions ? { regions } : {}),
    endpoints: endpoints ?? {},
    ...(limits && Object.keys(limits).length > 0 ? { limits } : {}),
    ...(limiterShards && limiterShards > 1 ? { limiterShards } : {}),
    createdAt,
  };
}
