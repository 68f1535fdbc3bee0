/**
 * What an admission guesses about a limiter item's TATs when it picks its form (admissionUpdate: idle
 * or busy). A container knows where its own last write left them. When other containers take
 * allotments of the same tenant, the TATs run ahead of that by their takes, each charged at the end of
 * its hold, so a container's next take would guess "idle" and fail first (measured: every take of 4
 * instances at 60 calls/s cost two writes). A lead is how far ahead of now a write or a refusal last
 * showed them; while one is recent, a take's guess assumes they are still that far ahead. A single
 * admission guesses from what it knows, as before. A wrong guess costs one write and decides nothing:
 * the conditions do (docs/adr/0004-exact-limits.md, "Allotments").
 */
import { MAX_HOLD_MICROS } from "./allotment";
import type { LimiterSnapshot } from "./limiter-item";

export interface Lead {
  /** Microseconds each TAT was ahead of `at`, when it was ahead of the writer's floor. */
  requests?: number;
  tokens?: number;
  at: number;
}

/** A lead is trusted this long: past two holds, the other containers' takes it reflects have ended. */
const LEAD_MEMORY_MICROS = 2 * MAX_HOLD_MICROS;

/** The item as the form should be guessed from: the known TATs, or where a recent lead puts them. */
export function guessed(snapshot: LimiterSnapshot | undefined, lead: Lead | undefined, now: number) {
  if (!snapshot || !lead || now - lead.at > LEAD_MEMORY_MICROS) return snapshot;
  const ahead = (known: number | undefined, by: number | undefined) =>
    by === undefined ? known : Math.max(known ?? 0, now + by);
  return {
    ...snapshot,
    requestTat: ahead(snapshot.requestTat, lead.requests),
    tokenTat: ahead(snapshot.tokenTat, lead.tokens),
  };
}

/**
 * The lead a refused write shows (the item as it is, at `now`, for a charge floored at `floor`):
 * the TATs found beyond the floor, which only other writers put there; undefined when none was.
 */
export function leadSeen(actual: LimiterSnapshot, now: number, floor: number): Lead | undefined {
  const beyond = (tat: number | undefined) => (tat !== undefined && tat > floor ? tat - now : undefined);
  const lead = { requests: beyond(actual.requestTat), tokens: beyond(actual.tokenTat), at: now };
  return lead.requests === undefined && lead.tokens === undefined ? undefined : lead;
}

/** A lead kept up after an admitted write: where this write left the TATs, ahead of now. */
export function leadAfter(after: LimiterSnapshot, now: number): Lead {
  const ahead = (tat: number | undefined) => (tat !== undefined && tat > now ? tat - now : undefined);
  return { requests: ahead(after.requestTat), tokens: ahead(after.tokenTat), at: now };
}
