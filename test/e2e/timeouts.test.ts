/**
 * Timeouts on the local platform (docs/adr/0007-timeouts.md): a model slower than the call's deadline
 * is abandoned, answered 504 by Atrium before the gateway gives up, refunded once and never charged;
 * with DynamoDB hung or refusing behind a TCP proxy, fail-open tiers admit, fail-closed tiers and every
 * DynamoDB-bound route answer 503, and nothing answers 500.
 */
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { generateApiKey } from "@atrium/core/api-key";
import { LimiterStore } from "@atrium/core/limiter-store";
import { MAX_FLOOR_LEAD_MICROS } from "@atrium/core/tat-refund";
import { newTenant } from "@atrium/core/tenant";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import type { AccessLogEntry } from "@atrium/local/gateway";
import { type Platform, REPO_ROOT } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf, json } from "../support/http";
import { adminCall, startTestPlatform, stopTestPlatform } from "../support/platform";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy";

const MODEL = "llama-3.1-8b-instruct";
const ENDPOINT = "atrium-shared-llama-8b";
/** Short, so the test is: a model call gives up 5 s (the wind-up) before it, at about 3 s. */
const INTEGRATION_TIMEOUT_MS = 8_000;
/** The model answers after the gateway's own timeout: before the fix, that reply was charged. */
const MODEL_LATENCY_MS = 8_500;

let platform: Platform;
let dataDir: string;
let proxy: TcpProxy;
let limiterStore: LimiterStore;
const access: AccessLogEntry[] = [];

function tier(limiterFailMode: "open" | "closed", tokensPerMinute = 1_000_000) {
  return {
    tenancy: "pool",
    limits: { requestsPerMinute: 6000, tokensPerMinute, concurrency: 100, monthlyTokens: 10_000_000 },
    maxTokens: { default: 50, cap: 200 },
    limiterFailMode,
  };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "atrium-timeouts-"));
  const base = JSON.parse(await readFile(join(REPO_ROOT, "config/local.json"), "utf8"));
  const config = {
    ...base,
    // The deployed stages' DynamoDB request timeout (the local stage's is longer).
    dynamodbRequestTimeoutMs: 1_000,
    // The outage below runs on warm profiles throughout, however slow this machine is.
    tenantCacheTtlSeconds: 300,
    tiers: {
      ...base.tiers,
      open: tier("open"),
      closed: tier("closed"),
      // 100 ms per token: a reservation not given back stays visible in the token TAT for seconds.
      trickle: tier("closed", 600),
    },
  };
  const configFile = join(dataDir, "config.json");
  await writeFile(configFile, JSON.stringify(config));
  ({ platform } = await startTestPlatform(
    {
      configFile,
      integrationTimeoutMs: INTEGRATION_TIMEOUT_MS,
      // Chat is a streamed route: its integration timeout is the streamed one, shortened the same.
      streamedIntegrationTimeoutMs: INTEGRATION_TIMEOUT_MS,
      interposeDynamodb: async (url) => {
        proxy = await startTcpProxy(url);
        return proxy.url;
      },
      onAccess: (entry) => access.push(entry),
    },
    dataDir,
  ));
  limiterStore = new LimiterStore(dynamoClientFor(platform.dynamodbUrl), platform.limitsTable);
});

afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  await proxy?.close();
});

async function tenant(tierName: string): Promise<{ id: string; apiKey: string }> {
  const created = newTenant({ name: `Tenant ${tierName}`, tier: tierName }, platform.config);
  const key = generateApiKey();
  await platform.tenantStore.create(created, key);
  return { id: created.id, apiKey: key.plaintext };
}

const call = (apiKey: string, path: string, init: RequestInit = {}) =>
  fetch(`${platform.gatewayUrl}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
  });

const chat = (apiKey: string) =>
  call(apiKey, "/v1/chat/completions", {
    method: "POST",
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
  });

const invoke = (apiKey: string) =>
  call(apiKey, `/v1/models/${MODEL}/invocations`, {
    method: "POST",
    body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 20 }),
  });

const usage = (apiKey: string) => call(apiKey, "/v1/usage");

/** The tenant's limiter item, read straight from DynamoDB (not through the proxy). */
const limiterItem = (tenantId: string) => limiterStore.read(tenantId, 0);

describe("a model slower than the call's deadline", () => {
  it("charges a call that answers in time exactly what the model reported (the control)", async () => {
    const t = await tenant("trickle");
    platform.sagemaker.injectFault(ENDPOINT, { latencyMs: 200, times: 1 });
    const response = await chat(t.apiKey);
    expect(response.status).toBe(200);
    const body = await json(response);
    // The settle runs once the response is sent (ADR 0004, "Settle off the path").
    await platform.gateway.idle();
    const item = await limiterItem(t.id);
    expect(item.monthUsed).toBe(body.usage.total_tokens);
    expect(item.leases).toEqual([]);
  });

  it("is answered 504 by Atrium before the gateway, refunded once, and never charged", async () => {
    const chatter = await tenant("trickle");
    const invoker = await tenant("trickle");
    platform.sagemaker.injectFault(ENDPOINT, { latencyMs: MODEL_LATENCY_MS, times: 2 });
    const started = Date.now();

    const responses = await Promise.all([chat(chatter.apiKey), invoke(invoker.apiKey)]);
    for (const response of responses) {
      expect(response.status).toBe(504);
      // Atrium's own answer, not the gateway's INTEGRATION_TIMEOUT (code "timeout").
      expect(await errorOf(response)).toMatchObject({ type: "api_error", code: "model_timeout" });
    }
    const refunded = async (tenantId: string) => {
      await platform.gateway.idle();
      const item = await limiterItem(tenantId);
      // Refunded exactly once: a second refund would take the month below zero.
      expect(item.monthUsed).toBe(0);
      expect(item.leases).toEqual([]);
      // The tokens are back: the token TAT is ahead of now by no more than the part of a refund that
      // may not move it back (it was ahead by seconds while reserved; ADR 0004, "Refunds").
      expect(item.tokenTat ?? 0).toBeLessThanOrEqual(Date.now() * 1000 + MAX_FLOOR_LEAD_MICROS);
    };
    await refunded(chatter.id);
    await refunded(invoker.id);

    // The model's replies come after the gateway's own timeout: nothing may be charged then either.
    await sleep(Math.max(0, started + MODEL_LATENCY_MS + 1_000 - Date.now()));
    await refunded(chatter.id);
    await refunded(invoker.id);
    for (const t of [chatter, invoker]) {
      const report = await json(await usage(t.apiKey));
      expect(report).toMatchObject({ tokens_used: 0, in_flight: 0 });
    }
  }, 20_000);
});

describe("DynamoDB unavailable after the caches are warm", () => {
  let open: { id: string; apiKey: string };
  let closed: { id: string; apiKey: string };
  /** A key the gateway's authorizer cache has never seen. */
  let unseen: { id: string; apiKey: string };
  let outageStart = 0;

  beforeAll(async () => {
    open = await tenant("open");
    closed = await tenant("closed");
    unseen = await tenant("open");
    // Warm: the authorizer's decision, the tenant profile and the limiter item of both tenants.
    for (const t of [open, closed]) {
      expect((await chat(t.apiKey)).status).toBe(200);
      expect((await usage(t.apiKey)).status).toBe(200);
    }
    outageStart = access.length;
  });

  afterAll(async () => {
    await proxy.setMode("forward");
  });

  for (const mode of ["hang", "refuse"] as const) {
    describe(mode === "hang" ? "hung (accepts, never answers)" : "refusing connections", () => {
      beforeAll(async () => {
        await proxy.setMode(mode);
      });

      it("admits a fail-open tier's chat and raw invocations", async () => {
        const [chatted, invoked] = await Promise.all([chat(open.apiKey), invoke(open.apiKey)]);
        expect(chatted.status).toBe(200);
        expect((await json(chatted)).choices[0].message.content).toEqual(expect.any(String));
        expect(invoked.status).toBe(200);
      });

      it("refuses a fail-closed tier's chat and raw invocations with 503 limiter_unavailable", async () => {
        for (const response of await Promise.all([chat(closed.apiKey), invoke(closed.apiKey)])) {
          expect(response.status).toBe(503);
          expect(await errorOf(response)).toMatchObject({ type: "api_error", code: "limiter_unavailable" });
        }
      });

      it("answers GET /v1/usage 503 service_unavailable, with a retry hint", async () => {
        for (const response of await Promise.all([usage(open.apiKey), usage(closed.apiKey)])) {
          expect(response.status).toBe(503);
          expect(response.headers.get("retry-after")).toBe("1");
          expect(response.headers.get("x-should-retry")).toBe("true");
          expect(await errorOf(response)).toMatchObject({ type: "api_error", code: "service_unavailable" });
        }
      });

      it("serves what needs no DynamoDB: the model list from the cached profile", async () => {
        expect((await call(open.apiKey, "/v1/models")).status).toBe(200);
      });

      it("answers admin routes 503 service_unavailable, reads and writes alike", async () => {
        const read = await adminCall(platform, "GET", `/admin/tenants/${open.id}`);
        const write = await adminCall(platform, "POST", `/admin/tenants/${closed.id}/suspend`, {});
        for (const response of [read, write]) {
          expect(response.status).toBe(503);
          expect(response.body.error).toMatchObject({ type: "api_error", code: "service_unavailable" });
        }
      });

      it("answers a key the authorizer has not cached 503 authorizer_unavailable", async () => {
        const response = await chat(unseen.apiKey);
        expect(response.status).toBe(503);
        expect(await errorOf(response)).toMatchObject({ code: "authorizer_unavailable" });
      });
    });
  }

  it("never answered 500 (nor any other 5xx than 503) while DynamoDB was unavailable", () => {
    const statuses = access.slice(outageStart).map((e) => e.status);
    expect(statuses.length).toBeGreaterThanOrEqual(20);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
  });

  it("serves every tenant again once DynamoDB is back, and the suspension attempted meanwhile never landed", async () => {
    await proxy.setMode("forward");
    for (const t of [open, closed, unseen]) {
      expect((await chat(t.apiKey)).status).toBe(200);
      expect((await usage(t.apiKey)).status).toBe(200);
    }
    const { body } = await adminCall(platform, "GET", `/admin/tenants/${closed.id}`);
    expect(body.tenant.status).toBe("active");
  });
});
