import { MAX_HOLD_MICROS } from "@atrium/core/allotment";
import type { LimiterSnapshot } from "@atrium/core/limiter-item";
import { guessed, leadAfter, leadSeen } from "@atrium/core/tat-lead";
import { describe, expect, it } from "vitest";

const item = (fields: Partial<LimiterSnapshot> = {}): LimiterSnapshot => ({
  requestResets: 0,
  tokenResets: 0,
  monthUsed: 0,
  leases: [],
  ...fields,
});

describe("the lead an admission guesses its form from", () => {
  it("moves the known TATs to where a recent lead put them, never back", () => {
    const now = 10_000_000;
    const lead = { requests: 500_000, tokens: 20_000, at: now - 1_000_000 };
    const guess = guessed(item({ requestTat: now - 50, tokenTat: now + 90_000 }), lead, now);
    expect(guess?.requestTat).toBe(now + 500_000);
    expect(guess?.tokenTat).toBe(now + 90_000);
  });

  it("forgets a lead older than two holds, and guesses nothing for an unknown item", () => {
    const now = 10_000_000;
    const known = item({ requestTat: now - 50 });
    const stale = { requests: 500_000, at: now - 2 * MAX_HOLD_MICROS - 1 };
    expect(guessed(known, stale, now)).toBe(known);
    expect(guessed(undefined, { requests: 1, at: now }, now)).toBeUndefined();
  });

  it("sees a lead only where a TAT is past the refused write's own charge", () => {
    const now = 5_000_000;
    const floor = now + 100_000;
    expect(leadSeen(item({ requestTat: now + 100_000, tokenTat: now - 10 }), now, floor)).toBeUndefined();
    expect(leadSeen(item({ requestTat: now + 300_000 }), now, floor)).toEqual({
      requests: 300_000,
      tokens: undefined,
      at: now,
    });
  });

  it("keeps, after an admitted write, only the TATs still ahead of now", () => {
    const now = 7_000_000;
    expect(leadAfter(item({ requestTat: now + 40, tokenTat: now }), now)).toEqual({
      requests: 40,
      tokens: undefined,
      at: now,
    });
  });
});
