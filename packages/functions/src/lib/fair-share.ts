/**
 * Fair share of contended shared endpoints as one Lambda instance runs it (docs/adr/0012-fair-share.md):
 * a view of each endpoint's state, read at most once a second; the share a call's admission carries
 * while the endpoint is contended; and the signals that mark it contended.
 */

import { setTimeout as sleep } from "node:timers/promises";
import { callsInFlightOf, type SharedEndpoint, type StageConfig } from "@atrium/core/config";
import {
  type EndpointState,
  fairShare,
  isContended,
  markIsDue,
  mergeViews,
  registrationIsDue,
} from "@atrium/core/endpoint-state";
import type { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { tierOf } from "@atrium/core/limits";
import type { Route } from "@atrium/core/route";
import type { Tenant } from "@atrium/core/tenant";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logger, metrics } from "./observability";

/** How long a view of an endpoint's state is reused before it is read again. */
export const VIEW_MICROS = 1_000_000;
/** A call on an instance with no view yet waits this long for the first read, then goes uncapped. */
export const FIRST_VIEW_WAIT_MS = 250;

/** What a call's admission carries for its endpoint (absent: the endpoint is not fair-shared). */
export interface EndpointClaim {
  name: string;
  /** Set while the endpoint is contended: the calls in flight the tenant may hold on it. */
  share?: number;
}

export interface FairShareDeps {
  store: EndpointStateStore;
  config: StageConfig;
  /** Microseconds since the epoch; injectable for tests. */
  now?: () => number;
}

export function createFairShare({ store, config, now = () => Date.now() * 1000 }: FairShareDeps) {
  const views = new Map<string, { at: number; state: EndpointState }>();
  const refreshing = new Map<string, Promise<EndpointState | undefined>>();

  /** Reads the endpoint's state into the view; one read per endpoint at a time. */
  function refresh(endpointName: string, at: number): Promise<EndpointState | undefined> {
    let pending = refreshing.get(endpointName);
    if (!pending) {
      pending = store
        .read(endpointName)
        .then((read) => {
          // What this instance wrote while the read was on its way stays in the view.
          const known = views.get(endpointName)?.state;
          const state = known ? mergeViews(known, read) : read;
          views.set(endpointName, { at, state });
          return state;
        })
        .catch((err) => {
          // Fair share protects tenants from each other; it is not a limit a tenant bought. Unreadable: uncapped.
          metrics.addMetric("FairShareUnavailable", MetricUnit.Count, 1);
          logger.warn("endpoint state unreadable; admitting without fair share", {
            error: (err as Error).name,
          });
          return undefined;
        })
        .finally(() => refreshing.delete(endpointName));
      refreshing.set(endpointName, pending);
    }
    return pending;
  }

  /**
   * The endpoint's state as this instance knows it. A view older than a second is returned as it is
   * while a fresh read runs beside the call, so no call waits on it; with no view yet, the call
   * waits for the first read at most FIRST_VIEW_WAIT_MS, then goes uncapped.
   */
  async function view(endpointName: string, at: number): Promise<EndpointState | undefined> {
    const cached = views.get(endpointName);
    if (cached) {
      if (at - cached.at >= VIEW_MICROS) void refresh(endpointName, at);
      return cached.state;
    }
    const waited = await Promise.race([
      refresh(endpointName, at),
      sleep(FIRST_VIEW_WAIT_MS, undefined, { ref: false }),
    ]);
    return waited ?? undefined;
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
      if (until !== undefined) {
        // Without a view yet, the mark starts one (stale, so the next call reads the rest of the item).
        if (state) state.contendedUntil = until;
        else views.set(endpointName, { at: 0, state: { contendedUntil: until, active: {} } });
      }
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
