/**
 * The circuit breaker shared by every Lambda instance (docs/adr/0013-circuit-breaker-and-fallback.md),
 * on DynamoDB Local over HTTP: two "instances" (each its own view of the endpoint item, its own
 * clock) on one endpoint table. One instance's failures open it for the other once that one's view
 * refreshes; a healthy call writes nothing; half-open, exactly one of many concurrent callers
 * probes; the probe closes or reopens it.
 */
import { randomUUID } from "node:crypto";
import { CircuitBreakerStore } from "@atrium/core/circuit-breaker-store";
import { endpointKey } from "@atrium/core/endpoint-state";
import { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import { EndpointTable } from "@atrium/core/tables";
import { createCircuitBreaker } from "@atrium/functions/lib/circuit-breaker";
import { createEndpointView, VIEW_MICROS } from "@atrium/functions/lib/endpoint-view";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { recordCommands } from "../support/dynamo-spy";
import { sharedDynamoUrl, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-breaker");
const SECOND = 1_000_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0) * 1000;
const settings = { failures: 3, windowSeconds: 30, openSeconds: 20 };

const documents = () => dynamoClientFor(sharedDynamoUrl(), { maxAttempts: 10 });

beforeAll(async () => {
  await ensureTable(localDynamoClient(sharedDynamoUrl()), TABLE, EndpointTable);
});

/** One Lambda instance: its own view and clock, the shared table; `writes` counts its DynamoDB writes. */
function instance(start = T0) {
  const clock = { now: start };
  const client = documents();
  const { sent } = recordCommands(client);
  const breaker = createCircuitBreaker({
    // The first read is waited for, however loaded the machine (the handlers wait 250 ms at most).
    endpoints: createEndpointView(new EndpointStateStore(client, TABLE), 60_000),
    store: new CircuitBreakerStore(client, TABLE),
    settings,
    now: () => clock.now,
  });
  return { breaker, clock, writes: () => sent.filter((c) => c.command !== "GetItem").length };
}

async function item(endpointName: string) {
  const { Item } = await documents().get({
    TableName: TABLE,
    Key: endpointKey(endpointName),
    ConsistentRead: true,
  });
  return Item;
}

const newEndpoint = () => `ep-${randomUUID().slice(0, 8)}`;

describe("a breaker shared by two instances", () => {
  it("opens after N failures on one, and the other sees it open once its view refreshes", async () => {
    const endpoint = newEndpoint();
    const a = instance();
    const b = instance();
    expect(await b.breaker.admit(endpoint)).toEqual({ allowed: true });

    for (let i = 0; i < settings.failures - 1; i++) await a.breaker.outcome(endpoint, true);
    expect((await item(endpoint))?.openUntil).toBeUndefined();
    await a.breaker.outcome(endpoint, true);
    expect((await item(endpoint))?.openUntil).toBe(T0 + settings.openSeconds * SECOND);
    // N - 1 failures a write each, the one that opens it two.
    expect(a.writes()).toBe(settings.failures + 1);

    // The instance that opened it refuses at once; the other once its view, a second old, is read again.
    expect(await a.breaker.admit(endpoint)).toEqual({ allowed: false, retryAfterSeconds: 20 });
    expect(await b.breaker.admit(endpoint)).toEqual({ allowed: true });
    b.clock.now += VIEW_MICROS;
    await expect.poll(() => b.breaker.admit(endpoint)).toEqual({ allowed: false, retryAfterSeconds: 19 });
  });

  it("counts failures from both instances in one window", async () => {
    const endpoint = newEndpoint();
    const a = instance();
    const b = instance();
    await a.breaker.outcome(endpoint, true);
    await b.breaker.outcome(endpoint, true);
    expect((await item(endpoint))?.openUntil).toBeUndefined();
    await a.breaker.outcome(endpoint, true);
    expect((await item(endpoint))?.openUntil).toBeDefined();
  });

  it("forgets failures that left the window: no opening from failures spread thin", async () => {
    const endpoint = newEndpoint();
    const a = instance();
    for (let i = 0; i < 6; i++) {
      await a.breaker.outcome(endpoint, true);
      a.clock.now += 20 * SECOND;
    }
    const stored = await item(endpoint);
    expect(stored?.openUntil).toBeUndefined();
    // Stale buckets are removed by the failure writes: the item stays small.
    expect(Object.keys(stored ?? {}).filter((k) => k.startsWith("fail@")).length).toBeLessThanOrEqual(2);
  });

  it("writes nothing for healthy calls, closed", async () => {
    const endpoint = newEndpoint();
    const a = instance();
    for (let i = 0; i < 20; i++) {
      expect((await a.breaker.admit(endpoint)).allowed).toBe(true);
      await a.breaker.outcome(endpoint, false);
      a.clock.now += SECOND / 10;
    }
    expect(a.writes()).toBe(0);
    expect(await item(endpoint)).toBeUndefined();
  });
});

describe("half-open", () => {
  async function openedAt(endpoint: string) {
    const opener = instance();
    for (let i = 0; i < settings.failures; i++) await opener.breaker.outcome(endpoint, true);
    return T0 + settings.openSeconds * SECOND;
  }

  it("lets exactly one of many concurrent callers probe; the others still see it open", async () => {
    const endpoint = newEndpoint();
    const halfOpen = await openedAt(endpoint);
    const fleet = Array.from({ length: 8 }, () => instance(halfOpen + SECOND));
    const passages = await Promise.all(fleet.map((i) => i.breaker.admit(endpoint)));
    const probes = passages.filter((p) => p.allowed);
    expect(probes).toHaveLength(1);
    expect(passages.filter((p) => !p.allowed)).toEqual(
      Array.from({ length: 7 }, () => ({ allowed: false, retryAfterSeconds: 1 })),
    );
    expect((await item(endpoint))?.probeUntil).toBe((probes[0] as { probe: number }).probe);
  });

  it("closes on a successful probe, and the failures before it no longer count", async () => {
    const endpoint = newEndpoint();
    const halfOpen = await openedAt(endpoint);
    const a = instance(halfOpen + SECOND);
    const passage = await a.breaker.admit(endpoint);
    if (!passage.allowed || passage.probe === undefined) throw new Error("expected the probe");
    await a.breaker.outcome(endpoint, false, passage.probe);
    const stored = await item(endpoint);
    expect(stored?.openUntil).toBeUndefined();
    expect(stored?.probeUntil).toBeUndefined();
    expect(Object.keys(stored ?? {}).filter((k) => k.startsWith("fail@"))).toEqual([]);
    expect(await a.breaker.admit(endpoint)).toEqual({ allowed: true });
    // A fresh instance agrees, and one new failure does not reopen it.
    const b = instance(halfOpen + 2 * SECOND);
    expect(await b.breaker.admit(endpoint)).toEqual({ allowed: true });
    await b.breaker.outcome(endpoint, true);
    expect((await item(endpoint))?.openUntil).toBeUndefined();
  });

  it("reopens on a failed probe, for another open period", async () => {
    const endpoint = newEndpoint();
    const halfOpen = await openedAt(endpoint);
    const a = instance(halfOpen + SECOND);
    const passage = await a.breaker.admit(endpoint);
    if (!passage.allowed || passage.probe === undefined) throw new Error("expected the probe");
    await a.breaker.outcome(endpoint, true, passage.probe);
    expect((await item(endpoint))?.openUntil).toBe(halfOpen + SECOND + settings.openSeconds * SECOND);
    expect(await a.breaker.admit(endpoint)).toEqual({ allowed: false, retryAfterSeconds: 20 });
  });

  it("frees a lost probe's claim after its lease, for another instance to probe", async () => {
    const endpoint = newEndpoint();
    const halfOpen = await openedAt(endpoint);
    const a = instance(halfOpen + SECOND);
    expect((await a.breaker.admit(endpoint)).allowed).toBe(true);
    // The prober never reports (its Lambda died): after the lease, another probes.
    const b = instance(halfOpen + SECOND + 31 * SECOND);
    const passage = await b.breaker.admit(endpoint);
    expect(passage.allowed && passage.probe !== undefined).toBe(true);
  });
});
