/**
 * What a call gets when the limiter's table cannot be reached: the tier's `limiterFailMode` decides
 * between refusing (503, nothing called) and admitting unlimited (counted, nothing to settle).
 */
import type { TierSpec } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logger, metrics } from "./observability";

/** Throws the 503 of a fail-closed tier; returns for a fail-open tier, whose call then goes ahead. */
export function whenLimiterUnavailable(tier: TierSpec, err: unknown): void {
  logger.error("limiter unavailable", { failMode: tier.limiterFailMode, error: (err as Error).name });
  if (tier.limiterFailMode === "closed") {
    const err = new AtriumError(
      503,
      "api_error",
      "limiter_unavailable",
      "Usage limits cannot be checked right now, so the call was not made. Retry shortly.",
    );
    err.headers = { "retry-after": "1", "retry-after-ms": "1000" };
    throw err;
  }
  metrics.addMetric("LimiterFailOpen", MetricUnit.Count, 1);
}
