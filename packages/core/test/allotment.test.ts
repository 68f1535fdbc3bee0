import {
  Allotment,
  allotmentSize,
  MAX_HOLD_MICROS,
  MIN_CALLS_PER_ALLOTMENT,
  MIN_HOLD_MICROS,
  mergeGiveBacks,
} from "@atrium/core/allotment";
import { gcra, type ShardLimits } from "@atrium/core/limits";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const limits = fc.record({
  shards: fc.constant(1),
  requestsPerMinute: fc.integer({ min: 1, max: 10_000_000 }),
  burst: fc.integer({ min: 1, max: 10_000_000 }),
  tokensPerMinute: fc.integer({ min: 1, max: 1_000_000_000 }),
  concurrency: fc.integer({ min: 1, max: 10_000 }),
  monthlyTokens: fc.constant(1e12),
});

/** Limits where requests never bind: only `tokensPerMinute` (and the rate) shape an allotment. */
const plentyOfRequests = (tokensPerMinute: number): ShardLimits => ({
  shards: 1,
  requestsPerMinute: 600_000,
  burst: 600_000,
  tokensPerMinute,
  concurrency: 100,
  monthlyTokens: 1e12,
});

describe("allotmentSize", () => {
  it("property: a size it gives fits every window after its hold, leaving three quarters to others", () => {
    fc.assert(
      fc.property(
        limits,
        fc.double({ min: 0.01, max: 100_000, noNaN: true }),
        fc.integer({ min: 1, max: 100_000 }),
        (l: ShardLimits, rate, reservation) => {
          const size = allotmentSize(l, rate, reservation);
          if (!size) return;
          const requests = gcra(l.requestsPerMinute, l.burst);
          const tokens = gcra(l.tokensPerMinute);
          expect(size.requests).toBeGreaterThanOrEqual(MIN_CALLS_PER_ALLOTMENT);
          expect(size.tokens).toBe(size.requests * reservation);
          expect(size.holdMicros).toBeLessThanOrEqual(MAX_HOLD_MICROS);
          // The charge (at the end of the hold) must pass GCRA's test from an idle limiter.
          expect(size.holdMicros + size.requests * requests.interval).toBeLessThanOrEqual(requests.window);
          expect(size.holdMicros + size.tokens * tokens.interval).toBeLessThanOrEqual(tokens.window);
          expect(size.requests * requests.interval).toBeLessThanOrEqual(requests.window / 4);
          expect(size.tokens * tokens.interval).toBeLessThanOrEqual(tokens.window / 4);
        },
      ),
    );
  });

  it("sizes for about 32 calls at the tenant's rate here, within the hold's bounds", () => {
    const roomy = plentyOfRequests(100_000_000);
    expect(allotmentSize(roomy, 16, 100)).toEqual({ requests: 33, tokens: 3300, holdMicros: 2_000_000 });
    expect(allotmentSize(roomy, 320, 100)).toEqual({ requests: 33, tokens: 3300, holdMicros: 100_000 });
    // One call a second fills the longest hold with two calls, and one more for the next to find.
    expect(allotmentSize(roomy, 1, 100)).toEqual({ requests: 3, tokens: 300, holdMicros: 2_000_000 });
    // Below the rate that fills MIN_CALLS_PER_ALLOTMENT in the longest hold: calls are admitted one by one.
    expect(allotmentSize(roomy, 0.5, 100)).toBeUndefined();
    expect(MIN_HOLD_MICROS).toBeLessThan(MAX_HOLD_MICROS);
  });

  it("gives none when a quarter of the token window holds fewer than three of the calls", () => {
    const tight = plentyOfRequests(12_000);
    // A quarter of the window is 3,000 tokens: three calls of 1,000 fit, three of 1,001 do not.
    expect(allotmentSize(tight, 100, 1000)?.requests).toBe(3);
    expect(allotmentSize(tight, 100, 1001)).toBeUndefined();
    expect(allotmentSize(tight, 100, 500)?.requests).toBe(6);
  });
});

describe("Allotment", () => {
  const charge = {
    requestInterval: 100,
    tokenInterval: 10,
    requestResets: 2,
    tokenResets: 3,
    requestMark: { tatAfter: 5_000, refundedAt: 0 },
    tokenMark: { tatAfter: 9_000, refundedAt: 7 },
  };

  it("admits while it has a request and the call's tokens, until its hold ends", () => {
    const a = new Allotment(0, "2026-11", 1_000, { requests: 2, tokens: 100, holdMicros: 1_000 }, charge);
    expect(a.fits(60, 999)).toBe(true);
    expect(a.fits(60, 1_000)).toBe(false);
    a.take(60);
    expect(a.fits(60, 0)).toBe(false);
    expect(a.fits(40, 0)).toBe(true);
    a.take(40);
    expect(a.fits(1, 0)).toBe(false);
  });

  it("reuses a settled call's unused tokens, never more than it reserved, and gives back what is left", () => {
    const a = new Allotment(0, "2026-11", 1_000, { requests: 4, tokens: 100, holdMicros: 1_000 }, charge);
    a.take(60);
    expect(a.busy).toBe(true);
    a.settle(60, 20);
    expect(a.busy).toBe(false);
    expect(a.tokensLeft).toBe(80);
    a.take(50);
    // A reply reporting more than it reserved uses the reservation: nothing comes back.
    a.settle(50, 500);
    expect(a.tokensLeft).toBe(30);
    expect(a.giveBack()).toEqual({
      requestMicros: 2 * 100,
      tokenMicros: 30 * 10,
      tokens: 30,
      requestResets: 2,
      tokenResets: 3,
      requestMark: charge.requestMark,
      tokenMark: charge.tokenMark,
      month: "2026-11",
    });
    // Given back once: the allotment is spent.
    expect(a.giveBack()).toMatchObject({ requestMicros: 0, tokenMicros: 0, tokens: 0 });
  });
});

describe("mergeGiveBacks", () => {
  const back = (tokens: number, tatAfter: number, tokenResets = 0, month = "2026-11") => ({
    requestMicros: 100,
    tokenMicros: tokens * 10,
    tokens,
    requestResets: 0,
    tokenResets,
    requestMark: { tatAfter, refundedAt: tatAfter / 10 },
    tokenMark: { tatAfter, refundedAt: tatAfter / 10 },
    month,
  });

  it("adds up give-backs under the same guards, keeping the earliest charge's mark; others stay apart", () => {
    const merged = mergeGiveBacks([
      back(5, 9_000),
      back(7, 4_000),
      back(3, 1_000, 1),
      back(0, 2_000, 0, "2026-10"),
    ]);
    expect(merged).toHaveLength(3);
    expect(merged[0]).toMatchObject({
      tokens: 12,
      tokenMicros: 120,
      requestMicros: 200,
      tokenMark: { tatAfter: 4_000, refundedAt: 400 },
      requestMark: { tatAfter: 4_000, refundedAt: 400 },
    });
    expect(merged[1]).toMatchObject({ tokens: 3, tokenResets: 1 });
    expect(merged[2]).toMatchObject({ tokens: 0, month: "2026-10" });
  });

  it("drops the TAT parts a later restart forgot, and merges their month tokens with the rest", () => {
    const merged = mergeGiveBacks([back(5, 9_000), back(7, 4_000, 1), back(3, 1_000, 1)], {
      requestResets: 0,
      tokenResets: 1,
    });
    expect(merged).toHaveLength(1);
    // The first was charged before the token TAT's restart: its tokens go back to the month only.
    expect(merged[0]).toMatchObject({
      tokens: 15,
      tokenMicros: 100,
      tokenResets: 1,
      tokenMark: { tatAfter: 1_000, refundedAt: 100 },
      requestMicros: 300,
      requestMark: { tatAfter: 1_000, refundedAt: 100 },
    });
  });
});
