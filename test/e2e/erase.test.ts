import { hashApiKey } from "@atrium/core/api-key";
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { dynamoClientFor, localDynamoClient } from "@atrium/local/dynamodb";
import type { Platform } from "@atrium/local/platform";
import { ListTablesCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminCall, startTestPlatform, stopTestPlatform } from "../support/platform";

let platform: Platform;
let dataDir: string;
let doc: DynamoClient;

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatform());
  doc = dynamoClientFor(platform.dynamodbUrl);
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
});

const admin = (method: string, path: string, body?: unknown) => adminCall(platform, method, path, body);

async function chat(apiKey: string): Promise<number> {
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 8,
    }),
  });
  await response.body?.cancel();
  return response.status;
}

/** Every item of every table in the local DynamoDB, tagged with its table. */
async function everyItem(): Promise<{ table: string; item: Record<string, unknown> }[]> {
  const tables: string[] = [];
  let startTable: string | undefined;
  do {
    const page = await localDynamoClient(platform.dynamodbUrl).send(
      new ListTablesCommand({ ...(startTable ? { ExclusiveStartTableName: startTable } : {}) }),
    );
    tables.push(...(page.TableNames ?? []));
    startTable = page.LastEvaluatedTableName;
  } while (startTable);
  const items: { table: string; item: Record<string, unknown> }[] = [];
  for (const table of tables) {
    let start: Record<string, unknown> | undefined;
    do {
      const page = await doc.scan({ TableName: table, ...(start ? { ExclusiveStartKey: start } : {}) });
      items.push(...(page.Items ?? []).map((item) => ({ table, item })));
      start = page.LastEvaluatedKey;
    } while (start);
  }
  return items;
}

describe("delete --erase", () => {
  it("leaves no item with the tenant's id, name, keys or usage in any table but the erase record", async () => {
    const name = "Erika Mustermann Praxis";
    const created = await admin("POST", "/admin/tenants", {
      name,
      tier: "business",
      compliance: ["gdpr", "soc2"],
      regions: ["eu-west-1"],
      limits: { requestsPerMinute: 500 },
    });
    const tenantId: string = created.body.tenant.id;
    const keys: string[] = [created.body.apiKey];
    const endpointName = `${tenantId}-llama`;
    const bystander = await admin("POST", "/admin/tenants", { name: "Bystander AG", tier: "pro" });

    // A life: calls (limiter state and usage), a dedicated endpoint, keys made, rotated and revoked.
    expect(await chat(keys[0] as string)).toBe(200);
    expect(
      (
        await admin("POST", `/admin/tenants/${tenantId}/endpoints`, {
          model: "llama-3.1-8b-instruct",
          endpointName,
        })
      ).status,
    ).toBe(200);
    const extra = await admin("POST", `/admin/tenants/${tenantId}/keys`);
    keys.push(extra.body.apiKey);
    const rotated = await admin("POST", `/admin/tenants/${tenantId}/keys/${created.body.key.keyId}/rotate`, {
      graceSeconds: 3600,
    });
    keys.push(rotated.body.apiKey);
    await admin("POST", `/admin/tenants/${tenantId}/keys/${extra.body.key.keyId}/revoke`);
    for (const key of keys) await chat(key);
    expect(await chat(bystander.body.apiKey)).toBe(200);
    const usage = await fetch(`${platform.gatewayUrl}/v1/usage`, {
      headers: { authorization: `Bearer ${keys[2]}` },
    });
    expect(usage.status).toBe(200);
    await admin("PATCH", `/admin/tenants/${tenantId}`, { name: `${name} (renamed)` });

    // Every call's settle and ledger record, written after its response, has landed.
    await platform.gateway.idle();
    const traces = [tenantId, name, endpointName, ...keys, ...keys.map(hashApiKey)];
    const tracesOf = async () =>
      (await everyItem()).filter(({ item }) => traces.some((trace) => JSON.stringify(item).includes(trace)));
    const before = await tracesOf();
    // The scan does see the tenant's data everywhere it lives, the limiter table and ledger included.
    expect(new Set(before.map((t) => t.table))).toEqual(
      new Set([platform.tenantsTable, platform.limitsTable, platform.usageTable]),
    );
    expect(before.length).toBeGreaterThan(10);
    const bystanderItems = (await everyItem()).filter(({ item }) =>
      JSON.stringify(item).includes(bystander.body.tenant.id),
    );

    const erased = await admin("DELETE", `/admin/tenants/${tenantId}?erase=true`);
    expect(erased.status).toBe(200);
    expect(erased.body).toMatchObject({ tenantId, erased: true, itemsDeleted: expect.any(Number) });

    const left = await tracesOf();
    expect(left).toHaveLength(1);
    const [record] = left;
    expect(record?.table).toBe(platform.tenantsTable);
    expect(record?.item).toEqual({
      pk: `AUDIT#${tenantId}#`,
      sk: expect.any(String),
      type: "audit",
      tenantId,
      id: expect.any(String),
      at: expect.any(String),
      actor: "local-admin",
      action: "tenant.erase",
      target: tenantId,
    });
    // Nothing of the bystander went.
    const bystanderAfter = (await everyItem()).filter(({ item }) =>
      JSON.stringify(item).includes(bystander.body.tenant.id),
    );
    expect(bystanderAfter).toEqual(bystanderItems);
    for (const key of keys) expect(await chat(key)).toBe(401);
    expect(await chat(bystander.body.apiKey)).toBe(200);
    // The endpoint is free for another tenant now.
    const silo = await admin("POST", "/admin/tenants", { name: "Next Owner", tier: "enterprise" });
    expect(
      (await admin("POST", `/admin/tenants/${silo.body.tenant.id}/endpoints`, { model: "m", endpointName }))
        .status,
    ).toBe(200);
  });
});
