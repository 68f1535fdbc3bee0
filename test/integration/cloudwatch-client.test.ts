/**
 * Atrium's CloudWatch client (core/cloudwatch.ts) held to the AWS SDK's: against the local CloudWatch,
 * seeded with the SDK's PutMetricData, the same GetMetricData through either client sends the same
 * request and reads the same pages (percentiles, sums, counts, units, labels, NextToken paging); the
 * same refusal is the same error. A local server answers what the emulator never does (throttling, a
 * 500, an error without x-amzn-query-error): the same names, messages and attempts.
 */
import { createServer, type IncomingHttpHeaders, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AwsCallError } from "@atrium/core/aws-http";
import {
  CloudWatchMetrics,
  type GetMetricDataInput,
  type GetMetricDataOutput,
  type MetricDataQuery,
  type MetricStat,
} from "@atrium/core/cloudwatch";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "@atrium/local/cloudwatch";
import {
  CloudWatchClient,
  GetMetricDataCommand,
  type GetMetricDataCommandInput,
  type MetricDatum,
  PutMetricDataCommand,
} from "@aws-sdk/client-cloudwatch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const REGION = "eu-west-1";
const CREDENTIALS = { accessKeyId: "local", secretAccessKey: "local" };
const DAY_MS = 86_400_000;
const day = (back: number) => new Date(Date.now() - back * DAY_MS).toISOString().slice(0, 10);
/** Two days a few days back: inside what PutMetricData takes, and clear of today's midnight. */
const DAYS = [day(3), day(2)];
const HOURS = ["06", "12", "18"];
const TENANTS = ["tn-parity000000", "tn-parity000001", "tn-parity000002"];
const START = new Date(`${DAYS[0]}T00:00:00Z`);
const END = new Date(Date.parse(`${DAYS[1]}T00:00:00Z`) + DAY_MS);
const RANGE_SECONDS = (END.getTime() - START.getTime()) / 1000;

/** One request as it reached the service. */
interface Recorded {
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/** An HTTP proxy to `target` that notes each request's headers and JSON body. */
async function recordingProxy(target: string): Promise<{ url: string; seen: Recorded[]; server: Server }> {
  const to = new URL(target);
  const seen: Recorded[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      seen.push({ headers: req.headers, body: JSON.parse(body.toString("utf8") || "{}") });
      const forward = request(
        { hostname: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

const sdkFor = (endpoint: string, maxAttempts = 3) =>
  new CloudWatchClient({ endpoint, region: REGION, credentials: CREDENTIALS, maxAttempts });
const atriumFor = (endpoint: string, maxAttempts = 2) =>
  new CloudWatchMetrics({
    endpoint,
    region: REGION,
    credentials: async () => CREDENTIALS,
    connectionTimeout: 1_000,
    requestTimeout: 5_000,
    maxAttempts,
  });

let cloudwatch: CloudWatchEmulator;
let sdkProxy: Awaited<ReturnType<typeof recordingProxy>>;
let atriumProxy: Awaited<ReturnType<typeof recordingProxy>>;
let sdk: CloudWatchClient;
let atrium: CloudWatchMetrics;

beforeAll(async () => {
  cloudwatch = await startCloudWatchEmulator();
  sdkProxy = await recordingProxy(cloudwatch.url);
  atriumProxy = await recordingProxy(cloudwatch.url);
  sdk = sdkFor(sdkProxy.url);
  atrium = atriumFor(atriumProxy.url);
  // Per tenant t, day d, hour h: model latencies (ms, fractional), prompt tokens (a count), and a
  // payload size (bytes) under a third dimension, the model's.
  const data: MetricDatum[] = TENANTS.flatMap((tenantId, t) =>
    DAYS.flatMap((d, di) =>
      HOURS.flatMap((h, hi) => {
        const timestamp = new Date(`${d}T${h}:15:00Z`);
        const dimensions = [
          { Name: "service", Value: "atrium" },
          { Name: "tenantId", Value: tenantId },
        ];
        const base = 1000 * t + 100 * di + 10 * hi;
        const latencies = Array.from({ length: 20 }, (_, i) => base + i * 1.25);
        return [
          {
            MetricName: "ModelLatency",
            Dimensions: dimensions,
            Timestamp: timestamp,
            Values: latencies,
            Counts: latencies.map((_, i) => 1 + (i % 3)),
            Unit: "Milliseconds",
          },
          {
            MetricName: "PromptTokens",
            Dimensions: dimensions,
            Timestamp: timestamp,
            Value: 7 * (t + 1) + di + hi,
            Unit: "Count",
          },
          {
            MetricName: "PayloadSize",
            Dimensions: [...dimensions, { Name: "model", Value: `model-${t % 2}` }],
            Timestamp: timestamp,
            Values: [512 * (t + 1), 1024 + hi],
            Unit: "Bytes",
          },
        ] satisfies MetricDatum[];
      }),
    ),
  );
  const writer = sdkFor(cloudwatch.url);
  await writer.send(new PutMetricDataCommand({ Namespace: "Atrium", MetricData: data }));
  writer.destroy();
});

afterAll(async () => {
  sdk?.destroy();
  atrium?.destroy();
  await new Promise((resolve) => sdkProxy?.server.close(resolve));
  await new Promise((resolve) => atriumProxy?.server.close(resolve));
  await cloudwatch?.close();
});

/** The queries of the parity runs: per tenant, each stat the reports use, and a few members besides. */
function queries(): MetricDataQuery[] {
  return TENANTS.flatMap((tenantId, t) => {
    const dimensions = [
      { Name: "service", Value: "atrium" },
      { Name: "tenantId", Value: tenantId },
    ];
    const stat = (metric: string, s: string, period: number, unit?: string) => ({
      Metric: { Namespace: "Atrium", MetricName: metric, Dimensions: dimensions },
      Period: period,
      Stat: s,
      ...(unit ? { Unit: unit } : {}),
    });
    return [
      { Id: `t${t}_p50_hour`, MetricStat: stat("ModelLatency", "p50", 3_600) },
      { Id: `t${t}_p99_hour`, MetricStat: stat("ModelLatency", "p99", 3_600, "Milliseconds") },
      { Id: `t${t}_p50_day`, MetricStat: stat("ModelLatency", "p50", 86_400), Label: `p50 of ${tenantId}` },
      { Id: `t${t}_p99_range`, MetricStat: stat("ModelLatency", "p99", RANGE_SECONDS) },
      { Id: `t${t}_calls`, MetricStat: stat("ModelLatency", "SampleCount", RANGE_SECONDS) },
      { Id: `t${t}_tokens_day`, MetricStat: stat("PromptTokens", "Sum", 86_400, "Count") },
      { Id: `t${t}_tokens`, MetricStat: stat("PromptTokens", "Sum", RANGE_SECONDS) },
      // Another unit than the data's: no datapoints.
      { Id: `t${t}_tokens_secs`, MetricStat: stat("PromptTokens", "Sum", RANGE_SECONDS, "Seconds") },
      { Id: `t${t}_hidden`, MetricStat: stat("ModelLatency", "Maximum", 3_600), ReturnData: false },
      {
        Id: `t${t}_payload`,
        MetricStat: {
          Metric: {
            Namespace: "Atrium",
            MetricName: "PayloadSize",
            Dimensions: [...dimensions, { Name: "model", Value: `model-${t % 2}` }],
          },
          Period: 86_400,
          Stat: "Average",
          Unit: "Bytes",
        },
      },
    ];
  }).concat([
    // A tenant CloudWatch has nothing for.
    {
      Id: "nobody",
      MetricStat: {
        Metric: {
          Namespace: "Atrium",
          MetricName: "ModelLatency",
          Dimensions: [
            { Name: "service", Value: "atrium" },
            { Name: "tenantId", Value: "tn-nobody000000" },
          ],
        },
        Period: 3_600,
        Stat: "p99",
      },
    },
  ]);
}

type Get = (input: GetMetricDataInput) => Promise<GetMetricDataOutput>;

const throughSdk: Get = async (input) => {
  const { $metadata: _, ...output } = await sdk.send(
    new GetMetricDataCommand(input as unknown as GetMetricDataCommandInput),
  );
  return output;
};
const throughAtrium: Get = (input) => atrium.getMetricData(input);

/** Every page of a GetMetricData, following NextToken. */
async function pages(get: Get, input: GetMetricDataInput): Promise<GetMetricDataOutput[]> {
  const out: GetMetricDataOutput[] = [];
  let token: string | undefined;
  do {
    const page = await get({ ...input, ...(token ? { NextToken: token } : {}) });
    out.push(page);
    token = page.NextToken;
  } while (token && out.length < 100);
  return out;
}

/** Both clients' pages of the same GetMetricData, and the requests each sent. */
async function both(input: GetMetricDataInput) {
  const [sdkFrom, atriumFrom] = [sdkProxy.seen.length, atriumProxy.seen.length];
  const viaSdk = await pages(throughSdk, input);
  const viaAtrium = await pages(throughAtrium, input);
  return {
    viaSdk,
    viaAtrium,
    sdkRequests: sdkProxy.seen.slice(sdkFrom),
    atriumRequests: atriumProxy.seen.slice(atriumFrom),
  };
}

/** What of a request the protocol fixes: the operation, the content type, the query mode, the body. */
const wireOf = (r: Recorded) => ({
  target: r.headers["x-amz-target"],
  contentType: r.headers["content-type"],
  queryMode: r.headers["x-amzn-query-mode"],
  body: r.body,
});

async function failureOf(call: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await call;
  } catch (err) {
    return err as Error & Record<string, unknown>;
  }
  throw new Error("the call did not fail");
}

describe("Atrium's GetMetricData, next to the SDK's", () => {
  it("sends the same request and reads the same results, in one page", async () => {
    const input: GetMetricDataInput = {
      MetricDataQueries: queries(),
      StartTime: START,
      EndTime: END,
      ScanBy: "TimestampAscending",
    };
    const { viaSdk, viaAtrium, sdkRequests, atriumRequests } = await both(input);

    expect(viaSdk).toHaveLength(1);
    expect(viaAtrium).toEqual(viaSdk);
    expect(atriumRequests.map(wireOf)).toEqual(sdkRequests.map(wireOf));
    // Epoch seconds on the wire, Dates read back.
    expect(atriumRequests[0]?.body.StartTime).toBe(START.getTime() / 1000);
    const results = viaAtrium[0]?.MetricDataResults ?? [];
    expect(results.map((r) => r.Id)).toContain("t1_p99_hour");
    expect(results.map((r) => r.Id)).not.toContain("t1_hidden");
    const hourly = results.find((r) => r.Id === "t1_p99_hour");
    expect(hourly?.Timestamps).toHaveLength(DAYS.length * HOURS.length);
    expect(hourly?.Timestamps?.[0]).toEqual(new Date(`${DAYS[0]}T06:00:00Z`));
    expect(hourly?.StatusCode).toBe("Complete");
    expect(results.find((r) => r.Id === "t0_p50_day")?.Label).toBe(`p50 of ${TENANTS[0]}`);
    expect(results.find((r) => r.Id === "t2_tokens_secs")?.Values).toEqual([]);
    expect(results.find((r) => r.Id === "t2_calls")?.Values?.[0]).toBeGreaterThan(0);
  });

  it("pages the same way with MaxDatapoints: the same pages, PartialData and NextToken", async () => {
    const input: GetMetricDataInput = {
      MetricDataQueries: queries(),
      StartTime: START,
      EndTime: END,
      ScanBy: "TimestampDescending",
      MaxDatapoints: 7,
    };
    const { viaSdk, viaAtrium, sdkRequests, atriumRequests } = await both(input);

    expect(viaSdk.length).toBeGreaterThan(3);
    expect(viaAtrium).toEqual(viaSdk);
    expect(viaAtrium.map((p) => p.NextToken !== undefined)).toEqual(
      viaSdk.map((p) => p.NextToken !== undefined),
    );
    expect(viaAtrium.flatMap((p) => p.MetricDataResults ?? []).map((r) => r.StatusCode)).toContain(
      "PartialData",
    );
    expect(atriumRequests.map(wireOf)).toEqual(sdkRequests.map(wireOf));
    expect(atriumRequests[1]?.body.NextToken).toBe(viaAtrium[0]?.NextToken);
  });

  it("writes a StartTime with milliseconds as fractional seconds, as the SDK does", async () => {
    const input: GetMetricDataInput = {
      MetricDataQueries: queries().slice(0, 4),
      StartTime: new Date(START.getTime() + 250),
      EndTime: new Date(END.getTime() - 1),
      LabelOptions: { Timezone: "+0130" },
    };
    const { viaSdk, viaAtrium, sdkRequests, atriumRequests } = await both(input);

    expect(viaAtrium).toEqual(viaSdk);
    expect(atriumRequests.map(wireOf)).toEqual(sdkRequests.map(wireOf));
    expect(atriumRequests[0]?.body.StartTime).toBe(START.getTime() / 1000 + 0.25);
  });

  it("gives the same error as the SDK for what the service refuses", async () => {
    const base = { MetricDataQueries: queries().slice(0, 2), StartTime: START, EndTime: END };
    const first = base.MetricDataQueries[0] as MetricDataQuery & { MetricStat: MetricStat };
    const refused: GetMetricDataInput[] = [
      { ...base, NextToken: "not-a-token" },
      { ...base, MetricDataQueries: [{ ...first, Id: "Upper" }] },
      { ...base, StartTime: END, EndTime: START },
      {
        ...base,
        MetricDataQueries: [
          {
            Id: "bad",
            MetricStat: { ...first.MetricStat, Stat: "Median" },
          },
        ],
      },
    ];
    for (const input of refused) {
      const fromSdk = await failureOf(throughSdk(input));
      const fromAtrium = await failureOf(throughAtrium(input));
      expect(fromAtrium).toBeInstanceOf(AwsCallError);
      expect({ name: fromAtrium.name, message: fromAtrium.message }).toEqual({
        name: fromSdk.name,
        message: fromSdk.message,
      });
      expect(fromAtrium.status).toBe(400);
      // A refusal is not tried again, by either.
      expect(fromAtrium.attempts).toBe(1);
      expect((fromSdk.$metadata as { attempts: number }).attempts).toBe(1);
    }
    const names = [];
    for (const input of refused) names.push((await failureOf(throughAtrium(input))).name);
    expect(names).toEqual([
      "InvalidNextToken",
      "InvalidParameterValueException",
      "InvalidParameterValueException",
      "InvalidParameterValueException",
    ]);
  });
});

describe("errors the local CloudWatch never sends", () => {
  /** A server answering every request with `status`, `headers` and `body`; counts the requests. */
  async function answering(status: number, headers: Record<string, string>, body: unknown) {
    let requests = 0;
    const server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        requests += 1;
        res.writeHead(status, { "content-type": "application/x-amz-json-1.0", ...headers });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `http://127.0.0.1:${port}`,
      requests: () => requests,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }

  const cases: {
    what: string;
    status: number;
    headers: Record<string, string>;
    body: Record<string, string>;
    retried: boolean;
  }[] = [
    {
      what: "throttling, named by its awsQuery code (no shape in the model)",
      status: 400,
      headers: { "x-amzn-query-error": "Throttling;Sender" },
      body: { __type: "com.amazon.coral.availability#ThrottlingException", message: "Rate exceeded" },
      retried: true,
    },
    {
      what: "an internal error, named by the shape of its awsQuery code",
      status: 500,
      headers: { "x-amzn-query-error": "InternalServiceError;Receiver" },
      body: { __type: "com.amazonaws.cloudwatch#InternalServiceFault", Message: "Something broke" },
      retried: true,
    },
    {
      what: "an error without x-amzn-query-error, named by its __type",
      status: 400,
      headers: {},
      body: { __type: "com.amazonaws.cloudwatch#InvalidParameterCombinationException", message: "No." },
      retried: false,
    },
    {
      what: "an error with no code at all",
      status: 403,
      headers: {},
      body: {},
      retried: false,
    },
  ];

  for (const c of cases) {
    it(`gives the SDK's name and message, and its retries, for ${c.what}`, async () => {
      const server = await answering(c.status, c.headers, c.body);
      const input = { MetricDataQueries: queries().slice(0, 1), StartTime: START, EndTime: END };
      try {
        const client = sdkFor(server.url, 2);
        const fromSdk = await failureOf(client.send(new GetMetricDataCommand(input as never)));
        client.destroy();
        const sdkRequests = server.requests();
        const ours = atriumFor(server.url, 2);
        const fromAtrium = await failureOf(ours.getMetricData(input));
        ours.destroy();

        expect({ name: fromAtrium.name, message: fromAtrium.message }).toEqual({
          name: fromSdk.name,
          message: fromSdk.message,
        });
        expect(sdkRequests).toBe(c.retried ? 2 : 1);
        expect(server.requests() - sdkRequests).toBe(sdkRequests);
        expect(fromAtrium.attempts).toBe(sdkRequests);
      } finally {
        await server.close();
      }
    });
  }
});
