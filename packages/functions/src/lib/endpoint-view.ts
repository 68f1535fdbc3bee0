/**
 * One Lambda instance's view of each endpoint's item (fair share's state and the circuit breaker's,
 * docs/adr/0012 and 0013): read at most once a second per endpoint, and shared by both, so the
 * breaker adds no read of its own. Writes made by this instance are folded into the view at once.
 */
import type { EndpointState } from "@atrium/core/endpoint-state";
import type { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { logger } from "./observability";

/** How long a view of an endpoint's state is reused: the bound on how late another instance's write is seen. */
export const VIEW_MICROS = 1_000_000;

/** An unreadable table is not asked again for this long: an outage delays one call per endpoint per 10 s, not each. */
export const UNREADABLE_MICROS = 10_000_000;

export function createEndpointView(store: Pick<EndpointStateStore, "read">) {
  const views = new Map<string, { at: number; state: EndpointState | undefined }>();

  /**
   * The endpoint's state as this instance last read it, refreshed when older than a second;
   * undefined when unreadable, and remembered so for UNREADABLE_MICROS (a hung table costs one wait).
   */
  async function read(endpointName: string, at: number): Promise<EndpointState | undefined> {
    const cached = views.get(endpointName);
    if (cached && at - cached.at < (cached.state ? VIEW_MICROS : UNREADABLE_MICROS)) return cached.state;
    try {
      const state = await store.read(endpointName);
      views.set(endpointName, { at, state });
      return state;
    } catch (err) {
      logger.warn("endpoint state unreadable", { endpointName, error: (err as Error).name });
      views.set(endpointName, { at, state: undefined });
      return undefined;
    }
  }

  return { read };
}

export type EndpointView = ReturnType<typeof createEndpointView>;
