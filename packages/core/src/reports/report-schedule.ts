/**
 * What a scheduled run reports: the daily run the UTC day before it, the monthly run the UTC month
 * before it; and where in the reports bucket each of its files goes.
 */
import type { ReportQuery } from "./report-query";

/** The scheduled function's environment: where it writes reports and publishes budget alerts. */
export const REPORTS_BUCKET_ENV = "ATRIUM_REPORTS_BUCKET";
/** The bucket's KMS key, named on every put: `aws:kms` without a key id would mean the account's aws/s3 key. */
export const REPORTS_KEY_ENV = "ATRIUM_REPORTS_KEY";
export const BUDGET_ALERTS_TOPIC_ENV = "ATRIUM_BUDGET_ALERTS_TOPIC";

export type ScheduledKind = "daily" | "monthly";
export const SCHEDULED_KINDS: readonly ScheduledKind[] = ["daily", "monthly"];

/** The files a run writes, by extension, with their content types. */
export const REPORT_FORMATS = {
  json: "application/json",
  csv: "text/csv; charset=utf-8",
  html: "text/html; charset=utf-8",
} as const;
export type ReportFormat = keyof typeof REPORT_FORMATS;

export interface ScheduledReport {
  kind: ScheduledKind;
  /** The period reported: YYYY-MM-DD for a daily run, YYYY-MM for a monthly one. */
  label: string;
  query: ReportQuery;
}

const isoDay = (epochMs: number) => new Date(epochMs).toISOString().slice(0, 10);

/** The period the run scheduled at `at` (epoch ms) reports: always a whole, finished one. */
export function scheduledReportOf(kind: ScheduledKind, at: number): ScheduledReport {
  const now = new Date(at);
  const [year, month, date] = [now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()];
  if (kind === "daily") {
    const day = isoDay(Date.UTC(year, month, date - 1));
    return { kind, label: day, query: { from: day, to: day, period: "day" } };
  }
  const from = isoDay(Date.UTC(year, month - 1, 1));
  // Day 0 of this month is the last day of the one before.
  const to = isoDay(Date.UTC(year, month, 0));
  return { kind, label: from.slice(0, 7), query: { from, to, period: "day" } };
}

/** `daily/2026-11-29/report.json`, `monthly/2026-11/report.csv`: the bucket's only prefixes are the kinds. */
export function reportObjectKey(run: Pick<ScheduledReport, "kind" | "label">, format: ReportFormat): string {
  return `${run.kind}/${run.label}/report.${format}`;
}
