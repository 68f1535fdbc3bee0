/**
 * Allotments and refunds on the local DynamoDB over HTTP, with an injected clock (ADR 0004,
 * "Allotments" and "Refunds"): whatever the interleaving of single admissions, settles with refunds,
 * allotment takes, local admissions from them and give-backs, over several containers, the calls
 * admitted never exceed GCRA's bound over any span, for requests and for the tokens they used, and
 * the month never charges less than was used nor admits beyond the budget.
 */
import { randomUUID } from "node:crypto";
import { Allotment, chargeAfter, mergeGiveBacks } from "@atrium/core/allotment";
import type { AdmitRequest, GiveBack, LimiterSnapshot } from "@atrium/core/limiter-item";
import { LimiterStore } from "@atrium/core/limiter-store";
import type { Lease } from "@atrium/core/limiter-updates";
import { gcra, type ShardLimits } from "@atrium/core/limits";
import { LimiterTable } from "@atrium/core/tables";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-allotments");
const SECOND = 1_000_000;
const T0 = Date.UTC(2026, 10, 28, 12, 0, 0) * 1000;
const PROPERTY_TIMEOUT_MS = 240_000;
const RUNS = Number(process.env.ALLOTMENT_RUNS ?? 100);
let dynamo: LocalDynamo;
let tenantCounter = 0;

beforeAll(async () => {
  dynamo = sharedDynamo();
  await ensureTable(localDynamoClient(dynamo.url), TABLE, LimiterTable);
});
afterAll(() => dynamo?.close());

const container = () => new LimiterStore(dynamoClientFor(dynamo.url, { maxAttempts: 10 }), TABLE);

/** A call's admission request: a lease far longer than any step here, so none expires. */
const admitRequest = (
  tenantId: string,
  limits: ShardLimits,
  now: number,
  tokens: number,
  extra: Partial<AdmitRequest> = {},
): AdmitRequest => ({
  tenantId,
  shard: 0,
  limits,
  now,
  tokens,
  leaseId: randomUUID(),
  leaseMicros: 600 * SECOND,
  ...extra,
});

/** One admitted call: when it was admitted and the tokens it used. */
interface Use {
  at: number;
  tokens: number;
}

/**
 * GCRA's bound over every span between two admissions: n units in [a, b] need n * interval <= b - a
 * + window. Returns the worst excess in microseconds (<= 0 when the bound holds).
 */
function worstExcess(uses: Use[], weight: (use: Use) => number, interval: number, window: number): number {
  const sorted = [...uses].sort((x, y) => x.at - y.at);
  let worst = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < sorted.length; i++) {
    let units = 0;
    for (let j = i; j < sorted.length; j++) {
      units += weight(sorted[j] as Use);
      const span = (sorted[j] as Use).at - (sorted[i] as Use).at;
      worst = Math.max(worst, units * interval - span - window);
    }
  }
  return worst;
}

type Kind = "single" | "settle" | "settleEarlier" | "flood" | "take" | "use" | "giveBack" | "retire";

const step = fc.record({
  kind: fc.constantFrom<Kind>("single", "single", "settle", "flood", "take", "use", "giveBack", "retire"),
  container: fc.integer({ min: 0, max: 2 }),
  /** How far the clock moves before this step. */
  advance: fc.constantFrom(0, 0, 2_000, 20_000, 200_000, 2 * SECOND, 20 * SECOND),
  tokens: fc.integer({ min: 1, max: 400 }),
  usedShare: fc.constantFrom<number>(0, 0, 0.3, 1),
  requests: fc.integer({ min: 1, max: 6 }),
  holdShare: fc.constantFrom(0, 0.3, 0.7, 1),
  /** How late in its allotment's hold a burst of local calls comes. */
  late: fc.constantFrom(0, 0.5, 0.99),
  pick: fc.nat(),
});

type Step = typeof step extends fc.Arbitrary<infer S> ? S : never;

/**
 * Steps, partly in the patterns where an excess would show (random steps alone rarely line them up):
 * an allotment spent late in its hold, then a flood; a large reservation settled unused after a later
 * call landed inside its span, then a flood; allotments given back together. Other random steps around them.
 */
const steps = fc
  .array(
    fc.oneof(
      fc.array(step, { minLength: 1, maxLength: 4 }),
      fc.tuple(step, step, step).map(([take, use, flood]) => [
        { ...take, kind: "take" as Kind, advance: 0 },
        { ...use, kind: "use" as Kind, container: take.container, advance: 0 },
        { ...flood, kind: "flood" as Kind, advance: 0 },
      ]),
      // Allotments given back together: one set aside, the next kept, both returned by a third take.
      fc.tuple(step, step, step, step, step).map(([take, retire, keep, give, flood]) => [
        { ...take, kind: "take" as Kind },
        { ...retire, kind: "retire" as Kind, container: take.container },
        { ...keep, kind: "take" as Kind, container: take.container, pick: 1 },
        { ...give, kind: "take" as Kind, container: take.container, pick: 0 },
        { ...flood, kind: "flood" as Kind, advance: 0 },
      ]),
      fc.tuple(step, step, step, step).map(([early, later, settle, flood]) => [
        { ...early, kind: "single" as Kind, usedShare: 0 },
        { ...later, kind: "single" as Kind, usedShare: 1 },
        { ...settle, kind: "settleEarlier" as Kind, advance: 0 },
        { ...flood, kind: "flood" as Kind, advance: 0 },
      ]),
    ),
    { minLength: 1, maxLength: 6 },
  )
  .map((episodes): Step[] => episodes.flat());

describe("allotments and refunds, mixed with single admissions", () => {
  it(
    "property: over any span, admitted requests and used tokens stay within GCRA's bound; the month within the budget",
    async () => {
      await fc.assert(
        fc.asyncProperty(
          // Either limit may be the one that binds: few requests in a burst, or few tokens per minute.
          fc.oneof(
            fc.record({
              requestsPerMinute: fc.integer({ min: 60, max: 1200 }),
              burst: fc.integer({ min: 4, max: 30 }),
              tokensPerMinute: fc.constant(1_000_000),
              monthlyTokens: fc.constant(1_000_000_000),
            }),
            fc.record({
              requestsPerMinute: fc.constant(100_000),
              burst: fc.constant(100_000),
              tokensPerMinute: fc.integer({ min: 600, max: 6000 }),
              monthlyTokens: fc.integer({ min: 1000, max: 100_000 }),
            }),
          ),
          steps,
          async (shape, run) => {
            const tenantId = `tn-allot-${++tenantCounter}`;
            const limits: ShardLimits = { shards: 1, concurrency: 1000, ...shape };
            const requestLimit = gcra(limits.requestsPerMinute, limits.burst);
            const tokenLimit = gcra(limits.tokensPerMinute);
            const stores = [container(), container(), container()];
            const held: (Allotment | undefined)[] = [undefined, undefined, undefined];
            // Allotments a container set aside (its calls still running, as allotments.ts retires them):
            // given back, merged, with its next take, as of the item it last saw.
            const retired: GiveBack[][] = [[], [], []];
            const seen: (LimiterSnapshot | undefined)[] = [undefined, undefined, undefined];
            const pending: { store: LimiterStore; lease: Lease; used: number }[] = [];
            const uses: Use[] = [];
            let now = T0;

            for (const s of run) {
              now += s.advance;
              const store = stores[s.container] as LimiterStore;
              const allotment = held[s.container];
              if (s.kind === "single") {
                const admission = await store.admit(admitRequest(tenantId, limits, now, s.tokens));
                if (admission.admitted) {
                  const used = Math.floor(s.tokens * s.usedShare);
                  uses.push({ at: now, tokens: used });
                  pending.push({ store, lease: admission.lease, used });
                }
              } else if (s.kind === "flood") {
                // Calls using all they reserve, until one is refused: this is what finds any excess.
                for (let i = 0; i < 40; i++) {
                  const admission = await store.admit(admitRequest(tenantId, limits, now, s.tokens));
                  if (!admission.admitted) break;
                  uses.push({ at: now, tokens: s.tokens });
                  pending.push({ store, lease: admission.lease, used: s.tokens });
                }
              } else if (s.kind === "settle" && pending.length > 0) {
                const [call] = pending.splice(s.pick % pending.length, 1);
                if (call) await call.store.settle(call.lease, call.used, now);
              } else if (s.kind === "settleEarlier" && pending.length > 1) {
                const [call] = pending.splice(pending.length - 2, 1);
                if (call) await call.store.settle(call.lease, call.used, now);
              } else if (s.kind === "take") {
                const window = Math.min(requestLimit.window, tokenLimit.window);
                const holdMicros = Math.round(s.holdShare * Math.min(2 * SECOND, window / 2));
                // Set-aside allotments go back now or with a later take (their calls still running).
                const returning = s.pick % 2 === 0 ? (retired[s.container] ?? []) : [];
                if (returning.length > 0) retired[s.container] = [];
                const backs = [...returning, ...(allotment ? [allotment.giveBack()] : [])];
                const [giveBack, ...others] = mergeGiveBacks(backs, seen[s.container]);
                for (const other of others) {
                  await store.giveBack({ tenantId, shard: 0, giveBack: other, release: [], now });
                }
                const admission = await store.admit(
                  admitRequest(tenantId, limits, now, s.requests * s.tokens, {
                    allotment: {
                      requests: s.requests,
                      slots: 0,
                      holdMicros,
                      renewal: false,
                      ...(giveBack ? { giveBack } : {}),
                    },
                  }),
                );
                held[s.container] = undefined;
                seen[s.container] = admission.snapshot;
                if (admission.admitted) {
                  held[s.container] = new Allotment(
                    0,
                    "2026-11",
                    now + holdMicros,
                    { requests: s.requests, tokens: s.requests * s.tokens, holdMicros },
                    chargeAfter(limits, admission.snapshot),
                  );
                }
              } else if (s.kind === "use" && allotment) {
                // A burst of calls admitted here without a write, late in the hold (where an excess would
                // show), each settled at once: unused tokens stay in the allotment.
                now = Math.max(now, Math.round(allotment.until - (1 - s.late) * allotment.size.holdMicros));
                const used = Math.floor(s.tokens * s.usedShare);
                while (allotment.fits(s.tokens, now)) {
                  allotment.take(s.tokens);
                  allotment.settle(s.tokens, used);
                  uses.push({ at: now, tokens: used });
                  if (used === 0 && allotment.requestsLeft === 0) break;
                }
              } else if (s.kind === "retire" && allotment) {
                held[s.container] = undefined;
                retired[s.container]?.push(allotment.giveBack());
              } else if (s.kind === "giveBack" && allotment) {
                held[s.container] = undefined;
                await store.giveBack({
                  tenantId,
                  shard: 0,
                  giveBack: allotment.giveBack(),
                  release: [],
                  now,
                });
              }
            }

            expect(
              worstExcess(uses, () => 1, requestLimit.interval, requestLimit.window),
            ).toBeLessThanOrEqual(0);
            expect(
              worstExcess(uses, (use) => use.tokens, tokenLimit.interval, tokenLimit.window),
            ).toBeLessThanOrEqual(0);
            const used = uses.reduce((sum, use) => sum + use.tokens, 0);
            const charged = (await container().read(tenantId, 0)).monthUsed;
            expect(used).toBeLessThanOrEqual(limits.monthlyTokens);
            expect(charged).toBeGreaterThanOrEqual(used);

            // Once every call has settled and every allotment gone back, the month holds exactly what
            // was used: nothing given back twice, nothing kept.
            for (const call of pending) await call.store.settle(call.lease, call.used, now);
            for (const [c, store] of stores.entries()) {
              const backs = [...(retired[c] ?? []), ...(held[c] ? [(held[c] as Allotment).giveBack()] : [])];
              for (const giveBack of mergeGiveBacks(backs, seen[c])) {
                await store.giveBack({ tenantId, shard: 0, giveBack, release: [], now });
              }
            }
            expect((await container().read(tenantId, 0)).monthUsed).toBe(used);
          },
        ),
        // A failure is shown as found: shrinking its many writes would outlast the timeout.
        { numRuns: RUNS, endOnFailure: true },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("a take whose container saw the item before another container moved it", () => {
  it("costs two writes, its give-back riding along in the second, and the month stays exact", async () => {
    const tenantId = `tn-allot-${++tenantCounter}`;
    const limits: ShardLimits = {
      shards: 1,
      requestsPerMinute: 6000,
      burst: 6000,
      tokensPerMinute: 1_000_000,
      concurrency: 1000,
      monthlyTokens: 1_000_000_000,
    };
    const hold = 100_000;
    const take = (store: LimiterStore, now: number, giveBack?: GiveBack) =>
      store.admit(
        admitRequest(tenantId, limits, now, 10 * 100, {
          allotment: {
            requests: 10,
            slots: 0,
            holdMicros: hold,
            renewal: giveBack !== undefined,
            ...(giveBack ? { giveBack } : {}),
          },
        }),
      );
    const a = container();
    const b = container();
    // A takes 10 calls' worth and uses 2 of them (100 tokens each, 50 used).
    const first = await take(a, T0);
    if (!first.admitted) throw new Error("expected the first take");
    const allotment = new Allotment(
      0,
      "2026-11",
      T0 + hold,
      { requests: 10, tokens: 1000, holdMicros: hold },
      chargeAfter(limits, first.snapshot),
    );
    for (let i = 0; i < 2; i++) {
      allotment.take(100);
      allotment.settle(100, 50);
    }
    // Ten seconds on, B takes first: the item's TATs restart from B's take, past what A last saw.
    const later = T0 + 10 * SECOND;
    expect((await take(b, later)).admitted).toBe(true);
    // A guessed from its own item (idle, the TATs long past): that write fails, and the next one,
    // from the item as it is, takes and gives back in one. It took four before: the give-back on its
    // own, then the take guessed again.
    const renewal = await take(a, later, allotment.giveBack());
    expect(renewal.admitted).toBe(true);
    expect(renewal.writes).toBe(2);
    // Month: B's 1,000 and A's new 1,000 reserved, and of A's first 1,000 the 100 its calls used.
    expect((await container().read(tenantId, 0)).monthUsed).toBe(1000 + 1000 + 100);
  });
});

describe("refunds", () => {
  it("a reservation settled unused after a later call landed inside its span gives back only what no call was placed on", async () => {
    const tenantId = `tn-allot-${++tenantCounter}`;
    const limits: ShardLimits = {
      shards: 1,
      requestsPerMinute: 100_000,
      burst: 100_000,
      tokensPerMinute: 6000,
      concurrency: 1000,
      monthlyTokens: 1_000_000_000,
    };
    const request = (now: number, tokens: number) => admitRequest(tenantId, limits, now, tokens);
    // 3,000 tokens reserved at T0 (the TAT runs 30 s ahead); a second later 100 more land behind them.
    const early = await container().admit(request(T0, 3000));
    expect((await container().admit(request(T0 + SECOND, 100))).admitted).toBe(true);
    if (!early.admitted) throw new Error("expected an admission");
    await container().settle(early.lease, 0, T0 + SECOND);
    // Moving the TAT back by all 3,000 would let 6,000 more in at once beside those 100: 6,100 in a
    // 6,000-token window (the refund this change fixed did). The limit holds: at most 5,900 more.
    const flood = container();
    let more = 0;
    while ((await flood.admit(request(T0 + SECOND, 100))).admitted) more += 100;
    expect(more + 100).toBeLessThanOrEqual(6000);
    expect(more).toBeGreaterThan(5000);
  });
});
