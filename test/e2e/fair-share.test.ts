/**
 * Fair share of a contended shared endpoint, end to end (docs/adr/0012-fair-share.md): calls through
 * the local gateway to an endpoint with a capacity of 4, served by a container that holds every call
 * until the test lets them go, so the calls in flight are known exactly. Below contention nobody is
 * refused for it; the endpoint's own refusal marks it contended; then each tenant is held to its
 * weighted share (pro weighs 2, free 1: 3 and 1 of 4) and the one above it gets 429 endpoint_busy.
 */
import { endpointKey } from "@atrium/core/endpoint-state";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json } from "../support/http";
import { type LatchedModel, startLatchedModel } from "../support/latched-model";
import { adminCall, startTestPlatformWith, stopTestPlatform } from "../support/platform";
import { onboard, postChat, settledUsageOf, todaysLedger } from "../support/tenant-calls";

const MODEL = "latched-reference";
const ENDPOINT = "atrium-shared-latched-reference";
const CAPACITY = 4;

let platform: Platform;
let dataDir: string;
let latched: LatchedModel;

beforeAll(async () => {
  latched = await startLatchedModel(ENDPOINT);
  const endpoint = {
    model: MODEL,
    endpointName: ENDPOINT,
    containerUrl: latched.url,
    // A latency target no call here reaches: contention is marked by the endpoint's refusal below.
    capacity: { callsInFlight: CAPACITY, latencyTargetMs: 600_000 },
  };
  ({ platform, dataDir } = await startTestPlatformWith({ sharedEndpoints: [endpoint] }));
});
afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  await latched?.close();
});

const chat = (apiKey: string) =>
  postChat(platform, apiKey, { model: MODEL, messages: [{ role: "user", content: "hello" }], max_tokens: 8 });

/** Sends `count` calls and waits until the container holds them (or their answers came back). */
async function inFlight(apiKey: string, count: number): Promise<Promise<Response>[]> {
  const before = latched.received();
  const calls = Array.from({ length: count }, () => chat(apiKey));
  await expect.poll(() => latched.received(), { interval: 10, timeout: 20_000 }).toBe(before + count);
  return calls;
}

/** A call the endpoint refuses for capacity, on every attempt. */
async function throttledCall(apiKey: string): Promise<Response> {
  platform.sagemaker.injectFault(ENDPOINT, { error: "ThrottlingException", times: 10 });
  try {
    return await chat(apiKey);
  } finally {
    platform.sagemaker.clearFaults(ENDPOINT);
  }
}

async function endpointItem(): Promise<Record<string, unknown> | undefined> {
  const db = dynamoClientFor(platform.dynamodbUrl);
  try {
    const { Item } = await db.get({
      TableName: platform.endpointsTable,
      Key: endpointKey(ENDPOINT),
      ConsistentRead: true,
    });
    return Item;
  } finally {
    db.destroy();
  }
}

describe("fair share of a shared endpoint", () => {
  it("refuses nobody below contention, then holds each tenant to its weighted share", {
    timeout: 60_000,
  }, async () => {
    const noisy = await onboard(platform, "pro");
    const quiet = await onboard(platform, "free");

    // Not contended: five calls, more than the capacity, all reach the model; no write to the endpoint table.
    latched.hold();
    const unmarked = await inFlight(noisy.apiKey, 5);
    latched.release();
    for (const response of await Promise.all(unmarked)) expect(response.status).toBe(200);
    expect(await endpointItem()).toBeUndefined();

    // The endpoint refuses a call for capacity: that marks it contended, for every instance.
    const throttled = await throttledCall(noisy.apiKey);
    expect(throttled.status).toBeGreaterThanOrEqual(429);
    const marked = await endpointItem();
    expect(Number(marked?.contendedUntil)).toBeGreaterThan(Date.now() * 1000);

    // Contended: the quiet tenant's call registers it and is admitted; the noisy tenant gets its share of 3.
    latched.hold();
    const quietCall = await inFlight(quiet.apiKey, 1);
    const noisyCalls = await inFlight(noisy.apiKey, 3);
    const refused = await chat(noisy.apiKey);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const body = await json(refused);
    expect(body.error).toMatchObject({ code: "endpoint_busy", type: "requests" });
    expect(body.error.message).toContain("fair share of 3 calls");
    // The quiet tenant is within its share (1 of 4) only while it holds nothing more: a second call is refused.
    expect((await chat(quiet.apiKey)).status).toBe(429);
    expect(
      Object.keys((await endpointItem()) ?? {})
        .filter((k) => k.startsWith("active@"))
        .sort(),
    ).toEqual([`active@${noisy.id}`, `active@${quiet.id}`].sort());

    latched.release();
    for (const response of await Promise.all([...quietCall, ...noisyCalls]))
      expect(response.status).toBe(200);
    // Slots come back before the answers: at its share, back to back, the noisy tenant is admitted again.
    const again = await Promise.all([chat(noisy.apiKey), chat(noisy.apiKey), chat(noisy.apiKey)]);
    expect(again.map((response) => response.status)).toEqual([200, 200, 200]);
    await settledUsageOf(platform, noisy.apiKey);

    // The refusals are in the ledger under their reason.
    const entries = await todaysLedger(platform, noisy.id);
    const refusedBusy = entries.reduce((sum, e) => sum + (e.counters.refusedEndpointBusy ?? 0), 0);
    expect(refusedBusy).toBe(1);
  });

  it("forgets an erased tenant on the endpoint", { timeout: 30_000 }, async () => {
    const tenant = await onboard(platform, "pro");
    // Contended (marked by the test above, or again now): the call registers the tenant.
    latched.release();
    await throttledCall(tenant.apiKey);
    expect((await chat(tenant.apiKey)).status).toBe(200);
    expect(await endpointItem()).toHaveProperty(`active@${tenant.id}`);

    const erased = await adminCall(platform, "DELETE", `/admin/tenants/${tenant.id}?erase=true`);
    expect(erased.status).toBe(200);
    expect(await endpointItem()).not.toHaveProperty(`active@${tenant.id}`);
  });
});
