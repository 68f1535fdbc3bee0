/**
 * `npm run bench:reports`: how long a report over many tenants and a month takes (issue 10, item 8).
 * Seeds DynamoDB Local with BENCH_TENANTS tenants (default 1,000), each with a ledger item per day and
 * BENCH_MODELS models for the last 31 days and a limiter month total, and the local CloudWatch with
 * the same calls' per-tenant metrics (PutMetricData with Values/Counts, 1,000 datums a call, its
 * clock walked through the month as the data arrives, since PutMetricData takes two weeks back at
 * most). Then times `loadReport` (one ledger Query per tenant, its limiter items, the directory, and
 * GetMetricData in batches of 500 queries, through core/cloudwatch.ts with the functions' timeouts) and
 * the JSON, CSV and HTML renderings. A benchmark, not a test.
 */

import { loadavg } from "node:os";
import { generateApiKey } from "@atrium/core/api-key";
import { CloudWatchMetrics } from "@atrium/core/cloudwatch";
import { loadStageConfigFile } from "@atrium/core/config";
import { limiterKey } from "@atrium/core/limiter-item";
import { loadReport } from "@atrium/core/reports/load-report";
import { readMetricFigures } from "@atrium/core/reports/metric-figures";
import { reportCsv } from "@atrium/core/reports/report-csv";
import { reportHtml } from "@atrium/core/reports/report-html";
import { TenantStore } from "@atrium/core/store";
import { LimiterTable, TenantTable, UsageTable } from "@atrium/core/tables";
import { ledgerUpdate } from "@atrium/core/usage-ledger";
import { cloudWatchTimeouts } from "@atrium/functions/lib/timeouts";
import { startCloudWatchEmulator } from "@atrium/local/cloudwatch";
import { dynamoClientFor, ensureTable, localDynamoClient, startDynamo } from "@atrium/local/dynamodb";
import { CloudWatchClient, type MetricDatum, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { machine, setting, writeBenchJson } from "./bench/output";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const TENANTS = setting("BENCH_TENANTS", 1000, 50);
const MODELS = setting("BENCH_MODELS", 1);
const DAYS = 31;

const config = loadStageConfigFile("config/local.json");
const models = config.sharedEndpoints.map((e) => e.model).slice(0, MODELS);
const dynamo = await startDynamo();
/** The local CloudWatch's clock: walked through the month while seeding, then the real one. */
let clock: number | undefined;
const cloudwatch = await startCloudWatchEmulator({ now: () => clock ?? Date.now() });
const credentials = { accessKeyId: "bench", secretAccessKey: "bench" };
/** Seeds the metrics with the SDK's PutMetricData (Atrium's own client only reads). */
const metricsWriter = new CloudWatchClient({ endpoint: cloudwatch.url, region: config.region, credentials });
/** The report's reader, as the report functions build it. */
const metricsClient = new CloudWatchMetrics({
  ...cloudWatchTimeouts,
  endpoint: cloudwatch.url,
  region: config.region,
  credentials: async () => credentials,
});
try {
  const client = localDynamoClient(dynamo.url, { maxAttempts: 10 });
  const db = dynamoClientFor(dynamo.url, { maxAttempts: 10 });
  const names = { tenants: "bench-tenants", limiter: "bench-limiter", usage: "bench-usage" };
  await ensureTable(client, names.tenants, TenantTable);
  await ensureTable(client, names.limiter, LimiterTable);
  await ensureTable(client, names.usage, UsageTable);
  const store = new TenantStore(db, names.tenants);

  const now = Date.now();
  const day = (back: number) => new Date(now - back * 86_400_000).toISOString().slice(0, 10);
  const month = new Date(now).toISOString().slice(0, 7);
  const seedStarted = performance.now();
  const items: Record<string, unknown>[] = [];
  for (let t = 0; t < TENANTS; t++) {
    const id = `tn-${String(t).padStart(12, "0")}`;
    await store.create(
      {
        id,
        name: `Tenant ${t}`,
        tier: "pro",
        status: "active",
        compliance: [],
        endpoints: {},
        createdAt: new Date(now - 40 * 86_400_000).toISOString(),
      },
      generateApiKey(),
    );
    items.push({ ...limiterKey(id, 0), month, monthUsed: 1000 + t });
    for (let d = 0; d < DAYS; d++) {
      for (const model of models) {
        const update = ledgerUpdate(
          names.usage,
          { tenantId: id, hour: `${day(d)}T12`, model, counters: {} },
          400,
        );
        items.push({
          ...(update.Key as object),
          model,
          hour: `${day(d)}T12`,
          requests: 10 + t,
          tokens: 900,
          promptTokens: 600,
          completionTokens: 300,
          sharedCalls: 10 + t,
        });
      }
    }
    if ((t + 1) % 100 === 0) process.stderr.write(`seeded ${t + 1}/${TENANTS} tenants\n`);
  }
  // Limiter items first, then the ledger, 25 to a batch.
  const limiterItems = items.filter((item) => String(item.sk).startsWith("LIMITER"));
  const ledgerItems = items.filter((item) => !String(item.sk).startsWith("LIMITER"));
  for (const [table, rows] of [
    [names.limiter, limiterItems],
    [names.usage, ledgerItems],
  ] as const) {
    for (let i = 0; i < rows.length; i += 25) {
      const batch = rows.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      let unprocessed: Record<string, unknown>[] | undefined = batch;
      while (unprocessed && unprocessed.length > 0) {
        const out = await db.batchWrite({ RequestItems: { [table]: unprocessed as never } });
        unprocessed = out.UnprocessedItems?.[table] as Record<string, unknown>[] | undefined;
      }
    }
  }
  const seededS = (performance.now() - seedStarted) / 1000;

  // The same calls' per-tenant metrics, day by day from the oldest (today's stamped no later than now).
  const metricsStarted = performance.now();
  let puts = 0;
  for (let d = DAYS - 1; d >= 0; d--) {
    const at = Math.min(Date.parse(`${day(d)}T12:00:00Z`), now);
    clock = at + 60_000;
    const data: MetricDatum[] = [];
    for (let t = 0; t < TENANTS; t++) {
      const calls = (10 + t) * models.length;
      const datum = (name: string, values: number[], counts: number[]): MetricDatum => ({
        MetricName: name,
        Dimensions: [
          { Name: "service", Value: "atrium" },
          { Name: "tenantId", Value: `tn-${String(t).padStart(12, "0")}` },
        ],
        Timestamp: new Date(at),
        Values: values,
        Counts: counts,
        Unit: name.endsWith("Latency") ? "Milliseconds" : "Count",
      });
      data.push(
        datum("ModelLatency", [120 + (t % 50), 180, 900], [calls - 2, 1, 1]),
        datum("OverheadLatency", [15, 40], [calls - 1, 1]),
        datum("Requests", [calls], [1]),
        datum("PromptTokens", [600 * models.length], [1]),
        datum("CompletionTokens", [300 * models.length], [1]),
      );
    }
    for (let i = 0; i < data.length; i += 1000) {
      await metricsWriter.send(
        new PutMetricDataCommand({ Namespace: "Atrium", MetricData: data.slice(i, i + 1000) }),
      );
      puts += 1;
    }
  }
  clock = undefined;
  const metricsSeededS = (performance.now() - metricsStarted) / 1000;

  const query = { from: day(DAYS - 1), to: day(0), period: "day" as const };
  const sources = {
    tenants: store.table,
    db,
    usageTable: names.usage,
    limiterTable: names.limiter,
    config,
    metrics: metricsClient,
  };
  const times: Record<string, number> = {};
  const time = async <T>(name: string, work: () => Promise<T> | T): Promise<T> => {
    const started = performance.now();
    const result = await work();
    times[name] = performance.now() - started;
    return result;
  };
  const { metrics: _, ...ledgerOnly } = sources;
  await time("load + build, ledger only (DynamoDB)", () => loadReport(ledgerOnly, query, now));
  const report = await time("load + build (DynamoDB, CloudWatch)", () => loadReport(sources, query, now));
  // For the split: the CloudWatch part on its own (in the report it runs alongside DynamoDB's reads).
  const tenantIds = report.tenants.map((t) => t.tenantId);
  const cloudwatchAlone = performance.now();
  await readMetricFigures(metricsClient, tenantIds, query);
  const cloudwatchAloneMs = performance.now() - cloudwatchAlone;
  const json = await time("JSON", () => JSON.stringify(report));
  const csv = await time("CSV", () => reportCsv(report));
  const html = await time("HTML", () => reportHtml(report));

  const [load1, load5] = loadavg();
  console.log(
    `\n${TENANTS} tenants x ${DAYS} days x ${models.length} model(s): ${ledgerItems.length} ledger items (seeded in ${seededS.toFixed(1)} s)`,
  );
  console.log(
    `CloudWatch: ${puts} PutMetricData calls (seeded in ${metricsSeededS.toFixed(1)} s); the report sent ${report.cloudwatch.queries} queries in ${report.cloudwatch.calls} GetMetricData calls`,
  );
  const differing = report.tenants.flatMap((t) =>
    (t.cloudwatch?.reconciliation ?? []).filter((p) => p.status !== "match"),
  );
  console.log(`the same GetMetricData alone, after the report: ${cloudwatchAloneMs.toFixed(0)} ms`);
  console.log(`ledger vs CloudWatch: ${differing.length} differing pairs (the seed makes them agree)`);
  console.log(`load average ${load1?.toFixed(2)} (1 min), ${load5?.toFixed(2)} (5 min)\n`);
  console.log("| step | ms |\n| --- | --: |");
  for (const [name, ms] of Object.entries(times)) console.log(`| ${name} | ${ms.toFixed(0)} |`);
  const { "load + build, ledger only (DynamoDB)": _ledgerOnly, ...reportSteps } = times;
  const total = Object.values(reportSteps).reduce((a, b) => a + b, 0);
  console.log(`| **total (the report with CloudWatch, rendered)** | **${total.toFixed(0)}** |`);
  console.log(
    `\nsizes: JSON ${(json.length / 1e6).toFixed(1)} MB, CSV ${(csv.length / 1e6).toFixed(1)} MB, HTML ${(html.length / 1e6).toFixed(1)} MB`,
  );
  const file = await writeBenchJson("reports", {
    settings: { TENANTS, MODELS, DAYS },
    ledgerItems: ledgerItems.length,
    stepsMs: times,
    totalMs: total,
    bytes: { json: json.length, csv: csv.length, html: html.length },
    differingPairs: differing.length,
    machine: machine(),
  });
  console.log(`wrote ${file}`);
  client.destroy();
} finally {
  metricsWriter.destroy();
  metricsClient.destroy();
  await cloudwatch.close();
  await dynamo.close();
}
