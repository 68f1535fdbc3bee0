/**
 * The Lambda side of admission: fail-open and fail-closed when DynamoDB cannot be reached, refusing
 * locally, with no DynamoDB call, while a tenant is known to be limited (named for the limit that
 * refuses), the wait a concurrency refusal reports, and charging a reservation at most.
 */
import { parseStageConfig, type StageConfig } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { LimiterStore } from "@atrium/core/limiter-store";
import { LimiterTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";
import { setAdmissionEnvironment } from "../support/handler-environment";

// The handler modules read their configuration at import, as a Lambda does at cold start.
const stage: StageConfig = setAdmissionEnvironment();
const { createAdmission } = await import("@atrium/functions/lib/admission");
const { metrics } = await import("@atrium/functions/lib/observability");

const LAMBDA_LIMITS = uniqueTableName("atrium-test-limits");
let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = sharedDynamo();
});
afterAll(() => dynamo?.close());

function tenant(tier: string, id = `tn-${tier}-lambda`): Tenant {
  return {
    id,
    name: id,
    tier,
    status: "active",
    compliance: [],
    endpoints: {},
    createdAt: new Date().toISOString(),
  };
}

/** A client whose every call is counted. */
function countedClient(endpoint: string) {
  const doc = dynamoClientFor(endpoint, { maxAttempts: 1 });
  const calls = { count: 0 };
  doc.beforeSend(() => {
    calls.count += 1;
  });
  return { doc, calls };
}

describe("when DynamoDB cannot be reached", () => {
  // Nothing listens on port 9 of loopback: connections are refused at once.
  const unreachable = countedClient("http://127.0.0.1:9");
  const unreachableStore = new LimiterStore(unreachable.doc, LAMBDA_LIMITS);
  const limiter = createAdmission({
    storeFor: () => unreachableStore,
    config: stage,
  });

  it("a fail-closed tier refuses with a 503 that says why, never a 500", async () => {
    expect(stage.tiers.free?.limiterFailMode).toBe("closed");
    const refused = limiter.admit(tenant("free"), 10);
    await expect(refused).rejects.toBeInstanceOf(AtriumError);
    await expect(refused).rejects.toMatchObject({ status: 503, code: "limiter_unavailable" });
  });

  it("a fail-open tier admits and counts a LimiterFailOpen metric", async () => {
    expect(stage.tiers.pro?.limiterFailMode).toBe("open");
    const addMetric = vi.spyOn(metrics, "addMetric");
    const { ticket } = await limiter.admit(tenant("pro"), 10);
    expect(ticket.lease).toBeUndefined();
    expect(addMetric).toHaveBeenCalledWith("LimiterFailOpen", "Count", 1);
    const before = unreachable.calls.count;
    await limiter.settle(ticket, 5);
    expect(unreachable.calls.count).toBe(before);
  });
});

describe("a tenant known to be limited", () => {
  it("is refused in the Lambda, with no DynamoDB call, until its retry time", async () => {
    const { doc, calls } = countedClient(dynamo.url);
    await ensureTable(localDynamoClient(dynamo.url), LAMBDA_LIMITS, LimiterTable);
    calls.count = 0;
    let clock = Date.UTC(2026, 10, 28, 12) * 1000;
    const store = new LimiterStore(doc, LAMBDA_LIMITS);
    const limiter = createAdmission({
      storeFor: () => store,
      config: stage,
      now: () => clock,
    });
    const free = tenant("free", "tn-free-blocked");
    const burst = stage.tiers.free?.limits.requestsPerMinute ?? 0;
    for (let i = 0; i < burst; i++) {
      const { ticket } = await limiter.admit(free, 1);
      await limiter.settle(ticket, 1);
    }
    // One admission write and one settle write per call, no reads.
    const admitted = 2 * burst;
    expect(calls.count).toBe(admitted);

    const first = await limiter.admit(free, 1).catch((err: AtriumError) => err);
    expect(first).toMatchObject({ status: 429, code: "rate_limit_exceeded" });
    expect(calls.count).toBe(admitted + 1);
    const retryMs = Number((first as AtriumError).headers["retry-after-ms"]);

    for (let i = 0; i < 5; i++) {
      await expect(limiter.admit(free, 1)).rejects.toMatchObject({ status: 429 });
    }
    expect(calls.count).toBe(admitted + 1);

    clock += retryMs * 1000;
    await limiter.admit(free, 1);
    expect(calls.count).toBe(admitted + 2);
  });
});

describe("refusals", () => {
  const SECOND = 1_000_000;
  const tiers = parseStageConfig({
    region: "eu-west-1",
    tiers: {
      tight: {
        tenancy: "pool",
        limits: { requestsPerMinute: 1000, tokensPerMinute: 600, concurrency: 1, monthlyTokens: 1_000_000 },
        maxTokens: { default: 50, cap: 500 },
        limiterFailMode: "closed",
      },
    },
    sharedEndpoints: [],
  });
  let counter = 0;
  async function setup() {
    const { doc, calls } = countedClient(dynamo.url);
    await ensureTable(localDynamoClient(dynamo.url), "atrium-test-limits", LimiterTable);
    const store = new LimiterStore(doc, "atrium-test-limits");
    const clock = { now: Date.UTC(2026, 10, 28, 12) * 1000 };
    const limiter = createAdmission({ storeFor: () => store, config: tiers, now: () => clock.now });
    return { limiter, store, calls, clock, payer: tenant("tight", `tn-refusals-${++counter}`) };
  }
  const refusedBy = (promise: Promise<unknown>) =>
    promise.then(() => undefined).catch((err: AtriumError) => err);

  it("a tokens-per-minute refusal given from the container's cache is labelled tokens, with its numbers", async () => {
    const { limiter, calls, payer } = await setup();
    const { ticket } = await limiter.admit(payer, 400);
    await limiter.settle(ticket, 400);
    const first = await refusedBy(limiter.admit(payer, 400));
    expect(first).toMatchObject({ status: 429, type: "tokens", code: "rate_limit_exceeded" });
    const writes = calls.count;
    const cached = await refusedBy(limiter.admit(payer, 400));
    expect(calls.count).toBe(writes);
    expect(cached).toMatchObject({ status: 429, type: "tokens", code: "rate_limit_exceeded" });
    expect(cached?.message).toMatch(
      /^Rate limit reached for tokens per minute \(TPM\): limit 600, this call reserves 400\./,
    );
    // 400 tokens at 600/min: 200 are free now, 200 more take 20 s.
    expect(cached?.headers["retry-after-ms"]).toBe("20000");
    // A call the cached state does admit goes to DynamoDB and is admitted.
    await limiter.admit(payer, 100);
    expect(calls.count).toBe(writes + 1);
  });

  it("a concurrency refusal's retry-after is the tenant's typical call time left, not the lease lifetime", async () => {
    const { limiter, payer, clock } = await setup();
    const held = await limiter.admit(payer, 10);
    clock.now += SECOND / 2;
    // No call has finished yet in this container: the least wait, one second.
    expect((await refusedBy(limiter.admit(payer, 10)))?.headers["retry-after-ms"]).toBe("1000");
    // Calls of 4 s each, seen by this container.
    clock.now += 4 * SECOND - SECOND / 2;
    await limiter.settle(held.ticket, 10);
    for (let i = 0; i < 3; i++) {
      const { ticket } = await limiter.admit(payer, 10);
      clock.now += 4 * SECOND;
      await limiter.settle(ticket, 10);
    }
    await limiter.admit(payer, 10);
    clock.now += 1.5 * SECOND;
    const refused = await refusedBy(limiter.admit(payer, 10));
    expect(refused).toMatchObject({ status: 429, code: "rate_limit_exceeded" });
    expect(refused?.message).toMatch(
      /^Too many calls in flight at once: limit 1\. Please try again in 3s\.$/,
    );
    expect(refused?.headers).toMatchObject({ "retry-after": "3", "retry-after-ms": "2500" });
    // A holder that ran far past the typical time: the wait is a second, then at most its lease's end.
    clock.now += 50 * SECOND;
    expect((await refusedBy(limiter.admit(payer, 10)))?.headers["retry-after-ms"]).toBe("1000");
    clock.now += 8.2 * SECOND;
    expect((await refusedBy(limiter.admit(payer, 10)))?.headers["retry-after-ms"]).toBe("300");
  });

  it("a reply reporting more than was reserved is charged the reservation and counted", async () => {
    const { limiter, store, payer } = await setup();
    const addMetric = vi.spyOn(metrics, "addMetric");
    const { ticket } = await limiter.admit(payer, 100);
    await limiter.settle(ticket, 1000);
    expect(addMetric).toHaveBeenCalledWith("UsageAboveReservation", "Count", 1);
    expect((await store.read(payer.id, 0)).monthUsed).toBe(100);
  });

  it("a call whose slot is scarce releases it before its response: the tenant's last, or any on a contended endpoint", async () => {
    const { limiter, payer } = await setup();
    const three = { ...payer, limits: { concurrency: 3 } };
    // One of three slots: released after the response (the client is not kept waiting for the write).
    expect((await limiter.admit(three, 10)).ticket.tight).toBe(false);
    // On a contended endpoint, a client at its share calling back to back would meet its own last call.
    expect(
      (await limiter.admit(three, 10, null, undefined, { name: "shared-ep", share: 5 })).ticket.tight,
    ).toBe(true);
    expect((await limiter.admit(three, 10)).ticket.tight).toBe(true);
  });

  it("a call larger than one shard's tokens per minute is a 400 naming the length field that set it", async () => {
    const { limiter, payer } = await setup();
    const err = await refusedBy(
      limiter.admit({ ...payer, limits: { concurrency: 2 }, limiterShards: 2 }, 301, "max_tokens"),
    );
    expect(err).toMatchObject({ status: 400, code: "request_exceeds_token_limit", param: "max_tokens" });
    expect(err?.message).toContain("more than the 300 tokens per minute one call may use");
  });
});
