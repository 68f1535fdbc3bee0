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

export function createEndpointView(store: Pick<EndpointStateStore, "read">) {
  const views = new Map<string, { at: number; state: EndpointState }>();

  /** The endpoint's state as this instance last read it, refreshed when older than a second; undefined when unreadable. */
  async function read(endpointName: string, at: number): Promise<EndpointState | undefined> {
    const cached = views.get(endpointName);
    if (cached && at - cached.at < VIEW_MICROS) return cached.state;
    try {
      const state = await store.read(endpointName);
      views.set(endpointName, { at, state });
      return state;
    } catch (err) {
      logger.warn("endpoint state unreadable", { endpointName, error: (err as Error).name });
      return undefined;
    }
  }

  return { read };
}

export type EndpointView = ReturnType<typeof createEndpointView>;
