/**
 * Fair share of contended shared endpoints as one Lambda instance runs it (docs/adr/0012-fair-share.md):
 * on this instance's view of each endpoint's state (endpoint-view.ts, shared with the circuit breaker); the share a call's admission carries
 * while the endpoint is contended; and the signals that mark it contended.
 */

import { callsInFlightOf, type SharedEndpoint, type StageConfig } from "@atrium/core/config";
import {
  type EndpointState,
  fairShare,
  isContended,
  markIsDue,
  registrationIsDue,
} from "@atrium/core/endpoint-state";
import type { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { tierOf } from "@atrium/core/limits";
import type { Route } from "@atrium/core/route";
import type { Tenant } from "@atrium/core/tenant";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { EndpointView } from "./endpoint-view";
import { logger, metrics } from "./observability";

/** What a call's admission carries for its endpoint (absent: the endpoint is not fair-shared). */
export interface EndpointClaim {
  name: string;
  /** Set while the endpoint is contended: the calls in flight the tenant may hold on it. */
  share?: number;
}

export interface FairShareDeps {
  store: EndpointStateStore;
  /** This instance's view of endpoints' items, shared with the circuit breaker. */
  endpoints: EndpointView;
  config: StageConfig;
  /** Microseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export function createFairShare({ store, endpoints, config, now = () => Date.now() * 1000 }: FairShareDeps) {
  /** The endpoint's state as this instance knows it (endpoint-view.ts). */
  async function view(endpointName: string, at: number): Promise<EndpointState | undefined> {
    const state = await endpoints.read(endpointName, at);
    // Fair share protects tenants from each other; it is not a limit a tenant bought. No view: uncapped.
    if (!state) metrics.addMetric("FairShareUnavailable", MetricUnit.Count, 1);
    return state;
  }

  function capacityOf(endpointName: string): { endpoint: SharedEndpoint; capacity: number } | undefined {
    const endpoint = config.sharedEndpoints.find((e) => e.endpointName === endpointName);
    const capacity = endpoint ? callsInFlightOf(endpoint) : undefined;
    return endpoint && capacity ? { endpoint, capacity } : undefined;
  }

  /** What the admission of the tenant's call on `route` carries: its endpoint and, if contended, its share. */
  async function claimFor(route: Route, tenant: Tenant): Promise<EndpointClaim | undefined> {
    if (route.kind !== "shared") return undefined;
    const shared = capacityOf(route.endpointName);
    if (!shared) return undefined;
    const at = now();
    const state = await view(route.endpointName, at);
    if (!state || !isContended(state, at)) return { name: route.endpointName };
    const weight = tierOf(tenant, config).shareWeight;
    if (registrationIsDue(state, tenant.id, weight, at)) {
      try {
        await store.register(route.endpointName, tenant.id, weight, at);
        endpoints.noteWrite(route.endpointName, { active: { [tenant.id]: { weight, seen: at } } });
        state.active[tenant.id] = { weight, seen: at };
      } catch (err) {
        // Unregistered, the others' shares do not yet leave room for this tenant: it still gets its own.
        logger.warn("could not register on a contended endpoint", { error: (err as Error).name });
      }
    }
    return {
      name: route.endpointName,
      share: fairShare(state, { id: tenant.id, weight }, shared.capacity, at),
    };
  }

  /** A sign that demand exceeds the endpoint's capacity: marks it contended, when this view says it is due. */
  async function contended(endpointName: string): Promise<void> {
    if (!capacityOf(endpointName)) return;
    const at = now();
    const state = await view(endpointName, at);
    if (state && !markIsDue(state, at)) return;
    try {
      const until = await store.markContended(endpointName, at);
      if (until !== undefined) endpoints.noteWrite(endpointName, { contendedUntil: until, active: {} });
      metrics.addMetric("EndpointContended", MetricUnit.Count, 1);
    } catch (err) {
      logger.warn("could not mark an endpoint contended", { error: (err as Error).name });
    }
  }

  /** The model latency above which a call on the endpoint counts as a sign of contention. */
  function latencyTargetMs(endpointName: string): number | undefined {
    return capacityOf(endpointName)?.endpoint.capacity?.latencyTargetMs;
  }

  return { claimFor, contended, latencyTargetMs };
}

export type FairShare = ReturnType<typeof createFairShare>;
