/**
 * TenantStore (what the authorizer, the route handlers and the local platform use) against AWS's
 * DynamoDB Local over HTTP: conditions evaluated by the real engine, reads marked consistent.
 */

import { addEndpoint } from "@atrium/core/admin/endpoints";
import { generateApiKey, hashApiKey } from "@atrium/core/api-key";
import { listAuditEntries } from "@atrium/core/audit";
import { loadStageConfigFile } from "@atrium/core/config";
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { tenantKey } from "@atrium/core/keys";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { newTenant, type Tenant } from "@atrium/core/tenant";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { readsOf, recordCommands } from "../support/dynamo-spy";
import { sharedDynamoUrl, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-tenants");
const config = loadStageConfigFile("config/local.json");
let doc: DynamoClient;
let store: TenantStore;

beforeAll(async () => {
  const client = localDynamoClient(sharedDynamoUrl());
  await ensureTable(client, TABLE, TenantTable);
  await ensureTable(client, TABLE, TenantTable); // idempotent
  doc = dynamoClientFor(sharedDynamoUrl());
  store = new TenantStore(doc, TABLE);
});

function tenantWithId(id: string, tier = "enterprise"): Tenant {
  return { ...newTenant({ name: `Tenant ${id}`, tier }, config), id };
}

async function allItems(): Promise<Record<string, unknown>[]> {
  return (await doc.scan({ TableName: TABLE })).Items ?? [];
}

describe("TenantStore", () => {
  it("stores a tenant and finds it by a key's hash; the plaintext key is written nowhere", async () => {
    const tenant = tenantWithId("acme-1", "pro");
    const key = generateApiKey();
    await store.create(tenant, key);

    expect(await store.get("acme-1")).toEqual(tenant);
    expect(await store.findKey(hashApiKey(key.plaintext))).toMatchObject({
      tenantId: "acme-1",
      keyId: key.keyId,
      status: "active",
    });
    expect(await store.findKey(hashApiKey(generateApiKey().plaintext))).toBeUndefined();
    const dump = JSON.stringify(await allItems());
    expect(dump).toContain(key.hash);
    expect(dump).not.toContain(key.plaintext);
    // Seeding is an admin change like any other: audited, by the platform.
    const { entries } = await listAuditEntries(store.table, "acme-1", { limit: 10 });
    expect(entries).toEqual([expect.objectContaining({ action: "tenant.create", actor: "local-platform" })]);
  });

  it("refuses to overwrite an existing tenant, and writes none of the second key", async () => {
    const tenant = tenantWithId("acme-2");
    await store.create(tenant, generateApiKey());
    const impostorKey = generateApiKey();
    await expect(store.create({ ...tenant, name: "Impostor" }, impostorKey)).rejects.toThrow(/taken/);
    expect((await store.get("acme-2"))?.name).toBe(tenant.name);
    expect(await store.findKey(impostorKey.hash)).toBeUndefined();
  });

  it("keeps t1's partition from prefix-matching t10's items", async () => {
    await store.create(tenantWithId("t1x"), generateApiKey());
    await store.create(tenantWithId("t10x"), generateApiKey());
    const matching = (await allItems()).filter((item) =>
      [item.pk, item.gsi1sk].some((k) => typeof k === "string" && k.startsWith(tenantKey("t1x"))),
    );
    // The profile and its key reference.
    expect(matching.map((item) => item.sk).sort()).toEqual([expect.stringMatching(/^KEY#key-/), "PROFILE"]);
    expect(matching.every((item) => item.pk === tenantKey("t1x"))).toBe(true);
  });

  it("reports who holds a dedicated endpoint", async () => {
    await store.create(tenantWithId("owner-1"), generateApiKey());
    await addEndpoint(store.table, config, "op", "owner-1", { model: "llama", endpointName: "owner-llama" });
    expect(await store.endpointClaim("owner-llama")).toEqual({ tenantId: "owner-1", model: "llama" });
    expect(await store.endpointClaim("nobody-llama")).toBeUndefined();
  });

  it("suspends and resumes a tenant (audited), and refuses unknown ones", async () => {
    await store.create(tenantWithId("pause-1", "pro"), generateApiKey());
    await store.setStatus("pause-1", "suspended");
    expect((await store.get("pause-1"))?.status).toBe("suspended");
    await store.setStatus("pause-1", "active");
    expect((await store.get("pause-1"))?.status).toBe("active");
    const { entries } = await listAuditEntries(store.table, "pause-1", { limit: 10 });
    expect(entries.map((e) => e.action)).toEqual(["tenant.create", "tenant.suspend", "tenant.resume"]);
    await expect(store.setStatus("nobody-1", "suspended")).rejects.toMatchObject({ status: 404 });
  });

  it("reads keys, profiles and claims strongly consistent (what the authorizer decides on)", async () => {
    const key = generateApiKey();
    await store.create(tenantWithId("fresh-1", "pro"), key);
    const recorder = recordCommands(doc);
    try {
      await store.findKey(key.hash);
      await store.get("fresh-1");
      await store.endpointClaim("owner-llama");
    } finally {
      recorder.stop();
    }
    const reads = readsOf(recorder.sent);
    expect(reads).toHaveLength(3);
    expect(reads.every((read) => read.consistent && read.table === TABLE && !read.index)).toBe(true);
  });
});
