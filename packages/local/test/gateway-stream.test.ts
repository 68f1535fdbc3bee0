/**
 * STREAM routes through the API Gateway emulator: the route's streaming handler runs under
 * LocalLambdaStreamingRuntime and the client gets its bytes as they are written, chunked, within one
 * integration timeout for the whole response. The handlers are written for the test and wait on
 * latches the test opens, so ordering is proven without wall-clock assertions.
 */

import { once } from "node:events";
import { type IncomingMessage, request } from "node:http";
import type { Writable } from "node:stream";
import { type ApiRoute, binaryMediaTypes } from "@atrium/functions/api";
import {
  type AccessLogEntry,
  type ApiGatewayEmulator,
  type GatewayLimits,
  startApiGateway,
} from "@atrium/local/gateway";
import { LocalLambdaStreamingRuntime } from "@atrium/local/lambda-streaming-runtime";
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent, Context } from "aws-lambda";
import { afterEach, describe, expect, it } from "vitest";

const { streamifyResponse, HttpResponseStream } = LocalLambdaStreamingRuntime;

const streamRoute = (path: string, entry: string, timeoutSeconds?: number): ApiRoute => ({
  method: "POST",
  path,
  handler: entry,
  auth: "tenant",
  stream: true,
  ...(timeoutSeconds ? { timeoutSeconds } : {}),
});

const routes: ApiRoute[] = [
  streamRoute("/v1/stream", "test/three-chunks.handler"),
  streamRoute("/v1/fails-early", "test/fails-early.handler"),
  streamRoute("/v1/fails-late", "test/fails-late.handler"),
  streamRoute("/v1/slow-head", "test/slow-head.handler"),
  streamRoute("/v1/held", "test/held.handler"),
  streamRoute("/v1/head-only", "test/head-only.handler"),
  streamRoute("/v1/deadline", "test/deadline.handler", 900),
  streamRoute("/v1/not-streamified", "test/buffered.handler"),
];

/** More than the stream's buffers hold: the handler only finishes if the gateway keeps reading. */
const BULK_CHUNKS = 64;
const BULK_CHUNK = "x".repeat(16 * 1024);

/** A gate a handler waits on until the test opens it. */
function latch() {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

let gateway: ApiGatewayEmulator | undefined;
const unopened: ReturnType<typeof latch>[] = [];
afterEach(async () => {
  // Handlers still held at a latch finish, so the gateway can drain them.
  for (const gate of unopened) gate.open();
  unopened.length = 0;
  await gateway?.close();
  gateway = undefined;
});

function gate() {
  const g = latch();
  unopened.push(g);
  return g;
}

async function start(limits: Partial<GatewayLimits> = {}) {
  const written: string[] = [];
  const gates = { second: gate(), third: gate(), failLate: gate(), slowHead: gate(), held: gate() };
  /** Opened by a bulk-writing handler once its last write was taken. */
  const finished = latch();
  const write = (stream: Writable, text: string) => {
    written.push(text);
    stream.write(text);
  };
  const head = (responseStream: Writable) =>
    HttpResponseStream.from(responseStream, {
      statusCode: 200,
      headers: { "content-type": "text/event-stream", "x-custom": "yes", "content-length": "999" },
    });
  /** Writes BULK_CHUNKS chunks, waiting whenever the stream's buffer is full, then ends. */
  const bulk = async (out: Writable) => {
    for (let i = 0; i < BULK_CHUNKS; i++) if (!out.write(BULK_CHUNK)) await once(out, "drain");
    out.end();
    finished.open();
  };
  const functions: Record<string, unknown> = {
    "test/three-chunks.handler": streamifyResponse(async (_event: unknown, responseStream: Writable) => {
      const out = head(responseStream);
      write(out, "one\n");
      await gates.second.opened;
      write(out, "two\n");
      await gates.third.opened;
      write(out, "three\n");
      out.end();
    }),
    "test/fails-early.handler": streamifyResponse(async () => {
      throw new Error("boom with a secret stack");
    }),
    "test/fails-late.handler": streamifyResponse(async (_event: unknown, responseStream: Writable) => {
      write(head(responseStream), "one\n");
      await gates.failLate.opened;
      throw new Error("model connection lost");
    }),
    "test/slow-head.handler": streamifyResponse(async (_event: unknown, responseStream: Writable) => {
      await gates.slowHead.opened;
      write(head(responseStream), "late\n");
      await bulk(responseStream);
    }),
    "test/held.handler": streamifyResponse(async (_event: unknown, responseStream: Writable) => {
      write(head(responseStream), "one\n");
      await gates.held.opened;
      await bulk(responseStream);
    }),
    "test/head-only.handler": streamifyResponse(async (_event: unknown, responseStream: Writable) => {
      head(responseStream).end();
    }),
    "test/deadline.handler": streamifyResponse(
      async (_event: unknown, responseStream: Writable, context: Context) => {
        head(responseStream).end(String(context.getRemainingTimeInMillis()));
      },
    ),
    "test/buffered.handler": async () => ({ statusCode: 200, body: "buffered" }),
    "test/authorizer.handler": async (event: APIGatewayRequestAuthorizerEvent) => {
      const key = event.headers?.Authorization ?? event.headers?.authorization;
      if (key !== "Bearer good") throw new Error("Unauthorized");
      return {
        principalId: "tn-one",
        policyDocument: {
          Version: "2012-10-17",
          Statement: [{ Action: "execute-api:Invoke", Effect: "Allow", Resource: "*" }],
        },
        context: { tenantId: "tn-one" },
      } satisfies APIGatewayAuthorizerResult;
    },
  };
  const access: AccessLogEntry[] = [];
  gateway = await startApiGateway({
    port: 0,
    stage: "test",
    region: "eu-west-1",
    routes,
    loadHandler: async (name) => functions[name] as never,
    authorizer: { handler: "test/authorizer.handler", identityHeader: "Authorization", cacheTtlSeconds: 60 },
    adminToken: "admin-secret",
    functionCredentials: { accessKeyId: "local", secretAccessKey: "functions-secret" },
    binaryMediaTypes,
    limits: { maxBodyBytes: 1024, ...limits },
    onAccess: (entry) => access.push(entry),
  });
  return { url: gateway.url, written, gates, finished: finished.opened, access };
}

/** A POST whose response is read chunk by chunk: `next()` gives the next chunk, or how it ended. */
function streamingCall(url: string, path: string, key = "good") {
  return new Promise<{ res: IncomingMessage; next: () => Promise<string | "end" | "error"> }>(
    (resolve, reject) => {
      const req = request(`${url}${path}`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      });
      req.on("error", reject);
      req.on("response", (res) => {
        const events: (string | "end" | "error")[] = [];
        let wake = () => {};
        const push = (event: string | "end" | "error") => {
          events.push(event);
          wake();
        };
        res.on("data", (chunk: Buffer) => push(chunk.toString("utf8")));
        res.on("end", () => push("end"));
        res.on("error", () => push("error"));
        res.on("close", () => {
          if (!res.complete) push("error");
        });
        const next = async () => {
          while (events.length === 0) await new Promise<void>((done) => (wake = done));
          return events.shift() as string;
        };
        resolve({ res, next });
      });
      req.end("{}");
    },
  );
}

describe("a STREAM route", () => {
  it("sends each chunk as the handler writes it, chunked, before the handler writes the next", async () => {
    const { url, written, gates, access } = await start();
    const { res, next } = await streamingCall(url, "/v1/stream");
    expect(res.statusCode).toBe(200);
    expect(res.headers["transfer-encoding"]).toBe("chunked");
    expect(res.headers["content-length"]).toBeUndefined();
    expect(res.headers["content-type"]).toBe("text/event-stream");
    expect(res.headers["x-custom"]).toBe("yes");
    expect(res.headers["x-amzn-requestid"]).toBeDefined();

    expect(await next()).toBe("one\n");
    // The handler is held at its first latch: the client has the first chunk before the last exists.
    expect(written).toEqual(["one\n"]);
    gates.second.open();
    expect(await next()).toBe("two\n");
    expect(written).toEqual(["one\n", "two\n"]);
    gates.third.open();
    expect(await next()).toBe("three\n");
    expect(await next()).toBe("end");
    expect(access).toEqual([
      expect.objectContaining({ path: "/v1/stream", status: 200, tenantId: "tn-one", stream: "completed" }),
    ]);
    // Time to first token: from the request's arrival to the first body byte, within the whole call.
    const [entry] = access;
    expect(entry?.ttftMs).toBeGreaterThanOrEqual(0);
    expect(entry?.ttftMs).toBeLessThanOrEqual(entry?.latencyMs ?? -1);
  });

  it("logs no time to first token for a stream that sent its head and no body", async () => {
    const { url, access } = await start();
    const { res, next } = await streamingCall(url, "/v1/head-only");
    expect(res.statusCode).toBe(200);
    expect(await next()).toBe("end");
    expect(access).toEqual([expect.objectContaining({ path: "/v1/head-only", stream: "completed" })]);
    expect(access[0]).not.toHaveProperty("ttftMs");
  });

  it("keeps the gateway's authorizer in front: no key, no call", async () => {
    const { url, written } = await start();
    const { res, next } = await streamingCall(url, "/v1/stream", "bad");
    expect(res.statusCode).toBe(401);
    let body = "";
    for (let chunk = await next(); chunk !== "end"; chunk = await next()) body += chunk;
    expect(JSON.parse(body).error.code).toBe("invalid_api_key");
    expect(written).toEqual([]);
  });

  it("answers an error before the first byte with the gateway's 502, details kept out", async () => {
    const { url } = await start();
    const response = await fetch(`${url}/v1/fails-early`, {
      method: "POST",
      headers: { authorization: "Bearer good" },
      body: "{}",
    });
    expect(response.status).toBe(502);
    expect(response.headers.get("content-length")).not.toBeNull();
    const text = await response.text();
    expect(JSON.parse(text).error.type).toBe("api_error");
    expect(text).not.toContain("secret");
  });

  it("refuses an entry not wrapped by streamifyResponse with a 502", async () => {
    const { url } = await start();
    const response = await fetch(`${url}/v1/not-streamified`, {
      method: "POST",
      headers: { authorization: "Bearer good" },
      body: "{}",
    });
    expect(response.status).toBe(502);
    expect(await response.text()).not.toContain("buffered");
  });

  it("ends the stream on an error after the first byte: the client sees a truncated chunked body", async () => {
    const { url, gates, access } = await start();
    const { res, next } = await streamingCall(url, "/v1/fails-late");
    expect(res.statusCode).toBe(200);
    expect(await next()).toBe("one\n");
    gates.failLate.open();
    expect(await next()).toBe("error");
    expect(res.complete).toBe(false);
    await gateway?.close();
    expect(access).toEqual([expect.objectContaining({ path: "/v1/fails-late", stream: "truncated" })]);
  });

  it("answers the 504 gateway response when the integration timeout passes before the head, and drains the function", async () => {
    const { url, gates, finished, access } = await start({ streamedIntegrationTimeoutMs: 100 });
    const timedOut = await fetch(`${url}/v1/slow-head`, {
      method: "POST",
      headers: { authorization: "Bearer good" },
      body: "{}",
    });
    expect(timedOut.status).toBe(504);
    expect(JSON.parse(await timedOut.text()).error.code).toBe("timeout");
    expect(access).toEqual([
      expect.objectContaining({ path: "/v1/slow-head", status: 504, error: "INTEGRATION_TIMEOUT" }),
    ]);
    // The function is not stopped: it runs on, and all it writes is read and dropped.
    gates.slowHead.open();
    await finished;
  });

  it("cuts the stream when the integration timeout passes after the head, and drains the function", async () => {
    const { url, gates, finished, access } = await start({ streamedIntegrationTimeoutMs: 100 });
    const { res, next } = await streamingCall(url, "/v1/held");
    expect(res.statusCode).toBe(200);
    expect(await next()).toBe("one\n");
    // The handler is held after its first chunk: only the integration timeout can end this stream.
    expect(await next()).toBe("error");
    expect(res.complete).toBe(false);
    expect(access).toEqual([
      expect.objectContaining({
        path: "/v1/held",
        status: 200,
        stream: "truncated",
        ttftMs: expect.any(Number),
      }),
    ]);
    gates.held.open();
    await finished;
  });

  it("cuts a stream that sends nothing for the idle timeout, and drains the function", async () => {
    const { url, gates, finished, access } = await start({ streamIdleTimeoutMs: 100 });
    const { res, next } = await streamingCall(url, "/v1/held");
    expect(await next()).toBe("one\n");
    // Held after its first chunk, well within the integration timeout: only the idle timeout ends it.
    expect(await next()).toBe("error");
    expect(res.complete).toBe(false);
    expect(access).toEqual([expect.objectContaining({ path: "/v1/held", stream: "truncated" })]);
    gates.held.open();
    await finished;
  });

  it("restarts the idle timeout with every chunk: a stream longer than it, never idle as long, completes", async () => {
    const { url, gates, access } = await start({ streamIdleTimeoutMs: 1_500 });
    const { next } = await streamingCall(url, "/v1/stream");
    expect(await next()).toBe("one\n");
    // Two pauses of 900 ms: 1.8 s in all, past the idle timeout, each pause 600 ms within it.
    await new Promise((resolve) => setTimeout(resolve, 900));
    gates.second.open();
    expect(await next()).toBe("two\n");
    await new Promise((resolve) => setTimeout(resolve, 900));
    gates.third.open();
    expect(await next()).toBe("three\n");
    expect(await next()).toBe("end");
    await gateway?.close();
    expect(access).toEqual([expect.objectContaining({ path: "/v1/stream", stream: "completed" })]);
  });

  it("bounds a streamed route by the streamed integration timeout, not the buffered one", async () => {
    const { url, gates } = await start({ integrationTimeoutMs: 1 });
    const { res, next } = await streamingCall(url, "/v1/stream");
    expect(res.statusCode).toBe(200);
    expect(await next()).toBe("one\n");
    // Well past the buffered route's 1 ms: the stream goes on.
    await new Promise((resolve) => setTimeout(resolve, 50));
    gates.second.open();
    gates.third.open();
    let rest = "";
    for (let chunk = await next(); chunk !== "end"; chunk = await next()) {
      expect(chunk).not.toBe("error");
      rest += chunk;
    }
    expect(rest).toBe("two\nthree\n");
  });

  it("gives the function the lesser of its own timeout and the streamed integration timeout", async () => {
    const remaining = async (limits: Partial<GatewayLimits>) => {
      const { url } = await start(limits);
      const response = await fetch(`${url}/v1/deadline`, {
        method: "POST",
        headers: { authorization: "Bearer good" },
        body: "{}",
      });
      await gateway?.close();
      return Number(await response.text());
    };
    // The route's 900 s against a 60 s streamed integration timeout; the buffered 1 s plays no part.
    const capped = await remaining({ streamedIntegrationTimeoutMs: 60_000, integrationTimeoutMs: 1_000 });
    expect(capped).toBeLessThanOrEqual(60_000);
    expect(capped).toBeGreaterThan(1_000);
    // Against the default 15 minutes, the route's own 900 s.
    const own = await remaining({});
    expect(own).toBeLessThanOrEqual(900_000);
    expect(own).toBeGreaterThan(60_000);
  });
});
