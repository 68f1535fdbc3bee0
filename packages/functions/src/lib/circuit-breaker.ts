/**
 * Endpoints' circuit breakers as one Lambda instance runs them (docs/adr/0013-circuit-breaker-and-fallback.md),
 * on the instance's view of each endpoint's item (endpoint-view.ts, shared with fair share). A healthy
 * call writes nothing; a failing one ADDs to its bucket, and the one that crosses the threshold opens
 * the breaker; half-open, one instance claims the probe and its call closes or reopens it.
 */

import {
  bucketsToForget,
  emptyBreakerState,
  failureWrite,
  PROBE_LEASE_MICROS,
  phaseOf,
  retryAfterSeconds,
  shouldOpen,
} from "@atrium/core/circuit-breaker";
import type { CircuitBreakerStore } from "@atrium/core/circuit-breaker-store";
import type { CircuitBreakerConfig } from "@atrium/core/config";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { type EndpointView, VIEW_MICROS } from "./endpoint-view";
import { logger, metrics } from "./observability";

/** Whether a call may go to an endpoint: `probe` is its claim when it is the half-open probe. */
export type Passage = { allowed: true; probe?: number } | { allowed: false; retryAfterSeconds: number };

export interface CircuitBreakerDeps {
  endpoints: EndpointView;
  store: CircuitBreakerStore;
  settings: CircuitBreakerConfig;
  /** Microseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export function createCircuitBreaker({
  endpoints,
  store,
  settings,
  now = () => Date.now() * 1000,
}: CircuitBreakerDeps) {
  const openMicros = settings.openSeconds * 1_000_000;

  /** Closed: through. Open: refused with the time until half-open. Half-open: through for one probe. */
  async function admit(endpointName: string): Promise<Passage> {
    const at = now();
    const state = await endpoints.read(endpointName, at);
    // Unreadable, the breaker cannot judge: the endpoint itself answers.
    if (!state) return { allowed: true };
    const phase = phaseOf(state.breaker, at);
    if (phase.phase === "closed") return { allowed: true };
    if (phase.phase === "half-open" && !phase.probing) {
      const claim = at + PROBE_LEASE_MICROS;
      const claimed = await store
        .claimProbe(endpointName, phase.openUntil, at, claim)
        .catch((err: unknown) => {
          logger.warn("could not claim a breaker probe", { endpointName, error: (err as Error).name });
          return false;
        });
      if (claimed) {
        endpoints.setBreaker(endpointName, { ...state.breaker, probeUntil: claim }, at);
        metrics.addMetric("BreakerProbe", MetricUnit.Count, 1);
        logger.info("circuit breaker probe", { endpointName });
        return { allowed: true, probe: claim };
      }
      // Another instance probes: open for this one until its view refreshes, with no second try.
      endpoints.setBreaker(endpointName, { ...state.breaker, probeUntil: at + VIEW_MICROS }, at, false);
    }
    return { allowed: false, retryAfterSeconds: retryAfterSeconds(phase) };
  }

  /**
   * The call is done with the endpoint. A probe closes the breaker or reopens it; otherwise a
   * counted failure is one write, two for the failure that opens it; anything else none.
   */
  async function outcome(endpointName: string, failed: boolean, probe?: number): Promise<void> {
    if (!failed && probe === undefined) return;
    const at = now();
    try {
      const state = await endpoints.read(endpointName, at);
      if (probe !== undefined) {
        if (failed) {
          if (await store.reopen(endpointName, probe, at + openMicros)) opened(endpointName, "probe failed");
          const { probeUntil: _claim, ...rest } = state?.breaker ?? emptyBreakerState();
          endpoints.setBreaker(endpointName, { ...rest, openUntil: at + openMicros }, at);
        } else {
          const known = bucketsToForget(state?.breaker ?? emptyBreakerState());
          if (await store.close(endpointName, probe, at, known))
            logger.info("circuit breaker closed", { endpointName });
          endpoints.setBreaker(endpointName, { ...emptyBreakerState(), closedAt: at }, at);
        }
        return;
      }
      const write = failureWrite(state?.breaker ?? emptyBreakerState(), settings, at);
      if (!write) return;
      const after = await store.recordFailure(endpointName, write.bucket, write.stale);
      endpoints.setBreaker(endpointName, after, at);
      if (shouldOpen(after, settings, at) && (await store.open(endpointName, at + openMicros))) {
        opened(endpointName, "failures");
        endpoints.setBreaker(endpointName, { ...after, openUntil: at + openMicros }, at);
      }
    } catch (err) {
      // The breaker protects the endpoint; it never fails the call that informs it.
      logger.warn("could not record an endpoint's outcome", { endpointName, error: (err as Error).name });
    }
  }

  function opened(endpointName: string, cause: string): void {
    metrics.addMetric("BreakerOpened", MetricUnit.Count, 1);
    logger.warn("circuit breaker opened", { endpointName, cause, openSeconds: settings.openSeconds });
  }

  return { admit, outcome };
}

export type CircuitBreaker = ReturnType<typeof createCircuitBreaker>;
