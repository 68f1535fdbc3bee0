/**
 * The scheduled run (docs/reports.md): the report of the period just finished, written to the
 * reports bucket as JSON, CSV and HTML; after a daily run, the budget alerts. The bucket and the topic
 * are ports, so the run is the same code against S3 and SNS or against a test's recorders.
 */
import { type BudgetAlert, budgetAlertsOf } from "./budget-alerts";
import { loadReport, type ReportSources } from "./load-report";
import { reportCsv } from "./report-csv";
import { reportHtml } from "./report-html";
import {
  REPORT_FORMATS,
  type ReportFormat,
  reportObjectKey,
  type ScheduledKind,
  scheduledReportOf,
} from "./report-schedule";

/** Where report files go (S3 in a stage): one object per key. */
export interface ReportStore {
  put(object: { key: string; body: string; contentType: string }): Promise<void>;
}

/** Where budget alerts go (SNS in a stage). */
export interface AlertSink {
  publish(alert: BudgetAlert): Promise<void>;
}

export interface ScheduledRunResult {
  kind: ScheduledKind;
  label: string;
  keys: string[];
  alerts: BudgetAlert[];
}

const DAY_MS = 86_400_000;

/** `at`: when the run was scheduled (epoch ms); the daily runs are a day apart. */
export async function publishScheduledReport(
  ports: { sources: ReportSources; store: ReportStore; alerts: AlertSink },
  kind: ScheduledKind,
  at: number,
): Promise<ScheduledRunResult> {
  const run = scheduledReportOf(kind, at);
  const report = await loadReport(ports.sources, run.query, at);
  const bodies: Record<ReportFormat, string> = {
    json: JSON.stringify(report),
    csv: reportCsv(report),
    html: reportHtml(report),
  };
  const keys: string[] = [];
  for (const format of Object.keys(REPORT_FORMATS) as ReportFormat[]) {
    const key = reportObjectKey(run, format);
    await ports.store.put({ key, body: bodies[format], contentType: REPORT_FORMATS[format] });
    keys.push(key);
  }
  // Written first: a failed publish is retried by the schedule's retry without losing the report.
  const alerts = kind === "daily" ? await budgetAlertsOf(report, ports.sources, at - DAY_MS) : [];
  for (const alert of alerts) await ports.alerts.publish(alert);
  return { kind, label: run.label, keys, alerts };
}
