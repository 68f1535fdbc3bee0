/**
 * The usage ledger (docs/adr/0010) on the local platform: a known set of calls (buffered, streamed,
 * raw, a failure, refusals, two tenants) is recorded exactly, per tenant, day and model, by the
 * calls' settles; each admitted call adds one ledger write.
 */

import { dayOf, hourOf } from "@atrium/core/usage-ledger";
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import { json } from "../support/http";
import { adminCall, useTestPlatform } from "../support/platform";
import { todaysLedger } from "../support/tenant-calls";

let platform: Platform;
useTestPlatform((started) => {
  platform = started;
});

const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";

async function tenant(name: string, limits: Record<string, number> = {}) {
  const { status, body } = await adminCall(platform, "POST", "/admin/tenants", { name, tier: "pro", limits });
  expect(status).toBe(201);
  const openai = new OpenAI({ apiKey: body.apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 0 });
  return { id: body.tenant.id as string, apiKey: body.apiKey as string, openai };
}

describe("the usage ledger", () => {
  it("records each tenant's calls by day and model: requests, tokens and their split, routes, errors", async () => {
    const a = await tenant("ledger-a");
    const b = await tenant("ledger-b");
    const messages = [{ role: "user" as const, content: "count me" }];
    const first = await a.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 10 });
    const second = await a.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 20 });
    const stream = await a.openai.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 15,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = 0;
    for await (const chunk of stream) streamed = chunk.usage?.total_tokens ?? streamed;
    platform.sagemaker.injectFault(ENDPOINT, { error: "ModelError", times: 1 });
    await expect(a.openai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({
      status: 502,
    });
    const other = await b.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 5 });

    const calls = [first, second].map((c) => c.usage);
    const tokens = (calls[0]?.total_tokens ?? 0) + (calls[1]?.total_tokens ?? 0) + streamed;
    // A stream settles (and records) after its last byte: wait until all four calls are in.
    await expect
      .poll(async () => (await todaysLedger(platform, a.id))[0]?.counters.requests, { interval: 20 })
      .toBe(4);
    const [entry, ...more] = await todaysLedger(platform, a.id);
    expect(more).toEqual([]);
    expect(entry).toEqual({
      hour: hourOf(Date.now()),
      model: MODEL,
      counters: {
        requests: 4,
        tokens,
        promptTokens: expect.any(Number),
        completionTokens: expect.any(Number),
        errors: 1,
        sharedCalls: 4,
      },
    });
    // The streamed call's split is the model's own usage chunk, as the buffered calls' is their usage.
    const promptTokens = (calls[0]?.prompt_tokens ?? 0) + (calls[1]?.prompt_tokens ?? 0);
    expect(entry?.counters.promptTokens).toBeGreaterThan(promptTokens);
    expect((entry?.counters.promptTokens ?? 0) + (entry?.counters.completionTokens ?? 0)).toBe(tokens);
    // The other tenant's call is in its own partition only.
    expect(await todaysLedger(platform, b.id)).toEqual([
      {
        hour: hourOf(Date.now()),
        model: MODEL,
        counters: {
          requests: 1,
          tokens: other.usage?.total_tokens,
          promptTokens: other.usage?.prompt_tokens,
          completionTokens: other.usage?.completion_tokens,
          sharedCalls: 1,
        },
      },
    ]);
  });

  it("counts refusals by reason with the tenant's next ledger write", async () => {
    const c = await tenant("ledger-refused", { requestsPerMinute: 2, burst: 2 });
    const messages = [{ role: "user" as const, content: "again" }];
    await c.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 5 });
    await c.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 5 });
    for (let i = 0; i < 3; i++) {
      await expect(c.openai.chat.completions.create({ model: MODEL, messages })).rejects.toMatchObject({
        status: 429,
      });
    }
    // Refusals wait in the container until the tenant's next write: none has come yet.
    expect((await todaysLedger(platform, c.id))[0]?.counters.refusedRequests).toBeUndefined();
    // The two requests the old limit counts (a minute of it) are 200 ms at 600/min: admitted at once.
    await adminCall(platform, "PATCH", `/admin/tenants/${c.id}`, {
      limits: { requestsPerMinute: 600, burst: 10 },
    });
    await c.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 5 });
    const [entry] = await todaysLedger(platform, c.id);
    expect(entry?.counters).toMatchObject({ requests: 3, refusedRequests: 3 });
  });
});

describe("GET /v1/usage with start: the caller's buckets from the ledger", () => {
  const usageBuckets = (apiKey: string, query: string) =>
    fetch(`${platform.gatewayUrl}/v1/usage?${query}`, { headers: { authorization: `Bearer ${apiKey}` } });

  it("answers the calling tenant's own day and hour buckets, grouped by model, and nobody else's", async () => {
    const d = await tenant("buckets-d");
    const e = await tenant("buckets-e");
    const messages = [{ role: "user" as const, content: "bucket me" }];
    const mine = await d.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 8 });
    await e.openai.chat.completions.create({ model: MODEL, messages, max_tokens: 30 });
    const today = dayOf(Date.now());

    const response = await usageBuckets(d.apiKey, `start=${today}&bucket=day&group_by=model`);
    expect(response.status).toBe(200);
    const page = await json(response);
    const dayStart = Date.parse(`${today}T00:00:00Z`) / 1000;
    expect(page).toEqual({
      object: "page",
      data: [
        {
          object: "bucket",
          start_time: dayStart,
          end_time: dayStart + 86_400,
          results: [
            {
              object: "usage.result",
              model: MODEL,
              num_model_requests: 1,
              input_tokens: mine.usage?.prompt_tokens,
              output_tokens: mine.usage?.completion_tokens,
              tokens: mine.usage?.total_tokens,
              errors: 0,
              refused: {},
              shared_calls: 1,
              dedicated_calls: 0,
            },
          ],
        },
      ],
      has_more: false,
      next_page: null,
    });

    // Hourly over the last three hours: every bucket is there, only this hour's has a result.
    const now = Math.floor(Date.now() / 1000);
    const hourly = await json(
      await usageBuckets(d.apiKey, `start=${now - 2 * 3600}&end=${now + 1}&bucket=hour`),
    );
    expect(hourly.data).toHaveLength(3);
    expect(hourly.data.slice(0, 2).map((b: { results: unknown[] }) => b.results)).toEqual([[], []]);
    expect(hourly.data[2].results[0]).toMatchObject({ model: null, num_model_requests: 1 });
  });

  it("is a 400 naming the parameter for a bad range or value", async () => {
    const f = await tenant("buckets-f");
    for (const [query, param] of [
      ["bucket=day", "start"],
      ["start=yesterday", "start"],
      ["start=2026-01-01&bucket=week", "bucket"],
      ["start=2026-01-01&group_by=tenant", "group_by"],
      ["start=2026-01-01&end=2026-06-01", "end"],
      ["start=2026-02-01&end=2026-01-01", "end"],
    ] as const) {
      const response = await usageBuckets(f.apiKey, query);
      expect(response.status, query).toBe(400);
      expect((await json(response)).error.param, query).toBe(param);
    }
  });
});
