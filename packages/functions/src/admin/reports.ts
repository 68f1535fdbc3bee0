import { CloudWatchMetrics } from "@atrium/core/cloudwatch";
import { loadReport } from "@atrium/core/reports/load-report";
import { parseReportQuery } from "@atrium/core/reports/report-query";
import { LimiterTable, UsageTable } from "@atrium/core/tables";
import { adminTable } from "../lib/admin";
import { adminApi } from "../lib/admin-api";
import { config, documentClient, requireEnv } from "../lib/clients";
import { json } from "../lib/http";
import { cloudWatchTimeouts } from "../lib/timeouts";

const usageTable = requireEnv(UsageTable.env);
const limiterTable = requireEnv(LimiterTable.env);
/** CloudWatch where the function finds it: AWS_REGION's (AWS_ENDPOINT_URL_CLOUDWATCH under `npm start`). */
const metrics = new CloudWatchMetrics(cloudWatchTimeouts);

/**
 * GET /admin/reports?from=&to=[&period=day|hour][&tenant=]: the JSON report (docs/reports.md) from the
 * usage ledger, the limiter and CloudWatch, for one tenant or all.
 */
export const handler = adminApi(async (event) => {
  const query = parseReportQuery(event.queryStringParameters ?? {});
  const sources = { tenants: adminTable, db: documentClient, usageTable, limiterTable, config, metrics };
  return json(200, await loadReport(sources, query));
});
