import { execFile, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { CloudWatchClient, GetMetricDataCommand, PutMetricDataCommand } from "@aws-sdk/client-cloudwatch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "../src/cloudwatch";

/**
 * Clients nobody here wrote: the AWS CLI and boto3 (each skipped where it is not installed). Both
 * pick AWS JSON 1.0 from CloudWatch's model; given a copy of the model that lists one protocol only
 * (AWS_DATA_PATH), the same botocore speaks awsQuery, as older CLIs do, or RPC v2 CBOR.
 */

const execFileAsync = promisify(execFile);
const hasAws = spawnSync("aws", ["--version"], { encoding: "utf8" }).status === 0;
const hasBoto3 = spawnSync("python3", ["-c", "import boto3"]).status === 0;

const MINUTE = 60_000;
const BASE = Math.floor(Date.now() / (60 * MINUTE)) * 60 * MINUTE - 2 * 60 * MINUTE;
const at = (minutes: number) => new Date(BASE + minutes * MINUTE);
const iso = (minutes: number) => at(minutes).toISOString();
const tenant = [{ Name: "tenantId", Value: "t-cli" }];

let emulator: CloudWatchEmulator;
let sdk: CloudWatchClient;
let dir: string;
let env: NodeJS.ProcessEnv;
/** protocol → a botocore data path whose CloudWatch model lists only that protocol. */
const modelPaths: Record<string, string> = {};
const PROTOCOLS = ["json", "query", "smithy-rpc-v2-cbor"] as const;
/** How each protocol shows in the CLI's --debug request line. */
const WIRE_MARK = {
  query: "'Content-Type': b'application/x-www-form-urlencoded",
  "smithy-rpc-v2-cbor": "'smithy-protocol': b'rpc-v2-cbor'",
};

const ONE_PROTOCOL_MODEL = `
import botocore.session, json, os, sys
model = botocore.session.get_session().get_component("data_loader").load_service_model("cloudwatch", "service-2")
model["metadata"]["protocol"] = sys.argv[2]
model["metadata"]["protocols"] = [sys.argv[2]]
os.makedirs(os.path.join(sys.argv[1], "cloudwatch", "2010-08-01"))
json.dump(model, open(os.path.join(sys.argv[1], "cloudwatch", "2010-08-01", "service-2.json"), "w"))
`;

beforeAll(async () => {
  emulator = await startCloudWatchEmulator();
  sdk = new CloudWatchClient({
    endpoint: emulator.url,
    region: "eu-west-1",
    credentials: { accessKeyId: "AKIDLOCAL", secretAccessKey: "local" },
  });
  dir = await mkdtemp(join(tmpdir(), "atrium-cw-cli-"));
  env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: "AKIDLOCALTEST",
    AWS_SECRET_ACCESS_KEY: "local-secret",
    AWS_REGION: "eu-west-1",
    AWS_DEFAULT_REGION: "eu-west-1",
    AWS_MAX_ATTEMPTS: "1",
    AWS_EC2_METADATA_DISABLED: "true",
    AWS_CONFIG_FILE: join(dir, "config"),
    AWS_SHARED_CREDENTIALS_FILE: join(dir, "credentials"),
  };
  if (hasBoto3) {
    for (const protocol of PROTOCOLS) {
      const path = join(dir, "models", protocol);
      await execFileAsync("python3", ["-c", ONE_PROTOCOL_MODEL, path, protocol]);
      modelPaths[protocol] = path;
    }
  }
  // Published through the SDK: the other clients must read back exactly these.
  await sdk.send(
    new PutMetricDataCommand({
      Namespace: "Atrium/CliTest",
      MetricData: [
        { MetricName: "PromptTokens", Dimensions: tenant, Timestamp: at(0), Value: 10, Unit: "Count" },
        { MetricName: "PromptTokens", Dimensions: tenant, Timestamp: at(1), Value: 20, Unit: "Count" },
        { MetricName: "PromptTokens", Dimensions: tenant, Timestamp: at(6), Value: 5, Unit: "Count" },
      ],
    }),
  );
});

afterAll(async () => {
  sdk.destroy();
  await emulator.close();
  await rm(dir, { recursive: true, force: true });
});

const queries = [
  {
    Id: "tokens",
    MetricStat: {
      Metric: { Namespace: "Atrium/CliTest", MetricName: "PromptTokens", Dimensions: tenant },
      Period: 300,
      Stat: "Sum",
    },
  },
];

/** Epoch ms from whatever a client printed: epoch seconds (JSON protocols) or ISO 8601 (awsQuery). */
const epochMs = (t: number | string) => (typeof t === "number" ? t * 1000 : Date.parse(t));

async function aws(...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync(
    "aws",
    ["cloudwatch", ...args, "--endpoint-url", emulator.url, "--region", "eu-west-1", "--output", "json"],
    { env },
  );
  return stdout.trim() ? JSON.parse(stdout) : {};
}

/** get-metric-data with the CLI made to speak `protocol`; --debug shows what it sent. */
async function awsOver(protocol: keyof typeof WIRE_MARK, ...args: string[]) {
  const { stdout, stderr } = await execFileAsync(
    "aws",
    [
      "--debug",
      "cloudwatch",
      ...args,
      "--endpoint-url",
      emulator.url,
      "--region",
      "eu-west-1",
      "--output",
      "json",
    ],
    { env: { ...env, AWS_DATA_PATH: modelPaths[protocol] }, maxBuffer: 16 * 1024 * 1024 },
  );
  return { out: JSON.parse(stdout) as Record<string, unknown>, sent: stderr };
}

describe("the AWS CLI", () => {
  it.skipIf(!hasAws)("reads with get-metric-data the numbers the SDK published", async () => {
    const out = (await aws(
      "get-metric-data",
      "--start-time",
      iso(0),
      "--end-time",
      iso(10),
      "--scan-by",
      "TimestampAscending",
      "--metric-data-queries",
      JSON.stringify(queries),
    )) as {
      MetricDataResults: {
        Id: string;
        Timestamps: (number | string)[];
        Values: number[];
        StatusCode: string;
      }[];
    };
    const [result] = out.MetricDataResults;
    expect(result).toMatchObject({ Id: "tokens", Values: [30, 5], StatusCode: "Complete" });
    expect(result?.Timestamps.map(epochMs)).toEqual([at(0).getTime(), at(5).getTime()]);
  });

  it.skipIf(!hasAws)("publishes with put-metric-data what the SDK then reads, and lists it", async () => {
    await aws(
      "put-metric-data",
      "--namespace",
      "Atrium/CliTest",
      "--metric-data",
      JSON.stringify([
        { MetricName: "Requests", Dimensions: tenant, Timestamp: iso(2), Value: 3, Unit: "Count" },
        { MetricName: "Requests", Dimensions: tenant, Timestamp: iso(3), Value: 4, Unit: "Count" },
      ]),
    );
    const read = await sdk.send(
      new GetMetricDataCommand({
        StartTime: at(0),
        EndTime: at(10),
        MetricDataQueries: [
          {
            Id: "r",
            MetricStat: {
              Metric: { Namespace: "Atrium/CliTest", MetricName: "Requests", Dimensions: tenant },
              Period: 600,
              Stat: "Sum",
            },
          },
        ],
      }),
    );
    expect(read.MetricDataResults?.[0]?.Values).toEqual([7]);
    const listed = (await aws("list-metrics", "--namespace", "Atrium/CliTest")) as {
      Metrics: { MetricName: string }[];
    };
    expect(listed.Metrics.map((m) => m.MetricName).sort()).toEqual(["PromptTokens", "Requests"]);
  });

  it.skipIf(!hasAws || !hasBoto3).each(["query", "smithy-rpc-v2-cbor"] as const)(
    "reads the same numbers when made to speak %s",
    async (protocol) => {
      const { out, sent } = await awsOver(
        protocol,
        "get-metric-data",
        "--start-time",
        iso(0),
        "--end-time",
        iso(10),
        "--scan-by",
        "TimestampAscending",
        "--metric-data-queries",
        JSON.stringify(queries),
      );
      expect(sent).toContain(WIRE_MARK[protocol]);
      const [result] = (out as { MetricDataResults: { Values: number[]; Timestamps: (number | string)[] }[] })
        .MetricDataResults;
      expect(result?.Values).toEqual([30, 5]);
      expect(result?.Timestamps.map(epochMs)).toEqual([at(0).getTime(), at(5).getTime()]);
    },
  );

  it.skipIf(!hasAws)("shows CloudWatch's error code for bad input", async () => {
    await expect(
      aws("put-metric-data", "--namespace", "AWS/Lambda", "--metric-name", "Invocations", "--value", "1"),
    ).rejects.toMatchObject({ stderr: expect.stringContaining("(InvalidParameterValue)") });
  });
});

describe("boto3", () => {
  it.skipIf(!hasBoto3).each(PROTOCOLS)(
    "over %s, reads with get_metric_data the numbers the SDK published and gets CloudWatch's error codes",
    async (protocol) => {
      const script = `
import boto3, datetime, json, sys
client = boto3.client("cloudwatch", endpoint_url=sys.argv[1])
out = client.get_metric_data(
    StartTime=datetime.datetime.fromisoformat(sys.argv[2].replace("Z", "+00:00")),
    EndTime=datetime.datetime.fromisoformat(sys.argv[3].replace("Z", "+00:00")),
    ScanBy="TimestampAscending",
    MetricDataQueries=json.loads(sys.argv[4]),
)
result = out["MetricDataResults"][0]
try:
    client.put_metric_data(Namespace="AWS/Lambda", MetricData=[{"MetricName": "Invocations", "Value": 1}])
    error = None
except client.exceptions.ClientError as err:
    error = [err.response["Error"]["Code"], err.response["ResponseMetadata"]["HTTPStatusCode"]]
print(json.dumps({
    "protocol": client.meta.service_model.resolved_protocol,
    "values": result["Values"],
    "timestamps": [t.isoformat() for t in result["Timestamps"]],
    "error": error,
}))
`;
      const { stdout } = await execFileAsync(
        "python3",
        ["-c", script, emulator.url, iso(0), iso(10), JSON.stringify(queries)],
        { env: { ...env, AWS_DATA_PATH: modelPaths[protocol] } },
      );
      const out = JSON.parse(stdout) as {
        protocol: string;
        values: number[];
        timestamps: string[];
        error: unknown;
      };
      expect(out.protocol).toBe(protocol);
      expect(out.values).toEqual([30, 5]);
      expect(out.timestamps.map((t) => Date.parse(t))).toEqual([at(0).getTime(), at(5).getTime()]);
      expect(out.error).toEqual(["InvalidParameterValue", 400]);
    },
  );
});
