import {
  formatDuration,
  gcra,
  gcraAdmit,
  gcraState,
  largestCall,
  monthAllowance,
  monthOf,
  promptTokenBound,
  rescaledTat,
  shardLimits,
  tenantLimits,
  untilNextMonth,
} from "@atrium/core/limits";
import { countTokens } from "@atrium/local/reference-model";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { config, tenant } from "./fixtures";

/**
 * Reference model: a token bucket holding up to `window` microseconds of credit, refilled one
 * microsecond per microsecond; a call of cost k needs k * interval. GCRA is this bucket in disguise.
 */
function referenceBucket(window: number, interval: number) {
  let credit = window;
  let last: number | undefined;
  return (now: number, cost: number) => {
    credit = Math.min(window, credit + (last === undefined ? 0 : now - last));
    last = now;
    if (credit < cost * interval) return false;
    credit -= cost * interval;
    return true;
  };
}

describe("GCRA", () => {
  it("property: decides exactly as the token-bucket reference for any arrivals and costs", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(
          fc.record({ gap: fc.integer({ min: 0, max: 5_000_000 }), cost: fc.integer({ min: 0, max: 60 }) }),
          {
            maxLength: 200,
          },
        ),
        (perMinute, burst, calls) => {
          const limit = gcra(perMinute, burst);
          const reference = referenceBucket(limit.window, limit.interval);
          let tat: number | undefined;
          let now = 1_800_000_000_000_000;
          for (const { gap, cost } of calls) {
            now += gap;
            const decision = gcraAdmit(limit, tat, now, cost);
            expect(decision.allowed).toBe(reference(now, cost));
            if (decision.allowed) tat = decision.tat;
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("from idle admits exactly the burst at one instant, then one per interval", () => {
    const limit = gcra(60, 5);
    let tat: number | undefined;
    const now = 1_000_000_000;
    const admitted = Array.from({ length: 20 }, () => {
      const d = gcraAdmit(limit, tat, now, 1);
      if (d.allowed) tat = d.tat;
      return d.allowed;
    }).filter(Boolean);
    expect(admitted).toHaveLength(5);
    const refused = gcraAdmit(limit, tat, now, 1);
    expect(refused.retryAfter).toBe(1_000_000);
    expect(gcraAdmit(limit, tat, now + refused.retryAfter - 1, 1).allowed).toBe(false);
    expect(gcraAdmit(limit, tat, now + refused.retryAfter, 1).allowed).toBe(true);
  });

  it("rounds the interval up, so the rate never exceeds the limit", () => {
    for (const perMinute of [7, 13, 600, 2_000_000, 59_999_999]) {
      const { interval } = gcra(perMinute);
      expect(Number.isInteger(interval)).toBe(true);
      expect(60_000_000 / interval).toBeLessThanOrEqual(perMinute);
    }
  });

  it("reports what remains and when it is full again", () => {
    const limit = gcra(60, 10);
    expect(gcraState(limit, undefined, 5)).toEqual({ remaining: 10, resetIn: 0 });
    expect(gcraState(limit, 5 + 3_000_000, 5)).toEqual({ remaining: 7, resetIn: 3_000_000 });
  });
});

describe("a TAT under changed limits", () => {
  const now = 1_800_000_000_000_000;
  const intervals = fc.integer({ min: 1, max: 60_000_000 });
  const FORTY_DAYS = 40 * 24 * 3600 * 1_000_000;

  it("property: keeps the units outstanding, rounded up, and a round trip never loses any", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3_600_000_000 }), intervals, intervals, (ahead, from, to) => {
        const scaled = rescaledTat(now + ahead, from, to, now) as number;
        if (scaled - now === FORTY_DAYS) {
          // Past the item's TTL, where the stored item forgets it anyway: only then is less kept.
          expect(BigInt(ahead) * BigInt(to) > BigInt(FORTY_DAYS - 1) * BigInt(from)).toBe(true);
          return;
        }
        // Outstanding units: ahead / from before, (scaled - now) / to after; never fewer, less than one more.
        const before = BigInt(ahead) * BigInt(to);
        const after = BigInt(scaled - now) * BigInt(from);
        expect(after >= before).toBe(true);
        expect(after - before < BigInt(from)).toBe(true);
        expect(rescaledTat(scaled, to, from, now) as number).toBeGreaterThanOrEqual(now + ahead);
      }),
      { numRuns: 1000 },
    );
  });

  it("one request at 120 per minute is 10 ms at 6,000 per minute, and 30 of these are 15 s back at 120", () => {
    const slow = gcra(120).interval;
    const fast = gcra(6000).interval;
    expect(rescaledTat(now + slow, slow, fast, now)).toBe(now + 10_000);
    expect(rescaledTat(now + 30 * fast, fast, slow, now)).toBe(now + 15_000_000);
  });

  it("leaves a TAT alone at the same interval, with no interval known, or behind now", () => {
    expect(rescaledTat(now + 5, 10, 10, now)).toBe(now + 5);
    expect(rescaledTat(now + 5, undefined, 10, now)).toBe(now + 5);
    expect(rescaledTat(now - 5, 10, 20, now)).toBe(now - 5);
    expect(rescaledTat(undefined, 10, 20, now)).toBeUndefined();
  });
});

describe("effective limits and shards", () => {
  it("take the tier's, then the tenant's overrides", () => {
    expect(tenantLimits(tenant(), config)).toMatchObject({ requestsPerMinute: 60, burst: 60, shards: 1 });
    const custom = tenantLimits(tenant({ limits: { requestsPerMinute: 1000, burst: 50 } }), config);
    expect(custom).toMatchObject({ requestsPerMinute: 1000, burst: 50, tokensPerMinute: 6000, shards: 1 });
  });

  it("property: for any limits and shard count, the shards' parts add up to exactly each limit, none zero", () => {
    const limit = (max: number) => fc.integer({ min: 1, max });
    fc.assert(
      fc.property(
        fc.record({
          requestsPerMinute: limit(100_000),
          burst: limit(1000),
          tokensPerMinute: limit(10_000_000),
          concurrency: limit(500),
          monthlyTokens: limit(1e12),
        }),
        fc.integer({ min: 1, max: 64 }),
        (limits, limiterShards) => {
          const whole = tenantLimits(tenant({ limits, limiterShards }), config);
          expect(whole.shards).toBeLessThanOrEqual(limiterShards);
          const parts = Array.from({ length: whole.shards }, (_, shard) => shardLimits(whole, shard));
          for (const name of ["requestsPerMinute", "burst", "tokensPerMinute", "concurrency"] as const) {
            expect(parts.reduce((sum, part) => sum + part[name], 0)).toBe(whole[name]);
            expect(Math.min(...parts.map((part) => part[name]))).toBeGreaterThanOrEqual(1);
          }
          const allowances = parts.map((_, shard) => monthAllowance(whole.monthlyTokens, shard));
          expect(allowances.reduce((a, b) => a + b, 0)).toBe(whole.monthlyTokens);
          // Any call that passes the size check fits every shard's tokens per minute.
          expect(Math.min(...parts.map((part) => part.tokensPerMinute))).toBeGreaterThanOrEqual(
            largestCall(whole),
          );
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("concurrency 2 over 4 requested shards: 2 shards of one slot each, not 4 (the issue's reproduction)", () => {
    const whole = tenantLimits(tenant({ limits: { concurrency: 2 }, limiterShards: 4 }), config);
    expect(whole.shards).toBe(2);
    expect([0, 1].map((shard) => shardLimits(whole, shard).concurrency)).toEqual([1, 1]);
  });

  it("remainders go to the first shards: 10 requests per minute over 3 shards are 4, 3, 3", () => {
    const whole = tenantLimits(
      tenant({ limits: { requestsPerMinute: 10, concurrency: 10 }, limiterShards: 3 }),
      config,
    );
    expect([0, 1, 2].map((shard) => shardLimits(whole, shard).requestsPerMinute)).toEqual([4, 3, 3]);
  });
});

describe("reservations", () => {
  it("property: the prompt bound is never below the reference model's token count", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: "grapheme", maxLength: 200 }), { minLength: 1, maxLength: 5 }),
        (texts) => {
          const counted = texts.reduce((sum, text) => sum + countTokens(text), 0);
          expect(promptTokenBound(texts)).toBeGreaterThanOrEqual(counted);
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("calendar", () => {
  it("names the UTC month and counts down to the next", () => {
    const lastMicro = Date.UTC(2026, 11, 1) * 1000 - 1;
    expect(monthOf(lastMicro)).toBe("2026-11");
    expect(monthOf(lastMicro + 1)).toBe("2026-12");
    expect(untilNextMonth(lastMicro)).toBe(1);
    expect(untilNextMonth(Date.UTC(2026, 11, 31, 23, 0) * 1000)).toBe(3600 * 1_000_000);
  });

  it("formats durations as OpenAI does", () => {
    expect(formatDuration(20_000)).toBe("20ms");
    expect(formatDuration(1_000_000)).toBe("1s");
    expect(formatDuration(360_000_000)).toBe("6m0s");
    expect(formatDuration(3_723_000_000)).toBe("1h2m3s");
  });
});
