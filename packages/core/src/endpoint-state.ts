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
 * The calls in flight the tenant may hold on the endpoint while it is contended: its part of
 * `fairShares` over the tenants active on it, the caller counted in.
 */
export function fairShare(
  state: EndpointState,
  tenant: { id: string; weight: number },
  capacity: number,
  now: number,
): number {
  const weights = new Map<string, number>();
  for (const [id, entry] of Object.entries(state.active)) {
    if (entry.seen > now - ACTIVE_WINDOW_MICROS) weights.set(id, entry.weight);
  }
  weights.set(tenant.id, tenant.weight);
  return fairShares(weights, capacity).get(tenant.id) ?? 1;
}

/**
 * Splits `capacity` calls in flight between tenants by weight, the same on every instance that sees
 * the same tenants: every tenant gets at least one; those whose weighted part of what is left is
 * under one get exactly one, and the others split the rest in proportion to their weights, rounded
 * down, the remainder going one each to the largest fractions (ties by tenant id). The shares add up
 * to the capacity, or to the number of tenants when there are more tenants than slots.
 */
export function fairShares(weights: ReadonlyMap<string, number>, capacity: number): Map<string, number> {
  const ids = [...weights.keys()].sort();
  const shares = new Map<string, number>();
  if (ids.length >= capacity) {
    for (const id of ids) shares.set(id, 1);
    return shares;
  }
  // Tenants whose part rounds below one get one; the rest is split again among the others, until stable.
  let sharing = ids;
  let left = capacity;
  for (;;) {
    const total = sharing.reduce((sum, id) => sum + (weights.get(id) ?? 0), 0);
    const under = sharing.filter((id) => Math.floor((left * (weights.get(id) ?? 0)) / total) < 1);
    if (under.length === 0 || under.length === sharing.length) break;
    for (const id of under) shares.set(id, 1);
    left -= under.length;
    sharing = sharing.filter((id) => !under.includes(id));
  }
  const total = sharing.reduce((sum, id) => sum + (weights.get(id) ?? 0), 0);
  const exact = sharing.map((id) => ({ id, part: (left * (weights.get(id) ?? 0)) / total }));
  for (const { id, part } of exact) shares.set(id, Math.max(1, Math.floor(part)));
  let remainder = left - exact.reduce((sum, { id }) => sum + (shares.get(id) ?? 0), 0);
  const byFraction = [...exact].sort(
    (a, b) => b.part - Math.floor(b.part) - (a.part - Math.floor(a.part)) || a.id.localeCompare(b.id),
  );
  for (const { id } of byFraction) {
    if (remainder <= 0) break;
    shares.set(id, (shares.get(id) ?? 0) + 1);
    remainder -= 1;
  }
  return shares;
}

/**
 * A view read from the table, with what this instance learnt meanwhile: a read that started before
 * this instance wrote a mark or a registration must not undo it in the view. Marks only grow and a
 * tenant's `seen` only moves on, so the later of each is the truth. The breaker's state moves both
 * ways (a close removes an opening), so it is the read's unless this instance wrote it since the
 * read began (`breakerWrittenSince`).
 */
export function mergeViews(
  known: EndpointState,
  read: EndpointState,
  breakerWrittenSince = false,
): EndpointState {
  const contendedUntil = Math.max(known.contendedUntil ?? 0, read.contendedUntil ?? 0);
  const active = { ...read.active };
  for (const [id, entry] of Object.entries(known.active)) {
    const other = Object.hasOwn(active, id) ? active[id] : undefined;
    if (!other || other.seen < entry.seen) active[id] = entry;
  }
  return {
    ...(contendedUntil > 0 ? { contendedUntil } : {}),
    active,
    breaker: breakerWrittenSince ? known.breaker : read.breaker,
  };
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
