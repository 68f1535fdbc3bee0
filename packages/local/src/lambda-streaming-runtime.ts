/**
 * LocalLambdaStreamingRuntime: a local stand-in for the response-streaming part of the Lambda Node.js
 * runtime, the `awslambda` global that exists only inside Lambda (streamifyResponse,
 * HttpResponseStream.from). HttpResponseStream.from writes what API Gateway's streaming proxy format
 * documents: the metadata JSON, eight NUL bytes, then whatever the handler writes.
 */
import { PassThrough, type Writable } from "node:stream";
import type { Context } from "aws-lambda";
import { inInvocation } from "./lambda-invoke-store";

const STREAMING = Symbol.for("aws.lambda.runtime.handler.streaming");
/** Ends the metadata prelude of a streamed proxy response. */
export const PRELUDE_DELIMITER = Buffer.alloc(8);

// biome-ignore lint/suspicious/noExplicitAny: handlers are typed by their own modules
export type StreamingHandler = (event: any, responseStream: Writable, context: Context) => Promise<unknown>;

export const LocalLambdaStreamingRuntime = {
  /** Marks the handler as one that takes a response stream, as the runtime's decorator does. */
  streamifyResponse<T extends (...args: never[]) => unknown>(handler: T): T {
    return Object.assign(handler, { [STREAMING]: "response" });
  },
  HttpResponseStream: {
    from(writable: Writable, metadata: Record<string, unknown>): Writable {
      writable.write(JSON.stringify(metadata));
      writable.write(PRELUDE_DELIMITER);
      return writable;
    },
  },
};

/** Whether a loaded function was wrapped by streamifyResponse. */
export function isStreamingHandler(fn: unknown): fn is StreamingHandler {
  return typeof fn === "function" && (fn as unknown as Record<symbol, unknown>)[STREAMING] === "response";
}

/**
 * Gives the `awslambda` global the stand-in's streaming members, unless a runtime already provides
 * them. The global itself may exist already: the AWS SDK's invoke store creates it to hang its own
 * state on, and that state is kept.
 */
export function installLocalLambdaStreamingRuntime(): void {
  const global = globalThis as { awslambda?: Record<string, unknown> };
  global.awslambda ??= {};
  if (typeof global.awslambda.streamifyResponse === "function") return;
  Object.assign(global.awslambda, LocalLambdaStreamingRuntime);
}

/** Invocations whose handler has not returned: a handler may work on after its response ended. */
const running = new Set<Promise<void>>();

/** Resolves once every streaming invocation started so far (and any they lead to) has returned. */
export async function invocationsFinished(): Promise<void> {
  while (running.size > 0) await Promise.allSettled([...running]);
}

/**
 * Invokes a streaming handler as InvokeWithResponseStream does: the returned stream carries every
 * byte the handler writes as it writes it, ends when the handler ends it (or returns), and fails if
 * it throws. The invocation lasts until the handler returns, which may be after the stream ended.
 */
export function invokeStreaming(handler: StreamingHandler, event: unknown, context: Context): PassThrough {
  const responseStream = new PassThrough();
  const invocation = Promise.resolve()
    .then(() => inInvocation(context, () => handler(event, responseStream, context)))
    .then(
      () => {
        if (!responseStream.writableEnded) responseStream.end();
      },
      (err: unknown) => {
        responseStream.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    )
    .finally(() => running.delete(invocation));
  running.add(invocation);
  return responseStream;
}
