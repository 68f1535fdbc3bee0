/**
 * Limits through the local gateway, the real handlers and the local DynamoDB: exact refusals with
 * OpenAI's 429s and headers, the official client's retries, a noisy neighbour, budget, concurrency,
 * usage, and raw invocations bounded whatever their body (the reproductions), including
 * through a model container that reports what the test tells it to.
 */

import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateApiKey } from "@atrium/core/api-key";
import type { LimitOverrides } from "@atrium/core/config";
import { limiterKey } from "@atrium/core/limiter-item";
import { newTenant } from "@atrium/core/tenant";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import type { AccessLogEntry } from "@atrium/local/gateway";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { errorOf, json } from "../support/http";
import { adminCall, startTestPlatform, stopTestPlatform } from "../support/platform";

let platform: Platform;
let dataDir: string;
const access: AccessLogEntry[] = [];
const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";
/** A shared endpoint forwarded to the test's own model container (the SageMaker container contract). */
const CONTAINER_MODEL = "test-container";

interface ContainerCall {
  contentType: string;
  body: Buffer;
}
interface ContainerReply {
  contentType?: string;
  body: unknown;
}
const received: ContainerCall[] = [];
const noUsage = async (): Promise<ContainerReply> => ({ body: [{ generated_text: "ok" }] });
let respond: (call: ContainerCall) => Promise<ContainerReply> = noUsage;
let container: Server;

function tier(limits: Record<string, number>, maxTokens = { default: 50, cap: 200 }, rawCallTokens = 1024) {
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
    rawCallTokens,
    limiterFailMode: "closed",
  };
}

beforeAll(async () => {
  container = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.url === "/ping") return void res.end();
    const call = { contentType: req.headers["content-type"] ?? "", body: Buffer.concat(chunks) };
    received.push(call);
    const reply = await respond(call);
    res.writeHead(200, { "content-type": reply.contentType ?? "application/json" });
    res.end(typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body));
  });
  await new Promise<void>((resolve) => container.listen(0, "127.0.0.1", resolve));
  const containerUrl = `http://127.0.0.1:${(container.address() as AddressInfo).port}`;

  dataDir = await mkdtemp(join(tmpdir(), "atrium-limits-"));
  const base = JSON.parse(await readFile(join(REPO_ROOT, "config/local.json"), "utf8"));
  const config = {
    ...base,
    sharedEndpoints: [
      ...base.sharedEndpoints,
      { model: CONTAINER_MODEL, endpointName: "atrium-shared-test-container", containerUrl },
    ],
    tiers: {
      ...base.tiers,
      flood: tier({ requestsPerMinute: 5 }),
      slow: tier({ requestsPerMinute: 60, burst: 1 }),
      metered: tier({ monthlyTokens: 400 }),
      narrow: tier({ concurrency: 2 }),
      roomy: tier({}),
      small: tier({ tokensPerMinute: 100 }, { default: 50, cap: 200 }),
      raw: tier({}, { default: 50, cap: 200 }, 100),
    },
  };
  const configFile = join(dataDir, "config.json");
  await writeFile(configFile, JSON.stringify(config));
  ({ platform } = await startTestPlatform({ configFile, onAccess: (e) => access.push(e) }, dataDir));
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  await new Promise((resolve) => container?.close(resolve));
});

beforeEach(() => {
  respond = noUsage;
});

/** Onboards straight through the tenant store: these tests are about limits, not the admin API. */
async function tenant(tierName: string, limits?: LimitOverrides): Promise<{ id: string; apiKey: string }> {
  const created = newTenant({ name: `Tenant ${tierName}`, tier: tierName, limits }, platform.config);
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

/** The tenant's usage once every call answered so far has settled (settles run after the response). */
async function usage(apiKey: string) {
  await platform.gateway.idle();
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
    // Each call settles (after its response) before the next: a refusal then means the budget is
    // below a call's reservation, not that the last call's reservation was still unsettled.
    for (let i = 0; i < 20 && status === 200; i++) {
      last = await chat(apiKey);
      status = last.status;
      if (status === 200) await platform.gateway.idle();
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
    // A slot frees when a call ends, in about a second here: not the 60 s a lease lives.
    const refused = responses.find((r) => r.status === 429) as Response;
    expect(await errorOf(refused)).toMatchObject({
      message: expect.stringMatching(/^Too many calls in flight at once: limit 2\./),
    });
    expect([refused.headers.get("retry-after"), refused.headers.get("retry-after-ms")]).toEqual([
      "1",
      "1000",
    ]);
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

describe("refusals name what limited them", () => {
  it("a tokens-per-minute refusal is labelled tokens, also when the container refuses it from its cache", async () => {
    const { apiKey } = await tenant("small");
    expect((await chat(apiKey, { max_tokens: 60 })).status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const refused = await chat(apiKey, { max_tokens: 60 });
      expect(refused.status).toBe(429);
      const error = await errorOf(refused);
      expect(error).toMatchObject({ type: "tokens", code: "rate_limit_exceeded" });
      expect(error.message).toMatch(
        /^Rate limit reached for tokens per minute \(TPM\): limit 100, this call reserves 82\./,
      );
    }
  });

  it("a sharded tenant is refused for budget only when the whole month has less left than the call needs", async () => {
    const { id, apiKey } = await tenant("metered");
    expect((await adminCall(platform, "PATCH", `/admin/tenants/${id}`, { limiterShards: 4 })).status).toBe(
      200,
    );
    let last: Response | undefined;
    for (let i = 0; i < 40; i++) {
      last = await chat(apiKey);
      if (last.status !== 200) break;
      await last.body?.cancel();
      await platform.gateway.idle();
    }
    expect(last?.status).toBe(429);
    // The call reserves 22 (prompt bound of "user" + "hi") + 50 (max_tokens): refused only below 72 left.
    const { tokens_remaining: left } = await usage(apiKey);
    expect(left).toBeLessThan(72);
    expect(await errorOf(last as Response)).toMatchObject({
      code: "insufficient_quota",
      message: `This tenant's monthly budget of 400 tokens has ${left} left, fewer than the 72 this call reserves; it renews at the start of next month (UTC).`,
    });
  });
});

describe("raw invocations are bounded whatever the body (the issue's reproductions)", () => {
  // Tenant F of the issue: --rpm 10 --tpm 2000 --concurrency 2 --monthly-tokens 1000.
  const F = { requestsPerMinute: 10, tokensPerMinute: 2000, concurrency: 2, monthlyTokens: 1000 };

  function invoke(apiKey: string, model: string, body: string | Buffer, contentType: string) {
    return fetch(`${platform.gatewayUrl}/v1/models/${model}/invocations`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": contentType },
      body,
    });
  }
  const lastReceived = () => received[received.length - 1] as ContainerCall;

  it("a chat body sent as multipart/x+json is read as JSON: a 3,000-word prompt is refused, not charged 3,037 of 1,000", async () => {
    const f = await tenant("raw", F);
    const prompt = Array.from({ length: 3000 }, (_, i) => `word${i % 97}`).join(" ");
    const big = await invoke(
      f.apiKey,
      MODEL,
      JSON.stringify({ messages: [{ role: "user", content: prompt }] }),
      "multipart/x+json",
    );
    expect(big.status).toBe(400);
    expect(await errorOf(big)).toMatchObject({ code: "request_exceeds_token_limit" });
    expect((await usage(f.apiKey)).tokens_used).toBe(0);

    // A short one is answered, with max_tokens written in, and charged what the model reports.
    const short = await invoke(
      f.apiKey,
      MODEL,
      JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      "multipart/x+json",
    );
    expect(short.status).toBe(200);
    const completion = await json(short);
    expect((await usage(f.apiKey)).tokens_used).toBe(completion.usage.total_tokens);
    const sent = await invoke(
      f.apiKey,
      CONTAINER_MODEL,
      JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      "multipart/x+json",
    );
    expect(sent.status).toBe(200);
    expect(JSON.parse(lastReceived().body.toString())).toEqual({
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 50,
    });
  });

  it("a TGI body asking for 100,000 new tokens as image/x+json is a 400 naming the field, six times, and reaches no model", async () => {
    const f = await tenant("raw", F);
    const before = received.length;
    for (let i = 0; i < 6; i++) {
      const body = JSON.stringify({ inputs: "tell me everything", parameters: { max_new_tokens: 100000 } });
      const refused = await invoke(f.apiKey, CONTAINER_MODEL, body, "image/x+json");
      expect(refused.status).toBe(400);
      expect(await errorOf(refused)).toMatchObject({
        code: "max_tokens_too_large",
        param: "parameters.max_new_tokens",
      });
    }
    expect(received.length).toBe(before);
    expect((await usage(f.apiKey)).tokens_used).toBe(0);
  });

  it("a TGI body within the cap gets the bound and details, and is charged its prompt bound plus the tokens generated", async () => {
    const f = await tenant("raw", F);
    respond = async () => ({
      body: [{ generated_text: "a b c", details: { finish_reason: "length", generated_tokens: 7 } }],
    });
    const answered = await invoke(
      f.apiKey,
      CONTAINER_MODEL,
      JSON.stringify({ inputs: "hello there" }),
      "IMAGE/X+JSON; q=1",
    );
    expect(answered.status).toBe(200);
    const sent = lastReceived();
    expect(JSON.parse(sent.body.toString())).toEqual({
      inputs: "hello there",
      parameters: { max_new_tokens: 50, details: true },
    });
    // Reserved: the body's bytes + 16 (prompt bound) + 50; charged: the same prompt bound + 7 generated.
    expect((await usage(f.apiKey)).tokens_used).toBe(sent.body.length + 16 + 7);
  });

  it("a small max_tokens cannot hide a large max_new_tokens, and length fields must be positive integers", async () => {
    const f = await tenant("raw", F);
    const cases: [string, string, string][] = [
      [
        '{"inputs":"hi","max_tokens":1,"parameters":{"max_new_tokens":100000}}',
        "max_tokens_too_large",
        "parameters.max_new_tokens",
      ],
      [
        '{"inputs":"hi","parameters":{"max_new_tokens":"100000"}}',
        "invalid_request",
        "parameters.max_new_tokens",
      ],
      ['{"messages":[{"role":"user","content":"hi"}],"max_tokens":12.5}', "invalid_request", "max_tokens"],
      [
        '{"messages":[{"role":"user","content":"hi"}],"max_completion_tokens":true}',
        "invalid_request",
        "max_completion_tokens",
      ],
    ];
    for (const [body, code, param] of cases) {
      const refused = await invoke(f.apiKey, CONTAINER_MODEL, body, "application/json");
      expect(refused.status, body).toBe(400);
      expect(await errorOf(refused)).toMatchObject({ code, param });
    }
    // The chat route reads the same fields the same way.
    for (const [extra, param] of [
      [{ max_tokens: "50" }, "max_tokens"],
      [{ max_new_tokens: 100000 }, "max_new_tokens"],
    ] as const) {
      const refused = await chat(f.apiKey, extra);
      expect(refused.status).toBe(400);
      expect((await errorOf(refused)).param).toBe(param);
    }
    expect((await usage(f.apiKey)).tokens_used).toBe(0);
  });

  it("a reply reporting more than was reserved is charged the reservation: reserving 100 and reporting 1,000 charges 100 of 400", async () => {
    const { apiKey } = await tenant("raw", { monthlyTokens: 400 });
    respond = async () => ({
      body: { usage: { prompt_tokens: 500, completion_tokens: 500, total_tokens: 1000 } },
    });
    // An image reserves the tier's rawCallTokens (100).
    const image = await invoke(
      apiKey,
      CONTAINER_MODEL,
      Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]),
      "image/jpeg",
    );
    expect(image.status).toBe(200);
    expect((await usage(apiKey)).tokens_used).toBe(100);

    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const response = await invoke(
        apiKey,
        CONTAINER_MODEL,
        JSON.stringify({ inputs: "hi" }),
        "application/json",
      );
      statuses.push(response.status);
      await response.body?.cancel();
      expect((await usage(apiKey)).tokens_used).toBeLessThanOrEqual(400);
    }
    expect(statuses).toContain(429);
    expect(statuses.every((status) => status === 200 || status === 429)).toBe(true);
  });

  it("a body Atrium cannot read, with a reply that reports nothing, is charged rawCallTokens", async () => {
    const { apiKey } = await tenant("raw", F);
    respond = async () => ({ contentType: "application/octet-stream", body: "\u0000\u0001" });
    const body = '{"inputs":"x","parameters":{"max_new_tokens":100000}}';
    const response = await invoke(apiKey, CONTAINER_MODEL, body, "text/plain");
    expect(response.status).toBe(200);
    expect(lastReceived().body.toString()).toBe(body);
    expect((await usage(apiKey)).tokens_used).toBe(100);
  });
});

describe("an erase while a call runs", () => {
  it("the call's late settle re-creates no limiter item", async () => {
    const { id, apiKey } = await tenant("roomy");
    let release = () => {};
    const arrived = new Promise<void>((resolve) => {
      respond = async () => {
        resolve();
        await new Promise<void>((done) => {
          release = done;
        });
        return { body: { usage: { total_tokens: 5 } } };
      };
    });
    const call = fetch(`${platform.gatewayUrl}/v1/models/${CONTAINER_MODEL}/invocations`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ inputs: "hi" }),
    });
    await arrived;
    expect((await adminCall(platform, "DELETE", `/admin/tenants/${id}?erase=true`)).status).toBe(200);
    release();
    expect((await call).status).toBe(200);
    // Its settle, after the response, must find nothing to write either.
    await platform.gateway.idle();

    const db = dynamoClientFor(platform.dynamodbUrl, { region: platform.config.region });
    const { Items } = await db.query({
      TableName: platform.limitsTable,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": limiterKey(id, 0).pk },
    });
    expect(Items).toEqual([]);
  });
});
