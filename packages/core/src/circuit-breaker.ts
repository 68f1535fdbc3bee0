/**
 * An endpoint's circuit breaker, shared by every Lambda instance (docs/adr/0013-circuit-breaker-and-fallback.md).
 * Its state lives in the endpoint's item beside fair share's: failures counted in time buckets
 * (`fail@<bucket>`, ADD-ed only when a call fails), `openUntil` once it opened, `probeUntil` while
 * one instance probes it half-open, `closedAt` when a probe last closed it. Pure: the store reads
 * and writes the item, the caller supplies the clock (microseconds since the epoch).
 */
import type { CircuitBreakerConfig } from "./config";

/** Failures are counted in buckets this wide: the window slides in steps of it. */
export const BUCKET_MICROS = 5_000_000;

/** How long one instance holds the half-open probe: a call's longest (ADR 0007), so a lost probe frees. */
export const PROBE_LEASE_MICROS = 30_000_000;

/** The attribute counting one bucket's failures. */
export const FAILURE_PREFIX = "fail@";

export interface BreakerState {
  /** Failures by bucket (`floor(µs / BUCKET_MICROS)`). */
  failures: Record<number, number>;
  /** Set once the breaker opened: open until then, half-open after. Absent: closed. */
  openUntil?: number;
  /** Set while one instance probes it half-open: its claim, held until then. */
  probeUntil?: number;
  /** When a probe last closed it: buckets before then are forgotten (the close removes the ones it knows). */
  closedAt?: number;
}

export type BreakerPhase =
  | { phase: "closed" }
  | { phase: "open"; retryAfterMicros: number }
  /** `probing`: another call holds the probe, so for everyone else it is still open. */
  | { phase: "half-open"; probing: boolean; openUntil: number };

export const emptyBreakerState = (): BreakerState => ({ failures: {} });

export const bucketOf = (now: number) => Math.floor(now / BUCKET_MICROS);

export function phaseOf(state: BreakerState, now: number): BreakerPhase {
  const { openUntil, probeUntil } = state;
  if (openUntil === undefined) return { phase: "closed" };
  if (now < openUntil) return { phase: "open", retryAfterMicros: openUntil - now };
  return { phase: "half-open", probing: probeUntil !== undefined && probeUntil > now, openUntil };
}

/** Failures in the window ending now, none from before the last close. */
export function failuresInWindow(state: BreakerState, settings: CircuitBreakerConfig, now: number): number {
  const current = bucketOf(now);
  const oldest = current - settings.windowSeconds / (BUCKET_MICROS / 1_000_000) + 1;
  // The close removed the buckets its view knew; any older one still there is from before it.
  const firstAfterClose = state.closedAt === undefined ? oldest : bucketOf(state.closedAt);
  let count = 0;
  for (const [bucket, failures] of Object.entries(state.failures)) {
    const b = Number(bucket);
    if (b >= oldest && b >= firstAfterClose && b <= current) count += failures;
  }
  return count;
}

/** Whether a closed breaker whose counters now read `state` is to open. */
export function shouldOpen(state: BreakerState, settings: CircuitBreakerConfig, now: number): boolean {
  return state.openUntil === undefined && failuresInWindow(state, settings, now) >= settings.failures;
}

/**
 * What one counted failure writes: the current bucket to ADD to, and the buckets this view knows
 * that fell out of the window (removed in the same write, so the item stays small). Nothing while
 * the breaker is open or half-open: its counters only decide when it opens from closed.
 */
/** The failure buckets a close removes: every one this view knows (at most 20, as a write names them). */
export function bucketsToForget(state: BreakerState): number[] {
  return Object.keys(state.failures).map(Number).slice(0, 20);
}

export function failureWrite(
  state: BreakerState,
  settings: CircuitBreakerConfig,
  now: number,
): { bucket: number; stale: number[] } | undefined {
  if (state.openUntil !== undefined) return undefined;
  const bucket = bucketOf(now);
  const windowBuckets = settings.windowSeconds / (BUCKET_MICROS / 1_000_000);
  const stale = Object.keys(state.failures)
    .map(Number)
    .filter((b) => b <= bucket - windowBuckets)
    .slice(0, 20);
  return { bucket, stale };
}

/** Seconds a caller is told to wait before the breaker lets calls through again: at least 1. */
export function retryAfterSeconds(phase: BreakerPhase): number {
  return phase.phase === "open" ? Math.max(1, Math.ceil(phase.retryAfterMicros / 1_000_000)) : 1;
}

/** The item's breaker attributes, read back. */
export function toBreakerState(item: Record<string, unknown> | undefined): BreakerState {
  const state = emptyBreakerState();
  if (!item) return state;
  for (const field of ["openUntil", "probeUntil", "closedAt"] as const) {
    const value = item[field];
    if (typeof value === "number") state[field] = value;
  }
  for (const [name, value] of Object.entries(item)) {
    if (!name.startsWith(FAILURE_PREFIX) || typeof value !== "number") continue;
    const bucket = Number(name.slice(FAILURE_PREFIX.length));
    if (Number.isSafeInteger(bucket)) state.failures[bucket] = value;
  }
  return state;
}
