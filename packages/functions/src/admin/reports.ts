import { loadReport } from "@atrium/core/reports/load-report";
import { parseReportQuery } from "@atrium/core/reports/report-query";
import { LimiterTable, UsageTable } from "@atrium/core/tables";
import { adminTable } from "../lib/admin";
import { config, documentClient, requireEnv } from "../lib/clients";
import { json } from "../lib/http";
import { adminApi } from "../lib/middleware";

const usageTable = requireEnv(UsageTable.env);
const limiterTable = requireEnv(LimiterTable.env);

/**
 * GET /admin/reports?from=&to=[&period=day|hour][&tenant=]: the JSON report (docs/reports.md) from the
 * usage ledger and the limiter, for one tenant or all.
 */
export const handler = adminApi(async (event) => {
  const query = parseReportQuery(event.queryStringParameters ?? {});
  const sources = { tenants: adminTable, db: documentClient, usageTable, limiterTable, config };
  return json(200, await loadReport(sources, query));
});
