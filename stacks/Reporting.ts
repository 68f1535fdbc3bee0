/**
 * What operators read Atrium by (issue 10, docs/metrics.md): the stage's dashboard (top tenants by
 * Metrics Insights, shared endpoints' utilisation), a Contributor Insights rule for the top talkers
 * on the API's access log, the bucket reports are written to, and the topic budget alerts go to.
 */
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import {
  CfnInsightRule,
  Dashboard,
  GraphWidget,
  MathExpression,
  Metric,
  TextWidget,
} from "aws-cdk-lib/aws-cloudwatch";
import { Key } from "aws-cdk-lib/aws-kms";
import { BlockPublicAccess, Bucket, BucketEncryption, StorageClass } from "aws-cdk-lib/aws-s3";
import { Topic } from "aws-cdk-lib/aws-sns";
import { NagSuppressions } from "cdk-nag";
import { type StackContext, use } from "sst/constructs";
import { Api } from "./Api";
import { loadStageConfig } from "./config";
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

export function Reporting({ stack, app }: StackContext) {
  const config = loadStageConfig(app.stage);
  const { api } = use(Api);
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
