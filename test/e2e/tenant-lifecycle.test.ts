import { revokeKey } from "@atrium/core/admin/keys";
import { parseStageConfig } from "@atrium/core/config";
import type { AccessLogEntry } from "@atrium/local/gateway";
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import { readsOf, recordCommands } from "../support/dynamo-spy";
import { json } from "../support/http";
import { adminCall, useTestPlatform } from "../support/platform";

let platform: Platform;
const access: AccessLogEntry[] = [];

useTestPlatform(
  (started) => {
    platform = started;
  },
  { onAccess: (entry) => access.push(entry) },
);

const LLAMA = "llama-3.1-8b-instruct";
const MISTRAL = "mistral-7b-instruct";

const admin = (method: string, path: string, body?: unknown) => adminCall(platform, method, path, body);

async function chat(apiKey: string, model = LLAMA): Promise<{ status: number; code?: string }> {
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
  });
  const body = await json(response);
  return { status: response.status, ...(body.error ? { code: body.error.code } : {}) };
}

async function createTenant(
  body: Record<string, unknown>,
): Promise<{ id: string; apiKey: string; keyId: string }> {
  const created = await admin("POST", "/admin/tenants", body);
  expect(created.status).toBe(201);
  return { id: created.body.tenant.id, apiKey: created.body.apiKey, keyId: created.body.key.keyId };
}

const flushes = () =>
  access.filter(
    (e) => e.method === "DELETE" && e.path === "/restapis/atriumlocal/stages/local/cache/authorizers",
  );

describe("onboarding", () => {
  it("a pool tenant's first call succeeds at once after create", async () => {
    const started = performance.now();
    const tenant = await createTenant({ name: "Quick Start", tier: "pro" });
    const created = performance.now();
    expect(await chat(tenant.apiKey)).toEqual({ status: 200 });
    const firstCall = performance.now();
    console.info(
      `onboarding: create ${(created - started).toFixed(1)} ms, create → first successful call ${(firstCall - started).toFixed(1)} ms`,
    );
  });

  it("a silo tenant without a dedicated endpoint gets a clear provisioning error, never the shared one", async () => {
    const silo = await createTenant({ name: "Silo Bank", tier: "enterprise" });
    const shared = platform.sagemaker.invocations("atrium-shared-llama-8b").length;
    expect(await chat(silo.apiKey)).toEqual({ status: 404, code: "model_not_provisioned" });
    expect(platform.sagemaker.invocations("atrium-shared-llama-8b")).toHaveLength(shared);
  });
});

describe("validation", () => {
  it("answers 400 naming the field", async () => {
    const pool = await createTenant({ name: "Validated", tier: "pro" });
    const cases: [string, string, unknown, string, string][] = [
      ["POST", "/admin/tenants", { name: "X", tier: "platinum" }, "unknown_tier", "tier"],
      [
        "POST",
        "/admin/tenants",
        { name: "X", tier: "free", compliance: ["hipaa"] },
        "hipaa_requires_dedicated",
        "compliance",
      ],
      ["POST", "/admin/tenants", { name: "X".repeat(101), tier: "pro" }, "invalid_request", "name"],
      ["POST", "/admin/tenants", { name: "X", tier: "pro", models: ["gpt-17"] }, "unknown_model", "models.0"],
      ["PATCH", `/admin/tenants/${pool.id}`, { tier: "platinum" }, "unknown_tier", "tier"],
      [
        "PATCH",
        `/admin/tenants/${pool.id}`,
        { compliance: ["hipaa"] },
        "hipaa_requires_dedicated",
        "compliance",
      ],
      ["PATCH", `/admin/tenants/${pool.id}`, { models: [LLAMA, "gpt-17"] }, "unknown_model", "models.1"],
      [
        "PATCH",
        `/admin/tenants/${pool.id}`,
        { limits: { requestsPerMinute: -1 } },
        "invalid_request",
        "limits.requestsPerMinute",
      ],
      ["GET", "/admin/tenants/TN%23bad", undefined, "invalid_tenant_id", "tenantId"],
      ["GET", `/admin/tenants/${"x".repeat(41)}`, undefined, "invalid_tenant_id", "tenantId"],
      ["POST", `/admin/tenants/${pool.id}/keys/not-a-key/revoke`, undefined, "invalid_key_id", "keyId"],
      [
        "POST",
        `/admin/tenants/${pool.id}/keys/${pool.keyId}/rotate`,
        { graceSeconds: -5 },
        "invalid_request",
        "graceSeconds",
      ],
      ["GET", "/admin/tenants?limit=0", undefined, "invalid_limit", "limit"],
      ["GET", `/admin/tenants/${pool.id}/audit?cursor=bogus`, undefined, "invalid_cursor", "cursor"],
    ];
    for (const [method, path, body, code, param] of cases) {
      const { status, body: answer } = await admin(method, path, body);
      expect({ method, path, status, code: answer.error.code, param: answer.error.param }).toEqual({
        method,
        path,
        status: 400,
        code,
        param,
      });
    }
  });

  it("keeps a GDPR tenant's endpoints inside its regions", async () => {
    const gdpr = await createTenant({
      name: "EU Only",
      tier: "enterprise",
      compliance: ["gdpr"],
      regions: ["eu-west-1"],
    });
    const outside = await admin("POST", `/admin/tenants/${gdpr.id}/endpoints`, {
      model: LLAMA,
      endpointName: `${gdpr.id}-us`,
      region: "us-east-1",
    });
    expect(outside.status).toBe(400);
    expect(outside.body.error).toMatchObject({ code: "region_not_allowed", param: "region" });
    const inside = await admin("POST", `/admin/tenants/${gdpr.id}/endpoints`, {
      model: LLAMA,
      endpointName: `${gdpr.id}-eu`,
    });
    expect(inside.status).toBe(200);
    const narrowed = await admin("PATCH", `/admin/tenants/${gdpr.id}`, { regions: ["eu-central-1"] });
    expect(narrowed.body.error).toMatchObject({ code: "region_not_allowed", param: "regions" });
  });
});

describe("propagation bounds", () => {
  it("the authorizer cache really holds decisions: a change written past the admin API is not seen", async () => {
    const tenant = await createTenant({ name: "Cached", tier: "pro" });
    expect((await chat(tenant.apiKey)).status).toBe(200);
    const runs = platform.gateway.authorizerInvocations();
    expect((await chat(tenant.apiKey)).status).toBe(200);
    expect(platform.gateway.authorizerInvocations()).toBe(runs);
    // Straight to the use-case, past the handler: no flush, so API Gateway keeps admitting the key until its TTL.
    await revokeKey(platform.tenantStore.table, "test", tenant.id, tenant.keyId);
    expect((await chat(tenant.apiKey)).status).toBe(200);
  });

  it("revoke: the very next call is 401", async () => {
    const tenant = await createTenant({ name: "Revoked", tier: "pro" });
    expect((await chat(tenant.apiKey)).status).toBe(200);
    const before = flushes().length;
    const revoked = await admin("POST", `/admin/tenants/${tenant.id}/keys/${tenant.keyId}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.propagation).toEqual({ authorizerCacheFlushed: true, worstCaseSeconds: 0 });
    expect(flushes().length).toBe(before + 1);
    expect(flushes().at(-1)?.status).toBe(202);
    expect(await chat(tenant.apiKey)).toEqual({ status: 401, code: "invalid_api_key" });
  });

  it("suspend: the next call is 403; resume: the next call is 200", async () => {
    const tenant = await createTenant({ name: "Paused", tier: "pro" });
    expect((await chat(tenant.apiKey)).status).toBe(200);
    expect((await admin("POST", `/admin/tenants/${tenant.id}/suspend`)).status).toBe(200);
    expect(await chat(tenant.apiKey)).toEqual({ status: 403, code: "access_denied" });
    const again = await admin("POST", `/admin/tenants/${tenant.id}/suspend`);
    expect(again.status).toBe(409);
    const resumed = await admin("POST", `/admin/tenants/${tenant.id}/resume`);
    expect(resumed.body.propagation).toEqual({
      authorizerCacheFlushed: true,
      worstCaseSeconds: platform.config.tenantCacheTtlSeconds,
    });
    expect(await chat(tenant.apiKey)).toEqual({ status: 200 });
  });

  it("rotation: the old key works through its grace period and is refused from its end, cache or not", async () => {
    const tenant = await createTenant({ name: "Rotating", tier: "pro" });
    const rotated = await admin("POST", `/admin/tenants/${tenant.id}/keys/${tenant.keyId}/rotate`, {
      graceSeconds: 2,
    });
    expect(rotated.status).toBe(201);
    expect(rotated.body.rotated).toMatchObject({ keyId: tenant.keyId, state: "expiring" });
    expect((await chat(tenant.apiKey)).status).toBe(200);
    expect((await chat(rotated.body.apiKey)).status).toBe(200);
    const runs = platform.gateway.authorizerInvocations();

    await new Promise((resolve) =>
      setTimeout(resolve, Date.parse(rotated.body.rotated.expiresAt) - Date.now() + 50),
    );
    expect(await chat(tenant.apiKey)).toEqual({ status: 401, code: "invalid_api_key" });
    // Refused by the handlers from the expiry the cached decision carries: the authorizer did not run.
    expect(platform.gateway.authorizerInvocations()).toBe(runs);
    expect((await chat(rotated.body.apiKey)).status).toBe(200);
  });

  it("tier and allowed models: the next call routes by the new profile", async () => {
    const tenant = await createTenant({ name: "Upgraded", tier: "pro" });
    expect((await chat(tenant.apiKey)).status).toBe(200);
    const silo = await admin("PATCH", `/admin/tenants/${tenant.id}`, { tier: "enterprise" });
    expect(silo.body.changes).toEqual({ tier: { from: "pro", to: "enterprise" } });
    expect(await chat(tenant.apiKey)).toEqual({ status: 404, code: "model_not_provisioned" });

    await admin("PATCH", `/admin/tenants/${tenant.id}`, { tier: "pro", models: [MISTRAL] });
    expect(await chat(tenant.apiKey, LLAMA)).toEqual({ status: 404, code: "model_not_found" });
    expect((await chat(tenant.apiKey, MISTRAL)).status).toBe(200);
  });

  it("delete: every key is refused from the next call, and the tenant can no longer change", async () => {
    const tenant = await createTenant({ name: "Leaving", tier: "pro" });
    expect((await chat(tenant.apiKey)).status).toBe(200);
    const deleted = await admin("DELETE", `/admin/tenants/${tenant.id}`);
    expect(deleted.body.changes.keysRevoked).toEqual({ to: [tenant.keyId] });
    expect(await chat(tenant.apiKey)).toEqual({ status: 401, code: "invalid_api_key" });
    expect((await admin("PATCH", `/admin/tenants/${tenant.id}`, { tier: "free" })).status).toBe(409);
    expect((await admin("POST", `/admin/tenants/${tenant.id}/keys`)).status).toBe(409);
  });

  it("the bounds are configurable and default to at most 60 s", () => {
    const defaults = parseStageConfig({
      region: "eu-west-1",
      tiers: { pro: { ...platform.config.tiers.pro } },
      sharedEndpoints: [],
    });
    expect(defaults.authorizerCacheTtlSeconds).toBeLessThanOrEqual(60);
    expect(defaults.tenantCacheTtlSeconds).toBeLessThanOrEqual(60);
  });
});

describe("reads that decide", () => {
  it("the authorizer and the route handlers read keys and profiles strongly consistent", async () => {
    // The handlers' own client: the platform runs them in this process, and this import is theirs.
    const { documentClient } = await import("@atrium/functions/lib/clients");
    const tenant = await createTenant({ name: "Fresh", tier: "pro" });
    const recorder = recordCommands(documentClient);
    try {
      expect((await chat(tenant.apiKey)).status).toBe(200);
    } finally {
      recorder.stop();
    }
    const reads = readsOf(recorder.sent).filter((read) => read.table === platform.tenantsTable);
    const keys = recorder.sent
      .filter((c) => c.command === "GetItem" && c.input.TableName === platform.tenantsTable)
      .map((c) => JSON.stringify(c.input.Key));
    // The key by its hash, the profile (authorizer), the profile again (the handler's tenant cache).
    expect(keys.some((key) => key.includes("KEY#"))).toBe(true);
    expect(keys.some((key) => key.includes(`TENANT#${tenant.id}#`))).toBe(true);
    expect(reads.length).toBeGreaterThanOrEqual(2);
    expect(reads.every((read) => read.consistent)).toBe(true);
  });
});

describe("the admin caller", () => {
  it("is the audit actor: the emulator's named fake of the IAM principal", async () => {
    const tenant = await createTenant({ name: "Audited", tier: "pro" });
    const trail = await admin("GET", `/admin/tenants/${tenant.id}/audit`);
    expect(trail.body.entries).toEqual([
      expect.objectContaining({ actor: "local-admin", action: "tenant.create", target: tenant.id }),
    ]);
  });
});
