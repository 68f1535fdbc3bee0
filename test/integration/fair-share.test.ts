/**
 * Fair share (docs/adr/0012-fair-share.md) on the local DynamoDB over HTTP: a tenant's leases on an
 * endpoint ride in its admission and settle writes, a share caps them only while given, and the
 * endpoint table's mark and registrations; plus the share arithmetic as properties.
 */
import { randomUUID } from "node:crypto";
import { emptyBreakerState } from "@atrium/core/circuit-breaker";
import {
  ACTIVE_WINDOW_MICROS,
  CONTENTION_WINDOW_MICROS,
  type EndpointState,
  emptyEndpointState,
  fairShare,
  fairShares,
  isContended,
  markIsDue,
  mergeViews,
  registrationIsDue,
} from "@atrium/core/endpoint-state";
import { EndpointStateStore } from "@atrium/core/endpoint-state-store";
import type { AdmitRequest } from "@atrium/core/limiter-item";
import { LimiterStore } from "@atrium/core/limiter-store";
import type { ShardLimits } from "@atrium/core/limits";
import { EndpointTable, LimiterTable } from "@atrium/core/tables";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const LIMITS = uniqueTableName("atrium-test-fair-limits");
const ENDPOINTS = uniqueTableName("atrium-test-fair-endpoints");
let dynamo: LocalDynamo;

beforeAll(async () => {
  dynamo = sharedDynamo();
  await ensureTable(client(), LIMITS, LimiterTable);
  await ensureTable(client(), ENDPOINTS, EndpointTable);
});
afterAll(() => dynamo?.close());

function client() {
  return localDynamoClient(dynamo.url, { maxAttempts: 10 });
}
const documents = () => dynamoClientFor(dynamo.url, { maxAttempts: 10 });

const SECOND = 1_000_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0) * 1000;
let counter = 0;
const newTenant = () => `tn-fair-${++counter}`;

const limits: ShardLimits = {
  shards: 1,
  requestsPerMinute: 100_000,
  burst: 100_000,
  tokensPerMinute: 10_000_000,
  concurrency: 100,
  monthlyTokens: 1_000_000_000,
};

function request(tenantId: string, now: number, endpoint?: AdmitRequest["endpoint"]): AdmitRequest {
  return {
    tenantId,
    shard: 0,
    limits,
    now,
    tokens: 10,
    leaseId: randomUUID(),
    leaseMicros: 60 * SECOND,
    ...(endpoint ? { endpoint } : {}),
  };
}

describe("a tenant's calls in flight on an endpoint", () => {
  it("are capped by the share while one is given, and only on that endpoint", async () => {
    const store = new LimiterStore(documents(), LIMITS);
    const tenant = newTenant();
    const busy = { name: "shared-a", share: 2 };
    const first = await store.admit(request(tenant, T0, busy));
    const second = await store.admit(request(tenant, T0 + 1, busy));
    expect([first.admitted, second.admitted]).toEqual([true, true]);

    const third = await store.admit(request(tenant, T0 + 2, busy));
    expect(third.admitted).toBe(false);
    if (third.admitted) return;
    expect(third.reason).toBe("endpoint_busy");
    expect(third.share).toBe(2);
    expect(third.retryAfter).toBeGreaterThanOrEqual(SECOND);

    // Another endpoint, and the same endpoint without a share (not contended), still admit.
    expect((await store.admit(request(tenant, T0 + 3, { name: "shared-b", share: 1 }))).admitted).toBe(true);
    expect((await store.admit(request(tenant, T0 + 4, { name: "shared-a" }))).admitted).toBe(true);
    // Now three calls are in flight on shared-a: a share of 3 refuses too.
    const atThree = await store.admit(request(tenant, T0 + 5, { name: "shared-a", share: 3 }));
    expect(atThree.admitted).toBe(false);
  });

  it("are released by the settle, in the same write", async () => {
    const store = new LimiterStore(documents(), LIMITS);
    const tenant = newTenant();
    const busy = { name: "shared-a", share: 1 };
    const held = await store.admit(request(tenant, T0, busy));
    if (!held.admitted) throw new Error("not admitted");
    expect((await store.admit(request(tenant, T0 + 1, busy))).admitted).toBe(false);

    const settlement = await store.settle(held.lease, 5, T0 + 2);
    expect(settlement).toEqual({ writes: 1, settled: true });
    const stored = await store.read(tenant, 0);
    expect(stored.endpointLeases?.["shared-a"] ?? []).toEqual([]);
    expect(stored.leases).toEqual([]);

    // A fresh container (no cache) admits again within the share.
    const other = new LimiterStore(documents(), LIMITS);
    expect((await other.admit(request(tenant, T0 + 3, busy))).admitted).toBe(true);
  });

  it("expire with their lease: a crashed holder's slot on the endpoint frees too", async () => {
    const store = new LimiterStore(documents(), LIMITS);
    const tenant = newTenant();
    const busy = { name: "shared-a", share: 1 };
    expect((await store.admit(request(tenant, T0, busy))).admitted).toBe(true);
    // The holder never settles; after its lease's 60 s, the slot is free again.
    const later = await store.admit(request(tenant, T0 + 61 * SECOND, busy));
    expect(later.admitted).toBe(true);
    const stored = await store.read(tenant, 0);
    expect(stored.endpointLeases?.["shared-a"]).toHaveLength(1);
    expect(stored.leases).toHaveLength(1);
  });

  it("never exceed the share under concurrent containers", { timeout: 60_000 }, async () => {
    const tenant = newTenant();
    const containers = Array.from({ length: 6 }, () => new LimiterStore(documents(), LIMITS));
    const busy = { name: "shared-a", share: 3 };
    const outcomes = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        (containers[i % containers.length] as LimiterStore).admit(request(tenant, T0 + i, busy)),
      ),
    );
    const admitted = outcomes.filter((o) => o.admitted).length;
    expect(admitted).toBeLessThanOrEqual(3);
    expect(admitted).toBeGreaterThan(0);
    const stored = await (containers[0] as LimiterStore).read(tenant, 0);
    expect(stored.endpointLeases?.["shared-a"]).toHaveLength(admitted);
  });
});

describe("the endpoint table", () => {
  it("marks contention once per half window, whoever asks", async () => {
    const store = new EndpointStateStore(documents(), ENDPOINTS);
    const endpoint = `ep-${randomUUID().slice(0, 8)}`;
    expect(isContended(await store.read(endpoint), T0)).toBe(false);

    expect(await store.markContended(endpoint, T0)).toBe(T0 + CONTENTION_WINDOW_MICROS);
    // Another instance a second later: the mark stands for more than half a window, so it is kept.
    expect(await store.markContended(endpoint, T0 + SECOND)).toBe(T0 + CONTENTION_WINDOW_MICROS);
    const state = await store.read(endpoint);
    expect(isContended(state, T0 + SECOND)).toBe(true);
    expect(markIsDue(state, T0 + SECOND)).toBe(false);
    // Past half the window it is renewed.
    const renewAt = T0 + CONTENTION_WINDOW_MICROS / 2 + SECOND;
    expect(markIsDue(state, renewAt)).toBe(true);
    expect(await store.markContended(endpoint, renewAt)).toBe(renewAt + CONTENTION_WINDOW_MICROS);
    expect(isContended(await store.read(endpoint), renewAt + CONTENTION_WINDOW_MICROS)).toBe(false);
  });

  it("registers active tenants with their weights, and forgets an erased one", async () => {
    const store = new EndpointStateStore(documents(), ENDPOINTS);
    const endpoint = `ep-${randomUUID().slice(0, 8)}`;
    await store.register(endpoint, "tn-quiet", 1, T0);
    await store.register(endpoint, "tn-noisy", 3, T0 + 1);
    const state = await store.read(endpoint);
    expect(state.active).toEqual({
      "tn-quiet": { weight: 1, seen: T0 },
      "tn-noisy": { weight: 3, seen: T0 + 1 },
    });
    expect(fairShare(state, { id: "tn-quiet", weight: 1 }, 8, T0 + 2)).toBe(2);
    expect(fairShare(state, { id: "tn-noisy", weight: 3 }, 8, T0 + 2)).toBe(6);

    await store.forget(endpoint, "tn-noisy");
    expect(Object.keys((await store.read(endpoint)).active)).toEqual(["tn-quiet"]);
    // Forgetting on an endpoint never used creates nothing.
    const unused = `ep-${randomUUID().slice(0, 8)}`;
    await store.forget(unused, "tn-quiet");
    expect(await store.read(unused)).toEqual(emptyEndpointState());
  });
});

describe("shares", () => {
  const activeTenants = fc.uniqueArray(
    fc.record({ id: fc.stringMatching(/^tn-[a-z0-9]{1,6}$/), weight: fc.integer({ min: 1, max: 16 }) }),
    { minLength: 1, maxLength: 12, selector: (t) => t.id },
  );

  it("give every tenant at least one, add up to the capacity, and follow the weights", () => {
    fc.assert(
      fc.property(activeTenants, fc.integer({ min: 0, max: 500 }), (tenants, extra) => {
        const capacity = tenants.length + extra;
        const weights = new Map(tenants.map((t) => [t.id, t.weight]));
        const shares = fairShares(weights, capacity);
        const of = (id: string) => shares.get(id) ?? 0;
        expect(tenants.every((t) => of(t.id) >= 1)).toBe(true);
        expect(tenants.reduce((sum, t) => sum + of(t.id), 0)).toBe(Math.max(tenants.length, capacity));
        // A heavier tenant never gets fewer slots than a lighter one.
        for (const a of tenants) {
          for (const b of tenants) if (a.weight > b.weight) expect(of(a.id)).toBeGreaterThanOrEqual(of(b.id));
        }
        // A tenant whose weighted part of the whole is at least one is within one slot of it... or more.
        const total = tenants.reduce((sum, t) => sum + t.weight, 0);
        const light = tenants.filter((t) => (capacity * t.weight) / total < 1).length;
        for (const t of tenants) {
          const part = ((capacity - light) * t.weight) / total;
          if (tenants.length < capacity) expect(of(t.id)).toBeGreaterThanOrEqual(Math.floor(part));
        }
        // Every instance computes the same: the caller's view equals the split.
        const state: EndpointState = {
          contendedUntil: T0 + SECOND,
          active: Object.fromEntries(tenants.map((t) => [t.id, { weight: t.weight, seen: T0 }])),
          breaker: emptyBreakerState(),
        };
        for (const t of tenants) expect(fairShare(state, t, capacity, T0 + 1)).toBe(of(t.id));
      }),
    );
  });

  it("give light tenants one slot and the heavy the rest", () => {
    const weights = new Map([
      ["tn-a", 1],
      ["tn-b", 1],
      ["tn-heavy", 16],
    ]);
    expect(Object.fromEntries(fairShares(weights, 4))).toEqual({ "tn-a": 1, "tn-b": 1, "tn-heavy": 2 });
    expect(Object.fromEntries(fairShares(weights, 2))).toEqual({ "tn-a": 1, "tn-b": 1, "tn-heavy": 1 });
    expect(
      Object.fromEntries(
        fairShares(
          new Map([
            ["tn-pro", 2],
            ["tn-free", 1],
          ]),
          4,
        ),
      ),
    ).toEqual({
      "tn-pro": 3,
      "tn-free": 1,
    });
  });

  it("keep what an instance wrote while a read of the item was on its way", () => {
    const known: EndpointState = {
      contendedUntil: T0 + CONTENTION_WINDOW_MICROS,
      active: { "tn-a": { weight: 1, seen: T0 }, "tn-b": { weight: 2, seen: T0 - SECOND } },
      // This instance opened the breaker meanwhile, too.
      breaker: { failures: { 7: 3 }, openUntil: T0 + 20 * SECOND },
    };
    // The read began before the mark and tn-a's registration; it knows tn-b later and tn-c.
    const read: EndpointState = {
      active: { "tn-b": { weight: 2, seen: T0 }, "tn-c": { weight: 4, seen: T0 } },
      breaker: { failures: { 7: 2, 8: 1 } },
    };
    expect(mergeViews(known, read)).toEqual({
      contendedUntil: T0 + CONTENTION_WINDOW_MICROS,
      active: {
        "tn-a": { weight: 1, seen: T0 },
        "tn-b": { weight: 2, seen: T0 },
        "tn-c": { weight: 4, seen: T0 },
      },
      breaker: { failures: { 7: 2, 8: 1 } },
    });
    // The breaker's state is the read's, unless this instance wrote it since the read began.
    expect(mergeViews(known, read, true).breaker).toEqual(known.breaker);
    expect(mergeViews(read, emptyEndpointState())).toEqual({
      ...read,
      breaker: emptyEndpointState().breaker,
    });
  });

  it("count only tenants seen within the active window, and always the caller", () => {
    const state: EndpointState = {
      active: {
        "tn-old": { weight: 5, seen: T0 - ACTIVE_WINDOW_MICROS - 1 },
        "tn-recent": { weight: 1, seen: T0 - SECOND },
      },
      breaker: emptyBreakerState(),
    };
    expect(fairShare(state, { id: "tn-new", weight: 1 }, 10, T0)).toBe(5);
    expect(registrationIsDue(state, "tn-new", 1, T0)).toBe(true);
    expect(registrationIsDue(state, "tn-recent", 1, T0)).toBe(false);
    expect(registrationIsDue(state, "tn-recent", 2, T0)).toBe(true);
    expect(registrationIsDue(state, "tn-recent", 1, T0 + ACTIVE_WINDOW_MICROS / 2)).toBe(true);
  });
});
