/**
 * A model stream stops when any of its ends does: the function's time running out, or the slot's
 * lease it could not keep (ADR 0004). `stoppedBy` does AbortSignal.any's job for those signals.
 */
import { describe, expect, it } from "vitest";
import { stoppedBy } from "../src/lib/stopped-by";

describe("stoppedBy", () => {
  it("aborts when any one of its ends aborts, with that end's reason", () => {
    for (const which of [0, 1]) {
      const ends = [new AbortController(), new AbortController()];
      const stop = stoppedBy(ends.map((end) => end.signal));
      expect(stop.signal.aborted).toBe(false);
      const reason = new Error(`end ${which}`);
      ends[which]?.abort(reason);
      expect(stop.signal.aborted).toBe(true);
      expect(stop.signal.reason).toBe(reason);
      // The other end aborting later changes nothing.
      ends[1 - which]?.abort(new Error("later"));
      expect(stop.signal.reason).toBe(reason);
    }
  });

  it("is aborted from the start when an end already is, and skips ends a call does not have", () => {
    const reason = new Error("lease lost");
    const stop = stoppedBy([undefined, AbortSignal.abort(reason)]);
    expect(stop.signal.aborted).toBe(true);
    expect(stop.signal.reason).toBe(reason);
    expect(stoppedBy([undefined, new AbortController().signal]).signal.aborted).toBe(false);
  });

  it("can still be stopped on its own, which aborts none of its ends", () => {
    const end = new AbortController();
    const stop = stoppedBy([end.signal]);
    stop.abort();
    expect(stop.signal.aborted).toBe(true);
    expect(end.signal.aborted).toBe(false);
  });
});
