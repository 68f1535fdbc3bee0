import { MetricResolution, Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { CloudWatchClient, GetMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "../src/cloudwatch";
import { captureEmf, parseEmf } from "../src/cloudwatch-emf";

let emulator: CloudWatchEmulator;
let sdk: CloudWatchClient;

beforeAll(async () => {
  emulator = await startCloudWatchEmulator();
  sdk = new CloudWatchClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIDLOCAL", secretAccessKey: "local" },
  });
});

afterAll(async () => {
  sdk.destroy();
  await emulator.close();
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** What Powertools prints for one flush: two dimension sets, a repeated metric, a high-resolution one. */
function publishPowertoolsMetrics(tenantId: string): void {
  // The test run turns metrics off; Powertools reads this when a Metrics is made.
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
  const metrics = new Metrics({ namespace: "Atrium/EmfTest", serviceName: "atrium" });
  vi.unstubAllEnvs();
  metrics.addDimensions({ tenantId });
  metrics.addDimensions({ model: "llama" });
  metrics.addMetric("Requests", MetricUnit.Count, 1);
  metrics.addMetric("Latency", MetricUnit.Milliseconds, 5);
  metrics.addMetric("Latency", MetricUnit.Milliseconds, 7);
  metrics.addMetric("Burst", MetricUnit.Count, 3, MetricResolution.High);
  metrics.addMetadata("requestId", "r-1");
  metrics.publishStoredMetrics();
}

/** The terminal: everything that reaches process.stdout's own write. */
function watchTerminal(): string[] {
  const written: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  return written;
}

async function sumOf(metricName: string, dimensions: Record<string, string>, stat = "Sum") {
  const out = await sdk.send(
    new GetMetricDataCommand({
      StartTime: new Date(Date.now() - 3_600_000),
      EndTime: new Date(Date.now() + 60_000),
      MetricDataQueries: [
        {
          Id: "m",
          MetricStat: {
            Metric: {
              Namespace: "Atrium/EmfTest",
              MetricName: metricName,
              Dimensions: Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value })),
            },
            Period: 3600,
            Stat: stat,
          },
        },
      ],
    }),
  );
  return out.MetricDataResults?.[0]?.Values ?? [];
}

describe("parseEmf", () => {
  it("reads a Powertools document: every dimension set, array values, units and resolution", () => {
    const terminal = watchTerminal();
    publishPowertoolsMetrics("t-parse");
    const line = terminal.join("").trim();

    const records = parseEmf(line) ?? [];

    const summary = records.map((r) => ({
      name: r.metric.metricName,
      dims: r.metric.dimensions.map((d) => `${d.Name}=${d.Value}`).join(","),
      unit: r.datum.unit,
      count: r.datum.aggregate.sampleCount,
      sum: r.datum.aggregate.sum,
      highResolution: r.datum.highResolution,
    }));
    expect(summary).toEqual(
      expect.arrayContaining([
        {
          name: "Requests",
          dims: "service=atrium,tenantId=t-parse",
          unit: "Count",
          count: 1,
          sum: 1,
          highResolution: false,
        },
        {
          name: "Requests",
          dims: "service=atrium,model=llama",
          unit: "Count",
          count: 1,
          sum: 1,
          highResolution: false,
        },
        {
          name: "Latency",
          dims: "service=atrium,tenantId=t-parse",
          unit: "Milliseconds",
          count: 2,
          sum: 12,
          highResolution: false,
        },
        {
          name: "Burst",
          dims: "service=atrium,model=llama",
          unit: "Count",
          count: 1,
          sum: 3,
          highResolution: true,
        },
      ]),
    );
    expect(records).toHaveLength(6);
  });

  it("skips a dimension set whose member is missing, drops stale documents, and leaves other lines alone", () => {
    const now = Date.now();
    const directive = {
      Namespace: "N",
      Dimensions: [["tenantId"], ["absent"]],
      Metrics: [{ Name: "Calls" }],
    };
    const document = (timestamp: number) =>
      JSON.stringify({
        _aws: { Timestamp: timestamp, CloudWatchMetrics: [directive] },
        tenantId: "t",
        Calls: 2,
      });

    expect(parseEmf(document(now))?.map((r) => [r.metric.dimensions, r.datum.unit])).toEqual([
      [[{ Name: "tenantId", Value: "t" }], "None"],
    ]);
    expect(parseEmf(document(now - 15 * 24 * 3_600_000))).toEqual([]);
    expect(parseEmf('{"level":"INFO","message":"request served"}')).toBeUndefined();
    expect(parseEmf('{"_aws": not json')).toBeUndefined();
  });
});

describe("captureEmf", () => {
  it("turns the EMF lines written to stdout into metrics and lets every other line through", async () => {
    const terminal = watchTerminal();
    const stop = captureEmf(process.stdout, emulator.ingest);
    try {
      publishPowertoolsMetrics("t-capture");
      publishPowertoolsMetrics("t-capture");
      process.stdout.write(`GET /v1/models 200\n${JSON.stringify({ _aws: {}, note: "not metrics" })}\n`);
    } finally {
      stop();
    }

    expect(terminal.join("")).toBe(
      `GET /v1/models 200\n${JSON.stringify({ _aws: {}, note: "not metrics" })}\n`,
    );
    expect(await sumOf("Requests", { service: "atrium", tenantId: "t-capture" })).toEqual([2]);
    expect(await sumOf("Latency", { service: "atrium", tenantId: "t-capture" }, "Average")).toEqual([6]);
    expect(await sumOf("Latency", { service: "atrium", tenantId: "t-capture" }, "SampleCount")).toEqual([4]);
  });

  it("stops capturing when told, leaving a later wrapper in place", () => {
    const terminal = watchTerminal();
    const spy = process.stdout.write;
    const stop = captureEmf(process.stdout, emulator.ingest);
    stop();
    expect(process.stdout.write).toBe(spy);
    publishPowertoolsMetrics("t-after");
    expect(terminal.join("")).toContain('"tenantId":"t-after"');
  });
});
