/**
 * The API Gateway emulator's own behaviour, with small Lambda functions written for the test.
 * (The real authorizer and handlers behind it are exercised in test/e2e.)
 */

import { Agent, request } from "node:http";
import { connect } from "node:net";
import { type ApiRoute, binaryMediaTypes } from "@atrium/functions/api";
import { type ApiGatewayEmulator, type LambdaHandler, startApiGateway } from "@atrium/local/gateway";
import { evaluatePolicy } from "@atrium/local/gateway-authorizer";
import { isBinary, matchRoute } from "@atrium/local/gateway-event";
import { APIGatewayClient, FlushStageAuthorizersCacheCommand } from "@aws-sdk/client-api-gateway";
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayRequestAuthorizerEvent,
} from "aws-lambda";
import { afterEach, describe, expect, it, vi } from "vitest";
import { errorOf } from "../../../test/support/http";
import { rawRequest } from "../../../test/support/raw-http";

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

/** FAKE of IAM: the credential the emulator accepts SigV4 control-plane calls from. */
const FUNCTION_CREDENTIALS = { accessKeyId: "local", secretAccessKey: "functions-secret" };

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
    "test/slow.handler": (event: APIGatewayProxyEvent) => {
      seen.events.push(event);
      return new Promise((resolve) => setTimeout(() => resolve({ statusCode: 200, body: "late" }), 500));
    },
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
    functionCredentials: FUNCTION_CREDENTIALS,
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

  it("flushes through the FlushStageAuthorizersCache wire call, signed by the functions' credential", async () => {
    const { url, gateway } = await start();
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    const client = (secretAccessKey: string) =>
      new APIGatewayClient({
        endpoint: url,
        region: "eu-west-1",
        credentials: { accessKeyId: "local", secretAccessKey },
        maxAttempts: 1,
      });
    const flush = (stageName = "test", secret = FUNCTION_CREDENTIALS.secretAccessKey) =>
      client(secret).send(new FlushStageAuthorizersCacheCommand({ restApiId: "atriumlocal", stageName }));

    await expect(flush("test", "not-the-secret")).rejects.toMatchObject({
      name: "InvalidSignatureException",
    });
    await expect(flush("prod")).rejects.toMatchObject({ name: "NotFoundException" });
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(1);

    await flush();
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(2);
  });

  it("lets the admin token flush too, and nobody else", async () => {
    const { url, gateway } = await start();
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    const flushPath = `${url}/restapis/atriumlocal/stages/test/cache/authorizers`;
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer good" },
      { authorization: "Bearer admin-secre" },
    ];
    for (const headers of attempts) {
      const refused = await fetch(flushPath, { method: "DELETE", headers });
      expect(refused.status).toBe(403);
    }
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(1);

    const flushed = await fetch(flushPath, {
      method: "DELETE",
      headers: { authorization: "Bearer admin-secret" },
    });
    expect(flushed.status).toBe(202);
    await call(url, "/v1/echo", { key: "good", body: "{}" });
    expect(gateway.authorizerInvocations()).toBe(2);
  });
});

describe("the identity source", () => {
  const echo = (url: string, authorization: string[]) =>
    rawRequest(url, "POST /v1/echo HTTP/1.1", authorization, "{}");

  it("is one header in any letter case: the cached decision serves `authorization` too", async () => {
    const { url, gateway } = await start();
    expect((await echo(url, ["Authorization: Bearer good"])).status).toBe(200);
    expect((await echo(url, ["authorization: Bearer good"])).status).toBe(200);
    expect((await echo(url, ["AUTHORIZATION: Bearer good"])).status).toBe(200);
    expect(gateway.authorizerInvocations()).toBe(1);
  });

  it("refuses more than one value, in any case, with 401 before the cache or the authorizer", async () => {
    const { url, gateway, seen } = await start();
    // Both values have a cached Allow: serving either would be a cache hit.
    expect((await echo(url, ["Authorization: Bearer good"])).status).toBe(200);
    expect((await echo(url, ["Authorization: Bearer narrow"])).status).toBe(200);
    const before = gateway.authorizerInvocations();
    for (const lines of [
      ["Authorization: Bearer narrow", "authorization: Bearer good"],
      ["authorization: Bearer good", "Authorization: Bearer narrow"],
      ["AUTHORIZATION: Bearer good", "Authorization: Bearer good"],
      ["Authorization: Bearer good", "Authorization: Bearer good"],
      ["Authorization: Bearer good, Bearer narrow"],
      ["Authorization: Bearer good", "Authorization: "],
      ["Authorization: "],
    ]) {
      const response = await echo(url, lines);
      expect({ lines, status: response.status }).toEqual({ lines, status: 401 });
      expect(JSON.parse(response.body).error.code).toBe("invalid_api_key");
    }
    expect(gateway.authorizerInvocations()).toBe(before);
    expect(seen.events).toHaveLength(2);
  });
});

describe("prototype names from the request", () => {
  const names = Object.getOwnPropertyNames(Object.prototype);

  it("are ordinary names in query strings and header names", async () => {
    const { url, seen } = await start();
    const query = names.map((name, i) => `${name}=${i}`).join("&");
    const response = await rawRequest(url, `GET /v1/things/constructor?${query}&toString=again HTTP/1.1`, [
      "Authorization: Bearer good",
      ...names.map((name) => `${name}: h-${name}`),
    ]);
    expect(response.status).toBe(200);
    const event = seen.events[0] as APIGatewayProxyEvent;
    expect(event.pathParameters).toEqual({ thing: "constructor" });
    for (const [i, name] of names.entries()) {
      expect(Object.hasOwn(event.headers, name)).toBe(true);
      expect(event.headers[name]).toBe(`h-${name}`);
      expect(Object.getOwnPropertyDescriptor(event.multiValueHeaders, name)?.value).toEqual([`h-${name}`]);
      const last = name === "toString" ? "again" : String(i);
      expect(Object.getOwnPropertyDescriptor(event.queryStringParameters, name)?.value).toBe(last);
    }
    expect(event.multiValueQueryStringParameters?.toString).toEqual([
      String(names.indexOf("toString")),
      "again",
    ]);
    for (const map of [event.headers, event.multiValueHeaders, event.queryStringParameters]) {
      expect(Object.getPrototypeOf(map)).toBe(Object.prototype);
    }
  });

  it("never reach the control plane's or the admin check's look-ups", async () => {
    const { url } = await start();
    const admin = await rawRequest(url, "POST /admin/ping?__proto__=1&constructor=2 HTTP/1.1", [
      "Authorization: Bearer admin-secret",
      "__proto__: x",
      "constructor: y",
    ]);
    expect(admin.status).toBe(200);
    const flush = await rawRequest(
      url,
      "DELETE /restapis/constructor/stages/__proto__/cache/authorizers HTTP/1.1",
      ["Authorization: Bearer admin-secret", "hasOwnProperty: z"],
    );
    expect(flush.status).toBe(404);
    expect(flush.headers.get("x-amzn-errortype")).toEqual(["NotFoundException"]);
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
  /** One call through a keep-alive agent; the socket is returned so the test can watch it close. */
  const keepAliveCall = (agent: Agent, url: string, path: string) =>
    new Promise<{ status: number; connection?: string; body: string; closed: Promise<void> }>(
      (resolve, reject) => {
        const req = request(`${url}${path}`, {
          agent,
          method: "POST",
          headers: { authorization: "Bearer good", "content-type": "application/json" },
        });
        req.on("error", reject);
        req.on("response", (res) => {
          const closed = new Promise<void>((done) => req.socket?.once("close", () => done()));
          const chunks: Buffer[] = [];
          res.on("data", (chunk) => chunks.push(chunk));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              ...(res.headers.connection ? { connection: res.headers.connection } : {}),
              body: Buffer.concat(chunks).toString("utf8"),
              closed,
            }),
          );
        });
        req.end("{}");
      },
    );

  it("refuses new connections at once, closes idle keep-alive ones, and answers calls in flight", async () => {
    const { url, gateway, seen } = await start();
    const idleClient = new Agent({ keepAlive: true });
    const busyClient = new Agent({ keepAlive: true });
    try {
      // A client that keeps its connection open, idle, and never lets go of it by itself.
      const idle = await keepAliveCall(idleClient, url, "/v1/echo");
      expect(idle.status).toBe(200);
      const inFlight = keepAliveCall(busyClient, url, "/v1/slow");
      while (seen.events.length < 2) await new Promise((resolve) => setTimeout(resolve, 5));

      const closing = gateway.close();
      const { port } = new URL(url);
      await expect(
        new Promise((resolve, reject) =>
          connect(Number(port), "127.0.0.1").on("connect", resolve).on("error", reject),
        ),
      ).rejects.toMatchObject({ code: "ECONNREFUSED" });
      await idle.closed;

      const slow = await inFlight;
      expect(slow).toMatchObject({ status: 200, body: "late", connection: "close" });
      await closing;
      await slow.closed;
    } finally {
      idleClient.destroy();
      busyClient.destroy();
    }
  });
});

describe("a client that leaves before its body ended", () => {
  it("ends the call: nothing reaches the function, and the gateway goes idle", async () => {
    const { url, gateway, seen } = await start();
    const errors = vi.spyOn(console, "error");
    const { port } = new URL(url);
    const socket = connect(Number(port), "127.0.0.1");
    await new Promise((resolve, reject) => socket.on("connect", resolve).on("error", reject));
    socket.write(
      "POST /v1/echo HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer good\r\n" +
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" +
        '{"half":',
    );
    // The gateway has the call (its body is being read) before the client goes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    await gateway.idle();
    expect(seen.events).toHaveLength(0);
    expect(seen.authorizerEvents).toHaveLength(0);
    // No one to answer, and no fault of the emulator's: nothing is logged as its error.
    expect(errors).not.toHaveBeenCalled();
    errors.mockRestore();
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
