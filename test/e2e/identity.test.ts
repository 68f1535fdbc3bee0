/**
 * One key, one tenant; user input never indexes a plain object; only the platform's own functions and
 * the admin flush the authorizer cache. Over the local gateway, with hand-written HTTP/1.1 where an
 * HTTP client would not send what an attacker can (repeated headers, odd names).
 */
import { hashApiKey } from "@atrium/core/api-key";
import type { AccessLogEntry } from "@atrium/local/gateway";
import type { Platform } from "@atrium/local/platform";
import type { APIGatewayRequestAuthorizerEvent, Context } from "aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";
import { type Json, json } from "../support/http";
import { adminCall, useTestPlatform } from "../support/platform";
import { rawRequest } from "../support/raw-http";

let platform: Platform;
const access: AccessLogEntry[] = [];

useTestPlatform(
  (started) => {
    platform = started;
  },
  { onAccess: (entry) => access.push(entry) },
);

const LLAMA = "llama-3.1-8b-instruct";
/** Every name a plain object answers without owning it. */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

const admin = (method: string, path: string, body?: unknown) => adminCall(platform, method, path, body);

async function createTenant(name: string, tier: string, dedicatedModel?: string) {
  const created = await admin("POST", "/admin/tenants", { name, tier });
  expect(created.status).toBe(201);
  const id: string = created.body.tenant.id;
  if (dedicatedModel) {
    const endpoint = { model: dedicatedModel, endpointName: `${id}-dedicated` };
    expect((await admin("POST", `/admin/tenants/${id}/endpoints`, endpoint)).status).toBe(200);
  }
  return { id, apiKey: created.body.apiKey as string };
}

const usage = (apiKey: string) =>
  fetch(`${platform.gatewayUrl}/v1/usage`, { headers: { authorization: `Bearer ${apiKey}` } });

const chatBody = (model: string) =>
  JSON.stringify({ model, messages: [{ role: "user", content: "hi" }], max_tokens: 4 });

function chat(apiKey: string, model: string) {
  return fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: chatBody(model),
  });
}

function invoke(apiKey: string, model: string) {
  return fetch(`${platform.gatewayUrl}/v1/models/${encodeURIComponent(model)}/invocations`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ inputs: "hi" }),
  });
}

const modelCalls = () => platform.sagemaker.invocations().length;

describe("one key, one tenant", () => {
  it("more than one Authorization value, in any case, is a 401 before the authorizer runs", async () => {
    const a = await createTenant("Tenant A", "pro");
    const c = await createTenant("Tenant C", "pro");
    // Both keys have a cached Allow: serving either from the cache would answer 200.
    expect((await json(await usage(a.apiKey))).tenant_id).toBe(a.id);
    expect((await json(await usage(c.apiKey))).tenant_id).toBe(c.id);
    const runs = platform.gateway.authorizerInvocations();
    const logged = access.length;

    const cases = [
      [`Authorization: Bearer ${c.apiKey}`, `authorization: Bearer ${a.apiKey}`],
      [`authorization: Bearer ${a.apiKey}`, `Authorization: Bearer ${c.apiKey}`],
      [`AUTHORIZATION: Bearer ${c.apiKey}`, `Authorization: Bearer ${a.apiKey}`],
      [`Authorization: Bearer ${c.apiKey}`, `Authorization: Bearer ${a.apiKey}`],
      [`authorization: Bearer ${a.apiKey}`, `authorization: Bearer ${a.apiKey}`],
      [`Authorization: Bearer ${c.apiKey}, Bearer ${a.apiKey}`],
      [`Authorization: Bearer ${c.apiKey}`, "Authorization: "],
    ];
    for (const lines of cases) {
      for (const [requestLine, body] of [
        ["GET /v1/usage HTTP/1.1", ""],
        ["POST /v1/chat/completions HTTP/1.1", chatBody(LLAMA)],
      ] as const) {
        const response = await rawRequest(
          platform.gatewayUrl,
          requestLine,
          [...lines, "Content-Type: application/json"],
          body,
        );
        expect({ lines, requestLine, status: response.status }).toEqual({ lines, requestLine, status: 401 });
        expect(JSON.parse(response.body).error.code).toBe("invalid_api_key");
        expect(response.body).not.toContain(a.id);
        expect(response.body).not.toContain(c.id);
      }
    }
    expect(platform.gateway.authorizerInvocations()).toBe(runs);
    const refused = access.slice(logged);
    expect(refused).toHaveLength(cases.length * 2);
    for (const entry of refused) expect(entry).toMatchObject({ status: 401, error: "UNAUTHORIZED" });
    for (const entry of refused) expect(entry.tenantId).toBeUndefined();

    // One value in any letter case is the key it carries, and only that key's tenant.
    const single = await rawRequest(platform.gatewayUrl, "GET /v1/usage HTTP/1.1", [
      `aUtHoRiZaTiOn: Bearer ${c.apiKey}`,
    ]);
    expect(single.status).toBe(200);
    expect(JSON.parse(single.body).tenant_id).toBe(c.id);
  });

  it("the authorizer itself refuses more than one value, from headers or multiValueHeaders, before any lookup", async () => {
    const { handler } = await import("@atrium/functions/authorizer");
    const a = await createTenant("Authorizer A", "pro");
    const d = await createTenant("Authorizer D", "pro");
    const event = (
      headers: Record<string, string>,
      multiValueHeaders: Record<string, string[]>,
    ): APIGatewayRequestAuthorizerEvent => ({
      type: "REQUEST",
      methodArn: "arn:aws:execute-api:eu-west-1:000000000000:atriumlocal/local/GET/v1/usage",
      resource: "/v1/usage",
      path: "/v1/usage",
      httpMethod: "GET",
      headers,
      multiValueHeaders,
      pathParameters: null,
      queryStringParameters: null,
      multiValueQueryStringParameters: null,
      stageVariables: null,
      requestContext: {} as APIGatewayRequestAuthorizerEvent["requestContext"],
    });
    const context = { functionName: "authorizer", awsRequestId: "test" } as Context;
    const keyOfD = () => platform.tenantStore.findKey(hashApiKey(d.apiKey));

    const refused = [
      event({ Authorization: `Bearer ${d.apiKey}`, authorization: `Bearer ${a.apiKey}` }, {}),
      event(
        { Authorization: `Bearer ${d.apiKey}` },
        { Authorization: [`Bearer ${a.apiKey}`, `Bearer ${d.apiKey}`] },
      ),
      event(
        { authorization: `Bearer ${d.apiKey}` },
        { authorization: [`Bearer ${d.apiKey}`, `Bearer ${d.apiKey}`] },
      ),
    ];
    for (const request of refused) await expect(handler(request, context)).rejects.toThrow("Unauthorized");
    // D's key was never looked up: a lookup stamps lastUsedAt, as the accepted call below shows.
    expect((await keyOfD())?.lastUsedAt).toBeUndefined();

    const allowed = (await handler(
      event({ authorization: `Bearer ${d.apiKey}` }, { authorization: [`Bearer ${d.apiKey}`] }),
      context,
    )) as Json;
    expect(allowed.context.tenantId).toBe(d.id);
    expect((await keyOfD())?.lastUsedAt).toBeDefined();
  });
});

describe("Object.prototype names from the caller", () => {
  let tenants: { tier: string; id: string; apiKey: string }[];

  beforeAll(async () => {
    tenants = [
      { tier: "pro", ...(await createTenant("Pool", "pro")) },
      { tier: "business", ...(await createTenant("Bridge", "business", LLAMA)) },
      { tier: "enterprise", ...(await createTenant("Silo", "enterprise", LLAMA)) },
    ];
  });

  it("are unknown models on every tier, on chat and raw invocations: 404 model_not_found, nothing admitted", async () => {
    const calls = modelCalls();
    for (const tenant of tenants) {
      for (const model of PROTOTYPE_NAMES) {
        for (const [route, response] of [
          ["chat", await chat(tenant.apiKey, model)],
          ["invocations", await invoke(tenant.apiKey, model)],
        ] as const) {
          const error = (await json(response)).error;
          expect({ tier: tenant.tier, model, route, status: response.status, code: error?.code }).toEqual({
            tier: tenant.tier,
            model,
            route,
            status: 404,
            code: "model_not_found",
          });
        }
      }
      const used = await json(await usage(tenant.apiKey));
      expect({ tokens: used.tokens_used, inFlight: used.in_flight }).toEqual({ tokens: 0, inFlight: 0 });
    }
    expect(modelCalls()).toBe(calls);
    // The tenants' real models still answer.
    for (const tenant of tenants) expect((await chat(tenant.apiKey, LLAMA)).status).toBe(200);
  });

  it("are never listed by GET /v1/models", async () => {
    for (const tenant of tenants) {
      const list = await json(
        await fetch(`${platform.gatewayUrl}/v1/models`, {
          headers: { authorization: `Bearer ${tenant.apiKey}` },
        }),
      );
      const ids: string[] = list.data.map((model: Json) => model.id);
      expect(ids).toContain(LLAMA);
      for (const name of PROTOTYPE_NAMES) expect(ids).not.toContain(name);
    }
  });

  it("are unknown tiers: 400 unknown_tier on create and update", async () => {
    const pool = tenants[0] as { id: string };
    for (const tier of PROTOTYPE_NAMES) {
      const created = await admin("POST", "/admin/tenants", { name: "Odd tier", tier });
      expect({ tier, status: created.status, code: created.body.error?.code }).toEqual({
        tier,
        status: 400,
        code: "unknown_tier",
      });
      const updated = await admin("PATCH", `/admin/tenants/${pool.id}`, { tier });
      expect({ tier, status: updated.status, code: updated.body.error?.code }).toEqual({
        tier,
        status: 400,
        code: "unknown_tier",
      });
    }
  });

  it("are ordinary names in query strings and header names", async () => {
    const pool = tenants[0] as { apiKey: string };
    const query = PROTOTYPE_NAMES.map((name, i) => `${name}=${i}`).join("&");
    const oddHeaders = PROTOTYPE_NAMES.map((name) => `${name}: ${name}-value`);
    const listed = await rawRequest(platform.gatewayUrl, `GET /v1/models?${query} HTTP/1.1`, [
      `Authorization: Bearer ${pool.apiKey}`,
      ...oddHeaders,
    ]);
    expect(listed.status).toBe(200);
    expect(JSON.parse(listed.body).object).toBe("list");

    const answered = await rawRequest(
      platform.gatewayUrl,
      `POST /v1/chat/completions?${query} HTTP/1.1`,
      [`Authorization: Bearer ${pool.apiKey}`, "Content-Type: application/json", ...oddHeaders],
      chatBody(LLAMA),
    );
    expect(answered.status).toBe(200);
    expect(JSON.parse(answered.body).object).toBe("chat.completion");

    const adminList = await rawRequest(platform.gatewayUrl, `GET /admin/tenants?${query}&limit=2 HTTP/1.1`, [
      `Authorization: Bearer ${platform.adminToken}`,
      ...oddHeaders,
    ]);
    expect(adminList.status).toBe(200);
    expect(JSON.parse(adminList.body).tenants).toHaveLength(2);
  });

  it("are ordinary model names once a tenant really has one dedicated", async () => {
    const silo = await createTenant("Odd model", "enterprise", "toString");
    const routed = await chat(silo.apiKey, "toString");
    expect(routed.status).toBe(200);
    expect(routed.headers.get("x-atrium-route")).toBe("dedicated");
    expect((await chat(silo.apiKey, "valueOf")).status).toBe(404);
    const removed = await admin("DELETE", `/admin/tenants/${silo.id}/endpoints/toString`);
    expect(removed.status).toBe(200);
    const gone = await chat(silo.apiKey, "toString");
    expect({ status: gone.status, code: (await json(gone)).error.code }).toEqual({
      status: 404,
      code: "model_not_found",
    });
  });
});

describe("the authorizer-cache flush (a control-plane call)", () => {
  const flushUrl = () => `${platform.gatewayUrl}/restapis/atriumlocal/stages/local/cache/authorizers`;

  it("is refused without the admin token or the functions' signature, and the cache stays", async () => {
    const tenant = await createTenant("Flush target", "pro");
    expect((await usage(tenant.apiKey)).status).toBe(200);
    const runs = platform.gateway.authorizerInvocations();
    for (const authorization of [undefined, `Bearer ${tenant.apiKey}`, "Bearer atr_admin_guess"]) {
      const response = await fetch(flushUrl(), {
        method: "DELETE",
        headers: authorization ? { authorization } : {},
      });
      expect(response.status).toBe(403);
    }
    expect((await usage(tenant.apiKey)).status).toBe(200);
    expect(platform.gateway.authorizerInvocations()).toBe(runs);
  });

  it("is made by admin actions, through the real SDK client signing with the functions' credential", async () => {
    const tenant = await createTenant("Suspended", "pro");
    expect((await usage(tenant.apiKey)).status).toBe(200);
    const suspended = await admin("POST", `/admin/tenants/${tenant.id}/suspend`);
    expect(suspended.body.propagation).toMatchObject({ authorizerCacheFlushed: true, worstCaseSeconds: 0 });
    expect((await usage(tenant.apiKey)).status).toBe(403);
  });
});
