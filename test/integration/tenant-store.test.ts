/** TenantStore against dynalite over HTTP: the real DynamoDB wire protocol, conditions evaluated by the peer. */
import { generateApiKey, hashApiKey } from "@atrium/core/api-key";
import { loadStageConfigFile } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { tenantKey } from "@atrium/core/keys";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { newTenant, type Tenant } from "@atrium/core/tenant";
import { ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { DynamoDBDocumentClient, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-tenants");
const config = loadStageConfigFile("config/local.json");
let dynamo: LocalDynamo;
let doc: DynamoDBDocumentClient;
let store: TenantStore;

beforeAll(async () => {
  dynamo = sharedDynamo();
  const client = localDynamoClient(dynamo.url);
  await ensureTable(client, TABLE, TenantTable);
  await ensureTable(client, TABLE, TenantTable); // idempotent
  doc = DynamoDBDocumentClient.from(client);
  store = new TenantStore(doc, TABLE);
});

afterAll(() => dynamo?.close());

function tenantWithId(id: string, tier = "enterprise"): Tenant {
  return { ...newTenant({ name: `Tenant ${id}`, tier }, config), id };
}

async function allItems(): Promise<Record<string, unknown>[]> {
  return (await doc.send(new ScanCommand({ TableName: TABLE }))).Items ?? [];
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
  });

  it("refuses to overwrite an existing tenant", async () => {
    const tenant = tenantWithId("acme-2");
    await store.create(tenant, generateApiKey());
    await expect(store.create({ ...tenant, name: "Impostor" }, generateApiKey())).rejects.toThrow();
    expect((await store.get("acme-2"))?.name).toBe(tenant.name);
  });

  it("keeps t1's keys from prefix-matching t10's items", async () => {
    await store.create(tenantWithId("t1x"), generateApiKey());
    await store.create(tenantWithId("t10x"), generateApiKey());
    const matching = (await allItems()).filter((item) =>
      [item.pk, item.gsi1pk].some((k) => typeof k === "string" && k.startsWith(tenantKey("t1x"))),
    );
    expect(matching.length).toBeGreaterThan(0);
    expect(matching.every((item) => item.id === "t1x" || item.tenantId === "t1x")).toBe(true);
  });

  it("dedicates an endpoint to one tenant and releases it when replaced", async () => {
    await store.create(tenantWithId("owner-1"), generateApiKey());
    await store.create(tenantWithId("rival-1"), generateApiKey());

    const updated = await store.setDedicatedEndpoint("owner-1", "llama", { endpointName: "owner-llama-a" });
    expect(updated.endpoints.llama).toEqual({ endpointName: "owner-llama-a" });
    expect(await store.endpointClaim("owner-llama-a")).toEqual({ tenantId: "owner-1", model: "llama" });

    // Idempotent for the same tenant and model; refused for anyone else.
    await store.setDedicatedEndpoint("owner-1", "llama", { endpointName: "owner-llama-a" });
    const stolen = store.setDedicatedEndpoint("rival-1", "llama", { endpointName: "owner-llama-a" });
    await expect(stolen).rejects.toMatchObject({ status: 409, code: "endpoint_already_dedicated" });

    await store.setDedicatedEndpoint("owner-1", "llama", { endpointName: "owner-llama-b" });
    expect(await store.endpointClaim("owner-llama-a")).toBeUndefined();
    expect((await store.get("owner-1"))?.endpoints.llama?.endpointName).toBe("owner-llama-b");
  });

  it("releases the claim when the tenant does not exist", async () => {
    const missing = store.setDedicatedEndpoint("ghost-1", "llama", { endpointName: "ghost-llama" });
    await expect(missing).rejects.toBeInstanceOf(AtriumError);
    await expect(missing).rejects.toMatchObject({ status: 404 });
    expect(await store.endpointClaim("ghost-llama")).toBeUndefined();
  });

  it("suspends and resumes a tenant, and refuses unknown ones", async () => {
    await store.create(tenantWithId("pause-1", "pro"), generateApiKey());
    await store.setStatus("pause-1", "suspended");
    expect((await store.get("pause-1"))?.status).toBe("suspended");
    await store.setStatus("pause-1", "active");
    expect((await store.get("pause-1"))?.status).toBe("active");
    await expect(store.setStatus("nobody-1", "suspended")).rejects.toMatchObject({ status: 404 });
  });
});
