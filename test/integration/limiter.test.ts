/**
 * The limiter on the local DynamoDB over HTTP, with an injected clock: exactness under concurrency
 * from several containers (each its own LimiterStore and SDK client), lease expiry, month rollover,
 * settle/refund, settles after an erase, and shards that together never exceed the tenant's limits.
 */
import { randomUUID } from "node:crypto";
import { parseStageConfig } from "@atrium/core/config";
import { eraseTenantPartition } from "@atrium/core/erase";
import { type AdmitRequest, limiterKey } from "@atrium/core/limiter-item";
import { type Admission, LimiterStore } from "@atrium/core/limiter-store";
import { creditUpdate } from "@atrium/core/limiter-updates";
import {
  gcra,
  gcraAdmit,
  type ShardLimits,
  shardLimits,
  type TenantLimits,
  tenantLimits,
} from "@atrium/core/limits";
import { LimiterTable } from "@atrium/core/tables";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-limits");
let dynamo: LocalDynamo;

beforeAll(async () => {
  dynamo = sharedDynamo();
  await ensureTable(client(), TABLE, LimiterTable);
});
afterAll(() => dynamo?.close());

function client() {
  return localDynamoClient(dynamo.url, { maxAttempts: 10 });
}
const documents = () => dynamoClientFor(dynamo.url, { maxAttempts: 10 });

/** A fresh "Lambda container": its own SDK client and its own limiter cache. */
const container = () => new LimiterStore(documents(), TABLE);

const SECOND = 1_000_000;
/** Properties make hundreds of writes; on a loaded machine that takes longer than vitest's default. */
const PROPERTY_TIMEOUT_MS = 180_000;
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0) * 1000;
let tenantCounter = 0;
const newTenant = () => `tn-limit-${++tenantCounter}`;

function limits(overrides: Partial<ShardLimits> = {}): ShardLimits {
  return {
    shards: 1,
    requestsPerMinute: 60,
    burst: 10,
    tokensPerMinute: 1_000_000,
    concurrency: 1000,
    monthlyTokens: 1_000_000_000,
    ...overrides,
  };
}

function request(
  tenantId: string,
  now: number,
  l: ShardLimits,
  tokens = 1,
  leaseMicros = 60 * SECOND,
  shard = 0,
): AdmitRequest {
  return { tenantId, shard, limits: l, now, tokens, leaseId: randomUUID(), leaseMicros };
}

/** Tokens charged to the month over all of a tenant's shards. */
async function monthTotal(tenantId: string, shards: number): Promise<number> {
  const store = container();
  let total = 0;
  for (let shard = 0; shard < shards; shard++) total += (await store.read(tenantId, shard)).monthUsed;
  return total;
}

describe("exactness under concurrency", () => {
  it("from idle, 300 concurrent calls from 4 containers admit exactly the burst, then the rate", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 60, burst: 25 });
    const containers = [container(), container(), container(), container()];
    const flood = await Promise.all(
      Array.from({ length: 300 }, (_, i) => containers[i % 4]?.admit(request(tenantId, T0, l))),
    );
    expect(flood.filter((a) => a?.admitted)).toHaveLength(25);
    const refused = flood.filter((a) => a && !a.admitted);
    expect(refused.every((a) => a && !a.admitted && a.reason === "requests")).toBe(true);

    // 10 seconds later at 60/min: exactly 10 more, however many ask.
    const later = await Promise.all(
      Array.from({ length: 100 }, (_, i) => containers[i % 4]?.admit(request(tenantId, T0 + 10 * SECOND, l))),
    );
    expect(later.filter((a) => a?.admitted)).toHaveLength(10);
  });

  it("a new container admits in one write, whether the tenant's item exists or not", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 6000, burst: 6000 });
    // No item yet: the first call of a new tenant, on a container that never saw it.
    expect(await container().admit(request(tenantId, T0, l))).toMatchObject({ admitted: true, writes: 1 });
    // The item exists, in this month: another new container's first call on the tenant.
    const later = request(tenantId, T0 + SECOND, l);
    expect(await container().admit(later)).toMatchObject({ admitted: true, writes: 1 });
    expect((await container().read(tenantId, 0)).monthUsed).toBe(2);
  });

  it("reports the exact wait: a refused call admitted at retryAfter, not a microsecond before", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 60, burst: 1 });
    const store = container();
    expect((await store.admit(request(tenantId, T0, l))).admitted).toBe(true);
    const refused = await store.admit(request(tenantId, T0, l));
    expect(refused).toMatchObject({ admitted: false, reason: "requests", retryAfter: SECOND });
    expect((await store.admit(request(tenantId, T0 + SECOND - 1, l))).admitted).toBe(false);
    expect((await store.admit(request(tenantId, T0 + SECOND, l))).admitted).toBe(true);
  });

  it("never over-admits tokens, and a refund makes room again", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 10_000, burst: 10_000, tokensPerMinute: 1000 });
    const store = container();
    const flood = await Promise.all(
      Array.from({ length: 50 }, () => container().admit(request(tenantId, T0, l, 100))),
    );
    const admitted = flood.filter((a) => a.admitted);
    expect(admitted).toHaveLength(10);
    expect((await store.admit(request(tenantId, T0, l, 100))).admitted).toBe(false);

    // Each of the 10 used 40 of its 100 tokens: settled in the order they were admitted, 600 come back.
    const byCharge = admitted.flatMap((a) => (a.admitted ? [a.lease] : []));
    byCharge.sort((x, y) => x.tokenMark.tatAfter - y.tokenMark.tatAfter);
    for (const lease of byCharge) await store.settle(lease, 40, T0);
    const after = await Promise.all(
      Array.from({ length: 20 }, () => container().admit(request(tenantId, T0, l, 100))),
    );
    expect(after.filter((a) => a.admitted)).toHaveLength(6);
  });
});

describe("concurrency leases", () => {
  it("admits at most the concurrency limit in flight; settling frees a slot", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 100_000, burst: 100_000, concurrency: 5 });
    const flood = await Promise.all(
      Array.from({ length: 40 }, () => container().admit(request(tenantId, T0, l))),
    );
    const admitted = flood.filter((a) => a.admitted);
    expect(admitted).toHaveLength(5);
    expect(flood.filter((a) => !a.admitted && a.reason === "concurrency")).toHaveLength(35);

    const first = admitted[0];
    if (!first?.admitted) throw new Error("unreachable");
    await container().settle(first.lease, 1, T0);
    const next = await Promise.all(
      Array.from({ length: 10 }, () => container().admit(request(tenantId, T0, l))),
    );
    expect(next.filter((a) => a.admitted)).toHaveLength(1);
  });

  it("expires the leases of holders that never settle (a crashed Lambda leaks no slot)", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 100_000, burst: 100_000, concurrency: 2 });
    const store = container();
    const lease = 30 * SECOND;
    expect((await store.admit(request(tenantId, T0, l, 1, lease))).admitted).toBe(true);
    expect((await store.admit(request(tenantId, T0, l, 1, lease))).admitted).toBe(true);
    const full = await store.admit(request(tenantId, T0 + lease - 1, l, 1, lease));
    expect(full).toMatchObject({ admitted: false, reason: "concurrency" });

    const revived = await container().admit(request(tenantId, T0 + lease, l, 1, lease));
    expect(revived.admitted).toBe(true);
    // One conditional write refused on the stale leases, one clean-up, one admission.
    expect(revived.writes).toBe(3);
    const store2 = container();
    expect((await store2.admit(request(tenantId, T0 + lease, l, 1, lease))).admitted).toBe(true);
    expect((await store2.admit(request(tenantId, T0 + lease, l, 1, lease))).admitted).toBe(false);
  });
});

describe("the monthly budget", () => {
  it("is never overshot, is corrected by settle, and resets at the UTC month boundary", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 100_000, burst: 100_000, monthlyTokens: 1000 });
    const store = container();
    const a = await store.admit(request(tenantId, T0, l, 400));
    const b = await store.admit(request(tenantId, T0, l, 400));
    const c = await store.admit(request(tenantId, T0, l, 400));
    expect([a.admitted, b.admitted, c.admitted]).toEqual([true, true, false]);
    expect(c).toMatchObject({ reason: "monthly_budget" });
    if (!c.admitted) expect(c.retryAfter).toBe(Date.UTC(2026, 11, 1) * 1000 - T0);

    if (a.admitted) await store.settle(a.lease, 100, T0);
    if (b.admitted) await store.settle(b.lease, 100, T0);
    expect((await store.read(tenantId, 0)).monthUsed).toBe(200);
    expect((await store.admit(request(tenantId, T0, l, 400))).admitted).toBe(true);
    expect((await store.admit(request(tenantId, T0, l, 400))).admitted).toBe(true);
    expect((await store.admit(request(tenantId, T0, l, 400))).admitted).toBe(false);

    const december = Date.UTC(2026, 11, 1, 0, 0, 0) * 1000;
    const rolled = await container().admit(request(tenantId, december, l, 400));
    expect(rolled.admitted).toBe(true);
    const stored = await store.read(tenantId, 0);
    expect(stored).toMatchObject({ month: "2026-12", monthUsed: 400 });
  });

  it("a call admitted in one month and settled in the next corrects nothing in the new month", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 100_000, burst: 100_000, monthlyTokens: 1000 });
    const lastSecond = Date.UTC(2026, 11, 1) * 1000 - SECOND;
    const late = await container().admit(request(tenantId, lastSecond, l, 500));
    const december = await container().admit(request(tenantId, lastSecond + 2 * SECOND, l, 300));
    expect(late.admitted && december.admitted).toBe(true);
    if (late.admitted)
      expect((await container().settle(late.lease, 10, lastSecond + 3 * SECOND)).writes).toBe(2);
    expect(await container().read(tenantId, 0)).toMatchObject({
      month: "2026-12",
      monthUsed: 300,
      leases: [expect.any(String)],
    });
  });

  it("property: tokens settled in a month never exceed the budget", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            reserve: fc.integer({ min: 1, max: 400 }),
            usedShare: fc.double({ min: 0, max: 1, noNaN: true }),
          }),
          {
            minLength: 1,
            maxLength: 25,
          },
        ),
        async (calls) => {
          const tenantId = newTenant();
          const l = limits({ requestsPerMinute: 100_000, burst: 100_000, monthlyTokens: 1500 });
          const store = container();
          let settled = 0;
          const outcomes = await Promise.all(
            calls.map((call) => container().admit(request(tenantId, T0, l, call.reserve))),
          );
          for (const [i, outcome] of outcomes.entries()) {
            if (!outcome.admitted) continue;
            const used = Math.floor((calls[i]?.reserve ?? 0) * (calls[i]?.usedShare ?? 0));
            await store.settle(outcome.lease, used, T0);
            settled += used;
          }
          expect(settled).toBeLessThanOrEqual(1500);
          expect((await store.read(tenantId, 0)).monthUsed).toBe(settled);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe("refunds and restarts", () => {
  it("does not refund a reservation whose window a later restart already forgot", async () => {
    const tenantId = newTenant();
    const l = limits({ requestsPerMinute: 100_000, burst: 100_000, tokensPerMinute: 600 });
    const same = container();
    const early = await same.admit(request(tenantId, T0, l, 300)); // TAT = T0 + 30 s
    // A minute later the limiter is idle; this admission restarts the token TAT from now.
    const later = await same.admit(request(tenantId, T0 + 60 * SECOND, l, 600));
    expect(early.admitted && later.admitted).toBe(true);
    // The early reservation's slots lie behind now: its tokens go back to the month, not to the TAT.
    if (early.admitted) expect((await same.settle(early.lease, 0, T0 + 60 * SECOND)).settled).toBe(true);
    // Had the 300 been refunded, 300 more tokens would now fit; they must not.
    const probe = await container().admit(request(tenantId, T0 + 60 * SECOND, l, 300));
    expect(probe).toMatchObject({ admitted: false, reason: "tokens" });
  });
});

describe("against the reference GCRA", () => {
  it("property: sequential decisions equal a max-based GCRA's, for any arrival pattern", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 120 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.integer({ min: 0, max: 3 * SECOND }), { minLength: 1, maxLength: 30 }),
        async (rpm, burst, gaps) => {
          const tenantId = newTenant();
          const l = limits({ requestsPerMinute: rpm, burst });
          const reference = gcra(rpm, burst);
          let tat: number | undefined;
          let now = T0;
          const containers = [container(), container()];
          for (const [i, gap] of gaps.entries()) {
            now += gap;
            const expected = gcraAdmit(reference, tat, now, 1);
            if (expected.allowed) tat = expected.tat;
            const actual = await containers[i % 2]?.admit(request(tenantId, now, l));
            expect(actual?.admitted).toBe(expected.allowed);
          }
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe("limit changes", () => {
  it("raising a limit frees its capacity at once: one call at 120 per minute, then 6,000 with a burst of 30", async () => {
    const tenantId = newTenant();
    const store = container();
    expect(
      (await store.admit(request(tenantId, T0, limits({ requestsPerMinute: 120, burst: 120 })))).admitted,
    ).toBe(true);
    // That call is 500 ms of the old limit's time, ahead of a 300 ms window: one request is 10 ms now.
    const raised = limits({ requestsPerMinute: 6000, burst: 30 });
    const after = await Promise.all(
      Array.from({ length: 30 }, () => container().admit(request(tenantId, T0, raised))),
    );
    expect(after.filter((a) => a.admitted)).toHaveLength(29);
    expect(after.find((a) => !a.admitted)).toMatchObject({ reason: "requests", retryAfter: 10_000 });
  });

  it("lowering a limit applies it to what was used: 30 calls at 6,000 per minute leave 90 of a 120 burst", async () => {
    const tenantId = newTenant();
    const fast = limits({ requestsPerMinute: 6000, burst: 30 });
    const burst = await Promise.all(
      Array.from({ length: 30 }, () => container().admit(request(tenantId, T0, fast))),
    );
    expect(burst.every((a) => a.admitted)).toBe(true);
    const lowered = limits({ requestsPerMinute: 120, burst: 120 });
    const store = container();
    let admitted = 0;
    for (let i = 0; i < 130; i++)
      if ((await store.admit(request(tenantId, T0, lowered))).admitted) admitted += 1;
    expect(admitted).toBe(90);
  });

  it("a reservation made before its token limit changed gives its tokens back to the month, not to the TAT", async () => {
    const tenantId = newTenant();
    const store = container();
    const a = await store.admit(request(tenantId, T0, limits({ tokensPerMinute: 600 }), 300));
    if (!a.admitted) throw new Error("expected an admission");
    // Doubling the limit rescales the 30 s the reservation holds to 15 s, and counts as a restart.
    const doubled = limits({ tokensPerMinute: 1200 });
    expect((await store.admit(request(tenantId, T0, doubled, 1))).admitted).toBe(true);
    const before = await store.read(tenantId, 0);
    expect(before.tokenTat).toBe(T0 + 15 * SECOND + 50_000);
    expect((await store.settle(a.lease, 0, T0)).settled).toBe(true);
    const after = await store.read(tenantId, 0);
    // Its 300 tokens were 30 s of the old interval: moving the rescaled TAT back by them would free 600.
    expect(after.tokenTat).toBe(before.tokenTat);
    expect(after.monthUsed).toBe(before.monthUsed - 300);
  });

  it(
    "property: sequential decisions equal a GCRA that carries the units outstanding across limit changes",
    async () => {
      const setting = fc.record({
        rpm: fc.integer({ min: 1, max: 240 }),
        burst: fc.integer({ min: 1, max: 8 }),
      });
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ gap: fc.integer({ min: 0, max: 2 * SECOND }), setting: fc.option(setting) }), {
            minLength: 1,
            maxLength: 30,
          }),
          setting,
          async (calls, first) => {
            const tenantId = newTenant();
            const containers = [container(), container()];
            let current = first;
            let tat: number | undefined;
            let tatInterval = 0;
            let now = T0;
            for (const [i, call] of calls.entries()) {
              now += call.gap;
              current = call.setting ?? current;
              const reference = gcra(current.rpm, current.burst);
              if (tat !== undefined && tat > now && tatInterval !== reference.interval) {
                // The definition: units outstanding stay outstanding, each as long as the new interval.
                const units = BigInt(tat - now) * BigInt(reference.interval);
                const divisor = BigInt(tatInterval);
                tat = now + Number((units + divisor - 1n) / divisor);
              }
              tatInterval = reference.interval;
              const expected = gcraAdmit(reference, tat, now, 1);
              if (expected.allowed) tat = expected.tat;
              const l = limits({ requestsPerMinute: current.rpm, burst: current.burst });
              const actual = await containers[i % 2]?.admit(request(tenantId, now, l));
              expect(actual?.admitted).toBe(expected.allowed);
              if (actual && !actual.admitted) expect(actual.retryAfter).toBe(expected.retryAfter);
            }
          },
        ),
        { numRuns: 40 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("settling", () => {
  it("never charges more than was reserved: reserving 100 and reporting 1,000 charges 100 (the issue's reproduction)", async () => {
    const tenantId = newTenant();
    const l = limits({ monthlyTokens: 400 });
    const store = container();
    const a = await store.admit(request(tenantId, T0, l, 100));
    if (!a.admitted) throw new Error("expected an admission");
    await store.settle(a.lease, 1000, T0);
    expect((await store.read(tenantId, 0)).monthUsed).toBe(100);
  });

  it("settling the same lease twice (an SDK retry after a lost reply) refunds once", async () => {
    const tenantId = newTenant();
    const store = container();
    const a = await store.admit(request(tenantId, T0, limits(), 300));
    if (!a.admitted) throw new Error("expected an admission");
    expect(await store.settle(a.lease, 100, T0)).toEqual({ writes: 1, settled: true });
    expect(await container().settle(a.lease, 100, T0)).toEqual({ writes: 1, settled: false });
    expect((await store.read(tenantId, 0)).monthUsed).toBe(100);
  });

  it("after the tenant's limiter item was erased, re-creates nothing and says so", async () => {
    const tenantId = newTenant();
    const l = limits({ tokensPerMinute: 600 });
    const store = container();
    const running = await store.admit(request(tenantId, T0, l, 300));
    const other = await store.admit(request(tenantId, T0, l, 100));
    if (!running.admitted || !other.admitted) throw new Error("expected admissions");
    const db = documents();
    expect(await eraseTenantPartition({ db, tableName: TABLE }, tenantId)).toBe(1);

    // A refund (the guarded form with the TAT still ahead) and a full charge: both find nothing.
    expect(await store.settle(running.lease, 10, T0)).toEqual({ writes: 1, settled: false });
    expect(await store.settle(other.lease, 100, T0)).toEqual({ writes: 1, settled: false });
    const { Item } = await db.get({ TableName: TABLE, Key: limiterKey(tenantId, 0) });
    expect(Item).toBeUndefined();
  });
});

describe("shards", () => {
  const stage = parseStageConfig({
    region: "eu-west-1",
    tiers: {
      t: {
        tenancy: "pool",
        limits: { requestsPerMinute: 1, tokensPerMinute: 1, concurrency: 1, monthlyTokens: 1 },
        maxTokens: { default: 1, cap: 1 },
        limiterFailMode: "closed",
      },
    },
    sharedEndpoints: [],
  });
  const wholeLimits = (overrides: Partial<TenantLimits>, limiterShards: number): TenantLimits =>
    tenantLimits(
      {
        id: "tn-shards",
        name: "shards",
        tier: "t",
        status: "active",
        compliance: [],
        endpoints: {},
        createdAt: "2026-11-28T00:00:00.000Z",
        limits: {
          requestsPerMinute: 100_000,
          burst: 100_000,
          tokensPerMinute: 100_000_000,
          concurrency: 1000,
          monthlyTokens: 1e12,
          ...overrides,
        },
        limiterShards,
      },
      stage,
    );

  // Four "containers" shared by the properties: each has its own SDK client and prediction cache.
  let pool: LimiterStore[] = [];
  beforeAll(() => {
    pool = [container(), container(), container(), container()];
  });

  it("a loan's credit sent twice (an SDK retry after a lost reply) applies once", async () => {
    const tenantId = newTenant();
    const whole = wholeLimits({ monthlyTokens: 1000 }, 2);
    expect(
      (await pool[0]?.admit(request(tenantId, T0, shardLimits(whole, 1), 300, 60 * SECOND, 1)))?.admitted,
    ).toBe(true);
    // Shard 1 borrowed a fair share (500) and holds 300 of it: its charge is -200.
    const shard1 = await container().read(tenantId, 1);
    expect(shard1.monthUsed).toBe(-200);
    const credit = creditUpdate(
      TABLE,
      { tenantId, shard: 1, amount: 50, month: "2026-11", sameMonth: true, now: T0 },
      `${T0 + 60 * SECOND}:${randomUUID()}`,
    );
    const db = documents();
    await db.update(credit);
    await expect(db.update(credit)).rejects.toMatchObject({ name: "ConditionalCheckFailedException" });
    expect((await container().read(tenantId, 1)).monthUsed).toBe(-250);
  });

  it("a loan's credit lands although other calls write the borrowing shard meanwhile (no lost loan)", async () => {
    const tenantId = newTenant();
    const whole = wholeLimits({ monthlyTokens: 1000 }, 2);
    const onShard1 = (tokens: number) => request(tenantId, T0, shardLimits(whole, 1), tokens, 60 * SECOND, 1);
    const other = container();
    // Shard 1 borrows a fair share (500) for 100: its charge is -400, shard 0's 500.
    expect((await other.admit(onShard1(100))).admitted).toBe(true);

    // Container A: once it has lent from shard 0, another container admits a 1-token call on shard 1
    // before each of A's writes to shard 1, so shard 1's charge never stays as A's refusal saw it.
    const db = documents();
    let lent = false;
    let interleaved = 0;
    db.beforeSend(async (_operation, input) => {
      const key = JSON.stringify(input.Key);
      if (key.includes("LIMITER#0")) lent = true;
      if (lent && key.includes("LIMITER#1") && interleaved < 4) {
        interleaved += 1;
        expect((await other.admit(onShard1(1))).admitted).toBe(true);
      }
    });
    // 450 > 400 left on shard 1: A borrows 500 from shard 0 and must get it, whatever runs meanwhile.
    const borrower = await new LimiterStore(db, TABLE).admit(onShard1(450));
    expect(borrower.admitted).toBe(true);
    expect(interleaved).toBeGreaterThanOrEqual(2);
    expect(await monthTotal(tenantId, 2)).toBe(100 + 450 + interleaved);
  });

  it(
    "property: for any limit and shard count, calls landing anywhere never exceed the tenant's limit",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom("concurrency", "burst", "tokensPerMinute"),
          fc.integer({ min: 1, max: 6 }),
          fc.integer({ min: 1, max: 8 }),
          fc.array(fc.nat(), { minLength: 4, maxLength: 24 }),
          async (limit, value, limiterShards, landings) => {
            const tenantId = newTenant();
            const whole = wholeLimits({ [limit]: value }, limiterShards);
            const outcomes = await Promise.all(
              landings.map((landing, i) => {
                const shard = landing % whole.shards;
                const limitsOfShard = shardLimits(whole, shard);
                return pool[i % pool.length]?.admit(
                  request(tenantId, T0, limitsOfShard, 1, 60 * SECOND, shard),
                );
              }),
            );
            const admitted = outcomes.filter((a) => a?.admitted).length;
            expect(admitted).toBeLessThanOrEqual(whole[limit]);
          },
        ),
        { numRuns: 20 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "property: sequentially, a budget refusal comes exactly when the month's remaining total is below the call's need",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 50, max: 2000 }),
          fc.integer({ min: 1, max: 6 }),
          fc.array(
            fc.record({
              landing: fc.nat(),
              tokens: fc.integer({ min: 1, max: 600 }),
              usedShare: fc.double({ min: 0, max: 1.5, noNaN: true }),
              settleAt: fc.nat({ max: 3 }),
            }),
            { minLength: 1, maxLength: 20 },
          ),
          async (budget, limiterShards, calls) => {
            const tenantId = newTenant();
            const whole = wholeLimits({ monthlyTokens: budget }, limiterShards);
            const containers = pool.slice(0, 2);
            let charged = 0;
            const inFlight: {
              lease: Extract<Admission, { admitted: true }>["lease"];
              used: number;
              at: number;
            }[] = [];
            for (const [i, call] of calls.entries()) {
              // Settle what is due first: some calls end before the next one starts, some after.
              for (const held of inFlight.filter((h) => h.at <= i)) {
                await containers[i % 2]?.settle(held.lease, held.used, T0 + i);
                charged += Math.min(held.used, held.lease.tokens);
                inFlight.splice(inFlight.indexOf(held), 1);
              }
              const reserved = inFlight.reduce((sum, held) => sum + held.lease.tokens, 0);
              const remaining = budget - charged - reserved;
              const shard = call.landing % whole.shards;
              const store = containers[call.landing % 2] as LimiterStore;
              const outcome = await store.admit(
                request(tenantId, T0 + i, shardLimits(whole, shard), call.tokens, 60 * SECOND, shard),
              );
              if (call.tokens <= remaining) {
                expect(outcome.admitted).toBe(true);
              } else {
                expect(outcome).toMatchObject({ admitted: false, reason: "monthly_budget" });
                if (call.tokens <= budget) expect(outcome).toMatchObject({ monthRemaining: remaining });
              }
              if (outcome.admitted) {
                const used = Math.floor(call.tokens * call.usedShare);
                inFlight.push({ lease: outcome.lease, used, at: i + call.settleAt });
              }
            }
            for (const held of inFlight) {
              await containers[0]?.settle(held.lease, held.used, T0 + calls.length);
              charged += Math.min(held.used, held.lease.tokens);
            }
            expect(charged).toBeLessThanOrEqual(budget);
            expect(await monthTotal(tenantId, whole.shards)).toBe(charged);
          },
        ),
        { numRuns: 20 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "property: concurrent calls over shards never charge the month beyond the budget",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          // Small shapes keep the writes few on a loaded machine; calls still ask up to 3x the budget.
          fc.integer({ min: 100, max: 1000 }),
          fc.integer({ min: 2, max: 4 }),
          fc.array(
            fc.record({
              landing: fc.nat(),
              tokens: fc.integer({ min: 1, max: 400 }),
              usedShare: fc.double({ min: 0, max: 2, noNaN: true }),
            }),
            { minLength: 2, maxLength: 8 },
          ),
          async (budget, limiterShards, calls) => {
            const tenantId = newTenant();
            const whole = wholeLimits({ monthlyTokens: budget }, limiterShards);
            const outcomes = await Promise.all(
              calls.map((call, i) => {
                const shard = call.landing % whole.shards;
                const limitsOfShard = shardLimits(whole, shard);
                const store = pool[i % pool.length] as LimiterStore;
                return store.admit(request(tenantId, T0, limitsOfShard, call.tokens, 60 * SECOND, shard));
              }),
            );
            const admitted = outcomes.flatMap((outcome, i) =>
              outcome.admitted ? [{ outcome, call: calls[i] }] : [],
            );
            expect(admitted.reduce((sum, { call }) => sum + (call?.tokens ?? 0), 0)).toBeLessThanOrEqual(
              budget,
            );
            let charged = 0;
            await Promise.all(
              admitted.map(({ outcome, call }) => {
                const used = Math.floor((call?.tokens ?? 0) * (call?.usedShare ?? 0));
                charged += Math.min(used, outcome.lease.tokens);
                return pool[0]?.settle(outcome.lease, used, T0);
              }),
            );
            expect(await monthTotal(tenantId, whole.shards)).toBe(charged);
            expect(charged).toBeLessThanOrEqual(budget);
          },
        ),
        { numRuns: 8 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});
