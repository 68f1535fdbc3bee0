import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  CloudWatchClient,
  GetMetricStatisticsCommand,
  ListMetricsCommand,
  type Statistic,
} from "@aws-sdk/client-cloudwatch";
import {
  InvokeEndpointCommand,
  InvokeEndpointWithResponseStreamCommand,
  SageMakerRuntimeClient,
} from "@aws-sdk/client-sagemaker-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CloudWatchEmulator, startCloudWatchEmulator } from "../src/cloudwatch";
import { SageMakerMetrics } from "../src/cloudwatch-sagemaker";
import { type SageMakerEmulator, startSageMakerEmulator } from "../src/sagemaker-emulator";

const credentials = { accessKeyId: "AKIDLOCAL", secretAccessKey: "local" };
const chat = JSON.stringify({ messages: [{ role: "user", content: "hello there" }] });

let cloudwatch: CloudWatchEmulator;
let metrics: SageMakerMetrics;
let sagemaker: SageMakerEmulator;
let container: Server;
let runtime: SageMakerRuntimeClient;
let cw: CloudWatchClient;
let holdRequests = false;
let release: () => void = () => {};
let received: () => void = () => {};

/** A model container: "fail" answers 500, "bad" 400; while `holdRequests`, it answers only on `release()`. */
async function startContainer(): Promise<Server> {
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString("utf8");
    if (body === "fail") return res.writeHead(500, { "content-type": "text/plain" }).end("out of memory");
    if (body === "bad") return res.writeHead(400, { "content-type": "text/plain" }).end("bad input");
    if (holdRequests) {
      const released = new Promise<void>((resolve) => {
        release = resolve;
      });
      received();
      await released;
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

beforeAll(async () => {
  cloudwatch = await startCloudWatchEmulator();
  // A long period: the test publishes utilisation itself, window by window.
  metrics = new SageMakerMetrics(cloudwatch.store, 3_600_000);
  container = await startContainer();
  const containerUrl = `http://127.0.0.1:${(container.address() as AddressInfo).port}`;
  sagemaker = await startSageMakerEmulator({
    observer: metrics,
    resolveEndpoint: (name) =>
      name === "ref-ep"
        ? { kind: "reference" }
        : name.startsWith("box-")
          ? { kind: "container", url: containerUrl }
          : undefined,
  });
  runtime = new SageMakerRuntimeClient({
    endpoint: sagemaker.url,
    region: "eu-west-1",
    credentials,
    maxAttempts: 1,
  });
  cw = new CloudWatchClient({ endpoint: cloudwatch.url, region: "eu-west-1", credentials });
});

afterAll(async () => {
  runtime.destroy();
  cw.destroy();
  metrics.close();
  await sagemaker.close();
  await new Promise((resolve) => container.close(resolve));
  await cloudwatch.close();
});

const invoke = (endpointName: string, body = chat, variant?: string) =>
  runtime
    .send(
      new InvokeEndpointCommand({
        EndpointName: endpointName,
        Body: new TextEncoder().encode(body),
        ContentType: "application/json",
        ...(variant ? { TargetVariant: variant } : {}),
      }),
    )
    .then(
      () => "ok",
      (err: Error) => err.name,
    );

/** One statistic over the last hour, read back through CloudWatch's own API. */
async function statistic(
  namespace: string,
  metricName: string,
  endpointName: string,
  stat: Statistic,
  variant = "AllTraffic",
) {
  const out = await cw.send(
    new GetMetricStatisticsCommand({
      Namespace: namespace,
      MetricName: metricName,
      Dimensions: [
        { Name: "EndpointName", Value: endpointName },
        { Name: "VariantName", Value: variant },
      ],
      StartTime: new Date(Date.now() - 3_600_000),
      EndTime: new Date(Date.now() + 60_000),
      Period: 7200,
      Statistics: [stat],
    }),
  );
  const [point] = out.Datapoints ?? [];
  return { value: point?.[stat], unit: point?.Unit };
}

describe("the SageMaker emulator's AWS/SageMaker metrics", () => {
  it("counts invocations and 4xx and 5xx errors, and times the model in microseconds", async () => {
    // Act
    expect(await invoke("ref-ep")).toBe("ok");
    expect(await invoke("ref-ep")).toBe("ok");
    sagemaker.injectFault("ref-ep", { error: "ThrottlingException", times: 1 });
    expect(await invoke("ref-ep")).toBe("ThrottlingException");
    const stream = await runtime.send(
      new InvokeEndpointWithResponseStreamCommand({
        EndpointName: "ref-ep",
        Body: new TextEncoder().encode(chat),
        ContentType: "application/json",
      }),
    );
    for await (const _ of stream.Body ?? []);
    expect(await invoke("box-errors", "fail")).toBe("ModelError");
    expect(await invoke("box-errors", "bad")).toBe("ModelError");
    expect(await invoke("box-errors", "fine")).toBe("ok");
    expect(await invoke("ref-ep", chat, "Blue")).toBe("ok");
    expect(await invoke("missing-ep")).toBe("ValidationError");

    // Assess
    const ns = "AWS/SageMaker";
    expect(await statistic(ns, "Invocations", "ref-ep", "Sum")).toEqual({ value: 4, unit: "None" });
    expect((await statistic(ns, "Invocation4XXErrors", "ref-ep", "Sum")).value).toBe(1);
    expect((await statistic(ns, "Invocation5XXErrors", "ref-ep", "Sum")).value).toBe(0);
    // SageMaker's own refusal (the throttle) never reached the model: three latencies, not four.
    expect(await statistic(ns, "ModelLatency", "ref-ep", "SampleCount")).toEqual({
      value: 3,
      unit: "Microseconds",
    });
    expect((await statistic(ns, "OverheadLatency", "ref-ep", "SampleCount")).value).toBe(3);
    expect((await statistic(ns, "ModelLatency", "ref-ep", "Minimum")).value).toBeGreaterThanOrEqual(0);

    expect((await statistic(ns, "Invocations", "box-errors", "Sum")).value).toBe(3);
    expect((await statistic(ns, "Invocation4XXErrors", "box-errors", "Sum")).value).toBe(1);
    expect((await statistic(ns, "Invocation5XXErrors", "box-errors", "Sum")).value).toBe(1);
    expect((await statistic(ns, "ModelLatency", "box-errors", "SampleCount")).value).toBe(3);
    // The model's own failures: both container errors, never SageMaker's throttle.
    expect((await statistic(ns, "InvocationModelErrors", "box-errors", "Sum")).value).toBe(2);
    expect((await statistic(ns, "InvocationModelErrors", "ref-ep", "Sum")).value).toBe(0);
    expect((await statistic(ns, "Invocations", "ref-ep", "Sum", "Blue")).value).toBe(1);

    const listed = await cw.send(new ListMetricsCommand({ Namespace: ns, MetricName: "Invocations" }));
    const endpoints = listed.Metrics?.map((m) => m.Dimensions?.find((d) => d.Name === "EndpointName")?.Value);
    expect(endpoints?.sort()).toEqual(["box-errors", "ref-ep", "ref-ep"]);
  });
});

describe("the AWS/SageMaker metrics of calls under injected conditions", () => {
  it("counts an injected ModelError by its model status, SageMaker's own errors and capacity refusals as theirs", async () => {
    // Act
    sagemaker.setConditions("box-faulted", { errorRate: 1, error: "ModelError", originalStatusCode: 429 });
    expect(await invoke("box-faulted")).toBe("ModelError");
    sagemaker.setConditions("box-faulted", { errorRate: 1, error: "ServiceUnavailable" });
    expect(await invoke("box-faulted")).toBe("ServiceUnavailable");
    sagemaker.setConditions("box-faulted", { capacity: 1 });
    holdRequests = true;
    const arrived = new Promise<void>((resolve) => {
      received = resolve;
    });
    const held = invoke("box-faulted", "slow");
    await arrived;
    expect(await invoke("box-faulted")).toBe("ThrottlingException");
    release();
    expect(await held).toBe("ok");
    holdRequests = false;
    sagemaker.clearFaults("box-faulted");

    // Assess
    const ns = "AWS/SageMaker";
    expect((await statistic(ns, "Invocations", "box-faulted", "Sum")).value).toBe(4);
    expect((await statistic(ns, "Invocation4XXErrors", "box-faulted", "Sum")).value).toBe(2);
    expect((await statistic(ns, "Invocation5XXErrors", "box-faulted", "Sum")).value).toBe(1);
    expect((await statistic(ns, "InvocationModelErrors", "box-faulted", "Sum")).value).toBe(1);
    // The model took two of the four: the injected ModelError and the held call.
    expect((await statistic(ns, "ModelLatency", "box-faulted", "SampleCount")).value).toBe(2);
  });
});

describe("the /aws/sagemaker/Endpoints utilisation stand-in", () => {
  it("publishes per window the share of it with a call in flight: 100 while busy, 0 while idle", async () => {
    // Prepare: a call the container holds until released.
    holdRequests = true;
    const arrived = new Promise<void>((resolve) => {
      received = resolve;
    });
    const call = invoke("box-busy", "slow");
    await arrived;

    // Act: the window the call started in, a window wholly busy, the one it ended in, an idle one.
    metrics.publishUtilisation();
    await pause();
    metrics.publishUtilisation();
    release();
    expect(await call).toBe("ok");
    holdRequests = false;
    await pause();
    metrics.publishUtilisation();
    await pause();
    metrics.publishUtilisation();

    // Assess
    for (const name of ["GPUUtilization", "CPUUtilization"]) {
      const ns = "/aws/sagemaker/Endpoints";
      expect(await statistic(ns, name, "box-busy", "SampleCount")).toEqual({ value: 4, unit: "Percent" });
      expect((await statistic(ns, name, "box-busy", "Maximum")).value).toBe(100);
      expect((await statistic(ns, name, "box-busy", "Minimum")).value).toBe(0);
    }
  });
});

/** Lets the clock move between two windows, so neither is empty. */
function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}
