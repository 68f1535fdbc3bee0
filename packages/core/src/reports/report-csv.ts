/**
 * A report as CSV for finance (RFC 4180: CRLF line ends, a field quoted when it holds a comma, a quote
 * or a line break, quotes doubled): one row per tenant, period and model with every counter and
 * cost, then one `idle` row per shared endpoint and period with capacity no tenant used.
 */
import { REFUSAL_REASONS } from "../usage-ledger";
import type { Report } from "./build-report";

const COLUMNS = [
  "line",
  "tenant_id",
  "tenant_name",
  "period",
  "model",
  "endpoint",
  "requests",
  "tokens",
  "input_tokens",
  "output_tokens",
  "errors",
  "shared_calls",
  "dedicated_calls",
  ...REFUSAL_REASONS.map((reason) => `refused_${reason}`),
  "shared_cost_usd",
  "dedicated_cost_usd",
  "cost_usd",
];

export function reportCsv(report: Report): string {
  const rows: (string | number)[][] = [COLUMNS];
  for (const tenant of report.tenants) {
    for (const row of tenant.rows) {
      rows.push([
        "tenant",
        tenant.tenantId,
        tenant.name,
        row.period,
        row.model,
        "",
        row.requests,
        row.tokens,
        row.inputTokens,
        row.outputTokens,
        row.errors,
        row.sharedCalls,
        row.dedicatedCalls,
        ...REFUSAL_REASONS.map((reason) => row.refused[reason] ?? 0),
        money(row.sharedCostUsd),
        money(row.dedicatedCostUsd),
        money(row.costUsd),
      ]);
    }
  }
  const zeros = Array.from({ length: 7 + REFUSAL_REASONS.length }, () => 0);
  for (const idle of report.idle) {
    rows.push([
      "idle",
      "",
      "",
      idle.period,
      idle.model,
      idle.endpointName,
      ...zeros,
      money(idle.costUsd),
      money(0),
      money(idle.costUsd),
    ]);
  }
  return rows.map((row) => `${row.map(field).join(",")}\r\n`).join("");
}

/** Dollars to the micro-dollar the report counts in. */
const money = (amount: number) => amount.toFixed(6);

function field(value: string | number): string {
  if (typeof value === "number") return String(value);
  // A spreadsheet runs a cell that starts with = + - @ as a formula: text is kept as text.
  const text = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}
