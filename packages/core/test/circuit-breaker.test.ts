/** The circuit breaker's pure part (docs/adr/0013-circuit-breaker-and-fallback.md): phases, the window, the writes a failure makes. */
import {
  type BreakerState,
  BUCKET_MICROS,
  bucketOf,
  bucketsToForget,
  emptyBreakerState,
  FAILURE_PREFIX,
  failuresInWindow,
  failureWrite,
  phaseOf,
  retryAfterSeconds,
  shouldOpen,
  toBreakerState,
} from "@atrium/core/circuit-breaker";
import { describe, expect, it } from "vitest";

const SECOND = 1_000_000;
const T0 = Date.UTC(2026, 10, 30, 12, 0, 0) * 1000;
const settings = { failures: 3, windowSeconds: 30, openSeconds: 20 };

const failuresAt = (...times: number[]): BreakerState => {
  const state = emptyBreakerState();
  for (const t of times) state.failures[bucketOf(t)] = (state.failures[bucketOf(t)] ?? 0) + 1;
  return state;
};

describe("the breaker's phase", () => {
  it("is closed with no opening, open until openUntil with the time left, then half-open", () => {
    expect(phaseOf(emptyBreakerState(), T0)).toEqual({ phase: "closed" });
    const opened = { ...emptyBreakerState(), openUntil: T0 + 20 * SECOND };
    expect(phaseOf(opened, T0 + 5 * SECOND)).toEqual({ phase: "open", retryAfterMicros: 15 * SECOND });
    expect(phaseOf(opened, T0 + 20 * SECOND)).toEqual({
      phase: "half-open",
      probing: false,
      openUntil: T0 + 20 * SECOND,
    });
  });

  it("is half-open and probing while a probe's claim holds, and free to claim once it lapsed", () => {
    const probed = { ...emptyBreakerState(), openUntil: T0, probeUntil: T0 + 30 * SECOND };
    expect(phaseOf(probed, T0 + SECOND)).toMatchObject({ phase: "half-open", probing: true });
    expect(phaseOf(probed, T0 + 30 * SECOND)).toMatchObject({ phase: "half-open", probing: false });
  });

  it("tells a caller to wait until half-open, rounded up and at least a second", () => {
    expect(retryAfterSeconds({ phase: "open", retryAfterMicros: 14.2 * SECOND })).toBe(15);
    expect(retryAfterSeconds({ phase: "open", retryAfterMicros: 1 })).toBe(1);
    expect(retryAfterSeconds({ phase: "half-open", probing: true, openUntil: T0 })).toBe(1);
  });
});

describe("failures in the window", () => {
  it("opens a closed breaker at the threshold, counting only the window", () => {
    const two = failuresAt(T0, T0 + SECOND);
    expect(shouldOpen(two, settings, T0 + 2 * SECOND)).toBe(false);
    const three = failuresAt(T0, T0 + SECOND, T0 + 2 * SECOND);
    expect(failuresInWindow(three, settings, T0 + 2 * SECOND)).toBe(3);
    expect(shouldOpen(three, settings, T0 + 2 * SECOND)).toBe(true);
    // Forty seconds on, the first buckets left the 30 s window.
    expect(failuresInWindow(three, settings, T0 + 40 * SECOND)).toBe(0);
    expect(shouldOpen(three, settings, T0 + 40 * SECOND)).toBe(false);
  });

  it("never opens again an already opened breaker", () => {
    const three = { ...failuresAt(T0, T0, T0), openUntil: T0 + 10 * SECOND };
    expect(shouldOpen(three, settings, T0)).toBe(false);
  });

  it("forgets buckets from before the last close; the close removes the ones its view knows", () => {
    const before = failuresAt(T0 - BUCKET_MICROS, T0 - 2 * BUCKET_MICROS, T0);
    expect(bucketsToForget(before).sort()).toEqual(
      [bucketOf(T0 - 2 * BUCKET_MICROS), bucketOf(T0 - BUCKET_MICROS), bucketOf(T0)].sort(),
    );
    const closed = { ...before, closedAt: T0 };
    // Older buckets no longer count; the close's own bucket does (its known failures were removed).
    expect(failuresInWindow(closed, settings, T0 + SECOND)).toBe(1);
    const { [bucketOf(T0)]: _removed, ...left } = closed.failures;
    expect(failuresInWindow({ ...closed, failures: left }, settings, T0 + SECOND)).toBe(0);
  });

  it("ignores buckets from the future (another instance's clock ahead of this one)", () => {
    expect(failuresInWindow(failuresAt(T0 + 10 * SECOND), settings, T0)).toBe(0);
  });
});

describe("the write a failure makes", () => {
  it("adds to the current bucket and drops the ones this view knows fell out of the window", () => {
    const old = failuresAt(T0, T0 + 35 * SECOND);
    const write = failureWrite(old, settings, T0 + 40 * SECOND);
    expect(write).toEqual({ bucket: bucketOf(T0 + 40 * SECOND), stale: [bucketOf(T0)] });
  });

  it("is none once the breaker opened: its counters only decide the opening", () => {
    const open = { ...emptyBreakerState(), openUntil: T0 + SECOND };
    expect(failureWrite(open, settings, T0)).toBeUndefined();
    expect(failureWrite({ ...open, openUntil: T0 - SECOND }, settings, T0)).toBeUndefined();
  });
});

describe("the item, read back", () => {
  it("takes the breaker's attributes and ignores fair share's and malformed ones", () => {
    const state = toBreakerState({
      pk: "ENDPOINT#x",
      contendedUntil: T0,
      openUntil: T0 + SECOND,
      closedAt: T0 - SECOND,
      [`${FAILURE_PREFIX}${bucketOf(T0)}`]: 2,
      [`${FAILURE_PREFIX}nope`]: 5,
      [`${FAILURE_PREFIX}${bucketOf(T0) + 1}`]: "3",
    });
    expect(state).toEqual({
      failures: { [bucketOf(T0)]: 2 },
      openUntil: T0 + SECOND,
      closedAt: T0 - SECOND,
    });
    expect(toBreakerState(undefined)).toEqual(emptyBreakerState());
  });
});
