/**
 * The lifecycle's DynamoDB side against dynalite over HTTP: revisions, key rotation and revocation,
 * the last-used stamp, endpoint removal, soft delete, erase and the append-only audit trail.
 */
import { generateApiKey, hashApiKey } from "@atrium/core/api-key";
import { AuditLog } from "@atrium/core/audit";
import { loadStageConfigFile } from "@atrium/core/config";
import { eraseTenant } from "@atrium/core/erase";
import { TenantStore } from "@atrium/core/store";
import { LimiterTable, TenantTable } from "@atrium/core/tables";
import { newTenant, type Tenant } from "@atrium/core/tenant";
import { ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { DynamoDBDocumentClient, PutCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-lifecycle");
const LIMITS = uniqueTableName("atrium-test-lifecycle-limits");
const config = loadStageConfigFile("config/local.json");
let dynamo: LocalDynamo;
let doc: DynamoDBDocumentClient;
let store: TenantStore;
let audit: AuditLog;

beforeAll(async () => {
  dynamo = sharedDynamo();
  const client = localDynamoClient(dynamo.url);
  await ensureTable(client, TABLE, TenantTable);
  await ensureTable(client, LIMITS, LimiterTable);
  doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  store = new TenantStore(doc, TABLE);
  audit = new AuditLog(doc, TABLE);
});

afterAll(() => dynamo?.close());

async function created(
  id: string,
  tier = "enterprise",
): Promise<{ tenant: Tenant; key: ReturnType<typeof generateApiKey> }> {
  const tenant = { ...newTenant({ name: `Tenant ${id}`, tier }, config), id };
  const key = generateApiKey();
  await store.create(tenant, key);
  return { tenant, key };
}

async function scan(table: string): Promise<Record<string, unknown>[]> {
  return (await doc.send(new ScanCommand({ TableName: table }))).Items ?? [];
}

describe("profile revisions", () => {
  it("refuse an update computed from a profile another call changed meanwhile", async () => {
    await created("rev-1", "pro");
    const first = await store.getVersioned("rev-1");
    expect(first?.version).toBe(0);
    await store.update({ ...(first?.tenant as Tenant), tier: "business" }, 0);
    // A write computed from the stale read loses, whichever call wrote in between.
    await expect(store.update({ ...(first?.tenant as Tenant), name: "Stale" }, 0)).rejects.toMatchObject({
      status: 409,
      code: "tenant_changed",
    });
    await store.setDedicatedEndpoint("rev-1", "m1", { endpointName: "rev-1-m1" });
    await expect(store.update({ ...(first?.tenant as Tenant), name: "Stale" }, 1)).rejects.toMatchObject({
      code: "tenant_changed",
    });
    const now = await store.getVersioned("rev-1");
    expect(now).toMatchObject({ version: 2, tenant: { tier: "business", name: "Tenant rev-1" } });
  });

  it("write set fields and remove cleared ones", async () => {
    await created("rev-2", "pro");
    const { tenant, version } = (await store.getVersioned("rev-2")) as { tenant: Tenant; version: number };
    await store.update({ ...tenant, models: ["llama-3.1-8b-instruct"], limits: { burst: 3 } }, version);
    expect(await store.get("rev-2")).toMatchObject({
      models: ["llama-3.1-8b-instruct"],
      limits: { burst: 3 },
    });
    const { models: _m, limits: _l, ...cleared } = (await store.get("rev-2")) as Tenant;
    await store.update(cleared, version + 1);
    const after = await store.get("rev-2");
    expect(after?.models).toBeUndefined();
    expect(after?.limits).toBeUndefined();
  });

  it("move the status only from the expected one", async () => {
    await created("rev-3", "pro");
    await store.transitionStatus("rev-3", "active", "suspended");
    await expect(store.transitionStatus("rev-3", "active", "suspended")).rejects.toMatchObject({
      status: 409,
    });
    await store.transitionStatus("rev-3", "suspended", "active");
    expect((await store.get("rev-3"))?.status).toBe("active");
  });
});

describe("listing tenants", () => {
  it("pages through every tenant exactly once", async () => {
    for (const id of ["page-a", "page-b", "page-c", "page-d", "page-e"]) await created(id, "free");
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await store.list({ limit: 2, ...(cursor ? { cursor } : {}) });
      expect(page.tenants.length).toBeLessThanOrEqual(2);
      seen.push(...page.tenants.map((t) => t.id));
      cursor = page.nextCursor;
    } while (cursor);
    const all = (await scan(TABLE)).filter((item) => item.sk === "PROFILE").map((item) => item.id);
    expect(seen.sort()).toEqual([...all].sort());
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("lists a profile written before the directory existed once an update touches it", async () => {
    const legacy = { ...newTenant({ name: "Legacy", tier: "pro" }, config), id: "legacy-1" };
    await doc.send(
      new PutCommand({ TableName: TABLE, Item: { pk: "TENANT#legacy-1#", sk: "PROFILE", ...legacy } }),
    );
    const listed = async () => (await store.list({ limit: 1000 })).tenants.map((t) => t.id);
    expect(await listed()).not.toContain("legacy-1");
    await store.update({ ...legacy, name: "Legacy, listed" }, 0);
    expect(await listed()).toContain("legacy-1");
  });
});

describe("keys", () => {
  it("list by tenant, rotate with an expiry, revoke once", async () => {
    const { key } = await created("keys-1");
    const second = generateApiKey();
    await store.addKey("keys-1", second);
    expect((await store.listKeys("keys-1")).map((k) => k.keyId).sort()).toEqual(
      [key.keyId, second.keyId].sort(),
    );

    const expiresAt = new Date(Date.now() + 60_000);
    const rotated = await store.expireKey("keys-1", key.keyId, expiresAt, second.keyId);
    expect(rotated).toMatchObject({ expiresAt: expiresAt.toISOString(), replacedBy: second.keyId });
    expect((await store.findKey(key.hash))?.expiresAt).toBe(expiresAt.toISOString());
    // A rotation is final: the expiry is never moved by a second rotation.
    await expect(store.expireKey("keys-1", key.keyId, new Date(), second.keyId)).rejects.toMatchObject({
      code: "key_changed",
    });

    const revoked = await store.revokeKey("keys-1", second.keyId);
    expect(revoked).toMatchObject({ status: "revoked", revokedAt: expect.any(String) });
    await expect(store.revokeKey("keys-1", second.keyId)).rejects.toMatchObject({ status: 409 });
    await expect(store.revokeKey("keys-1", "key-000000000000")).rejects.toMatchObject({ status: 404 });
  });

  it("never act on another tenant's key", async () => {
    const { key } = await created("keys-2");
    await created("keys-3");
    await expect(store.revokeKey("keys-3", key.keyId)).rejects.toMatchObject({ code: "key_not_found" });
    expect((await store.findKey(key.hash))?.status).toBe("active");
  });

  it("stamp last use once per window", async () => {
    const { key } = await created("keys-4");
    const t0 = new Date("2026-11-28T12:00:00Z");
    await store.touchKey(key.hash, t0, new Date(t0.getTime() - 300_000));
    await store.touchKey(key.hash, new Date(t0.getTime() + 1000), new Date(t0.getTime() + 1000 - 300_000));
    expect((await store.findKey(key.hash))?.lastUsedAt).toBe(t0.toISOString());
    const later = new Date(t0.getTime() + 300_001);
    await store.touchKey(key.hash, later, new Date(later.getTime() - 300_000));
    expect((await store.findKey(key.hash))?.lastUsedAt).toBe(later.toISOString());
    // An unknown hash creates nothing.
    await store.touchKey(hashApiKey(generateApiKey().plaintext), later, t0);
    expect((await scan(TABLE)).filter((item) => item.pk === "KEY#" && !item.tenantId)).toEqual([]);
  });
});

describe("endpoints and deletion", () => {
  it("remove a dedicated endpoint: routing entry first, then the claim", async () => {
    await created("ep-1");
    await store.setDedicatedEndpoint("ep-1", "m", { endpointName: "ep-1-m" });
    expect(await store.removeDedicatedEndpoint("ep-1", "m")).toEqual({ endpointName: "ep-1-m" });
    expect((await store.get("ep-1"))?.endpoints).toEqual({});
    expect(await store.endpointClaim("ep-1-m")).toBeUndefined();
    await expect(store.removeDedicatedEndpoint("ep-1", "m")).rejects.toMatchObject({
      status: 404,
      code: "endpoint_not_found",
    });
  });

  it("soft delete revokes every key and releases every endpoint, keeping the data", async () => {
    const { key } = await created("del-1");
    await store.setDedicatedEndpoint("del-1", "m", { endpointName: "del-1-m" });
    const { version } = (await store.getVersioned("del-1")) as { version: number };
    const result = await store.markDeleted("del-1", version);
    expect(result).toEqual({ keysRevoked: [key.keyId], endpointsReleased: ["del-1-m"] });
    expect(await store.get("del-1")).toMatchObject({ status: "deleted", endpoints: {} });
    expect((await store.findKey(key.hash))?.status).toBe("revoked");
    expect(await store.endpointClaim("del-1-m")).toBeUndefined();
    await expect(store.setDedicatedEndpoint("del-1", "m", { endpointName: "del-1-m" })).rejects.toMatchObject(
      {
        status: 404,
      },
    );
  });
});

describe("audit trail", () => {
  it("appends entries in time order under never-reused ids, a page at a time", async () => {
    const at = new Date("2026-11-28T12:00:00Z");
    const a = await audit.append(
      { tenantId: "aud-1", actor: "me", action: "tenant.update", target: "aud-1" },
      at,
    );
    const b = await audit.append(
      { tenantId: "aud-1", actor: "me", action: "tenant.update", target: "aud-1" },
      at,
    );
    const c = await audit.append({ tenantId: "aud-1", actor: "me", action: "key.revoke", target: "k" });
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);
    const first = await audit.list("aud-1", { limit: 2 });
    expect(first.entries).toHaveLength(2);
    const second = await audit.list("aud-1", { limit: 2, cursor: first.nextCursor as string });
    const ids = [...first.entries, ...second.entries].map((e) => e.id);
    expect(ids).toEqual([a.id, b.id, c.id].sort());
    // A cursor of this tenant's trail cannot be pointed at another tenant's.
    await expect(audit.list("aud-2", { limit: 2, cursor: first.nextCursor as string })).rejects.toMatchObject(
      {
        status: 400,
        param: "cursor",
      },
    );
  });

  it("cannot overwrite an entry", async () => {
    const entry = await audit.append({
      tenantId: "aud-3",
      actor: "me",
      action: "tenant.create",
      target: "aud-3",
    });
    const overwrite = doc.send(
      new PutCommand({
        TableName: TABLE,
        Item: { pk: "AUDIT#aud-3#", sk: entry.id, action: "tenant.update" },
        ConditionExpression: "attribute_not_exists(#pk)",
        ExpressionAttributeNames: { "#pk": "pk" },
      }),
    );
    await expect(overwrite).rejects.toThrow(/conditional/i);
    expect((await audit.list("aud-3", { limit: 10 })).entries[0]?.action).toBe("tenant.create");
  });
});

describe("erase", () => {
  it("leaves nothing of the tenant in any table but the erase record, and nothing of others goes", async () => {
    const { key } = await created("gone-1");
    await created("stay-1");
    await store.setDedicatedEndpoint("gone-1", "m", { endpointName: "gone-1-m" });
    await audit.append({ tenantId: "gone-1", actor: "me", action: "tenant.create", target: "gone-1" });
    await doc.send(
      new PutCommand({ TableName: LIMITS, Item: { pk: "TENANT#gone-1#", sk: "LIMITER#0", tat: 1 } }),
    );
    await doc.send(
      new PutCommand({ TableName: LIMITS, Item: { pk: "TENANT#stay-1#", sk: "LIMITER#0", tat: 1 } }),
    );
    const stayBefore = JSON.stringify(await scan(TABLE)).split("stay-1").length;

    const deps = { store, audit, partitions: [{ db: doc, tableName: LIMITS }] };
    const { erased, record } = await eraseTenant(deps, "gone-1", "eraser");
    // Key, profile, limiter item, audit entry (the claim went with the soft delete that erase starts with).
    expect(erased).toBe(4);
    expect(await store.endpointClaim("gone-1-m")).toBeUndefined();
    expect(record).toMatchObject({
      tenantId: "gone-1",
      action: "tenant.erase",
      actor: "eraser",
      target: "gone-1",
    });

    const left = [...(await scan(TABLE)), ...(await scan(LIMITS))].filter((item) =>
      JSON.stringify(item).includes("gone-1"),
    );
    expect(left).toHaveLength(1);
    expect(Object.keys(left[0] as object).sort()).toEqual(
      ["pk", "sk", "type", "tenantId", "id", "at", "actor", "action", "target"].sort(),
    );
    expect(JSON.stringify(left)).not.toContain(key.hash);
    expect(JSON.stringify(await scan(TABLE)).split("stay-1").length).toBe(stayBefore);
    expect((await scan(LIMITS)).some((item) => item.pk === "TENANT#stay-1#")).toBe(true);

    // Again: nothing left to erase is a 404, and the first erase record stays the only one.
    await expect(eraseTenant(deps, "gone-1", "eraser")).rejects.toMatchObject({ status: 404 });
    expect((await audit.list("gone-1", { limit: 10 })).entries).toHaveLength(1);
  });
});
