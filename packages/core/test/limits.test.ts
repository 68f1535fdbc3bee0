import { AtriumError } from "@atrium/core/errors";
import {
  effectiveLimits,
  formatDuration,
  gcra,
  gcraAdmit,
  gcraState,
  maxTokensFor,
  monthOf,
  promptTokenBound,
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

describe("effective limits", () => {
  it("take the tier's, then the tenant's overrides, and split them over shards without exceeding them", () => {
    expect(effectiveLimits(tenant(), config)).toMatchObject({ requestsPerMinute: 60, burst: 60, shards: 1 });
    const custom = tenant({ limits: { requestsPerMinute: 1000, burst: 50 }, limiterShards: 3 });
    const split = effectiveLimits(custom, config);
    expect(split).toMatchObject({ shards: 3, requestsPerMinute: 333, burst: 16, concurrency: 1 });
    expect(split.requestsPerMinute * split.shards).toBeLessThanOrEqual(1000);
    expect(split.tokensPerMinute * split.shards).toBeLessThanOrEqual(6000);
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

  it("max_tokens: the tier's default when unset, a 400 naming the field above the cap", () => {
    const tier = config.tiers.pro;
    expect(maxTokensFor(undefined, tier)).toBe(100);
    expect(maxTokensFor(1000, tier)).toBe(1000);
    expect(() => maxTokensFor(1001, tier)).toThrow(AtriumError);
    try {
      maxTokensFor(1001, tier);
    } catch (err) {
      expect(err).toMatchObject({ status: 400, param: "max_tokens", code: "max_tokens_too_large" });
    }
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
