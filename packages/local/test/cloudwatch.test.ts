import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloudWatchClient,
  type CloudWatchClientConfig,
  GetMetricDataCommand,
  type GetMetricDataCommandInput,
  type GetMetricDataCommandOutput,
  GetMetricStatisticsCommand,
  InvalidNextToken,
  InvalidParameterCombinationException,
  InvalidParameterValueException,
  ListMetricsCommand,
  MissingRequiredParameterException,
  PutMetricDataCommand,
  paginateGetMetricData,
} from "@aws-sdk/client-cloudwatch";
import { AwsQueryProtocol, AwsSmithyRpcV2CborProtocol } from "@aws-sdk/core/protocols";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "../src/cloudwatch";

const MINUTE = 60_000;
// Whole minutes in the recent past: inside PutMetricData's two-week window, and easy to bucket by hand.
const BASE = Math.floor(Date.now() / (60 * MINUTE)) * 60 * MINUTE - 3 * 60 * MINUTE;
const at = (minutes: number) => new Date(BASE + minutes * MINUTE);

let emulator: CloudWatchEmulator;

/** An unmodified SDK v3 client; `protocol` swaps its wire protocol (JSON 1.0 unless told). */
function client(protocol?: CloudWatchClientConfig["protocol"]) {
  const sent: Record<string, string>[] = [];
  const cw = new CloudWatchClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIDLOCAL", secretAccessKey: "local" },
    maxAttempts: 1,
    ...(protocol ? { protocol } : {}),
  });
  // Records what went on the wire, to show each client spoke the protocol it was given.
  cw.middlewareStack.add(
    (next) => async (args) => {
      sent.push({ ...(args.request as { headers: Record<string, string> }).headers });
      return next(args);
    },
    { step: "finalizeRequest" },
  );
  return { cw, sent };
}

const query = (namespace: string, metricName: string, stat: string, id = "q", period = 300) => ({
  Id: id,
  MetricStat: {
    Metric: {
      Namespace: namespace,
      MetricName: metricName,
      Dimensions: [{ Name: "tenantId", Value: "t-1" }],
    },
    Period: period,
    Stat: stat,
  },
});

beforeAll(async () => {
  emulator = await startCloudWatchEmulator();
});

afterAll(async () => {
  await emulator.close();
});

describe.each([
  {
    protocol: "AWS JSON 1.0",
    config: undefined,
    header: ["x-amz-target", "GraniteServiceVersion20100801.PutMetricData"],
  },
  { protocol: "RPC v2 CBOR", config: AwsSmithyRpcV2CborProtocol, header: ["smithy-protocol", "rpc-v2-cbor"] },
  {
    protocol: "awsQuery",
    config: AwsQueryProtocol,
    header: ["content-type", "application/x-www-form-urlencoded"],
  },
])("the SDK v3 client over $protocol", ({ protocol, config, header }) => {
  const namespace = `Test/${protocol.replace(/\W/g, "")}`;

  it("stores PutMetricData and answers GetMetricData with each statistic per period", async () => {
    // Prepare
    const { cw, sent } = client(config);
    const dimensions = [{ Name: "tenantId", Value: "t-1" }];
    await cw.send(
      new PutMetricDataCommand({
        Namespace: namespace,
        MetricData: [
          { MetricName: "Tokens", Dimensions: dimensions, Timestamp: at(0), Value: 10, Unit: "Count" },
          {
            MetricName: "Tokens",
            Dimensions: dimensions,
            Timestamp: at(1),
            Values: [20, 40],
            Counts: [1, 2],
            Unit: "Count",
          },
          { MetricName: "Tokens", Dimensions: dimensions, Timestamp: at(6), Value: 5, Unit: "Count" },
          // Another tenant's datapoint in the same minute stays apart.
          {
            MetricName: "Tokens",
            Dimensions: [{ Name: "tenantId", Value: "t-2" }],
            Timestamp: at(0),
            Value: 999,
          },
        ],
      }),
    );

    // Act
    const out = await cw.send(
      new GetMetricDataCommand({
        StartTime: at(0),
        EndTime: at(10),
        ScanBy: "TimestampAscending",
        MetricDataQueries: ["Sum", "SampleCount", "Average", "Minimum", "Maximum", "p50"].map((stat, i) => ({
          ...query(namespace, "Tokens", stat, `s${i}`),
          Label: stat,
        })),
      }),
    );

    // Assess
    expect(sent[0]?.[header[0] as string]).toContain(header[1]);
    const byLabel = Object.fromEntries((out.MetricDataResults ?? []).map((r) => [r.Label, r]));
    expect(byLabel.Sum?.Timestamps).toEqual([at(0), at(5)]);
    expect(byLabel.Sum?.Values).toEqual([110, 5]);
    expect(byLabel.SampleCount?.Values).toEqual([4, 1]);
    expect(byLabel.Average?.Values).toEqual([27.5, 5]);
    expect(byLabel.Minimum?.Values).toEqual([10, 5]);
    expect(byLabel.Maximum?.Values).toEqual([40, 5]);
    expect(byLabel.p50?.Values).toEqual([20, 5]);
    expect(out.MetricDataResults?.every((r) => r.StatusCode === "Complete")).toBe(true);
  });

  it("lists the metrics by namespace, name and dimension", async () => {
    const { cw } = client(config);
    const all = await cw.send(new ListMetricsCommand({ Namespace: namespace }));
    expect(all.Metrics).toHaveLength(2);
    const one = await cw.send(
      new ListMetricsCommand({
        Namespace: namespace,
        MetricName: "Tokens",
        Dimensions: [{ Name: "tenantId", Value: "t-2" }],
      }),
    );
    expect(one.Metrics).toEqual([
      { Namespace: namespace, MetricName: "Tokens", Dimensions: [{ Name: "tenantId", Value: "t-2" }] },
    ]);
  });

  it("answers GetMetricStatistics with basic and extended statistics", async () => {
    const { cw } = client(config);
    const request = {
      Namespace: namespace,
      MetricName: "Tokens",
      Dimensions: [{ Name: "tenantId", Value: "t-1" }],
      StartTime: at(0),
      EndTime: at(10),
      Period: 600,
    };
    const basic = await cw.send(
      new GetMetricStatisticsCommand({ ...request, Statistics: ["Sum", "Maximum"] }),
    );
    expect(basic.Label).toBe("Tokens");
    expect(basic.Datapoints).toEqual([{ Timestamp: at(0), Unit: "Count", Sum: 115, Maximum: 40 }]);
    const extended = await cw.send(
      new GetMetricStatisticsCommand({ ...request, ExtendedStatistics: ["p99"] }),
    );
    expect(extended.Datapoints?.[0]?.ExtendedStatistics).toEqual({ p99: 40 });
  });

  it("refuses bad input with CloudWatch's own errors", async () => {
    const { cw } = client(config);
    await expect(
      cw.send(
        new PutMetricDataCommand({ Namespace: "AWS/Lambda", MetricData: [{ MetricName: "M", Value: 1 }] }),
      ),
    ).rejects.toBeInstanceOf(InvalidParameterValueException);
    await expect(
      cw.send(
        new PutMetricDataCommand({
          Namespace: namespace,
          MetricData: [
            {
              MetricName: "M",
              Value: 1,
              StatisticValues: { SampleCount: 1, Sum: 1, Minimum: 1, Maximum: 1 },
            },
          ],
        }),
      ),
    ).rejects.toBeInstanceOf(InvalidParameterCombinationException);
    await expect(
      cw.send(
        new PutMetricDataCommand({
          Namespace: namespace,
          MetricData: [{ MetricName: "M", Value: 1, Timestamp: at(-30 * 24 * 60) }],
        }),
      ),
    ).rejects.toBeInstanceOf(InvalidParameterValueException);
    const error = await cw
      .send(
        new GetMetricDataCommand({
          StartTime: at(0),
          EndTime: at(10),
          MetricDataQueries: [query(namespace, "Tokens", "median")],
        }),
      )
      .catch((err: InvalidParameterValueException) => err);
    expect(error).toBeInstanceOf(InvalidParameterValueException);
    expect((error as Error).message).toContain("MetricDataQueries.member.1.MetricStat.Stat");
    expect((error as InvalidParameterValueException).$metadata.httpStatusCode).toBe(400);
  });
});

describe("GetMetricData", () => {
  it("pages at MaxDatapoints, newest first by default, and the SDK paginator puts the pages together", async () => {
    const { cw } = client();
    const MetricData = Array.from({ length: 7 }, (_, i) => ({
      MetricName: "Paged",
      Dimensions: [{ Name: "tenantId", Value: "t-1" }],
      Timestamp: at(i),
      Value: i,
    }));
    await cw.send(new PutMetricDataCommand({ Namespace: "Test/Paging", MetricData }));
    const input: GetMetricDataCommandInput = {
      StartTime: at(0),
      EndTime: at(60),
      MaxDatapoints: 3,
      MetricDataQueries: [
        query("Test/Paging", "Paged", "Sum", "a", 60),
        query("Test/Paging", "Paged", "Maximum", "b", 60),
      ],
    };

    const first = await cw.send(new GetMetricDataCommand(input));
    expect(first.MetricDataResults).toEqual([
      {
        Id: "a",
        Label: "Paged",
        Timestamps: [at(6), at(5), at(4)],
        Values: [6, 5, 4],
        StatusCode: "PartialData",
      },
    ]);
    expect(first.NextToken).toBeTruthy();

    const pages: GetMetricDataCommandOutput[] = [];
    for await (const page of paginateGetMetricData({ client: cw }, input)) pages.push(page);
    expect(pages).toHaveLength(5);
    const values = (id: string) =>
      pages.flatMap((p) => p.MetricDataResults?.filter((r) => r.Id === id) ?? []).flatMap((r) => r.Values);
    expect(values("a")).toEqual([6, 5, 4, 3, 2, 1, 0]);
    expect(values("b")).toEqual([6, 5, 4, 3, 2, 1, 0]);
    await expect(
      cw.send(new GetMetricDataCommand({ ...input, NextToken: "not-a-token" })),
    ).rejects.toBeInstanceOf(InvalidNextToken);
  });

  it("answers an empty result for a metric with no data, and refuses expressions and a missing StartTime", async () => {
    const { cw } = client();
    const none = await cw.send(
      new GetMetricDataCommand({
        StartTime: at(0),
        EndTime: at(10),
        MetricDataQueries: [query("Test/None", "Nothing", "Sum")],
      }),
    );
    expect(none.MetricDataResults).toEqual([
      { Id: "q", Label: "Nothing", Timestamps: [], Values: [], StatusCode: "Complete" },
    ]);
    const expression = await cw
      .send(
        new GetMetricDataCommand({
          StartTime: at(0),
          EndTime: at(10),
          MetricDataQueries: [{ Id: "e", Expression: "SUM(METRICS())" }],
        }),
      )
      .catch((err: Error) => err);
    expect(expression).toBeInstanceOf(InvalidParameterValueException);
    expect((expression as Error).message).toMatch(/expressions are not supported by the local CloudWatch/);
    await expect(
      cw.send(
        new GetMetricDataCommand({
          EndTime: at(10),
          MetricDataQueries: [query("Test/None", "Nothing", "Sum")],
        } as GetMetricDataCommandInput),
      ),
    ).rejects.toBeInstanceOf(MissingRequiredParameterException);
  });

  it("takes PutMetricData gzip-compressed, as the SDK sends large ones, and serves 500 queries in one call", async () => {
    const { cw, sent } = client();
    const MetricData = Array.from({ length: 500 }, (_, i) => ({
      MetricName: "Wide",
      Dimensions: [{ Name: "tenantId", Value: `t-${i}` }],
      Timestamp: at(0),
      Value: i,
    }));
    for (let i = 0; i < 500; i += 250) {
      await cw.send(
        new PutMetricDataCommand({ Namespace: "Test/Wide", MetricData: MetricData.slice(i, i + 250) }),
      );
    }
    expect(sent[0]?.["content-encoding"]).toBe("gzip");
    const out = await cw.send(
      new GetMetricDataCommand({
        StartTime: at(0),
        EndTime: at(5),
        MetricDataQueries: MetricData.map((d, i) => ({
          Id: `m${i}`,
          MetricStat: {
            Metric: { Namespace: "Test/Wide", MetricName: "Wide", Dimensions: d.Dimensions },
            Period: 60,
            Stat: "Sum",
          },
        })),
      }),
    );
    expect(out.MetricDataResults).toHaveLength(500);
    expect(out.MetricDataResults?.map((r) => r.Values?.[0])).toEqual(MetricData.map((d) => d.Value));
  });
});

describe("persistence", () => {
  it("keeps its data in the data file across a restart", async () => {
    const dir = await mkdtemp(join(tmpdir(), "atrium-cw-"));
    const dataFile = join(dir, "cloudwatch.json");
    try {
      const first = await startCloudWatchEmulator({ dataFile });
      first.store.put(
        { namespace: "Test/Kept", metricName: "Calls", dimensions: [] },
        // Two values, 3 and 4, in one datum (as an EMF array brings them).
        {
          at: at(0).getTime(),
          unit: "Count",
          aggregate: {
            sampleCount: 2,
            sum: 7,
            min: 3,
            max: 4,
            values: new Map([
              [3, 1],
              [4, 1],
            ]),
          },
        },
      );
      await first.close();
      expect((await stat(dataFile)).mode & 0o077).toBe(0);

      const second = await startCloudWatchEmulator({ dataFile });
      try {
        const metrics = second.store.metrics({ namespace: "Test/Kept" });
        expect(metrics.map((m) => m.metric.metricName)).toEqual(["Calls"]);
        const kept = { namespace: "Test/Kept", metricName: "Calls", dimensions: [] };
        const buckets = second.store.aggregate(kept, {
          start: at(0).getTime(),
          end: at(1).getTime(),
          periodMs: MINUTE,
        });
        expect(buckets.get(at(0).getTime())?.get("Count")).toMatchObject({
          sampleCount: 2,
          sum: 7,
          min: 3,
          max: 4,
        });
      } finally {
        await second.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("raw requests", () => {
  it("answers awsQuery in XML, and a parameter named __proto__ is only a name", async () => {
    const form = (body: string) =>
      fetch(emulator.url, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body,
      });
    const listed = await form(
      "Action=ListMetrics&Version=2010-08-01&Namespace=Test%2FNone&__proto__.polluted=1",
    );
    expect(listed.status).toBe(200);
    expect(await listed.text()).toMatch(
      /^<ListMetricsResponse xmlns="http:\/\/monitoring\.amazonaws\.com\/doc\/2010-08-01\/">/,
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const unknown = await form("Action=DescribeAlarms&Version=2010-08-01");
    expect(unknown.status).toBe(400);
    expect(await unknown.text()).toContain("<Error><Type>Sender</Type><Code>InvalidAction</Code>");
  });

  it("answers a request in no CloudWatch protocol with 400 InvalidAction rather than failing", async () => {
    const response = await fetch(emulator.url, { method: "POST", body: "{}" });
    expect(response.status).toBe(400);
    expect(response.headers.get("x-amzn-query-error")).toBe("InvalidAction;Sender");
    expect(await response.json()).toMatchObject({
      __type: "com.amazonaws.cloudwatch#UnknownOperationException",
    });
  });
});
