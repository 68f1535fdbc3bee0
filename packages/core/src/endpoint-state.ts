/**
 * A shared endpoint's state across every Lambda instance (docs/adr/0012-fair-share.md): whether it
 * is contended, which tenants have used it while contended, and what share of its capacity each
 * gets. Pure: the store reads and writes the item, the caller supplies the clock (microseconds).
 */
import { type BreakerState, emptyBreakerState, toBreakerState } from "./circuit-breaker";
import { DELIMITER } from "./ids";

/** How long one signal of contention (a throttle, a slow call, a fair-share refusal) marks the endpoint. */
export const CONTENTION_WINDOW_MICROS = 30_000_000;
/** A tenant counts as active on a contended endpoint this long after it was last registered. */
export const ACTIVE_WINDOW_MICROS = 60_000_000;

export interface ActiveTenant {
  weight: number;
  /** When it was last registered (µs since the epoch). */
  seen: number;
}

export interface EndpointState {
  /** Contended until then (µs since the epoch); absent: never marked. */
  contendedUntil?: number;
  active: Record<string, ActiveTenant>;
  /** The endpoint's circuit breaker (docs/adr/0013-circuit-breaker-and-fallback.md), in the same item. */
  breaker: BreakerState;
}

export const emptyEndpointState = (): EndpointState => ({ active: {}, breaker: emptyBreakerState() });

export const endpointKey = (endpointName: string) => ({ pk: `ENDPOINT${DELIMITER}${endpointName}` });

/** The attribute naming one active tenant: top level, so one SET adds it whatever else the item holds. */
export const ACTIVE_PREFIX = "active@";

export function isContended(state: EndpointState, now: number): boolean {
  return (state.contendedUntil ?? 0) > now;
}

/** Whether this view of the item calls for renewing the mark: it ends within half a window. */
export function markIsDue(state: EndpointState, now: number): boolean {
  return (state.contendedUntil ?? 0) < now + CONTENTION_WINDOW_MICROS / 2;
}

/** Whether the tenant must (re)register before its share counts for the others. */
export function registrationIsDue(
  state: EndpointState,
  tenantId: string,
  weight: number,
  now: number,
): boolean {
  const entry = Object.hasOwn(state.active, tenantId) ? state.active[tenantId] : undefined;
  return !entry || entry.weight !== weight || entry.seen < now - ACTIVE_WINDOW_MICROS / 2;
}

/**
 * The calls in flight the tenant may hold on the endpoint while it is contended:
 * `floor(capacity * weight / W)`, at least 1, where W sums the weights of the tenants active on it,
 * the caller included. The shares of the active tenants add up to at most the capacity whenever
 * there are no more active tenants than slots.
 */
export function fairShare(
  state: EndpointState,
  tenant: { id: string; weight: number },
  capacity: number,
  now: number,
): number {
  let total = tenant.weight;
  for (const [id, entry] of Object.entries(state.active)) {
    if (id !== tenant.id && entry.seen > now - ACTIVE_WINDOW_MICROS) total += entry.weight;
  }
  return Math.max(1, Math.floor((capacity * tenant.weight) / total));
}

/** The item's attributes as stored, read back. */
export function toEndpointState(item: Record<string, unknown> | undefined): EndpointState {
  const state = emptyEndpointState();
  if (!item) return state;
  state.breaker = toBreakerState(item);
  if (typeof item.contendedUntil === "number") state.contendedUntil = item.contendedUntil;
  for (const [name, value] of Object.entries(item)) {
    if (!name.startsWith(ACTIVE_PREFIX) || typeof value !== "object" || value === null) continue;
    const { weight, seen } = value as Record<string, unknown>;
    if (typeof weight === "number" && typeof seen === "number") {
      state.active[name.slice(ACTIVE_PREFIX.length)] = { weight, seen };
    }
  }
  return state;
}
