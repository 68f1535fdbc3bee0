/**
 * Idempotency-Key on tenant calls, through the local gateway: a retry replays the first answer and is
 * charged once (no second admission, no second model call); another body is 422; a retry while the
 * first is still running is 409 with retry-after; a failed call is not kept; tenants never share keys.
 */
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import { json } from "../support/http";
import { adminCall, scanTable, useTestPlatform } from "../support/platform";

const LLAMA = "llama-3.1-8b-instruct";
const SHARED = "atrium-shared-llama-8b";
let platform: Platform;

useTestPlatform((started) => {
  platform = started;
});

async function tenant(limits: Record<string, number> = {}): Promise<{ id: string; apiKey: string }> {
  const created = await adminCall(platform, "POST", "/admin/tenants", {
    name: "Retrier",
    tier: "pro",
    limits,
  });
  expect(created.status).toBe(201);
  return { id: created.body.tenant.id, apiKey: created.body.apiKey };
}

const chatBody = (content = "hello") =>
  JSON.stringify({ model: LLAMA, messages: [{ role: "user", content }], max_tokens: 16 });

function post(path: string, apiKey: string, body: string, key?: string, contentType = "application/json") {
  return fetch(`${platform.gatewayUrl}${path}`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${apiKey}`,
      "content-type": contentType,
      ...(key === undefined ? {} : { "idempotency-key": key }),
    },
    body,
  });
}

const chat = (apiKey: string, key?: string, content?: string) =>
  post("/v1/chat/completions", apiKey, chatBody(content), key);

async function tokensUsed(apiKey: string): Promise<number> {
  // Settles run after the response: read once every call answered so far has settled.
  await platform.gateway.idle();
  const usage = await fetch(`${platform.gatewayUrl}/v1/usage`, {
    headers: { authorization: `Bearer ${apiKey}` },
  });
  return (await json(usage)).tokens_used;
}

const modelCalls = () => platform.sagemaker.invocations(SHARED).length;

describe("a retried chat completion", () => {
  it("replays the first answer, charged once: no second model call, no second admission", async () => {
    // One request a minute: a second admission would be refused.
    const t = await tenant({ requestsPerMinute: 1, burst: 1 });
    const key = randomUUID();
    const calls = modelCalls();
    const first = await chat(t.apiKey, key);
    expect(first.status).toBe(200);
    const answer = await json(first);
    const used = await tokensUsed(t.apiKey);
    expect(used).toBe(answer.usage.total_tokens);

    const again = await chat(t.apiKey, key);
    expect(again.status).toBe(200);
    expect(await json(again)).toEqual(answer);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("x-atrium-route")).toBe("shared");
    expect(again.headers.get("x-ratelimit-limit-requests")).toBe("1");
    expect(modelCalls()).toBe(calls + 1);
    expect(await tokensUsed(t.apiKey)).toBe(used);
    // The limiter saw one call: a new request (no key) is over the limit.
    expect((await chat(t.apiKey)).status).toBe(429);
  });

  it("accepts the key as a structured-field string too: the same key, the same answer", async () => {
    const t = await tenant();
    const first = await json(await chat(t.apiKey, "order-4711"));
    const quoted = await chat(t.apiKey, '"order-4711"');
    expect(await json(quoted)).toEqual(first);
  });

  it("answers 422 for the same key with another body, and calls nothing", async () => {
    const t = await tenant();
    const key = randomUUID();
    expect((await chat(t.apiKey, key, "one")).status).toBe(200);
    const calls = modelCalls();
    const used = await tokensUsed(t.apiKey);
    const other = await chat(t.apiKey, key, "two");
    expect(other.status).toBe(422);
    expect((await json(other)).error).toEqual({
      message: expect.stringContaining("different request"),
      type: "invalid_request_error",
      param: "Idempotency-Key",
      code: "idempotency_key_reused",
    });
    expect(modelCalls()).toBe(calls);
    expect(await tokensUsed(t.apiKey)).toBe(used);
  });

  it("answers 409 with retry-after while the first is still running, then replays it", async () => {
    const t = await tenant();
    const key = randomUUID();
    platform.sagemaker.injectFault(SHARED, { latencyMs: 1500, times: 1 });
    const calls = modelCalls();
    const first = chat(t.apiKey, key);
    // Condition, not time: the first call has reached the model.
    while (modelCalls() === calls) await new Promise((resolve) => setTimeout(resolve, 20));
    const during = await chat(t.apiKey, key);
    expect(during.status).toBe(409);
    expect(during.headers.get("retry-after")).toBe("1");
    expect((await json(during)).error).toMatchObject({
      type: "conflict_error",
      code: "idempotency_key_in_use",
    });
    const answer = await first;
    expect(answer.status).toBe(200);
    const body = await json(answer);
    expect(await json(await chat(t.apiKey, key))).toEqual(body);
    expect(modelCalls()).toBe(calls + 1);
  });

  it("does not keep a failure: the same key and body run again", async () => {
    const t = await tenant();
    const key = randomUUID();
    platform.sagemaker.injectFault(SHARED, { error: "ModelError", times: 1 });
    const failed = await chat(t.apiKey, key);
    expect(failed.status).toBe(502);
    const retried = await chat(t.apiKey, key);
    expect(retried.status).toBe(200);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
  });

  it("is scoped to the tenant: another tenant's same key neither replays nor collides", async () => {
    const a = await tenant();
    const b = await tenant();
    const key = "shared-looking-key";
    const fromA = await json(await chat(a.apiKey, key));
    const usedByB = await tokensUsed(b.apiKey);
    const fromB = await chat(b.apiKey, key, "something else entirely");
    expect(fromB.status).toBe(200);
    expect(fromB.headers.get("idempotent-replayed")).toBeNull();
    expect((await json(fromB)).id).not.toBe(fromA.id);
    expect(await tokensUsed(b.apiKey)).toBeGreaterThan(usedByB);
  });
});

describe("a retried raw invocation", () => {
  it("replays the model's bytes once charged, and refuses another payload with 422", async () => {
    const t = await tenant();
    const key = randomUUID();
    const path = `/v1/models/${LLAMA}/invocations`;
    const payload = JSON.stringify({ messages: [{ role: "user", content: "raw" }], max_tokens: 8 });
    const calls = modelCalls();
    const first = await post(path, t.apiKey, payload, key);
    expect(first.status).toBe(200);
    const text = await first.text();
    const used = await tokensUsed(t.apiKey);
    const again = await post(path, t.apiKey, payload, key);
    expect(await again.text()).toBe(text);
    expect(again.headers.get("content-type")).toBe(first.headers.get("content-type"));
    expect(modelCalls()).toBe(calls + 1);
    expect(await tokensUsed(t.apiKey)).toBe(used);
    // The same bytes under another media type are another request.
    expect((await post(path, t.apiKey, payload, key, "application/vnd.x+json")).status).toBe(422);
  });
});

describe("the header itself", () => {
  it("is refused (400) when empty, too long or sent twice", async () => {
    const t = await tenant();
    for (const bad of ["", '""', "k".repeat(256), "schlüssel"]) {
      const response = await chat(t.apiKey, bad);
      expect({ bad, status: response.status, error: (await json(response)).error }).toMatchObject({
        bad,
        status: 400,
        error: { code: "invalid_idempotency_key", param: "Idempotency-Key" },
      });
    }
    expect((await chat(t.apiKey, "k".repeat(255))).status).toBe(200);
    const twice = await rawPost(t.apiKey, ["Idempotency-Key", "one", "idempotency-key", "two"]);
    expect(twice.status).toBe(400);
    expect(JSON.parse(twice.body).error.code).toBe("invalid_idempotency_key");
  });
});

describe("what is kept", () => {
  it("is sealed (no completion text in the table), in the tenant's partition, and goes with an erase", async () => {
    const t = await tenant();
    const answer = await json(await chat(t.apiKey, randomUUID(), "a very particular prompt"));
    const items = await scanTable(platform, platform.idempotencyTable);
    const mine = items.filter((item) => item.pk === `TENANT#${t.id}#`);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ status: "COMPLETED", sk: expect.stringMatching(/^IDEMPOTENCY#/) });
    const dump = JSON.stringify(items);
    expect(dump).not.toContain(answer.id);
    expect(dump).not.toContain(answer.choices[0].message.content);

    expect((await adminCall(platform, "DELETE", `/admin/tenants/${t.id}?erase=true`)).status).toBe(200);
    expect(
      (await scanTable(platform, platform.idempotencyTable)).filter((item) => item.pk === `TENANT#${t.id}#`),
    ).toEqual([]);
  });
});

/** A chat call with raw header lines, so one header can be sent twice. */
function rawPost(apiKey: string, extra: string[]): Promise<{ status: number; body: string }> {
  const url = new URL(`${platform.gatewayUrl}/v1/chat/completions`);
  const body = chatBody();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: [
          "Host",
          url.host,
          "Authorization",
          `Bearer ${apiKey}`,
          "Content-Type",
          "application/json",
          ...extra,
        ],
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
