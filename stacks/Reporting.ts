/**
 * What operators read Atrium by (issue 10, docs/metrics.md): the stage's dashboard (top tenants by
 * Metrics Insights, shared endpoints' utilisation), a Contributor Insights rule for the top talkers
 * on the API's access log, the bucket reports are written to, and the topic budget alerts go to.
 */
import { STAGE_CONFIG_ENV } from "@atrium/core/config";
import { TENANT_DIRECTORY } from "@atrium/core/profiles";
import {
  BUDGET_ALERTS_TOPIC_ENV,
  REPORTS_BUCKET_ENV,
  REPORTS_KEY_ENV,
  SCHEDULED_KINDS,
  type ScheduledKind,
} from "@atrium/core/reports/report-schedule";
import { LimiterTable, TenantTable, UsageTable } from "@atrium/core/tables";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import {
  CfnInsightRule,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TextWidget,
} from "aws-cdk-lib/aws-cloudwatch";
import { EventField, RuleTargetInput } from "aws-cdk-lib/aws-events";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { Key } from "aws-cdk-lib/aws-kms";
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type CfnBucket,
  StorageClass,
} from "aws-cdk-lib/aws-s3";
import { Topic } from "aws-cdk-lib/aws-sns";
import { NagSuppressions } from "cdk-nag";
import { Cron, Function as Fn, type StackContext, use } from "sst/constructs";
import { Api, leadingKeys, tenantUsageReads } from "./Api";
import { loadStageConfig, runtimeConfig } from "./config";
import { Data } from "./Data";
import { Inference } from "./Inference";
import { suppressPlatformFindings } from "./nag";

/** The top ten tenants by a per-tenant metric (docs/metrics.md), summed per hour. */
const topTenants = (metric: string) =>
  new MathExpression({
    expression: `SELECT SUM(${metric}) FROM SCHEMA(Atrium, service, tenantId) GROUP BY tenantId ORDER BY SUM() DESC LIMIT 10`,
    label: metric,
    period: Duration.hours(1),
    usingMetrics: {},
  });

/** When each run starts (UTC): the day before at 01:00, the month before on the 1st at 02:00. */
export const reportSchedules: Record<ScheduledKind, `cron(${string})`> = {
  daily: "cron(0 1 * * ? *)",
  monthly: "cron(0 2 1 * ? *)",
};

export const scheduledReportsHandler = "packages/functions/src/scheduled-reports.handler";

export function Reporting({ stack, app }: StackContext) {
  const config = loadStageConfig(app.stage);
  const { api } = use(Api);
  const { tenants, limiter, usage } = use(Data);
  const { endpoints } = use(Inference);
  suppressPlatformFindings(stack);
  const removalPolicy = config.protect ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

  // Reports name tenants and what they spent: a customer-managed key, so access is granted explicitly.
  const key = new Key(stack, "ReportsKey", { enableKeyRotation: true, removalPolicy });
  const reports = new Bucket(stack, "Reports", {
    encryption: BucketEncryption.KMS,
    encryptionKey: key,
    bucketKeyEnabled: true,
    blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    lifecycleRules: [
      {
        transitions: [{ storageClass: StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(30) }],
        // As long as the ledger keeps the days they were made from.
        expiration: Duration.days(config.usageRetentionDays),
      },
    ],
    removalPolicy,
    autoDeleteObjects: !config.protect,
  });
  NagSuppressions.addResourceSuppressions(reports, [
    {
      id: "AwsSolutions-S1",
      reason:
        "Reports are written by Atrium's own scheduled function and read by operators through IAM; CloudTrail data events, not server access logs, are where their reads are audited.",
    },
  ]);
  const budgetAlerts = new Topic(stack, "BudgetAlerts", { masterKey: key, enforceSSL: true });

  // The report's reads, as GET /admin/reports has them (stacks/Api.ts), and nothing else of the tables.
  const scheduledReports = new Fn(stack, "ScheduledReports", {
    handler: scheduledReportsHandler,
    // A report over every tenant: one Query and a few GetItems per tenant (docs/reports.md).
    timeout: "5 minutes",
    environment: {
      [TenantTable.env]: tenants.tableName,
      [LimiterTable.env]: limiter.tableName,
      [UsageTable.env]: usage.tableName,
      [STAGE_CONFIG_ENV]: JSON.stringify(runtimeConfig(config)),
      [REPORTS_BUCKET_ENV]: reports.bucketName,
      [REPORTS_KEY_ENV]: key.keyArn,
      [BUDGET_ALERTS_TOPIC_ENV]: budgetAlerts.topicArn,
      POWERTOOLS_SERVICE_NAME: "atrium",
      POWERTOOLS_METRICS_NAMESPACE: "Atrium",
    },
    permissions: [
      new PolicyStatement({
        actions: ["dynamodb:Query"],
        resources: [`${tenants.tableArn}/index/byTenant`],
        conditions: leadingKeys(TENANT_DIRECTORY),
      }),
      ...tenantUsageReads(usage.tableArn, limiter.tableArn),
      new PolicyStatement({
        actions: ["s3:PutObject"],
        resources: SCHEDULED_KINDS.map((kind) => reports.arnForObjects(`${kind}/*`)),
      }),
      new PolicyStatement({ actions: ["sns:Publish"], resources: [budgetAlerts.topicArn] }),
    ],
  });
  // S3 asks the key for a data key per object (SSE-KMS); SNS needs a data key and Decrypt to publish to an encrypted topic.
  key.grant(scheduledReports, "kms:GenerateDataKey", "kms:Decrypt");
  NagSuppressions.addResourceSuppressions(
    scheduledReports,
    [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "X-Ray's PutTraceSegments and PutTelemetryRecords (active tracing), and CloudWatch's GetMetricData (the report's latency and reconciliation), have no resource-level permissions or condition keys.",
        appliesTo: ["Resource::*"],
      },
      {
        id: "AwsSolutions-IAM5",
        reason:
          "Object ARNs under the bucket's two report prefixes (daily/*, monthly/*): the keys name dates not known at deploy time; nothing else in the bucket is writable.",
        appliesTo: SCHEDULED_KINDS.map(
          (kind) => `Resource::<${stack.getLogicalId(reports.node.defaultChild as CfnBucket)}.Arn>/${kind}/*`,
        ),
      },
    ],
    true,
  );
  for (const kind of SCHEDULED_KINDS) {
    new Cron(stack, `${kind === "daily" ? "Daily" : "Monthly"}Report`, {
      schedule: reportSchedules[kind],
      job: {
        function: scheduledReports,
        // The run is told its kind and the time it was scheduled for, so a retry reports the same period.
        cdk: { target: { event: RuleTargetInput.fromObject({ kind, time: EventField.time }) } },
      },
    });
  }

  // Top talkers from the access log, whose JSON lines carry the authorizer's tenantId (ADR 0002).
  const accessLogGroup = api.cdk.accessLogGroup?.logGroupName;
  if (accessLogGroup) {
    new CfnInsightRule(stack, "TopTalkers", {
      ruleName: `${app.stage}-atrium-top-talkers`,
      ruleState: "ENABLED",
      ruleBody: JSON.stringify({
        Schema: { Name: "CloudWatchLogRule", Version: 1 },
        LogGroupNames: [accessLogGroup],
        LogFormat: "JSON",
        Contribution: { Keys: ["$.tenantId"], Filters: [{ Match: "$.tenantId", IsPresent: true }] },
        AggregateOn: "Count",
      }),
    });
  }

  const shared = endpoints.filter((endpoint) => endpoint.kind === "shared");
  const utilisation = (name: string) =>
    shared.map(
      (endpoint) =>
        new Metric({
          namespace: "/aws/sagemaker/Endpoints",
          metricName: name,
          dimensionsMap: { EndpointName: endpoint.endpointName, VariantName: "AllTraffic" },
          statistic: "Average",
          period: Duration.minutes(5),
          label: endpoint.endpointName,
          region: endpoint.region,
        }),
    );
  new Dashboard(stack, "Dashboard", {
    dashboardName: `${app.stage}-atrium`,
    widgets: [
      [
        new TextWidget({
          markdown: `# Atrium ${app.stage}\nTop tenants per hour; per-tenant bills come from the usage ledger (docs/adr/0010).`,
          width: 24,
          height: 2,
        }),
      ],
      [
        new GraphWidget({
          title: "Top tenants by prompt tokens",
          left: [topTenants("PromptTokens")],
          width: 12,
        }),
        new GraphWidget({
          title: "Top tenants by completion tokens",
          left: [topTenants("CompletionTokens")],
          width: 12,
        }),
      ],
      [
        new GraphWidget({ title: "Top tenants by refusals", left: [topTenants("RateLimited")], width: 12 }),
        new GraphWidget({ title: "Top tenants by errors", left: [topTenants("CallErrors")], width: 12 }),
      ],
      [
        new GraphWidget({
          title: "Shared endpoints: GPU utilisation (%)",
          left: utilisation("GPUUtilization"),
          width: 12,
        }),
        new GraphWidget({
          title: "Shared endpoints: CPU utilisation (%)",
          left: utilisation("CPUUtilization"),
          width: 12,
        }),
      ],
    ],
  });

  stack.addOutputs({ ReportsBucket: reports.bucketName, BudgetAlertsTopicArn: budgetAlerts.topicArn });
  return { reports, budgetAlerts, key };
}
