import { loadReport } from "@atrium/core/reports/load-report";
import { cloudWatchClient } from "@atrium/core/reports/metric-figures";
import { parseReportQuery } from "@atrium/core/reports/report-query";
import { LimiterTable, UsageTable } from "@atrium/core/tables";
import { adminTable } from "../lib/admin";
import { config, documentClient, requireEnv } from "../lib/clients";
import { json } from "../lib/http";
import { adminApi } from "../lib/middleware";
import { tracer } from "../lib/observability";

const usageTable = requireEnv(UsageTable.env);
const limiterTable = requireEnv(LimiterTable.env);
const metrics = tracer.captureAWSv3Client(cloudWatchClient());

/**
 * GET /admin/reports?from=&to=[&period=day|hour][&tenant=]: the JSON report (docs/reports.md) from the
 * usage ledger, the limiter and CloudWatch, for one tenant or all.
 */
export const handler = adminApi(async (event) => {
  const query = parseReportQuery(event.queryStringParameters ?? {});
  const sources = { tenants: adminTable, db: documentClient, usageTable, limiterTable, config, metrics };
  return json(200, await loadReport(sources, query));
});
