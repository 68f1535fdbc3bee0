import { generateApiKey } from "@atrium/core/api-key";
import { loadStageConfigFile } from "@atrium/core/config";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { newTenant } from "@atrium/core/tenant";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";
import { setHandlerEnvironment } from "../support/handler-environment";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy";

const TABLE = uniqueTableName("atrium-test-tenant-cache");
const config = loadStageConfigFile("config/local.json");
const TTL_MS = config.tenantCacheTtlSeconds * 1000;

let dynamo: LocalDynamo;
let proxy: TcpProxy;
/** Writes straight to DynamoDB, as the admin API would. */
let store: TenantStore;
let cache: typeof import("@atrium/functions/lib/tenant-cache");

beforeAll(async () => {
  dynamo = sharedDynamo();
  proxy = await startTcpProxy(dynamo.url);
  const client = localDynamoClient(dynamo.url);
  await ensureTable(client, TABLE, TenantTable);
  store = new TenantStore(dynamoClientFor(dynamo.url), TABLE);
  setHandlerEnvironment({ dynamodbUrl: proxy.url, tenantsTable: TABLE });
  cache = await import("@atrium/functions/lib/tenant-cache");
});

afterAll(async () => {
  await proxy?.close();
  await dynamo?.close();
});

beforeEach(async () => {
  await proxy.setMode("forward");
});

async function createTenant(id: string) {
  const tenant = { ...newTenant({ name: `Tenant ${id}`, tier: "pro" }, config), id };
  await store.create(tenant, generateApiKey());
  return tenant;
}

describe("a tenant not found", () => {
  it("is looked up again on the next call, so a tenant created meanwhile is found at once", async () => {
    const now = Date.now();
    expect(await cache.loadTenant("tn-late", now)).toBeUndefined();
    const created = await createTenant("tn-late");
    // Same instant: only a cached "not found" could hide it.
    expect(await cache.loadTenant("tn-late", now)).toEqual(created);
  });
});

describe("a cached profile while DynamoDB is unavailable", () => {
  for (const mode of ["hang", "refuse"] as const) {
    it(`is served past its TTL while DynamoDB is ${mode === "hang" ? "hung" : "refusing"}, within the bound`, async () => {
      const id = `tn-stale-${mode}`;
      const loadedAt = Date.now();
      const created = await createTenant(id);
      expect(await cache.loadTenant(id, loadedAt)).toEqual(created);
      await proxy.setMode(mode);

      const expiredAt = loadedAt + TTL_MS;
      expect(await cache.loadTenant(id, expiredAt + 1)).toEqual(created);
      expect(await cache.loadTenant(id, expiredAt + cache.STALE_IF_UNAVAILABLE_MS - 1)).toEqual(created);
      await expect(cache.loadTenant(id, expiredAt + cache.STALE_IF_UNAVAILABLE_MS)).rejects.toMatchObject({
        attempts: 2,
      });
    });
  }

  it("is not served for a tenant never cached: the store's failure is thrown", async () => {
    await createTenant("tn-never-cached");
    await proxy.setMode("refuse");
    await expect(cache.loadTenant("tn-never-cached")).rejects.toMatchObject({ name: "ECONNREFUSED" });
  });

  it("is replaced by the store's answer as soon as DynamoDB is back", async () => {
    const id = "tn-back";
    const loadedAt = Date.now();
    await createTenant(id);
    await cache.loadTenant(id, loadedAt);
    await proxy.setMode("refuse");
    expect((await cache.loadTenant(id, loadedAt + TTL_MS + 1))?.status).toBe("active");

    await store.setStatus(id, "suspended");
    await proxy.setMode("forward");
    expect(await cache.loadTenant(id, loadedAt + TTL_MS + 2)).toMatchObject({ id, status: "suspended" });
  });
});
