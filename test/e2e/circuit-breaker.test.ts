/**
 * The circuit breaker and fallback end to end (docs/adr/0013-circuit-breaker-and-fallback.md): calls
 * through the local gateway, faults set on the SageMaker Runtime emulator, attempts counted there.
 * A failing endpoint's breaker opens after its threshold, then fails fast (503 endpoint_unavailable,
 * an honest retry-after) without calling it; half-open, one call probes and closes or reopens it.
 * A model on two shared endpoints falls back to the second, saying so in `x-atrium-fallback`, billed
 * as routed; a bridge tenant's dedicated endpoint falls back to shared, a HIPAA tenant's never does.
 * The open period is long (600 s): "it has passed" is written into the endpoint item, not waited for.
 */
import { endpointKey } from "@atrium/core/endpoint-state";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorOf } from "../support/http";
import { adminCall, startTestPlatformWith, stopTestPlatform } from "../support/platform";
import { onboard, postChat, settledUsageOf, todaysLedger, usageOf } from "../support/tenant-calls";

const FAILURES = 3;
const SOLO = { model: "breaker-solo", endpointName: "atrium-shared-breaker-solo" };
const PAIR = [
  { model: "breaker-pair", endpointName: "atrium-shared-pair-a" },
  { model: "breaker-pair", endpointName: "atrium-shared-pair-b" },
];
const BRIDGED = { model: "breaker-bridged", endpointName: "atrium-shared-bridged" };

let platform: Platform;
let dataDir: string;

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatformWith({
    sharedEndpoints: [SOLO, ...PAIR, BRIDGED],
    circuitBreaker: { failures: FAILURES, windowSeconds: 60, openSeconds: 600 },
  }));
});
afterAll(() => stopTestPlatform(platform, dataDir));

const chat = (apiKey: string, model: string) =>
  postChat(platform, apiKey, { model, messages: [{ role: "user", content: "hello" }], max_tokens: 8 });

const attemptsAt = (endpointName: string) => platform.sagemaker.invocations(endpointName).length;

const failing = (endpointName: string) =>
  platform.sagemaker.setConditions(endpointName, { error: "ServiceUnavailable", errorRate: 1 });

function documents() {
  return dynamoClientFor(platform.dynamodbUrl);
}

async function breakerOf(endpointName: string): Promise<Record<string, unknown>> {
  const { Item } = await documents().get({
    TableName: platform.endpointsTable,
    Key: endpointKey(endpointName),
    ConsistentRead: true,
  });
  return Item ?? {};
}

/** As if the open period had passed: the breaker is half-open for the next view that reads it. */
async function openPeriodPassed(endpointName: string): Promise<void> {
  await documents().update({
    TableName: platform.endpointsTable,
    Key: endpointKey(endpointName),
    UpdateExpression: "SET #openUntil = :past",
    ConditionExpression: "attribute_exists(#openUntil)",
    ExpressionAttributeNames: { "#openUntil": "openUntil" },
    ExpressionAttributeValues: { ":past": Date.now() * 1000 - 1 },
  });
}

async function dedicatedTenant(name: string, compliance: string[]) {
  const created = await adminCall(platform, "POST", "/admin/tenants", { name, tier: "business", compliance });
  expect(created.status).toBe(201);
  const id: string = created.body.tenant.id;
  const endpointName = `${id}-bridged`;
  const added = await adminCall(platform, "POST", `/admin/tenants/${id}/endpoints`, {
    model: BRIDGED.model,
    endpointName,
  });
  expect(added.status).toBe(200);
  return { id, apiKey: created.body.apiKey as string, endpointName };
}

describe("an endpoint's circuit breaker", () => {
  it("opens after its threshold, fails fast without calling the endpoint, half-opens and closes", async () => {
    const tenant = await onboard(platform);
    failing(SOLO.endpointName);
    for (let i = 0; i < FAILURES; i++) {
      const failed = await chat(tenant.apiKey, SOLO.model);
      expect(failed.status).toBe(503);
      expect((await errorOf(failed)).code).toBe("upstream_unavailable");
      expect((await breakerOf(SOLO.endpointName)).openUntil === undefined).toBe(i < FAILURES - 1);
    }

    // Healthy again, but the breaker is open: the call is refused before the endpoint sees it.
    platform.sagemaker.clearFaults(SOLO.endpointName);
    const before = attemptsAt(SOLO.endpointName);
    const fast = await chat(tenant.apiKey, SOLO.model);
    expect(fast.status).toBe(503);
    expect(await errorOf(fast)).toMatchObject({ code: "endpoint_unavailable", type: "api_error" });
    expect(fast.headers.get("x-should-retry")).toBe("true");
    const retryAfter = Number(fast.headers.get("retry-after"));
    const openUntil = Number((await breakerOf(SOLO.endpointName)).openUntil);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((openUntil / 1000 - Date.now()) / 1000) + 1);
    expect(retryAfter).toBeGreaterThan(500);
    expect(attemptsAt(SOLO.endpointName)).toBe(before);
    // Nothing was charged: the failures were refunded, the fast failure never admitted.
    expect(await settledUsageOf(platform, tenant.apiKey)).toBe(0);

    // Half-open: once this instance's view sees it (within a second), one call probes, succeeds, closes it.
    await openPeriodPassed(SOLO.endpointName);
    await expect
      .poll(async () => (await chat(tenant.apiKey, SOLO.model)).status, { timeout: 10_000 })
      .toBe(200);
    const closed = await breakerOf(SOLO.endpointName);
    expect(closed.openUntil).toBeUndefined();
    expect(closed.probeUntil).toBeUndefined();
    expect(closed.closedAt).toBeTypeOf("number");
    expect((await chat(tenant.apiKey, SOLO.model)).status).toBe(200);
  });

  it("reopens when the half-open probe fails", async () => {
    const tenant = await onboard(platform);
    failing(SOLO.endpointName);
    for (let i = 0; i < FAILURES; i++) expect((await chat(tenant.apiKey, SOLO.model)).status).toBe(503);
    const firstOpening = Number((await breakerOf(SOLO.endpointName)).openUntil);
    expect(firstOpening).toBeGreaterThan(Date.now() * 1000);

    await openPeriodPassed(SOLO.endpointName);
    // The probe reaches the failing endpoint (the mapped error, not a fast failure), and reopens it.
    await expect
      .poll(async () => (await errorOf(await chat(tenant.apiKey, SOLO.model))).code, { timeout: 10_000 })
      .toBe("upstream_unavailable");
    const reopened = await breakerOf(SOLO.endpointName);
    expect(Number(reopened.openUntil)).toBeGreaterThan(Date.now() * 1000);
    expect(reopened.probeUntil).toBeUndefined();
    expect((await errorOf(await chat(tenant.apiKey, SOLO.model))).code).toBe("endpoint_unavailable");
    expect((await usageOf(platform, tenant.apiKey)).inFlight).toBe(0);
    platform.sagemaker.clearFaults(SOLO.endpointName);
  });
});

describe("fallback", () => {
  it("sends a model's call to its second shared endpoint when the first fails, then while its breaker is open", async () => {
    const tenant = await onboard(platform);
    const [a, b] = PAIR.map((e) => e.endpointName) as [string, string];
    failing(a);
    const answeredByB = attemptsAt(b);
    for (let i = 0; i < FAILURES; i++) {
      const response = await chat(tenant.apiKey, "breaker-pair");
      expect(response.status).toBe(200);
      expect(response.headers.get("x-atrium-fallback")).toBe(b);
      expect(response.headers.get("x-atrium-route")).toBe("shared");
    }
    expect(attemptsAt(b) - answeredByB).toBe(FAILURES);
    // Each fallen-back call counted one failure against a: its breaker is open now.
    expect((await breakerOf(a)).openUntil).toBeTypeOf("number");

    // a is healthy again but its breaker is open: the call goes to b before admission, a never sees it.
    platform.sagemaker.clearFaults(a);
    const attemptsOnA = attemptsAt(a);
    const routed = await chat(tenant.apiKey, "breaker-pair");
    expect(routed.status).toBe(200);
    expect(routed.headers.get("x-atrium-fallback")).toBe(b);
    expect(attemptsAt(a)).toBe(attemptsOnA);

    // Billed once per call, as routed: every call settled, shared.
    const charged = await settledUsageOf(platform, tenant.apiKey);
    expect(charged).toBeGreaterThan(0);
    const [entry, ...others] = await todaysLedger(platform, tenant.id);
    expect(others).toEqual([]);
    expect(entry?.counters).toMatchObject({ requests: FAILURES + 1, sharedCalls: FAILURES + 1 });
    expect(entry?.counters.dedicatedCalls).toBeUndefined();

    // Once a's breaker half-opens and its probe succeeds, calls stay on a.
    await openPeriodPassed(a);
    await expect
      .poll(async () => (await chat(tenant.apiKey, "breaker-pair")).headers.get("x-atrium-fallback"), {
        timeout: 10_000,
      })
      .toBeNull();
  });

  it("sends a bridge tenant's call from its failing dedicated endpoint to the shared one, billed as shared", async () => {
    const tenant = await dedicatedTenant("Bridged", []);
    failing(tenant.endpointName);
    const response = await chat(tenant.apiKey, BRIDGED.model);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-atrium-fallback")).toBe(BRIDGED.endpointName);
    expect(response.headers.get("x-atrium-route")).toBe("shared");
    await settledUsageOf(platform, tenant.apiKey);
    const [entry] = await todaysLedger(platform, tenant.id);
    expect(entry?.counters).toMatchObject({ requests: 1, sharedCalls: 1 });
    expect(entry?.counters.dedicatedCalls).toBeUndefined();
    platform.sagemaker.clearFaults(tenant.endpointName);
  });

  it("never sends a HIPAA tenant's call to a shared endpoint, failing or open", async () => {
    const tenant = await dedicatedTenant("Clinic", ["hipaa"]);
    failing(tenant.endpointName);
    const shared = attemptsAt(BRIDGED.endpointName);
    for (let i = 0; i < FAILURES; i++) {
      const failed = await chat(tenant.apiKey, BRIDGED.model);
      expect(failed.status).toBe(503);
      expect(failed.headers.get("x-atrium-fallback")).toBeNull();
      expect((await errorOf(failed)).code).toBe("upstream_unavailable");
    }
    const fast = await chat(tenant.apiKey, BRIDGED.model);
    expect(fast.status).toBe(503);
    expect((await errorOf(fast)).code).toBe("endpoint_unavailable");
    expect(fast.headers.get("x-atrium-fallback")).toBeNull();
    expect(attemptsAt(BRIDGED.endpointName)).toBe(shared);
    expect(await settledUsageOf(platform, tenant.apiKey)).toBe(0);
    platform.sagemaker.clearFaults(tenant.endpointName);
  });
});
