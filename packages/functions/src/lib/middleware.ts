import { AtriumError } from "@atrium/core/errors";
import { isTenantId } from "@atrium/core/ids";
import type { Tenant } from "@atrium/core/tenant";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy, { type MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import type { Ticket } from "./admission";
import { type ApiContext, apiResponses, stoppedEarly } from "./api-responses";
import type { CallRouting } from "./endpoint-routing";
import { logger, metrics, tenantMetrics } from "./observability";
import { type Later, settleCalls } from "./settle-calls";
import { loadTenant } from "./tenant-cache";
import { functionTimeoutSeconds, STOP_EARLY_MS, WIND_UP_MS } from "./timeouts";

/** The authenticated caller, as the authorizer resolved it and the tenant store confirmed it. */
export interface TenantContext extends ApiContext {
  tenant: Tenant;
  caller: { tenantId: string; tier: string; keyId: string };
  /** The admitted call's reservation, settled by the `settleCalls` middleware. */
  ticket?: Ticket;
  /** Tokens the model reported for this call, if it did, and their split where the protocol gives one. */
  usedTokens?: number;
  usedSplit?: { promptTokens: number; completionTokens: number };
  /** The admitted call's model and route, which the usage ledger records it under. */
  call?: { model: string; route: "shared" | "dedicated" };
  /** Where else the call may go, and the half-open probe it holds (docs/adr/0013-circuit-breaker-and-fallback.md). */
  routing?: CallRouting;
  /** The fair-shared endpoint the call was admitted on (docs/adr/0012-fair-share.md), if any. */
  fairShared?: string;
  /** Aborted when the call must give up waiting for its model's answer (or first token) to refund and answer in time. */
  deadline: AbortSignal;
  /** When `deadline` fires, on `performance.now()`'s clock (Infinity without one): retries end before it. */
  deadlineAt: number;
  /** Aborted when a stream must end (an error event) to settle before the function's timeout. */
  streamDeadline: AbortSignal;
  /** Runs work once the response has been sent; only functions whose response streams have it. */
  later?: Later;
}

type Event = APIGatewayProxyEvent;
type Result = APIGatewayProxyResult;

const unauthenticated = () =>
  new AtriumError(
    401,
    "authentication_error",
    "invalid_api_key",
    "The API key is not valid for this request.",
  );

/**
 * Gives the call its deadlines (docs/adr/0007-timeouts.md), each WIND_UP_MS before a limit, for the
 * refund and the answer: `deadline` for the model's answer or first token (within the buffered
 * window, `functionTimeoutSeconds.modelCall`), `streamDeadline` for the end of a stream (the
 * function's own timeout). Own signals: middy's `{ signal }` is one controller shared by every
 * invocation in the process, so under the local gateway one call's timeout would abort all the others.
 */
export function callDeadline(): MiddlewareObj<Event, Result, Error, TenantContext> {
  return {
    before: (request) => {
      const remaining = request.context.getRemainingTimeInMillis?.();
      const within = (ms: number) => AbortSignal.timeout(Math.max(0, ms - WIND_UP_MS));
      if (remaining === undefined) {
        request.context.deadline = new AbortController().signal;
        request.context.deadlineAt = Number.POSITIVE_INFINITY;
        request.context.streamDeadline = request.context.deadline;
        return;
      }
      const modelMs = Math.min(remaining, functionTimeoutSeconds.modelCall * 1000);
      request.context.deadline = within(modelMs);
      request.context.deadlineAt = performance.now() + Math.max(0, modelMs - WIND_UP_MS);
      request.context.streamDeadline = within(remaining);
    },
  };
}

/** Resolves the caller's tenant from the authorizer context and re-checks it: ids are checked at every layer. */
export function tenantContext(): MiddlewareObj<Event, Result, Error, TenantContext> {
  return {
    before: async (request) => {
      const auth = request.event.requestContext?.authorizer ?? {};
      const { tenantId, tier, keyId, keyExpiresAt } = auth as Record<string, unknown>;
      if (typeof tenantId !== "string" || !isTenantId(tenantId) || typeof keyId !== "string") {
        throw unauthenticated();
      }
      // A rotated key stops at its expiry exactly, even while API Gateway still caches its Allow.
      if (typeof keyExpiresAt === "string" && !(Date.parse(keyExpiresAt) > Date.now())) {
        throw unauthenticated();
      }
      const tenant = await loadTenant(tenantId);
      if (!tenant) throw unauthenticated();
      if (tenant.status !== "active") {
        throw new AtriumError(
          403,
          "permission_error",
          "tenant_suspended",
          "This API key's tenant is suspended.",
        );
      }
      request.context.tenant = tenant;
      request.context.caller = { tenantId, tier: typeof tier === "string" ? tier : tenant.tier, keyId };
      logger.appendKeys({ tenantId, tier: tenant.tier, keyId });
      metrics.addMetadata("tenantId", tenantId);
      tenantMetrics.addDimension("tenantId", tenantId);
      tenantMetrics.addMetric("Requests", MetricUnit.Count, 1);
    },
  };
}

/**
 * The middleware chain of every tenant-facing handler, outermost first. `idempotency`: only the
 * idempotent routes' handlers pass it (lib/tenant-idempotency.ts), so the others' bundles leave it out.
 */
export function tenantApi(
  handler: (event: Event, context: TenantContext) => Promise<Result>,
  options: { idempotency?: MiddlewareObj<Event, Result, Error, TenantContext> } = {},
) {
  // Prompts and completions stay out of logs (HIPAA), whatever POWERTOOLS_LOGGER_LOG_EVENT says.
  const chain = middy<Event, Result, Error, TenantContext>(handler, {
    timeoutEarlyInMillis: STOP_EARLY_MS,
    timeoutEarlyResponse: stoppedEarly("The call did not complete in time and was stopped. Retry shortly."),
  })
    .use(injectLambdaContext(logger, { resetKeys: true, logEvent: false }))
    .use(logMetrics([metrics, tenantMetrics]))
    .use(callDeadline())
    .use(apiResponses() as MiddlewareObj<Event, Result, Error, TenantContext>)
    .use(tenantContext());
  if (options.idempotency) chain.use(options.idempotency);
  return chain.use(settleCalls());
}

/** Times the model call so it can be excluded from Atrium's reported overhead. */
export async function timed<T>(context: ApiContext, call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await call();
  } finally {
    const elapsed = performance.now() - started;
    context.timing.modelMs += elapsed;
    metrics.addMetric("ModelLatency", MetricUnit.Milliseconds, elapsed);
  }
}
