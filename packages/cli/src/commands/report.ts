import { writeFile } from "node:fs/promises";
import type { Report } from "@atrium/core/reports/build-report";
import type { Percentiles } from "@atrium/core/reports/metric-figures";
import { reportCsv } from "@atrium/core/reports/report-csv";
import { reportHtml } from "@atrium/core/reports/report-html";
import type { Command } from "../command";
import { CliError, callAdmin, resolveConnection } from "../connection";
import { table, time } from "../format";

const FORMATS = ["table", "json", "csv", "html"] as const;
type Format = (typeof FORMATS)[number];

const dollars = (amount: number) => `$${amount.toFixed(2)}`;
/** p50/p99 in whole ms, or a dash without CloudWatch's figure. */
const latency = (p: Percentiles | undefined) =>
  p?.p50 == null || p.p99 == null ? "-" : `${Math.round(p.p50)}/${Math.round(p.p99)}`;
/** The ledger against CloudWatch in one word per tenant: every difference is also a flag. */
const againstMetrics = (t: Report["tenants"][number]) => {
  if (!t.cloudwatch) return "-";
  const differing = t.cloudwatch.reconciliation.filter((p) => p.status !== "match");
  return differing.length === 0 ? "match" : differing.map((p) => `${p.name}:${p.status}`).join(",");
};
const refusals = (refused: Record<string, number>) =>
  Object.entries(refused)
    .map(([reason, n]) => `${reason}=${n}`)
    .join(",") || "-";

/** The report for a terminal: rows per tenant, period and model, then tenants, endpoints and flags. */
function reportTable(report: Report): string {
  const rows = report.tenants.flatMap((t) =>
    t.rows.map((r) => [
      t.tenantId,
      r.period,
      r.model,
      String(r.requests),
      String(r.tokens),
      String(r.inputTokens),
      String(r.outputTokens),
      String(r.errors),
      `${r.sharedCalls}/${r.dedicatedCalls}`,
      refusals(r.refused),
      dollars(r.costUsd),
    ]),
  );
  const tenants = report.tenants.map((t) => [
    t.tenantId,
    t.name,
    t.tier,
    String(t.totals.requests),
    String(t.totals.tokens),
    dollars(t.totals.costUsd),
    `${t.budget.usedTokens}/${t.budget.monthlyTokens ?? "-"}`,
    t.budget.projectedPercent === null ? "-" : `${t.budget.projectedPercent}%`,
    t.reconciliation.status === "match"
      ? "match"
      : `${t.reconciliation.status} (${t.reconciliation.difference})`,
    latency(t.latency?.model),
    latency(t.latency?.atrium),
    againstMetrics(t),
  ]);
  const endpoints = report.endpoints.map((e) => [
    e.endpointName,
    e.model,
    e.kind === "shared" ? "shared" : `dedicated:${e.tenantId}`,
    `${e.instanceCount} x ${e.instanceType ?? "?"}`,
    String(e.instanceHours),
    dollars(e.costUsd),
    dollars(e.tenantsUsd),
    dollars(e.idleUsd),
  ]);
  const { totals } = report;
  return [
    `Report ${report.from} to ${report.to} by ${report.period}, made ${time(report.generatedAt)} (${report.currency})`,
    "",
    table(
      [
        "TENANT",
        "PERIOD",
        "MODEL",
        "CALLS",
        "TOKENS",
        "IN",
        "OUT",
        "ERRORS",
        "SHARED/DED",
        "REFUSED",
        "COST",
      ],
      rows,
      "No usage in this period.",
    ),
    "",
    table(
      [
        "TENANT",
        "NAME",
        "TIER",
        "CALLS",
        "TOKENS",
        "COST",
        "MONTH USED/BUDGET",
        "PROJECTED",
        "LEDGER VS LIMITER",
        "MODEL P50/P99 MS",
        "ATRIUM P50/P99 MS",
        "LEDGER VS CLOUDWATCH",
      ],
      tenants,
      "No tenants.",
    ),
    "",
    table(
      ["ENDPOINT", "MODEL", "KIND", "INSTANCES", "HOURS", "COST", "TENANTS", "IDLE"],
      endpoints,
      "No endpoints.",
    ),
    "",
    `Total ${dollars(totals.costUsd)}: tenants ${dollars(totals.tenantsUsd)}, idle ${dollars(totals.idleUsd)}`,
    ...(report.cloudwatch.note ? [`Note: ${report.cloudwatch.note}`] : []),
    ...report.flags.map((flag) => `! ${flag}`),
  ].join("\n");
}

export const reportCommands: Record<string, Command> = {
  report: {
    summary:
      "usage and cost per tenant, period and model, from the usage ledger; latency and a check from CloudWatch",
    usage:
      "atrium report (--tenant TENANT_ID | --all) --from YYYY-MM-DD --to YYYY-MM-DD [--period day|hour] [--format table|json|csv|html] [--out FILE]",
    options: {
      tenant: { type: "string", description: "one tenant's report (shared endpoints still split with all)" },
      all: { type: "boolean", description: "every tenant" },
      from: { type: "string", description: "first UTC day, YYYY-MM-DD" },
      to: { type: "string", description: "last UTC day, YYYY-MM-DD (inclusive)" },
      period: { type: "string", description: "day (default) or hour" },
      format: {
        type: "string",
        description:
          "table (default), json (for scripts), csv (for finance) or html (one self-contained page)",
      },
      out: { type: "string", description: "write the report to FILE instead of printing it" },
    },
    async run(values, _positionals, env, io) {
      if ((values.tenant === undefined) === (values.all !== true)) {
        throw new CliError("give one of --tenant TENANT_ID or --all", 2);
      }
      for (const name of ["from", "to"]) {
        if (typeof values[name] !== "string") throw new CliError(`missing --${name}`, 2);
      }
      const format = (values.format ?? "table") as Format;
      if (!FORMATS.includes(format)) throw new CliError(`--format: one of ${FORMATS.join(", ")}`, 2);
      const query = new URLSearchParams({
        from: String(values.from),
        to: String(values.to),
        ...(values.period ? { period: String(values.period) } : {}),
        ...(values.tenant ? { tenant: String(values.tenant) } : {}),
      });
      const connection = await resolveConnection(env);
      const who = values.tenant ? `tenant ${values.tenant}` : "all tenants";
      io?.stderr(
        `atrium report: reading the ledger, limits and metrics of ${who}, ${values.from} to ${values.to}...\n`,
      );
      const report = await callAdmin<Report>(connection, "GET", `/admin/reports?${query}`);
      const text =
        format === "csv"
          ? reportCsv(report)
          : format === "html"
            ? reportHtml(report)
            : format === "json"
              ? `${JSON.stringify(report, null, 2)}\n`
              : `${reportTable(report)}\n`;
      if (typeof values.out === "string") {
        await writeFile(values.out, text).catch((err: Error) => {
          throw new CliError(`cannot write ${values.out}: ${err.message}`);
        });
        const size = `${report.tenants.length} tenant${report.tenants.length === 1 ? "" : "s"}`;
        return { json: report, human: `Wrote the ${format} report (${size}) to ${values.out}.` };
      }
      return { json: report, human: text, exact: true };
    },
  },
};
