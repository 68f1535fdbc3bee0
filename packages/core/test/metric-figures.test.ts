/**
 * Reading the report's CloudWatch figures from the local CloudWatch over HTTP (CloudWatch's JSON
 * protocol, through core/cloudwatch.ts): 86 tenants make 1,204 queries, sent as three GetMetricData
 * calls of at most 500, and every percentile and sum lands on the tenant it was published for. The
 * datapoints are put with the SDK's client, an independent writer.
 */
import { CloudWatchMetrics } from "@atrium/core/cloudwatch";
import { type MetricsClient, readMetricFigures } from "@atrium/core/reports/metric-figures";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "@atrium/local/cloudwatch";
import { CloudWatchClient, type MetricDatum, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TENANTS = 86;
const DAY_MS = 86_400_000;
const day = (back: number) => new Date(Date.now() - back * DAY_MS).toISOString().slice(0, 10);
/** Two days a few days back: inside what PutMetricData takes, and clear of today's midnight. */
const [first, second] = [day(3), day(2)];
const tenantIds = Array.from({ length: TENANTS }, (_, t) => `tn-figures${String(t).padStart(4, "0")}`);
/** 1..n */
const upTo = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

let cloudwatch: CloudWatchEmulator;
let writer: CloudWatchClient;
let client: CloudWatchMetrics;

beforeAll(async () => {
  cloudwatch = await startCloudWatchEmulator();
  const credentials = { accessKeyId: "local", secretAccessKey: "local" };
  writer = new CloudWatchClient({ endpoint: cloudwatch.url, region: "eu-west-1", credentials });
  client = new CloudWatchMetrics({
    endpoint: cloudwatch.url,
    region: "eu-west-1",
    credentials: async () => credentials,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    maxAttempts: 2,
  });
  // Per tenant t: model latencies t*1000 + 1..100 on the first day and + 101..200 on the second;
  // Atrium's t + 1..10 on each; counters that differ per tenant.
  const data: MetricDatum[] = tenantIds.flatMap((tenantId, t) => {
    const dimensions = [
      { Name: "service", Value: "atrium" },
      { Name: "tenantId", Value: tenantId },
    ];
    return [first, second].flatMap((d, i) => {
      const at = new Date(`${d}T12:00:00Z`);
      const datum = (name: string, values: number[]): MetricDatum => ({
        MetricName: name,
        Dimensions: dimensions,
        Timestamp: at,
        Values: values,
        Counts: values.map(() => 1),
        Unit: name.endsWith("Latency") ? "Milliseconds" : "Count",
      });
      return [
        datum(
          "ModelLatency",
          upTo(100, 1 + i * 100).map((v) => t * 1000 + v),
        ),
        datum(
          "OverheadLatency",
          upTo(10).map((v) => t + v),
        ),
        datum("Requests", [t + 1]),
        datum("PromptTokens", [10 * t]),
        datum("CompletionTokens", [5 * t + 1]),
        datum("RateLimited", [t % 3]),
        datum("CallErrors", [t % 2]),
      ];
    });
  });
  for (let i = 0; i < data.length; i += 1000) {
    await writer.send(new PutMetricDataCommand({ Namespace: "Atrium", MetricData: data.slice(i, i + 1000) }));
  }
});

afterAll(async () => {
  writer.destroy();
  client.destroy();
  await cloudwatch.close();
});

/** The real client, with each GetMetricData call's query count noted on its way out. */
function counting() {
  const calls: number[] = [];
  const counted: MetricsClient = {
    getMetricData: (input) => {
      calls.push(input.MetricDataQueries.length);
      return client.getMetricData(input);
    },
  };
  return { calls, client: counted };
}

describe("readMetricFigures", () => {
  it("sends 1,204 queries as three GetMetricData calls of at most 500 and maps each result to its tenant", async () => {
    // Act
    const { calls, client: counted } = counting();
    const read = await readMetricFigures(counted, tenantIds, { from: first, to: second, period: "day" });

    // Assess
    expect(read.queries).toBe(TENANTS * 14);
    expect(calls.sort((a, b) => b - a)).toEqual([500, 500, 204]);
    expect(read.calls).toBe(3);
    tenantIds.forEach((tenantId, t) => {
      const figures = read.figures.get(tenantId);
      expect(figures?.counts, tenantId).toEqual({
        requests: 2 * (t + 1),
        modelCalls: 200,
        promptTokens: 20 * t,
        completionTokens: 2 * (5 * t + 1),
        rateLimited: 2 * (t % 3),
        callErrors: 2 * (t % 2),
      });
      // Nearest rank over 1..200: p50 is the 100th value, p99 the 198th.
      expect(figures?.latency, tenantId).toEqual({
        model: { p50: t * 1000 + 100, p99: t * 1000 + 198 },
        atrium: { p50: t + 5, p99: t + 10 },
      });
      expect(figures?.periods, tenantId).toEqual([
        {
          period: first,
          model: { p50: t * 1000 + 50, p99: t * 1000 + 99 },
          atrium: { p50: t + 5, p99: t + 10 },
        },
        {
          period: second,
          model: { p50: t * 1000 + 150, p99: t * 1000 + 199 },
          atrium: { p50: t + 5, p99: t + 10 },
        },
      ]);
    });
  });

  it("follows NextToken when a call's datapoints take more than one page, losing none", async () => {
    const { calls, client: counted } = counting();
    const whole = await readMetricFigures(counted, tenantIds.slice(0, 10), {
      from: first,
      to: second,
      period: "hour",
    });
    const paged = await readMetricFigures(
      counted,
      tenantIds.slice(0, 10),
      { from: first, to: second, period: "hour" },
      7,
    );
    // 10 tenants x 14 queries, one batch; each tenant has 18 datapoints: 2 for each of its 4 latency
    // queries by hour, 1 for each of its 10 over the range.
    expect(whole.calls).toBe(1);
    expect(paged.calls).toBe(Math.ceil((10 * 18) / 7));
    expect(calls.length).toBe(1 + paged.calls);
    expect(paged.figures).toEqual(whole.figures);
    expect(paged.figures.get(tenantIds[3] as string)?.periods.map((p) => p.period)).toEqual([
      `${first}T12`,
      `${second}T12`,
    ]);
  });

  it("gives null percentiles and zero counts to a tenant CloudWatch has nothing for", async () => {
    const read = await readMetricFigures(client, ["tn-nothing00000"], {
      from: first,
      to: second,
      period: "day",
    });
    expect(read.figures.get("tn-nothing00000")).toEqual({
      latency: { model: { p50: null, p99: null }, atrium: { p50: null, p99: null } },
      periods: [],
      counts: {
        requests: 0,
        modelCalls: 0,
        promptTokens: 0,
        completionTokens: 0,
        rateLimited: 0,
        callErrors: 0,
      },
    });
  });
});
