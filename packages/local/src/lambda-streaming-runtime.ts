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

/**
 * Invokes a streaming handler as InvokeWithResponseStream does: the returned stream carries every
 * byte the handler writes as it writes it, ends when the handler finishes, and fails if it throws.
 */
export function invokeStreaming(handler: StreamingHandler, event: unknown, context: Context): PassThrough {
  const responseStream = new PassThrough();
  Promise.resolve()
    .then(() => inInvocation(context, () => handler(event, responseStream, context)))
    .then(
      () => {
        if (!responseStream.writableEnded) responseStream.end();
      },
      (err: unknown) => {
        responseStream.destroy(err instanceof Error ? err : new Error(String(err)));
      },
    );
  return responseStream;
}
