import { CloudWatchMetrics } from "@atrium/core/cloudwatch";
import { budgetAlertMessage } from "@atrium/core/reports/budget-alerts";
import { publishScheduledReport } from "@atrium/core/reports/publish-reports";
import {
  BUDGET_ALERTS_TOPIC_ENV,
  REPORTS_BUCKET_ENV,
  REPORTS_KEY_ENV,
  SCHEDULED_KINDS,
  type ScheduledKind,
} from "@atrium/core/reports/report-schedule";
import { LimiterTable, UsageTable } from "@atrium/core/tables";
import { config, documentClient, requireEnv, tenantTable } from "./lib/clients";
import { logger } from "./lib/observability";
import { S3Bucket } from "./lib/s3";
import { SnsClient } from "./lib/sns";
import { cloudWatchTimeouts, s3Timeouts, snsTimeouts } from "./lib/timeouts";

const bucket = requireEnv(REPORTS_BUCKET_ENV);
const keyArn = requireEnv(REPORTS_KEY_ENV);
const topicArn = requireEnv(BUDGET_ALERTS_TOPIC_ENV);
const sources = {
  tenants: tenantTable,
  db: documentClient,
  usageTable: requireEnv(UsageTable.env),
  limiterTable: requireEnv(LimiterTable.env),
  config,
  metrics: new CloudWatchMetrics(cloudWatchTimeouts),
};
const reports = new S3Bucket(bucket, s3Timeouts);
const sns = new SnsClient(snsTimeouts);

/** What each schedule's target sends (stacks/Reporting.ts): which run, and the time it was scheduled for. */
export interface ScheduledReportEvent {
  kind: ScheduledKind;
  time: string;
}

/** The daily and monthly report runs (docs/reports.md): the use-case with S3 and SNS as its ports. */
export async function handler(event: ScheduledReportEvent) {
  if (!SCHEDULED_KINDS.includes(event.kind)) throw new Error(`Unknown scheduled report kind: ${event.kind}`);
  // The schedule's time, not the clock: a retried run reports the same period.
  const at = Date.parse(event.time);
  if (Number.isNaN(at)) throw new Error("The scheduled event has no time");
  const result = await publishScheduledReport(
    {
      sources,
      store: {
        put: async ({ key, body, contentType }) => {
          await reports.putObject({ key, body, contentType, kmsKeyId: keyArn });
        },
      },
      alerts: {
        publish: async (alert) => {
          const { subject, message } = budgetAlertMessage(alert);
          await sns.publish({ topicArn, subject, message });
        },
      },
    },
    event.kind,
    at,
  );
  // Ids and counts only: tenant names stay in the bucket and the topic.
  logger.info("scheduled report written", {
    kind: result.kind,
    period: result.label,
    keys: result.keys,
    alerts: result.alerts.map((a) => ({ tenantId: a.tenantId, threshold: a.threshold })),
  });
  return { keys: result.keys, alerts: result.alerts.length };
}
