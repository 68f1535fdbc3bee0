/**
 * The ledger and CloudWatch side by side, per tenant over the report's range: each pair counts the
 * same thing both ways (docs/reports.md), and every difference gets a status and a reason a person
 * can act on. The ledger is the bill; EMF is delivered at least once, so CloudWatch is the check.
 */
import type { LedgerEntry } from "../usage-ledger";
import { hourOf } from "../usage-ledger";
import type { LatencyFigures, MetricCounts, PeriodLatency, TenantMetricFigures } from "./metric-figures";
import type { UsageFigures } from "./tenant-usage";

export type MetricPairName = "requests" | "promptTokens" | "completionTokens" | "refusals" | "errors";

export type MetricReconciliationStatus =
  /** Both count the same. */
  | "match"
  /** Calls were in flight when the report was made: neither side has them all yet. */
  | "calls_in_flight"
  /** The ledger has more, and the tenant's last calls are minutes old: CloudWatch shows them later. */
  | "awaiting_metrics"
  /** CloudWatch counts more: a duplicated EMF document, or a ledger write lost or not made yet. */
  | "cloudwatch_more"
  /** The ledger counts more: metrics a function never flushed, or older than CloudWatch keeps. */
  | "ledger_more";

export interface MetricPair {
  name: MetricPairName;
  /** The ledger's counter and the CloudWatch metric compared (docs/reports.md). */
  ledgerCounter: string;
  metric: string;
  ledger: number;
  cloudwatch: number;
  /** cloudwatch - ledger. */
  difference: number;
  status: MetricReconciliationStatus;
  /** Why they may differ and what to do; null for a match. */
  reason: string | null;
}

/** CloudWatch shows a metric a few minutes after its EMF line is written. */
export const INGESTION_LAG_MS = 5 * 60_000;

const PAIRS: {
  name: MetricPairName;
  ledgerCounter: string;
  metric: string;
  ledger: (t: UsageFigures) => number;
  cloudwatch: (c: MetricCounts) => number;
}[] = [
  {
    name: "requests",
    ledgerCounter: "requests",
    metric: "ModelLatency (SampleCount)",
    ledger: (t) => t.requests,
    cloudwatch: (c) => c.modelCalls,
  },
  {
    name: "promptTokens",
    ledgerCounter: "inputTokens",
    metric: "PromptTokens (Sum)",
    ledger: (t) => t.inputTokens,
    cloudwatch: (c) => c.promptTokens,
  },
  {
    name: "completionTokens",
    ledgerCounter: "outputTokens",
    metric: "CompletionTokens (Sum)",
    ledger: (t) => t.outputTokens,
    cloudwatch: (c) => c.completionTokens,
  },
  {
    name: "refusals",
    ledgerCounter: "refused (every reason)",
    metric: "RateLimited (Sum)",
    ledger: (t) => Object.values(t.refused).reduce((sum, n) => sum + n, 0),
    cloudwatch: (c) => c.rateLimited,
  },
  {
    name: "errors",
    ledgerCounter: "errors",
    metric: "CallErrors (Sum)",
    ledger: (t) => t.errors,
    cloudwatch: (c) => c.callErrors,
  },
];

const DUPLICATE = "EMF is delivered at least once, so CloudWatch may count a call twice";
const REASONS: Record<Exclude<MetricReconciliationStatus, "match">, (pair: MetricPairName) => string> = {
  calls_in_flight: () =>
    "Calls were in flight: the ledger counts a call when it settles, CloudWatch when its metrics are sent. Run the report again once they have ended.",
  awaiting_metrics: () =>
    "The tenant's last calls are minutes old and CloudWatch shows metrics a few minutes late. Run the report again in a few minutes; if the difference stays, see ledger_more.",
  cloudwatch_more: (pair) =>
    pair === "refusals"
      ? `Refusals reach the ledger with the tenant's next call from the same container, or 10 s later at its next refusal (ADR 0010); those still waiting, or lost with a recycled container, are not in it. Or ${DUPLICATE}.`
      : pair === "promptTokens" || pair === "completionTokens"
        ? `A ledger write was lost (LedgerWriteFailed; it is never retried, ADR 0010), or a reply reported more tokens than were reserved (UsageAboveReservation: charged the reservation, no split in the ledger), or ${DUPLICATE}. The ledger is the bill.`
        : `A ledger write was lost (LedgerWriteFailed; it is never retried, ADR 0010), or ${DUPLICATE}. The ledger is the bill: check LedgerWriteFailed and the logs for this tenant's calls.`,
  ledger_more: () =>
    "CloudWatch is missing metrics: a function stopped (timeout, crash) before it flushed them, or metrics were disabled. The ledger is the bill; check the functions' errors and timeouts in that range.",
};

export interface MetricReconcileContext {
  /** The tenant's ledger over the report's range, for the time of its last calls. */
  usage: readonly LedgerEntry[];
  callsInFlight: number;
  asOf: number;
  /** The report's range includes the day of `asOf`. */
  includesToday: boolean;
}

export function reconcileWithMetrics(
  ledger: UsageFigures,
  counts: MetricCounts,
  context: MetricReconcileContext,
): MetricPair[] {
  // The ledger is hourly: calls in the hour of (asOf - lag) or after may not have reached CloudWatch.
  const recentHour = hourOf(context.asOf - INGESTION_LAG_MS);
  const recent = context.includesToday && context.usage.some((entry) => entry.hour >= recentHour);
  return PAIRS.map((pair) => {
    const [l, c] = [pair.ledger(ledger), pair.cloudwatch(counts)];
    const difference = c - l;
    const status: MetricReconciliationStatus =
      difference === 0
        ? "match"
        : context.includesToday && context.callsInFlight > 0
          ? "calls_in_flight"
          : difference < 0 && recent
            ? "awaiting_metrics"
            : difference > 0
              ? "cloudwatch_more"
              : "ledger_more";
    return {
      name: pair.name,
      ledgerCounter: pair.ledgerCounter,
      metric: pair.metric,
      ledger: l,
      cloudwatch: c,
      difference,
      status,
      reason: status === "match" ? null : REASONS[status](pair.name),
    };
  });
}

/** One flag per pair that differs, for the report's flags. */
export function metricFlags(tenantId: string, pairs: readonly MetricPair[]): string[] {
  return pairs
    .filter((pair) => pair.status !== "match")
    .map(
      (pair) =>
        `tenant ${tenantId}: ${pair.name}: ledger ${pair.ledgerCounter} ${pair.ledger}, CloudWatch ${pair.metric} ${pair.cloudwatch} (${pair.status})`,
    );
}

/** A tenant's CloudWatch figures in its report: null, never zeros, when CloudWatch was not read. */
export interface TenantMetrics {
  /** p50/p99 in ms over the range and per period. */
  latency: (LatencyFigures & { periods: PeriodLatency[] }) | null;
  /** CloudWatch's per-tenant counters, and each pair against the ledger. */
  cloudwatch: { counts: MetricCounts; reconciliation: MetricPair[] } | null;
}

export function tenantMetrics(
  figures: TenantMetricFigures | undefined,
  ledger: UsageFigures,
  context: MetricReconcileContext,
): TenantMetrics {
  if (!figures) return { latency: null, cloudwatch: null };
  return {
    latency: { ...figures.latency, periods: figures.periods },
    cloudwatch: {
      counts: figures.counts,
      reconciliation: reconcileWithMetrics(ledger, figures.counts, context),
    },
  };
}
