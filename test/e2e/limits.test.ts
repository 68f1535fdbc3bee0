/**
 * Limits through the local gateway, the real handlers and dynalite: exact refusals with OpenAI's
 * 429s and headers, the official client's retries, a noisy neighbour, budget, concurrency, usage.
 */
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateApiKey } from "@atrium/core/api-key";
import { newTenant } from "@atrium/core/tenant";
import type { AccessLogEntry } from "@atrium/local/gateway";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, json } from "../support/http";
import { adminCall, startTestPlatform, stopTestPlatform } from "../support/platform";

let platform: Platform;
let dataDir: string;
const access: AccessLogEntry[] = [];
const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";

function tier(limits: Record<string, number>, maxTokens = { default: 50, cap: 200 }) {
  return {
    tenancy: "pool",
    limits: {
      requestsPerMinute: 6000,
      tokensPerMinute: 1_000_000,
      concurrency: 100,
      monthlyTokens: 10_000_000,
      ...limits,
    },
    maxTokens,
    limiterFailMode: "closed",
  };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "atrium-limits-"));
  const base = JSON.parse(await readFile(join(REPO_ROOT, "config/local.json"), "utf8"));
  const config = {
    ...base,
    tiers: {
      ...base.tiers,
      flood: tier({ requestsPerMinute: 5 }),
      slow: tier({ requestsPerMinute: 60, burst: 1 }),
      metered: tier({ monthlyTokens: 400 }),
      narrow: tier({ concurrency: 2 }),
      roomy: tier({}),
      small: tier({ tokensPerMinute: 100 }, { default: 50, cap: 200 }),
    },
  };
  const configFile = join(dataDir, "config.json");
  await writeFile(configFile, JSON.stringify(config));
  ({ platform } = await startTestPlatform({ configFile, onAccess: (e) => access.push(e) }, dataDir));
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
});

/** Onboards straight through the tenant store: these tests are about limits, not the admin API. */
async function tenant(tierName: string): Promise<{ id: string; apiKey: string }> {
  const created = newTenant({ name: `Tenant ${tierName}`, tier: tierName }, platform.config);
  const key = generateApiKey();
  await platform.tenantStore.create(created, key);
  return { id: created.id, apiKey: key.plaintext };
}

function chat(apiKey: string, extra: Record<string, unknown> = {}) {
  return fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }], ...extra }),
  });
}

async function usage(apiKey: string) {
  return json(
    await fetch(`${platform.gatewayUrl}/v1/usage`, { headers: { authorization: `Bearer ${apiKey}` } }),
  );
}

describe("OpenAI's rate-limit headers", () => {
  it("come with every limited response", async () => {
    const { apiKey } = await tenant("slow");
    const response = await chat(apiKey);
    expect(response.status).toBe(200);
    expect(
      Object.fromEntries([...response.headers].filter(([name]) => name.startsWith("x-ratelimit"))),
    ).toEqual({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-limit-tokens": "1000000",
      "x-ratelimit-remaining-tokens": expect.stringMatching(/^\d+$/),
      "x-ratelimit-reset-tokens": expect.stringMatching(/^\d+ms$/),
    });
  });
});

describe("a flood", () => {
  it("admits exactly the burst, answers the rest with OpenAI 429s, and leaves a neighbour untouched", async () => {
    const noisy = await tenant("flood");
    const neighbour = await tenant("roomy");
    const [floodResponses, neighbourResponses] = await Promise.all([
      Promise.all(Array.from({ length: 25 }, () => chat(noisy.apiKey))),
      Promise.all(Array.from({ length: 10 }, () => chat(neighbour.apiKey))),
    ]);

    const statuses = floodResponses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(20);
    const refused = floodResponses.find((r) => r.status === 429) as Response;
    expect(await errorOf(refused)).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get("retry-after-ms"))).toBeGreaterThan(0);
    expect(refused.headers.get("x-ratelimit-remaining-requests")).toBe("0");

    expect(neighbourResponses.map((r) => r.status)).toEqual(Array(10).fill(200));
  });
});

describe("the official openai client", () => {
  it("waits as told by retry-after-ms and then succeeds", async () => {
    const { apiKey } = await tenant("slow");
    const openai = new OpenAI({ apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 2 });
    await openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "one" }] });
    const before = access.length;
    const second = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "two" }],
    });
    expect(second.choices[0]?.message.content).toContain("two");
    const attempts = access
      .slice(before)
      .filter((e) => e.path === "/v1/chat/completions")
      .map((e) => e.status);
    expect(attempts).toEqual([429, 200]);
  });

  it("does not retry a spent monthly budget (insufficient_quota, x-should-retry: false)", async () => {
    const { apiKey } = await tenant("metered");
    let status = 200;
    let last: Response | undefined;
    for (let i = 0; i < 20 && status === 200; i++) {
      last = await chat(apiKey);
      status = last.status;
    }
    expect(status).toBe(429);
    expect(await errorOf(last as Response)).toMatchObject({
      type: "insufficient_quota",
      code: "insufficient_quota",
    });
    expect(last?.headers.get("x-should-retry")).toBe("false");

    const openai = new OpenAI({ apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 2 });
    const before = access.length;
    await expect(
      openai.chat.completions.create({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
    ).rejects.toBeInstanceOf(OpenAI.RateLimitError);
    expect(access.slice(before).filter((e) => e.path === "/v1/chat/completions")).toHaveLength(1);
  });
});

describe("the monthly budget and usage", () => {
  it("settles the model's actual usage, and GET /v1/usage reports it", async () => {
    const { id, apiKey } = await tenant("roomy");
    let total = 0;
    for (const content of ["a short one", "and a somewhat longer question for the model"]) {
      const completion = await json(await chat(apiKey, { messages: [{ role: "user", content }] }));
      total += completion.usage.total_tokens;
    }
    const report = await usage(apiKey);
    expect(report).toMatchObject({
      object: "usage",
      tenant_id: id,
      tier: "roomy",
      month: new Date().toISOString().slice(0, 7),
      tokens_used: total,
      tokens_remaining: 10_000_000 - total,
      in_flight: 0,
      limits: { requests_per_minute: 6000, monthly_tokens: 10_000_000, concurrency: 100 },
    });
  });

  it("refunds a call the model failed", async () => {
    const { apiKey } = await tenant("roomy");
    await chat(apiKey);
    const before = (await usage(apiKey)).tokens_used;
    platform.sagemaker.injectFault(ENDPOINT, { error: "ModelError", times: 1 });
    const failed = await chat(apiKey);
    expect(failed.status).toBe(502);
    expect((await usage(apiKey)).tokens_used).toBe(before);
  });

  it("never lets the settled month exceed the budget", async () => {
    const { apiKey } = await tenant("metered");
    const results = await Promise.all(Array.from({ length: 30 }, () => chat(apiKey)));
    const settled = await Promise.all(
      results.filter((r) => r.status === 200).map(async (r) => (await json(r)).usage.total_tokens as number),
    );
    const report = await usage(apiKey);
    expect(report.tokens_used).toBe(settled.reduce((a, b) => a + b, 0));
    expect(report.tokens_used).toBeLessThanOrEqual(400);
  });
});

describe("concurrency and request size", () => {
  it("admits at most the concurrency limit in flight", async () => {
    const { apiKey } = await tenant("narrow");
    platform.sagemaker.injectFault(ENDPOINT, { latencyMs: 300, times: 2 });
    const responses = await Promise.all(Array.from({ length: 6 }, () => chat(apiKey)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 429, 429, 429, 429]);
    expect((await usage(apiKey)).in_flight).toBe(0);
  });

  it("refuses max_tokens above the tier's cap and requests larger than the tokens-per-minute limit", async () => {
    const { apiKey } = await tenant("small");
    const tooMany = await chat(apiKey, { max_tokens: 201 });
    expect(tooMany.status).toBe(400);
    expect(await errorOf(tooMany)).toMatchObject({ code: "max_tokens_too_large", param: "max_tokens" });
    const tooBig = await chat(apiKey, { max_tokens: 150 });
    expect(tooBig.status).toBe(400);
    expect((await errorOf(tooBig)).code).toBe("request_exceeds_token_limit");
  });
});

describe("per-tenant overrides", () => {
  async function patch(tenantId: string, body: unknown) {
    expect((await adminCall(platform, "PATCH", `/admin/tenants/${tenantId}`, body)).status).toBe(200);
  }

  it("an admin override of requests per minute holds from the next call", async () => {
    const { id, apiKey } = await tenant("roomy");
    await patch(id, { limits: { requestsPerMinute: 3 } });
    const statuses = (await Promise.all(Array.from({ length: 12 }, () => chat(apiKey)))).map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect((await usage(apiKey)).limits).toMatchObject({ requests_per_minute: 3, burst: 3 });
  });

  it("a hot tenant's limiter split over shards never admits more than the whole limit", async () => {
    const { id, apiKey } = await tenant("roomy");
    await patch(id, { limits: { requestsPerMinute: 4 }, limiterShards: 2 });
    const statuses = (await Promise.all(Array.from({ length: 24 }, () => chat(apiKey)))).map((r) => r.status);
    const admitted = statuses.filter((s) => s === 200).length;
    expect(admitted).toBeLessThanOrEqual(4);
    expect(admitted).toBeGreaterThanOrEqual(2);
    expect(statuses.filter((s) => s === 429)).toHaveLength(24 - admitted);
  });
});
