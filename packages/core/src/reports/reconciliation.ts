/**
 * Reconciliation v1: the ledger's charged tokens for the month against the limiter's month total,
 * per tenant. The limiter's is exact (ADR 0004); a ledger write can be lost (ADR 0010), so any
 * difference is flagged.
 */
import type { LedgerEntry } from "../usage-ledger";
import type { LimiterMonth } from "./budget";

export type ReconciliationStatus =
  /** Both say the same. */
  | "match"
  /** Calls were in flight: the limiter counts their reservations, the ledger not yet; run it again. */
  | "calls_in_flight"
  /** The sources disagree with nothing in flight: a lost ledger write, or an unexplained charge. */
  | "mismatch";

export interface Reconciliation {
  month: string;
  ledgerTokens: number;
  limiterTokens: number;
  /** limiterTokens - ledgerTokens: positive when the ledger is missing charged tokens. */
  difference: number;
  callsInFlight: number;
  status: ReconciliationStatus;
}

/** `monthEntries`: the tenant's ledger entries of the limiter's month (others are ignored). */
export function reconcile(monthEntries: readonly LedgerEntry[], limiter: LimiterMonth): Reconciliation {
  const ledgerTokens = monthEntries
    .filter((entry) => entry.hour.startsWith(limiter.month))
    .reduce((sum, entry) => sum + (entry.counters.tokens ?? 0), 0);
  const difference = limiter.usedTokens - ledgerTokens;
  const status: ReconciliationStatus =
    difference === 0 ? "match" : limiter.callsInFlight > 0 ? "calls_in_flight" : "mismatch";
  return {
    month: limiter.month,
    ledgerTokens,
    limiterTokens: limiter.usedTokens,
    difference,
    callsInFlight: limiter.callsInFlight,
    status,
  };
}
