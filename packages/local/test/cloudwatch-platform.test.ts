import { CloudWatchClient, GetMetricDataCommand, ListMetricsCommand } from "@aws-sdk/client-cloudwatch";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { startTestPlatform, stopTestPlatform } from "../../../test/support/platform";
import { type Platform, readLocalInfo } from "../src/platform";

// Before the handlers are imported (on the first call): Powertools reads this once, as at a cold start.
process.env.POWERTOOLS_METRICS_DISABLED = "false";

let platform: Platform;
let dataDir: string;
const terminal: string[] = [];

beforeAll(async () => {
  // The terminal, watched from before the platform starts: its EMF capture sits in front of it.
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    terminal.push(String(chunk));
    return true;
  });
  ({ platform, dataDir } = await startTestPlatform());
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  vi.restoreAllMocks();
});

interface ChatCompletion {
  usage: { prompt_tokens: number; completion_tokens: number };
}

describe("the local CloudWatch in the platform", () => {
  it("holds a chat call's EMF metrics and the SageMaker endpoint's, readable with GetMetricData", async () => {
    // Prepare: the SDK finds the local CloudWatch as the handlers would, from AWS_ENDPOINT_URL_CLOUDWATCH.
    const cloudwatch = new CloudWatchClient({ region: platform.config.region });
    const tenantId = platform.demoTenant.id;
    const endpointName = "atrium-shared-llama-8b";

    // Act
    const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${platform.demoTenant.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "llama-3.1-8b-instruct",
        messages: [{ role: "user", content: "How are you?" }],
      }),
    });
    expect(response.status).toBe(200);
    const { usage } = (await response.json()) as ChatCompletion;

    // Assess
    const tenantDimensions = [
      { Name: "service", Value: "atrium" },
      { Name: "tenantId", Value: tenantId },
    ];
    const endpointDimensions = [
      { Name: "EndpointName", Value: endpointName },
      { Name: "VariantName", Value: "AllTraffic" },
    ];
    const metric = (id: string, namespace: string, name: string, dimensions: typeof tenantDimensions) => ({
      Id: id,
      MetricStat: {
        Metric: { Namespace: namespace, MetricName: name, Dimensions: dimensions },
        Period: 3600,
        Stat: "Sum",
      },
    });
    const out = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(Date.now() - 3_600_000),
        EndTime: new Date(Date.now() + 60_000),
        MetricDataQueries: [
          metric("requests", "Atrium", "Requests", tenantDimensions),
          metric("prompt", "Atrium", "PromptTokens", tenantDimensions),
          metric("completion", "Atrium", "CompletionTokens", tenantDimensions),
          metric("invocations", "AWS/SageMaker", "Invocations", endpointDimensions),
          metric("errors", "AWS/SageMaker", "Invocation5XXErrors", endpointDimensions),
        ],
      }),
    );
    const sums = Object.fromEntries((out.MetricDataResults ?? []).map((r) => [r.Id, r.Values]));
    expect(sums).toEqual({
      requests: [1],
      prompt: [usage.prompt_tokens],
      completion: [usage.completion_tokens],
      invocations: [1],
      errors: [0],
    });
    const listed = await cloudwatch.send(
      new ListMetricsCommand({ Namespace: "Atrium", Dimensions: [{ Name: "tenantId", Value: tenantId }] }),
    );
    // Only the few per-tenant metrics carry the tenant (docs/metrics.md); the others are per service.
    expect(listed.Metrics?.map((m) => m.MetricName).sort()).toEqual([
      "CompletionTokens",
      "ModelLatency",
      "OverheadLatency",
      "PromptTokens",
      "Requests",
    ]);
    // ModelLatency twice: per service (every model call) and per tenant (a call's model part, for reports).
    const latency = await cloudwatch.send(
      new ListMetricsCommand({ Namespace: "Atrium", MetricName: "ModelLatency" }),
    );
    expect(latency.Metrics?.map((m) => m.Dimensions?.map((d) => d.Name)).sort()).toEqual([
      ["service"],
      ["service", "tenantId"],
    ]);
    // The metrics went to CloudWatch and not to the terminal.
    expect(terminal.join("")).not.toContain('"_aws"');
    cloudwatch.destroy();
  });

  it("names its URL in local.json", async () => {
    const info = await readLocalInfo(platform.dataDir);
    expect(info?.cloudwatchUrl).toBe(platform.cloudwatchUrl);
    expect(process.env.AWS_ENDPOINT_URL_CLOUDWATCH).toBe(platform.cloudwatchUrl);
  });
});
