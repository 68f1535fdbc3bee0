/**
 * A STREAM integration's response as API Gateway relays it: the metadata prelude (up to eight NUL
 * bytes) gives status and headers, then every later byte goes to the client as it arrives, chunked.
 * Before the prelude is complete a failure is a gateway response; after it, the stream just ends.
 */
import type { ServerResponse } from "node:http";
import type { Readable } from "node:stream";
import { GatewayError } from "./gateway-authorizer";
import { PRELUDE_DELIMITER } from "./lambda-streaming-runtime";

export interface StreamedHead {
  statusCode: number;
  headers: Record<string, string | string[]>;
}

export interface StreamLimits {
  /** API Gateway's integration timeout, counted until the response head (the prelude) arrives. */
  integrationTimeoutMs: number;
  /** Longest pause between two chunks before API Gateway closes the stream. */
  streamIdleTimeoutMs: number;
  /** Longest a response may stream in all. */
  streamMaxDurationMs: number;
}

/** API Gateway's documented limits for a streamed response from a regional REST API (ADR 0002). */
export const streamingLimits = {
  streamIdleTimeoutMs: 5 * 60_000,
  streamMaxDurationMs: 15 * 60_000,
} as const;

/** How a relayed stream ended: all of it sent, cut by the gateway or the function, or the client left. */
export type StreamOutcome = "completed" | "truncated" | "client_gone";

/**
 * Reads the prelude of a streamed proxy response. Fails with INTEGRATION_TIMEOUT past the integration
 * timeout, DEFAULT_5XX if the function fails or its prelude is malformed; the stream is drained then.
 */
export function readPrelude(
  body: Readable,
  timeoutMs: number,
): Promise<{ head: StreamedHead; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const settle = (outcome: () => void) => {
      clearTimeout(timer);
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
    const timer = setTimeout(() => fail("INTEGRATION_TIMEOUT", "timeout"), timeoutMs);
    body.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

/**
 * Sends the head, then relays every chunk as it comes (no content-length, so Node frames it chunked).
 * A function error, the idle timeout or the duration limit cuts the connection: the client sees a
 * truncated chunked body. A client that leaves does not stop the function: its output is drained.
 */
export function relayStream(
  res: ServerResponse,
  head: StreamedHead,
  rest: Buffer,
  body: Readable,
  limits: StreamLimits,
): Promise<StreamOutcome> {
  res.writeHead(head.statusCode, head.headers);
  if (rest.length > 0) res.write(rest);
  else res.flushHeaders();
  return new Promise((resolve) => {
    let outcome: StreamOutcome | undefined;
    const cut = () => {
      outcome ??= "truncated";
      res.destroy();
      drain(body);
      done();
    };
    let idle = setTimeout(cut, limits.streamIdleTimeoutMs);
    const longest = setTimeout(cut, limits.streamMaxDurationMs);
    const done = () => {
      clearTimeout(idle);
      clearTimeout(longest);
      resolve(outcome ?? "completed");
    };
    res.once("close", () => {
      if (res.writableFinished || outcome) return;
      outcome = "client_gone";
      drain(body);
    });
    body.on("data", (chunk: Buffer) => {
      if (outcome) return;
      clearTimeout(idle);
      idle = setTimeout(cut, limits.streamIdleTimeoutMs);
      // Backpressure: a slow client slows the function's stream instead of filling memory.
      if (!res.write(chunk)) {
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
