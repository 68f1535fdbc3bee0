/**
 * What every API handler's chain shares, tenant and admin alike: the call's timing and the response's
 * decoration, errors mapped once to OpenAI-style bodies (lib/middleware.ts adds the tenant steps).
 */
import { AtriumError, errorBody } from "@atrium/core/errors";
import type middy from "@middy/core";
import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from "aws-lambda";
import { isAwsUnavailable, serviceUnavailable } from "./aws-unavailable";
import { json } from "./http";
import { addCallLatency, logger, tenantMetrics } from "./observability";
import { isStreamed } from "./stream-response";

type Event = APIGatewayProxyEvent;
type Result = APIGatewayProxyResult;

/** What every API handler's context carries: when Atrium started working on the call, and model time. */
export interface ApiContext extends Context {
  timing: { startedAt: number; modelMs: number };
  /** Headers any step adds to the response, success or error (e.g. x-ratelimit-*). */
  responseHeaders: Record<string, string>;
}

/**
 * Errors become OpenAI-style bodies; every response gets `x-request-id` and `x-atrium-overhead-ms`
 * (time spent in Atrium itself, the model call excluded).
 */
export function apiResponses(): MiddlewareObj<Event, Result, Error, ApiContext> {
  const decorate = (request: middy.Request<Event, Result, Error, ApiContext>) => {
    const response = request.response;
    if (!response) return;
    const { startedAt, modelMs } = request.context.timing;
    const totalMs = performance.now() - startedAt;
    const overheadMs = Math.max(0, totalMs - modelMs);
    // A buffered call that reached the model; a stream reports its latency after its last byte.
    if (modelMs > 0 && !isStreamed(response)) addCallLatency(tenantMetrics, totalMs, modelMs);
    logger.info("request served", {
      statusCode: response.statusCode,
      overheadMs: Number(overheadMs.toFixed(1)),
      modelMs: Number(modelMs.toFixed(1)),
    });
    response.headers = {
      ...response.headers,
      ...request.context.responseHeaders,
      "x-request-id": request.event.requestContext?.requestId ?? request.context.awsRequestId,
      "x-atrium-overhead-ms": overheadMs.toFixed(1),
    };
  };
  return {
    before: (request) => {
      request.context.timing = { startedAt: performance.now(), modelMs: 0 };
      request.context.responseHeaders = {};
    },
    after: decorate,
    onError: (request) => {
      // An AWS service that is down or hung is a 503 to retry, never a 500.
      const err = isAwsUnavailable(request.error) ? serviceUnavailable() : request.error;
      if (err instanceof AtriumError) {
        if (err.status >= 500) {
          logger.warn("request failed", { code: err.code, status: err.status, cause: request.error?.name });
        }
        request.response = json(err.status, errorBody(err), err.headers);
      } else {
        // The message and stack stay in the log; the caller gets a request id to quote.
        logger.error("unhandled error", err as Error);
        const requestId = request.event.requestContext?.requestId ?? request.context.awsRequestId;
        request.response = json(500, {
          error: {
            message: `The server had an error while processing your request (request id ${requestId}).`,
            type: "api_error",
            param: null,
            code: "internal_error",
          },
        });
      }
      request.context.timing ??= { startedAt: performance.now(), modelMs: 0 };
      request.context.responseHeaders ??= {};
      decorate(request);
    },
  };
}

/** Middy answers this when the handler has not finished STOP_EARLY_MS before the function's timeout. */
export const stoppedEarly = (message: string) => () => {
  throw new AtriumError(504, "api_error", "timeout", message);
};
