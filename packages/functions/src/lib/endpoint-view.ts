/**
 * One Lambda instance's view of each endpoint's item (fair share's state and the circuit breaker's,
 * docs/adr/0012 and 0013), shared by both so the breaker adds no read of its own. A view older than
 * a second is returned as it is while a fresh read is made, so no call waits on it: `startRead`
 * says when that read starts (the functions pass call-upkeep's, which starts it once the call's
 * model has the call or its response is sent). With no view yet, a call waits for the first read at
 * most FIRST_VIEW_WAIT_MS. Writes this instance makes are folded into the view at once, and a read
 * that was on its way never undoes them.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { BreakerState } from "@atrium/core/circuit-breaker";
import { type EndpointState, emptyEndpointState, mergeViews } from "@atrium/core/endpoint-state";
import type { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { atOnce, type StartUpkeep } from "./call-upkeep";
import { logger } from "./observability";

/** How long a view of an endpoint's state is reused before it is read again. */
export const VIEW_MICROS = 1_000_000;
/** A call on an instance with no view yet waits this long for the first read, then goes on without. */
export const FIRST_VIEW_WAIT_MS = 250;

/** `firstViewWaitMs`: tests that need the first read whatever the machine's load pass a long one. */
export function createEndpointView(
  store: Pick<EndpointStateStore, "read">,
  firstViewWaitMs = FIRST_VIEW_WAIT_MS,
  startRead: StartUpkeep = atOnce,
) {
  const views = new Map<string, { at: number; state: EndpointState }>();
  const refreshing = new Map<string, Promise<EndpointState | undefined>>();
  /** When this instance last wrote each endpoint's breaker (µs): a read begun before keeps it. */
  const breakerWrites = new Map<string, number>();

  /** Reads the endpoint's state into the view; one read per endpoint at a time. */
  function refresh(endpointName: string, at: number): Promise<EndpointState | undefined> {
    let pending = refreshing.get(endpointName);
    if (!pending) {
      pending = store
        .read(endpointName)
        .then((read) => {
          // What this instance wrote while the read was on its way stays in the view.
          const known = views.get(endpointName)?.state;
          const wroteSince = (breakerWrites.get(endpointName) ?? Number.NEGATIVE_INFINITY) >= at;
          const state = known ? mergeViews(known, read, wroteSince) : read;
          views.set(endpointName, { at, state });
          return state;
        })
        .catch((err) => {
          logger.warn("endpoint state unreadable", { endpointName, error: (err as Error).name });
          return undefined;
        })
        .finally(() => refreshing.delete(endpointName));
      refreshing.set(endpointName, pending);
    }
    return pending;
  }

  /** The endpoint's state as this instance knows it; undefined with no view yet (or none readable). */
  async function read(endpointName: string, at: number): Promise<EndpointState | undefined> {
    const cached = views.get(endpointName);
    if (cached) {
      if (at - cached.at >= VIEW_MICROS)
        startRead(`endpoint view ${endpointName}`, () => refresh(endpointName, at));
      return cached.state;
    }
    const waited = await Promise.race([
      refresh(endpointName, at),
      sleep(firstViewWaitMs, undefined, { ref: false }),
    ]);
    return waited ?? undefined;
  }

  /**
   * Folds a fair-share write this instance made into its current view (whatever object it is now);
   * with no view yet, starts one from it, stale so the next call reads the rest of the item.
   */
  function noteWrite(endpointName: string, written: Omit<EndpointState, "breaker">): void {
    const state = { ...emptyEndpointState(), ...written };
    const current = views.get(endpointName);
    if (current) current.state = { ...mergeViews(current.state, state), breaker: current.state.breaker };
    else views.set(endpointName, { at: 0, state });
  }

  /**
   * Puts the breaker's state as this instance now knows it into the current view. `wrote`: it
   * wrote that state at `at`, so a read begun before then does not undo it.
   */
  function setBreaker(endpointName: string, breaker: BreakerState, at: number, wrote = true): void {
    const current = views.get(endpointName);
    if (current) current.state = { ...current.state, breaker };
    if (wrote) breakerWrites.set(endpointName, at);
  }

  return { read, noteWrite, setBreaker };
}

export type EndpointView = ReturnType<typeof createEndpointView>;
