/**
 * A STREAM integration as API Gateway runs it: the route's streaming entry is invoked, the metadata
 * prelude (up to eight NUL bytes) gives status and headers, then every later byte goes to the client
 * as it arrives, chunked. Before the prelude is complete a failure is a gateway response; after it,
 * the stream just ends. One integration timeout bounds the whole response.
 */
import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { STREAMED_INTEGRATION_TIMEOUT_MS } from "@atrium/functions/lib/timeouts";
import { GatewayError } from "./gateway-authorizer";
import type { IntegrationCall } from "./gateway-integration";
import { invokeStreaming, isStreamingHandler, PRELUDE_DELIMITER } from "./lambda-streaming-runtime";

interface StreamedHead {
  statusCode: number;
  headers: Record<string, string | string[]>;
}

export interface StreamLimits {
  /** A STREAM integration's timeout: it bounds the whole response, head and body. */
  streamedIntegrationTimeoutMs: number;
  /** Longest pause between two chunks before API Gateway closes the stream. */
  streamIdleTimeoutMs: number;
}

/** API Gateway's documented limits for a streamed response from a regional REST API (ADR 0002). */
export const streamingLimits: StreamLimits = {
  streamedIntegrationTimeoutMs: STREAMED_INTEGRATION_TIMEOUT_MS,
  streamIdleTimeoutMs: 5 * 60_000,
};

/** How a relayed stream ended: all of it sent, cut by the gateway or the function, or the client left. */
export type StreamOutcome = "completed" | "truncated" | "client_gone";

export interface Streamed {
  statusCode: number;
  outcome: StreamOutcome;
  /** When (performance.now()) the first body byte after the prelude went to the client, if one did. */
  firstByteAt?: number;
}

/**
 * Runs a STREAM route's entry and relays its response. Throws GatewayError before the head:
 * INTEGRATION_TIMEOUT, or DEFAULT_5XX when the entry is not a streaming handler or fails first.
 */
export async function callStreamedIntegration(
  res: ServerResponse,
  call: IntegrationCall & { limits: StreamLimits },
): Promise<Streamed> {
  const handler = await call.loadHandler(call.entry);
  if (!isStreamingHandler(handler)) {
    console.error(`lambda ${call.entry} is not wrapped by awslambda.streamifyResponse`);
    throw new GatewayError("DEFAULT_5XX");
  }
  const body = invokeStreaming(handler, call.event, call.context);
  // One timer for the whole response, as on AWS: before the head it is a 504, after it a cut stream.
  const timeout = new ResponseTimeout(call.limits.streamedIntegrationTimeoutMs);
  try {
    const { head, rest } = await readPrelude(body, timeout);
    head.headers["x-amzn-requestid"] = call.requestId;
    const relayed = await relayStream(res, head, rest, body, {
      idleTimeoutMs: call.limits.streamIdleTimeoutMs,
      timeout,
    });
    return { statusCode: head.statusCode, ...relayed };
  } finally {
    timeout.clear();
  }
}

/** The integration timeout of one response: a timer, and what to do when it fires at this stage. */
class ResponseTimeout {
  expired = false;
  #onExpiry: (() => void) | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(ms: number) {
    this.#timer = setTimeout(() => {
      this.expired = true;
      this.#onExpiry?.();
    }, ms);
  }

  /** Runs `action` when the timeout fires (instead of the action set before); `undefined` unsets it. */
  onExpiry(action: (() => void) | undefined): void {
    this.#onExpiry = action;
  }

  clear(): void {
    clearTimeout(this.#timer);
  }
}

/**
 * Reads the prelude of a streamed proxy response. Fails with INTEGRATION_TIMEOUT when `timeout`
 * fires first, DEFAULT_5XX if the function fails or its prelude is malformed; the stream is drained then.
 */
function readPrelude(
  body: Readable,
  timeout: ResponseTimeout,
): Promise<{ head: StreamedHead; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const settle = (outcome: () => void) => {
      timeout.onExpiry(undefined);
      body.off("data", onData).off("end", onEnd).off("error", onError);
      outcome();
    };
    const fail = (type: "INTEGRATION_TIMEOUT" | "DEFAULT_5XX", why: unknown) =>
      settle(() => {
        if (type === "DEFAULT_5XX") console.error("streaming lambda failed before its response head:", why);
        drain(body);
        reject(new GatewayError(type));
      });
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      const bytes = Buffer.concat(chunks);
      const at = bytes.indexOf(PRELUDE_DELIMITER);
      if (at < 0) return;
      const head = parseHead(bytes.subarray(0, at));
      if (!head) return fail("DEFAULT_5XX", "malformed metadata prelude");
      settle(() => {
        body.pause();
        resolve({ head, rest: bytes.subarray(at + PRELUDE_DELIMITER.length) });
      });
    };
    const onEnd = () => fail("DEFAULT_5XX", "the stream ended without a metadata prelude");
    const onError = (err: Error) => fail("DEFAULT_5XX", err);
    const onTimeout = () => fail("INTEGRATION_TIMEOUT", "timeout");
    if (timeout.expired) return onTimeout();
    timeout.onExpiry(onTimeout);
    body.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

/**
 * Sends the head, then relays every chunk as it comes (no content-length, so Node frames it chunked).
 * A function error, the idle timeout or the integration timeout cuts the connection: the client sees
 * a truncated chunked body. Neither a cut nor a client that leaves stops the function: its output is
 * drained, as on AWS.
 */
function relayStream(
  res: ServerResponse,
  head: StreamedHead,
  rest: Buffer,
  body: Readable,
  limits: { idleTimeoutMs: number; timeout: ResponseTimeout },
): Promise<Omit<Streamed, "statusCode">> {
  let firstByteAt: number | undefined;
  const send = (chunk: Buffer) => {
    if (chunk.length > 0) firstByteAt ??= performance.now();
    return res.write(chunk);
  };
  // The head and whatever follows it in the same turn of the event loop leave in one write, never later.
  res.cork();
  setImmediate(() => res.uncork());
  res.writeHead(head.statusCode, head.headers);
  if (rest.length > 0) send(rest);
  else res.flushHeaders();
  return new Promise((resolve) => {
    let outcome: StreamOutcome | undefined;
    const cut = () => {
      outcome ??= "truncated";
      res.destroy();
      drain(body);
      done();
    };
    // Restarted by every chunk (refresh: the same timer, not a new one per token).
    const idle = setTimeout(cut, limits.idleTimeoutMs);
    const done = () => {
      clearTimeout(idle);
      limits.timeout.onExpiry(undefined);
      resolve({ outcome: outcome ?? "completed", ...(firstByteAt === undefined ? {} : { firstByteAt }) });
    };
    if (limits.timeout.expired) return cut();
    limits.timeout.onExpiry(cut);
    res.once("close", () => {
      if (res.writableFinished || outcome) return;
      outcome = "client_gone";
      drain(body);
    });
    body.on("data", (chunk: Buffer) => {
      if (outcome) return;
      idle.refresh();
      // Backpressure: a slow client slows the function's stream instead of filling memory.
      if (!send(chunk)) {
        body.pause();
        res.once("drain", () => body.resume());
      }
    });
    body.once("end", () => {
      if (!outcome) res.end();
      done();
    });
    body.once("error", (err) => {
      if (!outcome) console.error("streaming lambda failed after its response head:", err);
      if (!outcome) cut();
      done();
    });
    body.resume();
  });
}

/** Reads and discards the rest of a stream nobody will receive. */
function drain(body: Readable): void {
  body.on("error", () => {});
  body.removeAllListeners("data");
  body.resume();
}

/** The prelude's metadata as API Gateway reads it: a status code and string-valued headers. */
function parseHead(bytes: Buffer): StreamedHead | undefined {
  let metadata: {
    statusCode?: unknown;
    headers?: Record<string, unknown>;
    multiValueHeaders?: Record<string, unknown[]>;
  };
  try {
    metadata = JSON.parse(bytes.toString("utf8"));
  } catch {
    return undefined;
  }
  const status = metadata?.statusCode;
  if (typeof status !== "number" || !Number.isInteger(status) || status < 100 || status > 599)
    return undefined;
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(metadata.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  for (const [name, values] of Object.entries(metadata.multiValueHeaders ?? {})) {
    if (Array.isArray(values)) headers[name.toLowerCase()] = values.map(String);
  }
  // The body's length is unknown until it ends: it goes out chunked, whatever the function said.
  delete headers["content-length"];
  delete headers["transfer-encoding"];
  headers["content-type"] ??= "application/json";
  return { statusCode: status, headers };
}
