/**
 * The admin use-cases (packages/core/src/admin) against AWS's DynamoDB Local over HTTP: revisions, key
 * rotation and revocation, the last-used stamp, endpoints, soft delete, the audit trail and erase,
 * which finds every item from base tables, read consistently.
 */

import { addEndpoint, MAX_DEDICATED_ENDPOINTS, removeEndpoint } from "@atrium/core/admin/endpoints";
import { createKey, revokeKey, rotateKey } from "@atrium/core/admin/keys";
import { createTenant, deleteTenant, suspendTenant, updateTenant } from "@atrium/core/admin/tenants";
import { generateApiKey, hashApiKey } from "@atrium/core/api-key";
import { listAuditEntries } from "@atrium/core/audit";
import { loadStageConfigFile } from "@atrium/core/config";
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { eraseTenant } from "@atrium/core/erase";
import { MAX_LIVE_KEYS } from "@atrium/core/key-lifecycle";
import { findKeyByHash, listKeys, touchKey } from "@atrium/core/key-store";
import { getProfile } from "@atrium/core/profiles";
import { TenantStore } from "@atrium/core/store";
import { LimiterTable, TenantTable } from "@atrium/core/tables";
import { newTenant } from "@atrium/core/tenant";
import { listTenants } from "@atrium/core/tenant-directory";
import type { Table } from "@atrium/core/transaction";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { readsOf, recordCommands } from "../support/dynamo-spy";
import { sharedDynamoUrl, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-lifecycle");
const LIMITS = uniqueTableName("atrium-test-lifecycle-limits");
const config = loadStageConfigFile("config/local.json");
const LLAMA = "llama-3.1-8b-instruct";
let doc: DynamoClient;
let table: Table;
let store: TenantStore;

beforeAll(async () => {
  const client = localDynamoClient(sharedDynamoUrl());
  await ensureTable(client, TABLE, TenantTable);
  await ensureTable(client, LIMITS, LimiterTable);
  doc = dynamoClientFor(sharedDynamoUrl());
  table = { db: doc, name: TABLE };
  store = new TenantStore(doc, TABLE);
});

async function created(tier = "enterprise") {
  const { tenant, key } = await createTenant(table, config, "op", { name: `Tenant ${tier}`, tier });
  return { tenantId: tenant.id, key };
}

async function scan(tableName: string): Promise<Record<string, unknown>[]> {
  return (await doc.scan({ TableName: tableName })).Items ?? [];
}

const actions = async (tenantId: string) =>
  (await listAuditEntries(table, tenantId, { limit: 100 })).entries.map((entry) => entry.action);

describe("profile revisions", () => {
  it("every write moves the revision on; an update that changes nothing writes and audits nothing", async () => {
    const { tenantId } = await created("pro");
    expect((await getProfile(table, tenantId))?.version).toBe(0);
    const { changes } = await updateTenant(table, config, "op", tenantId, {
      tier: "business",
      name: "Renamed",
    });
    expect(changes).toEqual({
      name: { from: "Tenant pro", to: "Renamed" },
      tier: { from: "pro", to: "business" },
    });
    expect(await updateTenant(table, config, "op", tenantId, { name: "Renamed" })).toMatchObject({
      changes: {},
    });
    expect(await getProfile(table, tenantId)).toMatchObject({ version: 1, tenant: { tier: "business" } });
    expect(await actions(tenantId)).toEqual(["tenant.create", "tenant.update"]);
  });

  it("write set fields and remove cleared ones", async () => {
    const { tenantId } = await created("pro");
    await updateTenant(table, config, "op", tenantId, { models: [LLAMA], limits: { burst: 3 } });
    expect(await store.get(tenantId)).toMatchObject({ models: [LLAMA], limits: { burst: 3 } });
    await updateTenant(table, config, "op", tenantId, { models: null, limits: null });
    const after = await store.get(tenantId);
    expect(after?.models).toBeUndefined();
    expect(after?.limits).toBeUndefined();
  });

  it("move the status only from the expected one", async () => {
    const { tenantId } = await created("pro");
    await suspendTenant(table, "op", tenantId);
    await expect(suspendTenant(table, "op", tenantId)).rejects.toMatchObject({
      status: 409,
      code: "tenant_suspended",
    });
    await expect(suspendTenant(table, "op", "tn-nobody")).rejects.toMatchObject({ status: 404 });
  });
});

describe("listing tenants", () => {
  it("pages through every tenant exactly once", async () => {
    for (let i = 0; i < 5; i++) await created("free");
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listTenants(table, { limit: 2, ...(cursor ? { cursor } : {}) });
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
    await doc.put({ TableName: TABLE, Item: { pk: "TENANT#legacy-1#", sk: "PROFILE", ...legacy } });
    const listed = async () => (await listTenants(table, { limit: 1000 })).tenants.map((t) => t.id);
    expect(await listed()).not.toContain("legacy-1");
    await updateTenant(table, config, "op", "legacy-1", { name: "Legacy, listed" });
    expect(await listed()).toContain("legacy-1");
  });
});

describe("keys", () => {
  it("list by tenant, rotate with an expiry, revoke once", async () => {
    const { tenantId, key } = await created();
    const second = await createKey(table, "op", tenantId);
    expect((await listKeys(table, tenantId)).map((k) => k.record.keyId).sort()).toEqual(
      [key.keyId, second.key.keyId].sort(),
    );

    const { key: third, rotated } = await rotateKey(table, "op", tenantId, key.keyId, { graceSeconds: 60 });
    expect(rotated).toMatchObject({
      keyId: key.keyId,
      replacedBy: third.keyId,
      expiresAt: expect.any(String),
    });
    expect(await findKeyByHash(table, key.hash)).toMatchObject({ expiresAt: rotated.expiresAt });
    // A rotation is final: the expiry is never moved by a second rotation.
    await expect(rotateKey(table, "op", tenantId, key.keyId, { graceSeconds: 0 })).rejects.toMatchObject({
      status: 409,
      code: "key_expiring",
    });

    const { revoked } = await revokeKey(table, "op", tenantId, second.key.keyId);
    expect(revoked).toMatchObject({ status: "revoked", revokedAt: expect.any(String) });
    expect((await findKeyByHash(table, second.key.hash))?.status).toBe("revoked");
    await expect(revokeKey(table, "op", tenantId, second.key.keyId)).rejects.toMatchObject({ status: 409 });
    await expect(revokeKey(table, "op", tenantId, "key-000000000000")).rejects.toMatchObject({ status: 404 });
    expect(await actions(tenantId)).toEqual(["tenant.create", "key.create", "key.rotate", "key.revoke"]);
  });

  it("never act on another tenant's key", async () => {
    const { key } = await created();
    const other = await created();
    await expect(revokeKey(table, "op", other.tenantId, key.keyId)).rejects.toMatchObject({
      code: "key_not_found",
    });
    expect((await findKeyByHash(table, key.hash))?.status).toBe("active");
  });

  it(`hold at most ${MAX_LIVE_KEYS} working keys`, async () => {
    const { tenantId } = await created("pro");
    for (let i = 1; i < MAX_LIVE_KEYS; i++) await createKey(table, "op", tenantId);
    await expect(createKey(table, "op", tenantId)).rejects.toMatchObject({
      status: 409,
      code: "too_many_keys",
    });
  });

  it("stamp last use once per window", async () => {
    const { key } = await created();
    const t0 = new Date("2026-11-28T12:00:00Z");
    await touchKey(table, key.hash, t0, new Date(t0.getTime() - 300_000));
    await touchKey(table, key.hash, new Date(t0.getTime() + 1000), new Date(t0.getTime() + 1000 - 300_000));
    expect((await findKeyByHash(table, key.hash))?.lastUsedAt).toBe(t0.toISOString());
    const later = new Date(t0.getTime() + 300_001);
    await touchKey(table, key.hash, later, new Date(later.getTime() - 300_000));
    expect((await findKeyByHash(table, key.hash))?.lastUsedAt).toBe(later.toISOString());
    // An unknown hash creates nothing.
    const unknown = hashApiKey(generateApiKey().plaintext);
    await touchKey(table, unknown, later, t0);
    expect(await findKeyByHash(table, unknown)).toBeUndefined();
  });
});

describe("endpoints and deletion", () => {
  it("add, replace (the old claim is released), register again (nothing written), remove", async () => {
    const { tenantId } = await created();
    await addEndpoint(table, config, "op", tenantId, { model: LLAMA, endpointName: `${tenantId}-a` });
    const { tenant } = await addEndpoint(table, config, "op", tenantId, {
      model: LLAMA,
      endpointName: `${tenantId}-b`,
    });
    expect(tenant.endpoints[LLAMA]).toEqual({ endpointName: `${tenantId}-b` });
    expect(await store.endpointClaim(`${tenantId}-a`)).toBeUndefined();
    expect(await store.endpointClaim(`${tenantId}-b`)).toEqual({ tenantId, model: LLAMA });
    await addEndpoint(table, config, "op", tenantId, { model: LLAMA, endpointName: `${tenantId}-b` });

    expect(await removeEndpoint(table, "op", tenantId, LLAMA)).toEqual({
      removed: { endpointName: `${tenantId}-b` },
    });
    expect((await store.get(tenantId))?.endpoints).toEqual({});
    expect(await store.endpointClaim(`${tenantId}-b`)).toBeUndefined();
    await expect(removeEndpoint(table, "op", tenantId, LLAMA)).rejects.toMatchObject({
      status: 404,
      code: "endpoint_not_found",
    });
    expect(await actions(tenantId)).toEqual([
      "tenant.create",
      "endpoint.add",
      "endpoint.add",
      "endpoint.remove",
    ]);
  });

  it(`keep at most ${MAX_DEDICATED_ENDPOINTS} dedicated endpoints, so a delete fits one transaction`, async () => {
    const { tenantId } = await created();
    const endpoints = Object.fromEntries(
      Array.from({ length: MAX_DEDICATED_ENDPOINTS }, (_, i) => [
        `m${i}`,
        { endpointName: `${tenantId}-m${i}` },
      ]),
    );
    await doc.update({
      TableName: TABLE,
      Key: { pk: `TENANT#${tenantId}#`, sk: "PROFILE" },
      UpdateExpression: "SET #endpoints = :endpoints",
      ExpressionAttributeNames: { "#endpoints": "endpoints" },
      ExpressionAttributeValues: { ":endpoints": endpoints },
    });
    await expect(
      addEndpoint(table, config, "op", tenantId, { model: "one-more", endpointName: `${tenantId}-x` }),
    ).rejects.toMatchObject({ status: 409, code: "too_many_endpoints" });
    // The largest delete: profile, every claim, every working key, the audit entry.
    for (let i = 1; i < MAX_LIVE_KEYS; i++) await createKey(table, "op", tenantId);
    const { changes } = await deleteTenant(table, "op", tenantId);
    expect(changes.keysRevoked?.to).toHaveLength(MAX_LIVE_KEYS);
    expect(changes.endpointsReleased?.to).toHaveLength(MAX_DEDICATED_ENDPOINTS);
  });

  it("soft delete revokes every working key and releases every endpoint, keeping the data", async () => {
    const { tenantId, key } = await created();
    const expired = await createKey(table, "op", tenantId);
    await rotateKey(table, "op", tenantId, expired.key.keyId, { graceSeconds: 0 });
    await addEndpoint(table, config, "op", tenantId, { model: "m", endpointName: `${tenantId}-m` });
    const { tenant, changes } = await deleteTenant(table, "op", tenantId);
    expect(tenant).toMatchObject({ status: "deleted", endpoints: {} });
    // The key that expired at its rotation admits nobody already; the working two are revoked.
    expect(changes.keysRevoked?.to).toHaveLength(2);
    expect(changes.keysRevoked?.to).toContain(key.keyId);
    expect(changes.endpointsReleased).toEqual({ to: [`${tenantId}-m`] });
    expect((await findKeyByHash(table, key.hash))?.status).toBe("revoked");
    expect(await store.endpointClaim(`${tenantId}-m`)).toBeUndefined();
    await expect(createKey(table, "op", tenantId)).rejects.toMatchObject({
      status: 409,
      code: "tenant_deleted",
    });
    await expect(
      addEndpoint(table, config, "op", tenantId, { model: "m", endpointName: `${tenantId}-m` }),
    ).rejects.toMatchObject({ status: 409, code: "tenant_deleted" });
    await expect(deleteTenant(table, "op", tenantId)).rejects.toMatchObject({ status: 409 });
  });
});

describe("audit trail", () => {
  it("pages entries oldest first; a cursor of one tenant's trail cannot read another's", async () => {
    const { tenantId } = await created("pro");
    await updateTenant(table, config, "op", tenantId, { name: "Two" });
    await updateTenant(table, config, "op", tenantId, { name: "Three" });
    const first = await listAuditEntries(table, tenantId, { limit: 2 });
    expect(first.entries).toHaveLength(2);
    const second = await listAuditEntries(table, tenantId, { limit: 2, cursor: first.nextCursor as string });
    const all = [...first.entries, ...second.entries];
    expect(all.map((e) => e.action)).toEqual(["tenant.create", "tenant.update", "tenant.update"]);
    expect(all.map((e) => e.id)).toEqual(all.map((e) => e.id).sort());
    const other = await created("pro");
    await expect(
      listAuditEntries(table, other.tenantId, { limit: 2, cursor: first.nextCursor as string }),
    ).rejects.toMatchObject({ status: 400, param: "cursor" });
  });
});

describe("erase", () => {
  it("finds every item from base tables (no index) and leaves only the erase record", async () => {
    const { tenantId, key } = await created();
    const other = await created();
    const extra = await createKey(table, "op", tenantId);
    await addEndpoint(table, config, "op", tenantId, { model: "m", endpointName: `${tenantId}-m` });
    for (const id of [tenantId, other.tenantId]) {
      await doc.put({ TableName: LIMITS, Item: { pk: `TENANT#${id}#`, sk: "LIMITER#0", tat: 1 } });
    }
    const otherBefore = JSON.stringify(await scan(TABLE)).split(other.tenantId).length;

    const recorder = recordCommands(doc);
    let erased: Awaited<ReturnType<typeof eraseTenant>>;
    try {
      erased = await eraseTenant(table, "eraser", tenantId, [{ db: doc, tableName: LIMITS }]);
    } finally {
      recorder.stop();
    }
    expect(erased.record).toMatchObject({
      tenantId,
      action: "tenant.erase",
      actor: "eraser",
      target: tenantId,
    });
    // Every read of the erase was a consistent read of a base table.
    const reads = readsOf(recorder.sent);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((read) => read.index || !read.consistent)).toEqual([]);

    const left = [...(await scan(TABLE)), ...(await scan(LIMITS))].filter((item) =>
      JSON.stringify(item).includes(tenantId),
    );
    expect(left).toHaveLength(1);
    expect(Object.keys(left[0] as object).sort()).toEqual(
      ["pk", "sk", "type", "tenantId", "id", "at", "actor", "action", "target"].sort(),
    );
    for (const hash of [key.hash, extra.key.hash]) expect(JSON.stringify(left)).not.toContain(hash);
    expect(await findKeyByHash(table, key.hash)).toBeUndefined();
    expect(await store.endpointClaim(`${tenantId}-m`)).toBeUndefined();
    expect(JSON.stringify(await scan(TABLE)).split(other.tenantId).length).toBe(otherBefore);
    expect((await scan(LIMITS)).some((item) => item.pk === `TENANT#${other.tenantId}#`)).toBe(true);

    // Again: nothing left to erase is a 404, and the first erase record stays the only one.
    await expect(eraseTenant(table, "eraser", tenantId, [])).rejects.toMatchObject({ status: 404 });
    expect(await actions(tenantId)).toEqual(["tenant.erase"]);
  });
});

describe("reads that decide", () => {
  it("are strongly consistent in every admin action; only the tenant listing reads the index", async () => {
    const recorder = recordCommands(doc);
    try {
      const { tenantId, key } = await created();
      await updateTenant(table, config, "op", tenantId, { name: "Consistent" });
      await addEndpoint(table, config, "op", tenantId, { model: "m", endpointName: `${tenantId}-c` });
      await removeEndpoint(table, "op", tenantId, "m");
      const second = await createKey(table, "op", tenantId);
      await rotateKey(table, "op", tenantId, key.keyId, { graceSeconds: 60 });
      await revokeKey(table, "op", tenantId, second.key.keyId);
      await suspendTenant(table, "op", tenantId);
      await deleteTenant(table, "op", tenantId);
      await eraseTenant(table, "op", tenantId, []);
      await listTenants(table, { limit: 10 });
    } finally {
      recorder.stop();
    }
    const reads = readsOf(recorder.sent);
    const commands = new Set(reads.map((read) => read.command));
    expect(commands).toEqual(new Set(["GetItem", "Query", "BatchGetItem"]));
    expect(reads.filter((read) => !read.consistent)).toEqual([
      { command: "Query", table: TABLE, index: "byTenant", consistent: false },
    ]);
  });
});
