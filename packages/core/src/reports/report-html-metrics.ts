/**
 * The HTML report's CloudWatch parts: latency p50/p99 per period (the model's and Atrium's) for the
 * busiest tenants, and the ledger against CloudWatch per tenant. Percentiles do not add up across
 * tenants, so latency is drawn per tenant, never averaged into one line.
 */
import type { Report, TenantReport } from "./build-report";
import type { Percentiles } from "./metric-figures";
import type { MetricPair } from "./metric-reconciliation";
import { periodsOf } from "./report-query";
import { escapeHtml, type Line, legend, lineChart } from "./svg-charts";

/** Tenants drawn in the latency section; the tenants table has every tenant's range figures. */
const CHARTED_TENANTS = 4;
const MODEL = "#2563eb";
const ATRIUM = "#f59e0b";

const ms = (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`;

/** "p50 / p99" in ms, or a dash when CloudWatch has no figure. */
export const percentiles = (p: Percentiles | undefined) =>
  p?.p50 == null || p.p99 == null ? "–" : `${ms(p.p50)} / ${ms(p.p99)}`;

const empty = (text: string) => `<p class="empty">${escapeHtml(text)}</p>`;

export function latencySection(report: Report): string {
  if (!report.cloudwatch.available) return empty(report.cloudwatch.note ?? "CloudWatch was not read.");
  const charted = report.tenants
    .filter((t) => t.latency?.model.p50 != null)
    .sort((a, b) => b.totals.requests - a.totals.requests || (a.tenantId < b.tenantId ? -1 : 1))
    .slice(0, CHARTED_TENANTS);
  if (charted.length === 0) return empty("No call reached a model in this period.");
  const periods = periodsOf(report);
  const label = (p: string) => (p.length > 10 ? `${p.slice(5, 10)} ${p.slice(11)}:00` : p.slice(5));
  const charts = charted.map((t) => {
    const byPeriod = new Map((t.latency?.periods ?? []).map((p) => [p.period, p]));
    const line = (part: "model" | "atrium", p: "p50" | "p99", name: string, color: string): Line => ({
      label: `${name} ${p}`,
      color,
      dashed: p === "p99",
      values: periods.map((period) => byPeriod.get(period)?.[part][p] ?? null),
    });
    const lines = [
      line("model", "p50", "model", MODEL),
      line("model", "p99", "model", MODEL),
      line("atrium", "p50", "Atrium", ATRIUM),
      line("atrium", "p99", "Atrium", ATRIUM),
    ];
    return `<h3>${escapeHtml(t.name)} <small>${escapeHtml(t.tenantId)} · model ${escapeHtml(percentiles(t.latency?.model))}, Atrium ${escapeHtml(percentiles(t.latency?.atrium))} over the range</small></h3>${lineChart(`latency-${t.tenantId}`, periods, lines, ms, label)}`;
  });
  const more = report.tenants.length > charted.length ? " The tenants table gives every tenant's." : "";
  return `${charts.join("")}${legend([
    { label: "model p50 (solid), p99 (dashed)", color: MODEL },
    { label: "Atrium p50 (solid), p99 (dashed)", color: ATRIUM },
  ])}<p class="note">${escapeHtml(`The ${charted.length === 1 ? "tenant" : `${charted.length} tenants`} with the most calls, per ${report.period}.${more}`)}</p>`;
}

const pairCell = (pair: MetricPair) =>
  `<td class="${pair.status === "match" ? "ok" : "warn"}"${pair.reason ? ` title="${escapeHtml(`${pair.status}: ${pair.reason}`)}"` : ""}>${escapeHtml(
    pair.status === "match" ? String(pair.ledger) : `${pair.ledger} / ${pair.cloudwatch}`,
  )}</td>`;

function reconciliationRow(t: TenantReport): string {
  const pairs = t.cloudwatch?.reconciliation ?? [];
  const differing = pairs.filter((p) => p.status !== "match");
  const status = differing.length === 0 ? "match" : [...new Set(differing.map((p) => p.status))].join(", ");
  return `<tr data-reconciled="${escapeHtml(t.tenantId)}"><th scope="row">${escapeHtml(t.name)}<small>${escapeHtml(t.tenantId)}</small></th>${pairs.map(pairCell).join("")}<td class="${differing.length === 0 ? "ok" : "warn"}">${escapeHtml(status.replace(/_/g, " "))}</td></tr>`;
}

export function reconciliationSection(report: Report): string {
  if (!report.cloudwatch.available) return empty(report.cloudwatch.note ?? "CloudWatch was not read.");
  const names = report.tenants[0]?.cloudwatch?.reconciliation ?? [];
  const heads = ["Tenant", ...names.map((p) => `${p.ledgerCounter} vs ${p.metric}`), "Status"];
  return `<table data-table="reconciliation"><thead><tr>${heads.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>${report.tenants.map(reconciliationRow).join("\n")}</tbody></table><p class="note">A cell reads the ledger's count when both agree, else ledger / CloudWatch; hover a differing cell for why it may differ. The ledger is the bill.</p>`;
}
