/**
 * Atrium's one retry policy for model calls, end to end on the local platform
 * (docs/adr/0011-retries-and-model-errors.md): faults injected into the SageMaker Runtime emulator,
 * calls through the gateway, attempts counted at the emulator. What is safe is retried and charged
 * once; a model's 5xx and a broken stream are not retried; no retry is made past the call's deadline;
 * a failing endpoint's retry budget runs out and its calls then fail fast with the mapped error.
 * Each scenario has an endpoint of its own, so one's retries never spend another's budget.
 */
import { CALLS_PER_RETRY, RETRY_BURST } from "@atrium/functions/lib/retry-budget";
import type { Platform } from "@atrium/local/platform";
import type { Fault } from "@atrium/local/sagemaker-emulator";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { errorOf, type Json, json } from "../support/http";
import { startTestPlatformWith, stopTestPlatform } from "../support/platform";
import {
  onboard,
  openaiFor,
  postChat,
  settledUsageOf,
  sseData,
  type TestTenant,
  todaysLedger,
} from "../support/tenant-calls";

const SCENARIOS = [
  "throttled",
  "model-error",
  "dependency",
  "overloaded",
  "stream-throttled",
  "stream-broken",
  "deadline",
  "budget",
] as const;
type Scenario = (typeof SCENARIOS)[number];

const modelOf = (scenario: Scenario) => `retry-${scenario}`;
const endpointOf = (scenario: Scenario) => `atrium-retry-${scenario}`;

// Before the handlers are imported (on the first call): Powertools reads this once, as at a cold start.
process.env.POWERTOOLS_METRICS_DISABLED = "false";

let platform: Platform;
let dataDir: string;
/** The handlers' stdout: their EMF documents. */
const written: string[] = [];

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatformWith({
    sharedEndpoints: SCENARIOS.map((scenario) => ({
      model: modelOf(scenario),
      endpointName: endpointOf(scenario),
      instanceType: "ml.g5.xlarge",
      instanceCount: 1,
    })),
  }));
  // After the platform: it would otherwise take the EMF lines for its CloudWatch before the spy saw them.
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
});

afterAll(async () => {
  vi.restoreAllMocks();
  await stopTestPlatform(platform, dataDir);
});

type Emf = Record<string, unknown> & {
  _aws: { CloudWatchMetrics: { Dimensions: string[][]; Metrics: { Name: string }[] }[] };
};

/** The EMF documents written since `from` (an index into `written`). */
const emfSince = (from: number): Emf[] =>
  written
    .slice(from)
    .flatMap((chunk) => chunk.split("\n"))
    .filter((line) => line.startsWith("{") && line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Emf);

/** A metric's total over documents (a document holds one value or a list of them). */
const total = (documents: Emf[], name: string): number =>
  documents
    .filter((emf) => emf._aws.CloudWatchMetrics[0]?.Metrics.some((m) => m.Name === name))
    .flatMap((emf) => [emf[name]].flat() as number[])
    .reduce((sum, value) => sum + value, 0);

/** The calls that reached the scenario's endpoint while `act` ran: the first attempt and every retry. */
async function attempts<T>(
  scenario: Scenario,
  act: () => Promise<T>,
): Promise<{ result: T; attempts: number }> {
  const before = platform.sagemaker.invocations(endpointOf(scenario)).length;
  const result = await act();
  return { result, attempts: platform.sagemaker.invocations(endpointOf(scenario)).length - before };
}

const inject = (scenario: Scenario, fault: Fault) =>
  platform.sagemaker.injectFault(endpointOf(scenario), fault);

const chatBody = (scenario: Scenario, extra: Record<string, unknown> = {}) => ({
  model: modelOf(scenario),
  messages: [{ role: "user", content: "retry me" }],
  max_tokens: 12,
  ...extra,
});

/** The call was admitted and settled once: one ledger request, charged `tokens`. */
async function chargedOnce(tenant: TestTenant, tokens: number): Promise<void> {
  expect(await settledUsageOf(platform, tenant.apiKey)).toBe(tokens);
  await expect
    .poll(async () => (await todaysLedger(platform, tenant.id))[0]?.counters.requests, { interval: 20 })
    .toBe(1);
  const [entry, ...more] = await todaysLedger(platform, tenant.id);
  expect(more).toEqual([]);
  expect(entry?.counters).toMatchObject({ requests: 1, tokens });
}

describe("a failure that cannot have run the model", () => {
  it("is retried after a throttle, answered 200 to a client that does not retry, and charged once", async () => {
    const tenant = await onboard(platform);
    inject("throttled", { error: "ThrottlingException", times: 1 });
    const { result, attempts: made } = await attempts("throttled", () =>
      openaiFor(platform, tenant.apiKey).chat.completions.create({
        model: modelOf("throttled"),
        messages: [{ role: "user", content: "retry me" }],
        max_tokens: 12,
      }),
    );
    expect(made).toBe(2);
    expect(result.choices[0]?.message.content).toEqual(expect.any(String));
    await chargedOnce(tenant, result.usage?.total_tokens ?? -1);
  });

  it("is retried after an InternalDependencyException (530), on the raw invocations route", async () => {
    const tenant = await onboard(platform);
    inject("dependency", { error: "InternalDependencyException", times: 1 });
    const { result, attempts: made } = await attempts("dependency", () =>
      fetch(`${platform.gatewayUrl}/v1/models/${modelOf("dependency")}/invocations`, {
        method: "POST",
        headers: { authorization: `Bearer ${tenant.apiKey}`, "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 12 }),
      }),
    );
    expect(result.status).toBe(200);
    expect(made).toBe(2);
    const reply: Json = await json(result);
    await chargedOnce(tenant, reply.usage.total_tokens);
  });

  it("says so when the retries are spent: a model's 429 three times is a 429 to retry later, refunded", async () => {
    const tenant = await onboard(platform);
    inject("overloaded", { error: "ModelError", originalStatusCode: 429, times: 3 });
    const { result, attempts: made } = await attempts("overloaded", () =>
      postChat(platform, tenant.apiKey, chatBody("overloaded")),
    );
    expect(made).toBe(3);
    expect(result.status).toBe(429);
    expect(result.headers.get("retry-after")).toBe("1");
    expect(result.headers.get("x-should-retry")).toBe("true");
    const error = await errorOf(result);
    expect(error).toMatchObject({ type: "api_error", code: "model_overloaded", param: null });
    expect(error.message).toContain("Atrium retried the call 2 times");
    expect(await settledUsageOf(platform, tenant.apiKey)).toBe(0);
  });

  it("is retried before a stream's first byte, and the stream is charged once", async () => {
    const tenant = await onboard(platform);
    inject("stream-throttled", { error: "ThrottlingException", times: 1 });
    const { result, attempts: made } = await attempts("stream-throttled", async () => {
      const response = await postChat(
        platform,
        tenant.apiKey,
        chatBody("stream-throttled", { stream: true, stream_options: { include_usage: true } }),
      );
      return { status: response.status, events: sseData(await response.text()) };
    });
    expect(result.status).toBe(200);
    expect(made).toBe(2);
    expect(result.events.at(-1)).toBe("[DONE]");
    const usage = JSON.parse(result.events.at(-2) ?? "{}").usage;
    await chargedOnce(tenant, usage.total_tokens);
  });
});

describe("a failure that may have run the model", () => {
  it("is not retried when the model answered 500: 502 model_error, not to retry, refunded", async () => {
    const tenant = await onboard(platform);
    inject("model-error", { error: "ModelError", times: 1 });
    const { result, attempts: made } = await attempts("model-error", () =>
      postChat(platform, tenant.apiKey, chatBody("model-error")),
    );
    expect(made).toBe(1);
    expect(result.status).toBe(502);
    expect(result.headers.get("x-should-retry")).toBe("false");
    const error = await errorOf(result);
    expect(error).toMatchObject({ type: "api_error", code: "model_error" });
    expect(error.message).not.toContain("retried");
    expect(await settledUsageOf(platform, tenant.apiKey)).toBe(0);
  });

  it("is not retried once a stream has sent its first part: the stream ends with an error event", async () => {
    const tenant = await onboard(platform);
    inject("stream-broken", { streamError: "ModelStreamError", afterParts: 3, times: 1 });
    const { result, attempts: made } = await attempts("stream-broken", async () => {
      const response = await postChat(platform, tenant.apiKey, chatBody("stream-broken", { stream: true }));
      return { status: response.status, events: sseData(await response.text()) };
    });
    expect(result.status).toBe(200);
    expect(made).toBe(1);
    expect(JSON.parse(result.events.at(-1) ?? "{}")).toMatchObject({ error: { code: "model_error" } });
  });
});

describe("the call's deadline", () => {
  it("is never passed: a throttle asking for a wait longer than the call has left is answered, not retried", async () => {
    const tenant = await onboard(platform);
    inject("deadline", { error: "ThrottlingException", retryAfterSeconds: 60, times: 1 });
    const { result, attempts: made } = await attempts("deadline", () =>
      postChat(platform, tenant.apiKey, chatBody("deadline")),
    );
    expect(made).toBe(1);
    // Atrium's own answer, with the wait SageMaker asked for, not a 504 from the deadline or the gateway.
    expect(result.status).toBe(429);
    expect(result.headers.get("retry-after")).toBe("60");
    const error = await errorOf(result);
    expect(error.code).toBe("endpoint_throttled");
    expect(error.message).toContain("would not end before the call's deadline");
    expect(await settledUsageOf(platform, tenant.apiKey)).toBe(0);
  });
});

describe("the endpoint's retry budget", () => {
  it("runs out under an endpoint that keeps failing: later calls fail fast with the mapped error", async () => {
    const tenant = await onboard(platform);
    inject("budget", { error: "ThrottlingException" });
    const calls = 20;
    const emfFrom = written.length;
    const outcomes: { attempts: number; status: number; code: string; message: string }[] = [];
    for (let i = 0; i < calls; i++) {
      const { result, attempts: made } = await attempts("budget", () =>
        postChat(platform, tenant.apiKey, chatBody("budget")),
      );
      const error = await errorOf(result);
      outcomes.push({ attempts: made, status: result.status, code: error.code, message: error.message });
    }
    platform.sagemaker.clearFaults(endpointOf("budget"));

    expect(outcomes.every((o) => o.status === 429 && o.code === "endpoint_throttled")).toBe(true);
    // The first call, on a full budget, gets both its retries.
    expect(outcomes[0]?.attempts).toBe(3);
    const retries = outcomes.reduce((sum, o) => sum + o.attempts - 1, 0);
    expect(retries).toBeGreaterThanOrEqual(RETRY_BURST);
    expect(retries).toBeLessThanOrEqual(RETRY_BURST + calls / CALLS_PER_RETRY);
    // Once it is spent, calls go to the endpoint once and say why they were not retried.
    const fast = outcomes.filter((o) => o.attempts === 1);
    expect(fast.length).toBeGreaterThanOrEqual(calls - RETRY_BURST - calls / CALLS_PER_RETRY);
    for (const o of fast) expect(o.message).toContain("failed too often lately");

    // Counted per service, the tenant id as metadata only (docs/metrics.md): every retry, every refusal.
    const documents = emfSince(emfFrom);
    expect(total(documents, "ModelRetries")).toBe(retries);
    expect(total(documents, "RetryBudgetExhausted")).toBe(
      calls - outcomes.filter((o) => o.attempts === 3).length,
    );
    for (const emf of documents.filter((d) => "ModelRetries" in d || "RetryBudgetExhausted" in d)) {
      expect(emf._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([["service"]]);
      expect(emf.tenantId).toBe(tenant.id);
    }

    // The endpoint recovered: the next call is answered.
    expect((await postChat(platform, tenant.apiKey, chatBody("budget"))).status).toBe(200);
  });
});
