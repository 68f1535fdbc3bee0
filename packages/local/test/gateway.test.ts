/**
 * The API Gateway emulator's own behaviour, with small Lambda functions written for the test.
 * (The real authorizer and handlers behind it are exercised in test/e2e.)
 */

import { type ApiRoute, binaryMediaTypes } from "@atrium/functions/api";
import {
  type ApiGatewayEmulator,
  evaluatePolicy,
  isBinary,
  type LambdaHandler,
  matchRoute,
  startApiGateway,
} from "@atrium/local/gateway";
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayRequestAuthorizerEvent,
} from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";
import { errorOf } from "../../../test/support/http";

const routes: ApiRoute[] = [
  { method: "POST", path: "/v1/echo", handler: "test/echo.handler", auth: "tenant" },
  { method: "GET", path: "/v1/things/{thing}", handler: "test/echo.handler", auth: "tenant" },
  { method: "POST", path: "/v1/slow", handler: "test/slow.handler", auth: "tenant" },
  { method: "POST", path: "/v1/broken", handler: "test/broken.handler", auth: "tenant" },
  { method: "POST", path: "/v1/malformed", handler: "test/malformed.handler", auth: "tenant" },
  { method: "POST", path: "/admin/ping", handler: "test/echo.handler", auth: "admin" },
];

function allow(resource: string, context: Record<string, string>): APIGatewayAuthorizerResult {
  return {
    principalId: context.tenantId ?? "x",
    policyDocument: {
      Version: "2012-10-17",
      Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: resource }],
    },
    context,
  };
}

let gateway: ApiGatewayEmulator | undefined;
afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
});

async function start(
  overrides: { cacheTtlSeconds?: number; integrationTimeoutMs?: number; maxBodyBytes?: number } = {},
) {
  const seen: { events: APIGatewayProxyEvent[]; authorizerEvents: APIGatewayRequestAuthorizerEvent[] } = {
    events: [],
    authorizerEvents: [],
  };
  const functions: Record<string, LambdaHandler> = {
    "test/echo.handler": async (event: APIGatewayProxyEvent) => {
      seen.events.push(event);
      return {
        statusCode: 200,
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ok: true }),
      };
    },
    "test/slow.handler": () =>
      new Promise((resolve) => setTimeout(() => resolve({ statusCode: 200, body: "late" }), 500)),
    "test/broken.handler": async () => {
      throw new Error("boom with a secret stack");
    },
    "test/malformed.handler": async () => ({ status: "fine" }),
    "test/authorizer.handler": async (event: APIGatewayRequestAuthorizerEvent) => {
      seen.authorizerEvents.push(event);
      const key = event.headers?.Authorization ?? event.headers?.authorization;
      if (key === "Bearer good")
        return allow(`${event.methodArn.split("/").slice(0, 2).join("/")}/*/v1/*`, { tenantId: "tn-one" });
      if (key === "Bearer denied")
        return {
          ...allow(event.methodArn, {}),
          policyDocument: {
            Version: "2012-10-17",
            Statement: [{ Action: "execute-api:Invoke", Effect: "Deny", Resource: "*" }],
          },
        };
      if (key === "Bearer narrow") return allow(event.methodArn, { tenantId: "tn-narrow" });
      if (key === "Bearer crash") throw new Error("DynamoDB unreachable");
      throw new Error("Unauthorized");
    },
  };
  gateway = await startApiGateway({
    port: 0,
    stage: "test",
    region: "eu-west-1",
    routes,
    loadHandler: async (name) => {
      const fn = functions[name];
      if (!fn) throw new Error(`no function ${name}`);
      return fn;
    },
    authorizer: {
      handler: "test/authorizer.handler",
      identityHeader: "Authorization",
      cacheTtlSeconds: overrides.cacheTtlSeconds ?? 60,
    },
    adminToken: "admin-secret",
    binaryMediaTypes,
    limits: {
      maxBodyBytes: overrides.maxBodyBytes ?? 1024,
      integrationTimeoutMs: overrides.integrationTimeoutMs ?? 29_000,
    },
  });
  return { url: gateway.url, seen, gateway };
}

const call = (url: string, path: string, init: RequestInit & { key?: string } = {}) =>
  fetch(`${url}${path}`, {
    method: init.method ?? "POST",
    headers: {
      ...(init.key ? { Authorization: `Bearer ${init.key}` } : {}),
      ...(init.headers as Record<string, string>),
    },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });

describe("Lambda proxy events", () => {
  it("carry resource, path, parameters, headers as sent and the authorizer context", async () => {
    const { url, seen } = await start();
    const response = await call(url, "/v1/things/a%20b?x=1&x=2&y=3", {
      method: "GET",
      key: "good",
      headers: { "X-Custom": "v" },
    });
    expect(response.status).toBe(200);
    const event = seen.events[0] as APIGatewayProxyEvent;
    expect(event).toMatchObject({
      resource: "/v1/things/{thing}",
      path: "/v1/things/a%20b",
      httpMethod: "GET",
      pathParameters: { thing: "a b" },
      queryStringParameters: { x: "2", y: "3" },
      multiValueQueryStringParameters: { x: ["1", "2"], y: ["3"] },
      body: null,
      isBase64Encoded: false,
    });
    expect(event.headers["X-Custom"]).toBe("v");
    expect(event.multiValueHeaders["X-Custom"]).toEqual(["v"]);
    expect(event.headers["X-Forwarded-For"]).toBeDefined();
    expect(event.requestContext).toMatchObject({
      stage: "test",
      resourcePath: "/v1/things/{thing}",
      path: "/test/v1/things/a%20b",
    });
    expect(event.requestContext.authorizer).toMatchObject({ principalId: "tn-one", tenantId: "tn-one" });
    expect(response.headers.get("x-amzn-requestid")).toBe(event.requestContext.requestId);
  });

  it("base64-encode bodies of binary media types and pass text as text", async () => {
    const { url, seen } = await start();
    await call(url, "/v1/echo", {
      key: "good",
      headers: { "content-type": "image/png" },
      body: Buffer.from([0, 255, 1]),
    });
    await call(url, "/v1/echo", {
      key: "good",
      headers: { "content-type": "application/json" },
      body: '{"a":1}',
    });
    expect(seen.events[0]).toMatchObject({
      isBase64Encoded: true,
      body: Buffer.from([0, 255, 1]).toString("base64"),
    });
    expect(seen.events[1]).toMatchObject({ isBase64Encoded: false, body: '{"a":1}' });
  });
});

describe("the REQUEST authorizer", () => {
  it("is not called without the identity header: 401", async () => {
    const { url, seen } = await start();
    const response = await call(url, "/v1/echo", { body: "{}" });
    expect(response.status).toBe(401);
    expect((await errorOf(response)).code).toBe("invalid_api_key");
    expect(seen.authorizerEvents).toHaveLength(0);
  });

  it("maps Unauthorized to 401, Deny to 403, a crash to an OpenAI-style 503", async () => {
    const { url } = await start();
    expect((await call(url, "/v1/echo", { key: "unknown", body: "{}" })).status).toBe(401);
    const denied = await call(url, "/v1/echo", { key: "denied", body: "{}" });
    expect(denied.status).toBe(403);
    expect((await errorOf(denied)).type).toBe("permission_error");
    const crashed = await call(url, "/v1/echo", { key: "crash", body: "{}" });
    expect(crashed.status).toBe(503);
    expect(await crashed.text()).not.toContain("DynamoDB unreachable");
  });

  it("caches results per identity for the TTL and evaluates the cached policy for each method", async () => {
    const { url, seen, gateway } = await start({ cacheTtlSeconds: 60 });
    for (let i = 0; i < 3; i++)
      expect((await call(url, "/v1/echo", { key: "good", body: "{}" })).status).toBe(200);
    expect(gateway.authorizerInvocations()).toBe(1);
    expect(seen.authorizerEvents[0]?.methodArn).toMatch(
      /^arn:aws:execute-api:eu-west-1:\d{12}:\w+\/test\/POST\/v1\/echo$/,
    );

    // A policy scoped to the first method only is denied on the next method, from the cache.
    expect((await call(url, "/v1/echo", { key: "narrow", body: "{}" })).status).toBe(200);
    expect((await call(url, "/v1/things/x", { method: "GET", key: "narrow" })).status).toBe(403);
    expect(gateway.authorizerInvocations()).toBe(2);

    gateway.flushAuthorizerCache();
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(3);
  });

  it("runs on every call when the TTL is 0", async () => {
    const { url, gateway } = await start({ cacheTtlSeconds: 0 });
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(2);
  });

  it("flushes through the FlushStageAuthorizersCache wire call", async () => {
    const { url, gateway } = await start();
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    const flushed = await fetch(`${url}/restapis/atriumlocal/stages/test/cache/authorizers`, {
      method: "DELETE",
    });
    expect(flushed.status).toBe(202);
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(2);
  });
});

describe("gateway responses and limits", () => {
  it("answers unknown routes and methods with a 404 in OpenAI's shape", async () => {
    const { url } = await start();
    for (const [method, path] of [
      ["GET", "/v1/echo"],
      ["POST", "/v2/echo"],
      ["POST", "/v1/echo/"],
    ] as const) {
      const response = await call(url, path, {
        method,
        key: "good",
        ...(method === "POST" ? { body: "{}" } : {}),
      });
      expect(response.status).toBe(404);
      expect((await errorOf(response)).code).toBe("unknown_route");
    }
  });

  it("refuses bodies over the limit with 413", async () => {
    const { url, seen } = await start({ maxBodyBytes: 1024 });
    const response = await call(url, "/v1/echo", { key: "good", body: "x".repeat(2048) });
    expect(response.status).toBe(413);
    expect((await errorOf(response)).code).toBe("request_too_large");
    expect(seen.events).toHaveLength(0);
  });

  it("times out slow integrations with 504", async () => {
    const { url } = await start({ integrationTimeoutMs: 100 });
    const response = await call(url, "/v1/slow", { key: "good", body: "{}" });
    expect(response.status).toBe(504);
    expect((await errorOf(response)).code).toBe("timeout");
  });

  it("turns a Lambda error or a malformed proxy response into 502 without leaking details", async () => {
    const { url } = await start();
    for (const path of ["/v1/broken", "/v1/malformed"]) {
      const response = await call(url, path, { key: "good", body: "{}" });
      expect(response.status).toBe(502);
      const text = await response.text();
      expect(JSON.parse(text).error.type).toBe("api_error");
      expect(text).not.toContain("secret");
    }
  });

  it("admin routes take the admin credential (the local fake of IAM), and nothing else", async () => {
    const { url, seen } = await start();
    expect((await call(url, "/admin/ping", { body: "{}" })).status).toBe(404);
    expect((await call(url, "/admin/ping", { key: "good", body: "{}" })).status).toBe(403);
    expect((await call(url, "/admin/ping", { key: "admin-secret", body: "{}" })).status).toBe(200);
    expect(seen.authorizerEvents).toHaveLength(0);
  });
});

describe("shutdown", () => {
  it("close() lets an in-flight call finish before it resolves", async () => {
    const { url, gateway } = await start();
    const inFlight = call(url, "/v1/slow", { key: "good", body: "{}" });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await gateway.close();
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("late");
    await expect(call(url, "/v1/echo", { key: "good", body: "{}" })).rejects.toThrow();
  });
});

describe("helpers", () => {
  it("matchRoute takes one non-empty segment per parameter", () => {
    expect(matchRoute(routes, "GET", "/v1/things/abc")?.pathParameters).toEqual({ thing: "abc" });
    expect(matchRoute(routes, "GET", "/v1/things/")).toBeUndefined();
    expect(matchRoute(routes, "GET", "/v1/things/a/b")).toBeUndefined();
  });

  it("isBinary honours exact types, wildcards and parameters", () => {
    expect(isBinary("image/png", binaryMediaTypes)).toBe(true);
    expect(isBinary("application/octet-stream; charset=binary", binaryMediaTypes)).toBe(true);
    expect(isBinary("application/json", binaryMediaTypes)).toBe(false);
    expect(isBinary(undefined, binaryMediaTypes)).toBe(false);
  });

  it("evaluatePolicy: explicit Deny wins over Allow", () => {
    const arn = "arn:aws:execute-api:eu-west-1:000000000000:api/test/POST/v1/echo";
    const both = allow("arn:aws:execute-api:eu-west-1:000000000000:api/test/*", {});
    both.policyDocument.Statement.push({ Action: "execute-api:Invoke", Effect: "Deny", Resource: arn });
    expect(evaluatePolicy(both, arn)).toBe("Deny");
    expect(evaluatePolicy(allow("arn:aws:execute-api:eu-west-1:000000000000:api/test/*", {}), arn)).toBe(
      "Allow",
    );
    expect(evaluatePolicy(allow("arn:aws:execute-api:eu-west-1:000000000000:api/prod/*", {}), arn)).toBe(
      "Deny",
    );
  });
});
