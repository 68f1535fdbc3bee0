import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { ModelReply } from "./reference-model";
import { streamReferenceModel } from "./reference-stream";
import type { EndpointBackend } from "./sagemaker-emulator";
import { containerUnreachable, modelError, sendError, type WireError } from "./sagemaker-errors";
import { exceptionEvent, payloadPart } from "./sagemaker-events";

/**
 * InvokeEndpointWithResponseStream's answer: an HTTP 200 whose body is AWS event-stream messages,
 * PayloadPart events carrying the model's bytes as they come, and at most one exception event
 * (ModelStreamError, InternalStreamFailure) that ends it. Errors before the first byte are the normal
 * JSON errors, as InvokeEndpoint's.
 */

/** One call as SageMaker's front end sees it (both operations). */
export interface Invocation {
  endpointName: string;
  region: string;
  body: Buffer;
  contentType?: string;
  accept?: string;
  customAttributes?: string;
  targetModel?: string;
  targetVariant?: string;
  inferenceComponentName?: string;
}

export interface StreamFault {
  streamError: "ModelStreamError" | "InternalStreamFailure";
  /** How many payload parts go out before the exception event. */
  afterParts: number;
}

export interface StreamOptions {
  backend: EndpointBackend;
  tokenDelayMs: number;
  fault?: StreamFault;
  onPart: () => void;
}

interface ByteSource {
  contentType: string;
  customAttributes?: string;
  parts: AsyncIterable<Uint8Array>;
}

// SageMaker gives a container 60 seconds to start answering.
const FIRST_BYTE_TIMEOUT_MS = 60_000;

/** Sends the stream; returns the error answered instead, when the model failed before its first byte. */
export async function sendStream(
  res: ServerResponse,
  invocation: Invocation,
  options: StreamOptions,
): Promise<WireError | undefined> {
  const clientGone = new AbortController();
  res.once("close", () => clientGone.abort());
  const source =
    options.backend.kind === "reference"
      ? referenceSource(invocation, options.tokenDelayMs)
      : await containerSource(options.backend.url, invocation, clientGone.signal);
  if ("code" in source || "status" in source) {
    const refused = "code" in source ? source : modelError(invocation, source);
    sendError(res, refused);
    return refused;
  }
  const headers: Record<string, string> = {
    "content-type": "application/vnd.amazon.eventstream",
    "x-amzn-requestid": randomUUID(),
    "x-amzn-sagemaker-content-type": source.contentType,
    "x-amzn-invoked-production-variant": invocation.targetVariant ?? "AllTraffic",
  };
  if (source.customAttributes) headers["x-amzn-sagemaker-custom-attributes"] = source.customAttributes;
  res.writeHead(200, headers);
  res.flushHeaders();
  const { fault } = options;
  let sent = 0;
  try {
    for await (const bytes of source.parts) {
      if (res.destroyed || (fault && sent >= fault.afterParts)) break;
      await write(res, payloadPart(Buffer.from(bytes)));
      sent += 1;
      options.onPart();
    }
    if (fault && !res.destroyed) await write(res, injectedStreamError(fault));
  } catch (err) {
    // The model's connection broke mid-stream: SageMaker's ModelStreamError "StreamBroken".
    if (!res.destroyed) {
      const detail = err instanceof Error ? err.message : String(err);
      await write(res, exceptionEvent("ModelStreamError", { Message: detail, ErrorCode: "StreamBroken" }));
    }
  }
  res.end();
  return undefined;
}

/** POST {url}/invocations as SageMaker forwards to a container: body, types and pass-through headers. */
export function containerHeaders(invocation: Invocation): Record<string, string> {
  const headers: Record<string, string> = {};
  if (invocation.contentType) headers["content-type"] = invocation.contentType;
  if (invocation.accept) headers.accept = invocation.accept;
  if (invocation.customAttributes)
    headers["x-amzn-sagemaker-custom-attributes"] = invocation.customAttributes;
  if (invocation.targetModel) headers["x-amzn-sagemaker-target-model"] = invocation.targetModel;
  return headers;
}

export function withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

function referenceSource(invocation: Invocation, tokenDelayMs: number): ByteSource | ModelReply {
  const stream = streamReferenceModel(invocation);
  if ("events" in stream) {
    return {
      contentType: stream.contentType,
      parts: paced(
        stream.events.map((e) => Buffer.from(e)),
        tokenDelayMs,
      ),
    };
  }
  if (stream.status < 200 || stream.status >= 300) return stream;
  return { contentType: stream.contentType, parts: paced([stream.body], 0) };
}

/**
 * The events one token apart, each cut in two in the middle (even inside a UTF-8 character): real
 * SageMaker payload parts do not follow line boundaries, so consumers must reassemble lines.
 */
async function* paced(events: Buffer[], delayMs: number): AsyncGenerator<Buffer> {
  for (const [i, event] of events.entries()) {
    if (i > 0 && delayMs > 0) await sleep(delayMs);
    const cut = Math.ceil(event.length / 2);
    yield event.subarray(0, cut);
    if (cut < event.length) yield event.subarray(cut);
  }
}

/** The container's answer; a 2xx body is relayed chunk by chunk as it arrives, never buffered. */
async function containerSource(
  url: string,
  invocation: Invocation,
  clientGone: AbortSignal,
): Promise<ByteSource | ModelReply | WireError> {
  const timeout = new AbortController();
  const timer = setTimeout(
    () => timeout.abort(new DOMException("no response within 60 s", "TimeoutError")),
    FIRST_BYTE_TIMEOUT_MS,
  );
  try {
    const res = await fetch(new URL("invocations", withSlash(url)), {
      method: "POST",
      headers: containerHeaders(invocation),
      body: invocation.body,
      signal: AbortSignal.any([clientGone, timeout.signal]),
    });
    const contentType = res.headers.get("content-type") ?? "application/octet-stream";
    if (!res.ok || !res.body) {
      return { status: res.status, contentType, body: Buffer.from(await res.arrayBuffer()) };
    }
    const customAttributes = res.headers.get("x-amzn-sagemaker-custom-attributes");
    return { contentType, ...(customAttributes ? { customAttributes } : {}), parts: res.body };
  } catch (err) {
    return containerUnreachable(invocation, err);
  } finally {
    clearTimeout(timer);
  }
}

function injectedStreamError(fault: StreamFault): Buffer {
  if (fault.streamError === "InternalStreamFailure") {
    return exceptionEvent("InternalStreamFailure", { Message: "Internal stream failure (injected fault)." });
  }
  return exceptionEvent("ModelStreamError", {
    Message: "The model's stream broke (injected fault).",
    ErrorCode: "StreamBroken",
  });
}

/** Writes, then waits while the client is slow to read (or until it has gone). */
async function write(res: ServerResponse, bytes: Buffer): Promise<void> {
  if (res.write(bytes) || res.destroyed) return;
  await new Promise<void>((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
