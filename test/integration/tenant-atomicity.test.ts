/**
 * Every admin action writes its change and its audit entry in one TransactWriteItems on AWS's DynamoDB
 * Local: when the audit part (or any condition) fails, nothing of the change is written, and the
 * cancellation reason becomes the same typed error the action always answered.
 */

import { addEndpoint, removeEndpoint } from "@atrium/core/admin/endpoints";
import { createKey, revokeKey, rotateKey } from "@atrium/core/admin/keys";
import {
  createTenant,
  deleteTenant,
  resumeTenant,
  suspendTenant,
  updateTenant,
} from "@atrium/core/admin/tenants";
import { generateApiKey } from "@atrium/core/api-key";
import { loadStageConfigFile } from "@atrium/core/config";
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { eraseTenant } from "@atrium/core/erase";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { newTenant } from "@atrium/core/tenant";
import type { Table } from "@atrium/core/transaction";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { beforeNextTransaction } from "../support/dynamo-spy";
import { sharedDynamoUrl, uniqueTableName } from "../support/dynamodb";

const config = loadStageConfigFile("config/local.json");
const LLAMA = "llama-3.1-8b-instruct";
let doc: DynamoClient;
let table: Table;
let store: TenantStore;

beforeAll(async () => {
  const client = localDynamoClient(sharedDynamoUrl());
  const name = uniqueTableName("atrium-test-atomic");
  await ensureTable(client, name, TenantTable);
  doc = dynamoClientFor(sharedDynamoUrl());
  table = { db: doc, name };
  store = new TenantStore(doc, name);
});

/** Every item of the table in a stable order, but the planted ones. */
async function everything(): Promise<string[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await doc.scan({ TableName: table.name, ...(start ? { ExclusiveStartKey: start } : {}) });
    items.push(...(page.Items ?? []));
    start = page.LastEvaluatedKey;
  } while (start);
  return items
    .filter((item) => !item.planted)
    .map((item) => JSON.stringify(sorted(item)))
    .sort();
}

/** Keys in order at every level, so equal items print equal. */
function sorted(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sorted);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([key, inner]) => [key, sorted(inner)]),
  );
}

/** A tenant with a key and (enterprise) a dedicated endpoint. */
async function seeded(tier = "enterprise") {
  const tenant = newTenant({ name: "Atomic", tier }, config);
  const key = generateApiKey();
  await store.create(tenant, key);
  if (tier === "enterprise") {
    await addEndpoint(table, config, "seed", tenant.id, { model: LLAMA, endpointName: `${tenant.id}-llama` });
  }
  return { tenantId: tenant.id, keyId: key.keyId };
}

/** Before the action's transaction goes out, an item with its audit entry's exact key appears. */
function plantAuditCollision(): void {
  beforeNextTransaction(doc, async (puts) => {
    const audit = puts.find((item) => String(item.pk).startsWith("AUDIT#"));
    if (!audit) throw new Error("the transaction carries no audit entry");
    await doc.put({ TableName: table.name, Item: { pk: audit.pk, sk: audit.sk, planted: true } });
  });
}

const FAILED_UNCHANGED = { failedOnAudit: true, unchanged: true };

/** Runs an action whose audit entry collides; returns what it threw and whether anything else changed. */
async function withCollidingAudit(action: () => Promise<unknown>) {
  const before = await everything();
  plantAuditCollision();
  const error = await action().then(
    () => undefined,
    (err: Error) => err,
  );
  const after = await everything();
  return {
    failedOnAudit: /audit entry .* exists already/.test(String(error?.message)),
    unchanged: JSON.stringify(after) === JSON.stringify(before),
  };
}

describe("an audit entry that cannot be written means no change at all", () => {
  it("tenant create: no profile, no key, no key reference", async () => {
    const result = await withCollidingAudit(() =>
      createTenant(table, config, "op", { name: "X", tier: "pro" }),
    );
    expect(result).toEqual(FAILED_UNCHANGED);
  });

  it("update, suspend and resume leave the profile as it was", async () => {
    const { tenantId } = await seeded("pro");
    expect(
      await withCollidingAudit(() => updateTenant(table, config, "op", tenantId, { tier: "free" })),
    ).toEqual(FAILED_UNCHANGED);
    expect(await withCollidingAudit(() => suspendTenant(table, "op", tenantId))).toEqual(FAILED_UNCHANGED);
    await suspendTenant(table, "op", tenantId);
    expect(await withCollidingAudit(() => resumeTenant(table, "op", tenantId))).toEqual(FAILED_UNCHANGED);
    expect((await store.get(tenantId))?.status).toBe("suspended");
  });

  it("delete: keys stay active, the claim stays held, the profile stays live", async () => {
    const { tenantId } = await seeded();
    const result = await withCollidingAudit(() => deleteTenant(table, "op", tenantId));
    expect(result).toEqual(FAILED_UNCHANGED);
    expect(await store.endpointClaim(`${tenantId}-llama`)).toEqual({ tenantId, model: LLAMA });
  });

  it("key create, rotate and revoke write no key and change none", async () => {
    const { tenantId, keyId } = await seeded("pro");
    for (const action of [
      () => createKey(table, "op", tenantId),
      () => rotateKey(table, "op", tenantId, keyId, { graceSeconds: 60 }),
      () => revokeKey(table, "op", tenantId, keyId),
    ]) {
      expect(await withCollidingAudit(action)).toEqual(FAILED_UNCHANGED);
    }
  });

  it("endpoint add and remove: neither the claim nor the routing entry changes", async () => {
    const { tenantId } = await seeded();
    const add = () =>
      addEndpoint(table, config, "op", tenantId, { model: "other", endpointName: `${tenantId}-x` });
    expect(await withCollidingAudit(add)).toEqual(FAILED_UNCHANGED);
    expect(await store.endpointClaim(`${tenantId}-x`)).toBeUndefined();
    const remove = () => removeEndpoint(table, "op", tenantId, LLAMA);
    expect(await withCollidingAudit(remove)).toEqual(FAILED_UNCHANGED);
  });

  it("erase: without its record the profile stays, and the erase can be run again to the end", async () => {
    const { tenantId } = await seeded("pro");
    await deleteTenant(table, "op", tenantId);
    plantAuditCollision();
    await expect(eraseTenant(table, "op", tenantId, [])).rejects.toThrow(/audit entry/);
    expect((await store.get(tenantId))?.status).toBe("deleted");
    const { record } = await eraseTenant(table, "op", tenantId, []);
    expect(record.action).toBe("tenant.erase");
    expect(await store.get(tenantId)).toBeUndefined();
  });
});

describe("conditions inside the transaction keep their answers", () => {
  it("a write between the read and the transaction: 409 tenant_changed, and nothing written", async () => {
    const { tenantId } = await seeded();
    const bumpRevision = () =>
      beforeNextTransaction(doc, async () => {
        await doc.update({
          TableName: table.name,
          Key: { pk: `TENANT#${tenantId}#`, sk: "PROFILE" },
          UpdateExpression: "ADD #version :one",
          ExpressionAttributeNames: { "#version": "version" },
          ExpressionAttributeValues: { ":one": 1 },
        });
      });
    for (const action of [
      () => updateTenant(table, config, "op", tenantId, { name: "Stale" }),
      () => createKey(table, "op", tenantId),
      () => addEndpoint(table, config, "op", tenantId, { model: "m2", endpointName: `${tenantId}-m2` }),
      () => deleteTenant(table, "op", tenantId),
    ]) {
      const before = await everything();
      bumpRevision();
      await expect(action()).rejects.toMatchObject({ status: 409, code: "tenant_changed" });
      const after = await everything();
      // Only the revision another writer bumped differs.
      expect(after.map((item) => item.replace(/"version":\d+/, ""))).toEqual(
        before.map((item) => item.replace(/"version":\d+/, "")),
      );
    }
    expect(await store.endpointClaim(`${tenantId}-m2`)).toBeUndefined();
  });

  it("a tenant gone meanwhile is 404, one deleted meanwhile is 409 tenant_deleted", async () => {
    const gone = await seeded("pro");
    beforeNextTransaction(doc, async () => {
      await doc.delete({ TableName: table.name, Key: { pk: `TENANT#${gone.tenantId}#`, sk: "PROFILE" } });
    });
    await expect(updateTenant(table, config, "op", gone.tenantId, { name: "Late" })).rejects.toMatchObject({
      status: 404,
      code: "tenant_not_found",
    });

    const deleted = await seeded("pro");
    beforeNextTransaction(doc, async () => {
      await deleteTenant(table, "other-op", deleted.tenantId);
    });
    await expect(createKey(table, "op", deleted.tenantId)).rejects.toMatchObject({
      status: 409,
      code: "tenant_deleted",
    });
  });

  it("one tenant per endpoint: a claim taken meanwhile is 409 and the profile is untouched", async () => {
    const owner = await seeded();
    const rival = await seeded();
    const endpointName = `${owner.tenantId}-contested`;
    beforeNextTransaction(doc, async () => {
      await addEndpoint(table, config, "op", owner.tenantId, { model: "m", endpointName });
    });
    await expect(
      addEndpoint(table, config, "op", rival.tenantId, { model: "m", endpointName }),
    ).rejects.toMatchObject({ status: 409, code: "endpoint_already_dedicated", param: "endpointName" });
    expect((await store.get(rival.tenantId))?.endpoints).not.toHaveProperty("m");
    expect(await store.endpointClaim(endpointName)).toEqual({ tenantId: owner.tenantId, model: "m" });
  });

  it("a key revoked meanwhile: the rotation is 409 key_changed and makes no new key", async () => {
    const { tenantId, keyId } = await seeded("pro");
    beforeNextTransaction(doc, async () => {
      await revokeKey(table, "other-op", tenantId, keyId);
    });
    const before = (await everything()).length;
    await expect(rotateKey(table, "op", tenantId, keyId, { graceSeconds: 0 })).rejects.toMatchObject({
      status: 409,
      code: "key_changed",
    });
    // The other operator's revocation and its audit entry; no key, reference or rotation entry.
    expect((await everything()).length).toBe(before + 1);
  });
});
