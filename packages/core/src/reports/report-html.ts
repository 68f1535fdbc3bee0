/**
 * A report as one self-contained HTML page for people: a summary, charts drawn as inline SVG, the
 * per-tenant table and the flags. No script and no network (its Content-Security-Policy forbids both);
 * every string from the data is HTML-escaped, tenant names being user input.
 */
import { REFUSAL_REASONS } from "../usage-ledger";
import type { Report, TenantReport } from "./build-report";
import { latencySection, percentiles, reconciliationSection } from "./report-html-metrics";
import { periodsOf } from "./report-query";
import {
  escapeHtml,
  type LegendEntry,
  legend,
  type Segment,
  stackedBars,
  stackedColumns,
} from "./svg-charts";

const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444", "#0891b2", "#db2777", "#65a30d"];
const OTHERS = "#9ca3af";
const IDLE = "#d1d5db";
/** Tenants named in the cost chart; the rest are one "other tenants" segment. */
const NAMED_TENANTS = PALETTE.length - 1;

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const count = (n: number) => integer.format(n);
const usd = (amount: number) =>
  `$${amount.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
/** Dollars with the report's micro-dollar precision, for a tooltip. */
const exactUsd = (amount: number) => `$${amount.toFixed(6)}`;
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

const colorOf = (names: readonly string[]) =>
  new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length] as string]));

function tokensChart(report: Report): string {
  const models = [...new Set(report.tenants.flatMap((t) => t.rows.map((r) => r.model)))].sort();
  const colors = colorOf(models);
  const tokens = new Map<string, number>();
  for (const row of report.tenants.flatMap((t) => t.rows)) {
    const key = `${row.period} ${row.model}`;
    tokens.set(key, (tokens.get(key) ?? 0) + row.tokens);
  }
  if ([...tokens.values()].every((n) => n === 0)) return empty("No tokens were charged in this period.");
  const columns = periodsOf(report).map((period) => ({
    category: period,
    segments: models.map((model) => ({
      label: model,
      value: tokens.get(`${period} ${model}`) ?? 0,
      color: colors.get(model) as string,
    })),
  }));
  // Days read as MM-DD, hours as MM-DD HH:00.
  const label = (p: string) => (p.length > 10 ? `${p.slice(5, 10)} ${p.slice(11)}:00` : p.slice(5));
  return (
    stackedColumns("tokens", columns, (n) => compact.format(n), label) +
    legend(models.map((m) => ({ label: m, color: colors.get(m) as string })))
  );
}

function refusalsChart(report: Report): string {
  const total = (reason: string) =>
    report.tenants.reduce((sum, t) => sum + (t.totals.refused[reason] ?? 0), 0);
  const bars = REFUSAL_REASONS.map((reason) => ({
    label: reason.replace("_", " "),
    segments: [{ label: "refused", value: total(reason), color: PALETTE[4] as string }],
  }));
  if (bars.every((b) => b.segments[0]?.value === 0)) return empty("No calls were refused in this period.");
  return stackedBars("refusals", bars, count);
}

function costChart(report: Report): string {
  const ranked = [...report.tenants].sort((a, b) => b.totals.costUsd - a.totals.costUsd);
  const named = ranked.slice(0, NAMED_TENANTS).filter((t) => t.totals.costUsd > 0);
  const colors = colorOf(named.map((t) => t.tenantId));
  const colorFor = (tenantId: string | null) => (tenantId && colors.get(tenantId)) || OTHERS;
  const nameOf = (tenantId: string | null) => {
    const t = named.find((n) => n.tenantId === tenantId);
    return t ? t.name : "other tenants";
  };
  const bars = report.endpoints.map((e) => {
    const segments: Segment[] = [];
    const add = (tenantId: string | null, value: number) => {
      const label = nameOf(tenantId);
      const same = segments.find((s) => s.label === label);
      if (same) same.value += value;
      else segments.push({ label, value, color: colorFor(tenantId) });
    };
    if (e.kind === "dedicated") add(e.tenantId, e.costUsd);
    else {
      // Its tenants pay on their rows of its model: the stage config allows one shared endpoint per model.
      for (const t of report.tenants) {
        add(
          t.tenantId,
          t.rows.filter((r) => r.model === e.model).reduce((s, r) => s + r.sharedCostUsd, 0),
        );
      }
      segments.push({ label: "idle", value: e.idleUsd, color: IDLE });
    }
    return { label: `${e.endpointName}${e.kind === "dedicated" ? " (dedicated)" : ""}`, segments };
  });
  if (report.totals.costUsd === 0)
    return empty("No endpoint cost in this period (unpriced endpoints read 0).");
  const entries: LegendEntry[] = [
    ...named.map((t) => ({ label: t.name, color: colorFor(t.tenantId) })),
    ...(ranked.slice(named.length).some((t) => t.totals.costUsd > 0)
      ? [{ label: "other tenants", color: OTHERS }]
      : []),
    { label: "idle (no tenant's bill)", color: IDLE },
  ];
  return stackedBars("cost", bars, usd) + legend(entries);
}

const empty = (text: string) => `<p class="empty">${escapeHtml(text)}</p>`;

const cell = (text: string, title?: string) =>
  `<td${title ? ` title="${escapeHtml(title)}"` : ""}>${escapeHtml(text)}</td>`;

function tenantRow(t: TenantReport): string {
  const { totals, budget, reconciliation: rec } = t;
  const refused = Object.values(totals.refused).reduce((sum, n) => sum + n, 0);
  const reasons = Object.entries(totals.refused).map(([reason, n]) => `${reason}: ${n}`);
  const usedPercent = budget.monthlyTokens
    ? ` (${((budget.usedTokens / budget.monthlyTokens) * 100).toFixed(1)}%)`
    : "";
  const over = budget.projectedPercent !== null && budget.projectedPercent > 100;
  return [
    `<tr data-tenant="${escapeHtml(t.tenantId)}">`,
    `<th scope="row">${escapeHtml(t.name)}<small>${escapeHtml(t.tenantId)} · ${escapeHtml(t.tier)}${t.status === "active" ? "" : ` · ${escapeHtml(t.status)}`}</small></th>`,
    cell(count(totals.requests)),
    cell(count(totals.inputTokens)),
    cell(count(totals.outputTokens)),
    cell(count(totals.tokens)),
    cell(count(totals.errors)),
    cell(count(refused), reasons.join(", ") || undefined),
    cell(
      `${count(budget.usedTokens)} / ${budget.monthlyTokens === null ? "no budget" : count(budget.monthlyTokens)}${usedPercent}`,
    ),
    `<td class="${over ? "warn" : ""}">${escapeHtml(`${count(budget.projectedTokens)}${budget.projectedPercent === null ? "" : ` (${budget.projectedPercent}%)`}`)}</td>`,
    cell(
      usd(totals.costUsd),
      `shared ${exactUsd(totals.sharedCostUsd)}, dedicated ${exactUsd(totals.dedicatedCostUsd)}`,
    ),
    cell(percentiles(t.latency?.model)),
    cell(percentiles(t.latency?.atrium)),
    `<td class="${rec.status === "match" ? "ok" : "warn"}">${escapeHtml(rec.status === "match" ? "match" : `${rec.status.replace(/_/g, " ")} (${rec.difference})`)}</td>`,
    "</tr>",
  ].join("");
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f3f4f6;margin:0;padding:24px}
main{max-width:1180px;margin:0 auto}
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:0 0 12px;color:#374151}h3{font-size:13px;margin:12px 0 4px}h3 small{color:#6b7280;font-weight:400}
.sub{color:#6b7280;margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:16px}
.card,section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:14px 16px}
.card b{display:block;font-size:20px;font-variant-numeric:tabular-nums}.card span{color:#6b7280;font-size:12px}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px;margin:16px 0}section{margin-bottom:16px}
.grid section{margin:0}
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#374151}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 7px;border-bottom:1px solid #f3f4f6;text-align:right;white-space:nowrap}
th[scope=row],thead th:first-child{text-align:left;white-space:normal}thead th{font-size:12px;color:#6b7280;font-weight:600;white-space:normal;vertical-align:bottom}
th[scope=row]{min-width:150px}
th small{display:block;color:#6b7280;font-weight:400;font-size:11px}
.ok{color:#047857}.warn{color:#b91c1c;font-weight:600}.empty{color:#6b7280}
.flags li{color:#b91c1c}.note{color:#6b7280;font-size:12px}
@media (max-width:800px){.grid{grid-template-columns:1fr}}
`;

export function reportHtml(report: Report): string {
  const t = report.tenants;
  const sum = (pick: (x: TenantReport) => number) => t.reduce((s, x) => s + pick(x), 0);
  const card = (value: string, label: string, title?: string) =>
    `<div class="card"${title ? ` title="${escapeHtml(title)}"` : ""}><b>${escapeHtml(value)}</b><span>${escapeHtml(label)}</span></div>`;
  const scope = report.tenantId === null ? "all tenants" : `tenant ${report.tenantId}`;
  const title = `Atrium report ${report.from} to ${report.to}`;
  const heads = [
    "Tenant",
    "Calls",
    "Input tokens",
    "Output tokens",
    "Charged tokens",
    "Errors",
    "Refused",
    "Budget used (month)",
    "Projected month end",
    "Cost",
    "Model p50 / p99",
    "Atrium p50 / p99",
    "Ledger vs limiter",
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${CSS}</style></head>
<body><main>
<h1>${escapeHtml(title)}</h1>
<p class="sub">${escapeHtml(`By ${report.period}, ${scope}, made ${report.generatedAt.slice(0, 16).replace("T", " ")} UTC. Amounts in ${report.currency}; an output token weighs ${report.outputTokenWeight} on shared endpoints.`)}</p>
<div class="cards">
${card(count(t.length), "tenants")}${card(count(sum((x) => x.totals.requests)), "calls")}${card(count(sum((x) => x.totals.tokens)), "tokens charged")}${card(count(sum((x) => Object.values(x.totals.refused).reduce((s, n) => s + n, 0))), "calls refused")}${card(usd(report.totals.costUsd), "total cost", exactUsd(report.totals.costUsd))}${card(usd(report.totals.tenantsUsd), "billed to tenants", exactUsd(report.totals.tenantsUsd))}${card(usd(report.totals.idleUsd), "idle (shared, unused)", exactUsd(report.totals.idleUsd))}
</div>
<section><h2>Tokens charged per ${escapeHtml(report.period)}, by model</h2>${tokensChart(report)}</section>
<div class="grid">
<section><h2>Refused calls by reason</h2>${refusalsChart(report)}</section>
<section><h2>Endpoint cost: who pays, and idle</h2>${costChart(report)}</section>
</div>
<section><h2>Latency per ${escapeHtml(report.period)}: the model's and Atrium's (CloudWatch)</h2>${latencySection(report)}</section>
<section><h2>Tenants</h2><table><thead><tr>${heads.map((h) => `<th>${h}</th>`).join("")}</tr></thead>
<tbody>${t.map(tenantRow).join("\n") || `<tr><td colspan="${heads.length}" class="empty">No tenants.</td></tr>`}</tbody></table></section>
<section><h2>Ledger vs CloudWatch</h2>${reconciliationSection(report)}</section>
<section><h2>Flags</h2>${report.flags.length === 0 ? empty("None: every tenant's ledger matches its limiter (and CloudWatch, where read), and every endpoint is priced.") : `<ul class="flags">${report.flags.map((f) => `<li>${escapeHtml(f)}</li>`).join("")}</ul>`}
<p class="note">Definitions: docs/reports.md.</p></section>
</main></body></html>
`;
}
