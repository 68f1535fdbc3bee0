/**
 * Where a call goes (docs/adr/0013-circuit-breaker-and-fallback.md): the tenant's routes in order
 * (core's resolveRoutes, which holds every posture), the first whose circuit breaker lets the call
 * through, decided before admission so admission and fair share count the endpoint actually called.
 * The rest stay on the call as its fallbacks for the retry seam.
 */
import { type AtriumError, upstream } from "@atrium/core/errors";
import { type Route, resolveRoutes } from "@atrium/core/route";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { config } from "./clients";
import { breaker } from "./endpoints";
import type { TenantContext } from "./middleware";
import { recordFallback } from "./model-retries";
import { metrics } from "./observability";

export interface CallRouting {
  /** Routes the call may still fall back to, in order. */
  fallbacks: Route[];
  /** Set when the call is the half-open probe of this endpoint's breaker: its claim. */
  probe?: { endpointName: string; claim: number };
}

/** The route the tenant's call for `model` takes now; 503 `endpoint_unavailable` when every breaker is open. */
export async function routeCall(context: TenantContext, model: string): Promise<Route> {
  const routes = resolveRoutes(context.tenant, model, config);
  let retryAfter = Number.POSITIVE_INFINITY;
  for (const [i, route] of routes.entries()) {
    const passage = await breaker.admit(route.endpointName);
    if (!passage.allowed) {
      retryAfter = Math.min(retryAfter, passage.retryAfterSeconds);
      continue;
    }
    context.routing = {
      fallbacks: routes.slice(i + 1),
      ...(passage.probe !== undefined
        ? { probe: { endpointName: route.endpointName, claim: passage.probe } }
        : {}),
    };
    const primary = routes[0];
    if (primary && i > 0) recordFallback(context, route, primary);
    return route;
  }
  metrics.addMetric("BreakerFastFail", MetricUnit.Count, 1);
  throw endpointUnavailable(model, retryAfter);
}

/** Every endpoint the call could take is failing: an honest wait until the first of them half-opens. */
function endpointUnavailable(model: string, retryAfterSeconds: number): AtriumError {
  const err = upstream(
    503,
    "endpoint_unavailable",
    `The endpoint serving '${model}' is failing, so Atrium stopped calling it for a moment. Retry in ${retryAfterSeconds} s.`,
  );
  err.headers = { "retry-after": String(retryAfterSeconds), "x-should-retry": "true" };
  return err;
}
