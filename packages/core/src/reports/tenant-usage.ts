/**
 * A tenant's ledger entries as a report's rows: counters summed per period and model, named as
 * reports name them, and the weighted tokens its shared-routed calls put on a shared endpoint.
 */
import { addCounters, type LedgerCounters, type LedgerEntry, refusalsOf } from "../usage-ledger";
import { type Period, periodOf } from "./report-query";

/** What calls did, as a report shows it. */
export interface UsageFigures {
  requests: number;
  /** What was charged: input plus output, or a raw call's whole charge where its split is unknown. */
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  /** Admitted calls that failed and were refunded. */
  errors: number;
  sharedCalls: number;
  dedicatedCalls: number;
  /** Refused calls by the limiter's reason (monthly_budget, ...); never charged. */
  refused: Record<string, number>;
}

export interface UsageRow {
  period: string;
  model: string;
  counters: LedgerCounters;
}

/** Entries summed per period and model, in period then model order. */
export function usageRows(entries: readonly LedgerEntry[], period: Period): UsageRow[] {
  const rows = new Map<string, UsageRow>();
  for (const entry of entries) {
    const at = periodOf(entry.hour, period);
    const key = `${at} ${entry.model}`;
    const row = rows.get(key) ?? { period: at, model: entry.model, counters: {} };
    addCounters(row.counters, entry.counters);
    rows.set(key, row);
  }
  return [...rows.values()].sort((a, b) => compare(a.period, b.period) || compare(a.model, b.model));
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export function figuresOf(counters: LedgerCounters): UsageFigures {
  const count = (name: string) => counters[name] ?? 0;
  return {
    requests: count("requests"),
    tokens: count("tokens"),
    inputTokens: count("promptTokens"),
    outputTokens: count("completionTokens"),
    errors: count("errors"),
    sharedCalls: count("sharedCalls"),
    dedicatedCalls: count("dedicatedCalls"),
    refused: refusalsOf(counters),
  };
}

/**
 * What a row weighs on its model's shared endpoint: charged tokens with each output token counted
 * `outputWeight` times. Where an item mixes routes (a bridge tenant's calls to a model it has a
 * dedicated endpoint for), the shared part is apportioned by calls, as the ledger splits no tokens by route.
 */
export function sharedWeight(counters: LedgerCounters, outputWeight: number): number {
  const shared = counters.sharedCalls ?? 0;
  const calls = shared + (counters.dedicatedCalls ?? 0);
  if (shared === 0) return 0;
  const weighted = (counters.tokens ?? 0) + (outputWeight - 1) * (counters.completionTokens ?? 0);
  return Math.round((weighted * shared) / calls);
}
