/**
 * What a stream reports when it ends (issue 9, item 6), per tenant and model: its outcome metric and
 * the "stream ended" log line. Both are written after the handler has returned (the stream outlives
 * it), so they cannot lean on the log keys the call's middlewares set: another call in the same
 * process may hold those keys by then.
 */
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import type { GatedModel } from "../support/gated-model";
import { GATED_MODEL, useGatedPlatform } from "../support/gated-platform";
import { captureStreamReports } from "../support/stream-reports";
import { onboard, postChat, sseData } from "../support/tenant-calls";

// Before the handlers are imported (on the first call): Powertools reads it once, as at a cold start.
process.env.POWERTOOLS_LOG_LEVEL = "INFO";

let platform: Platform;
let gated: GatedModel;

useGatedPlatform((started) => {
  ({ platform, gated } = started);
});

// After the platform starts: its own capture of EMF lines (the local CloudWatch) then sits inside this one.
const reports = captureStreamReports();

const chat = (apiKey: string, content: string) =>
  postChat(platform, apiKey, {
    model: GATED_MODEL,
    messages: [{ role: "user", content }],
    max_tokens: 12,
    stream: true,
  });

describe("a stream's end report", () => {
  it("names its own tenant and model, even while another tenant's call is in its handler", async () => {
    const first = await onboard(platform);
    const second = await onboard(platform);

    // The first stream sends its role event and a token, then waits.
    const firstHeld = gated.holdAfter(2);
    const firstResponse = await chat(first.apiKey, "First tenant's question");
    const firstBody = firstResponse.text();
    await firstHeld.reached;
    // The second call waits on its model's first byte, inside its handler, its log keys set.
    const secondHeld = gated.holdAfter(0);
    const secondResponse = chat(second.apiKey, "Second tenant's question");
    await secondHeld.reached;

    firstHeld.release();
    expect(sseData(await firstBody).at(-1)).toBe("[DONE]");
    expect(await reports.next(first.id)).toMatchObject({ model: GATED_MODEL, outcome: "completed" });
    secondHeld.release();
    expect(sseData(await (await secondResponse).text()).at(-1)).toBe("[DONE]");
    expect(await reports.next(second.id)).toMatchObject({ model: GATED_MODEL, outcome: "completed" });

    const ended = reports.logs().filter((line) => line.message === "stream ended");
    expect(ended.map((line) => [line.tenantId, line.model, line.outcome])).toEqual([
      [first.id, GATED_MODEL, "completed"],
      [second.id, GATED_MODEL, "completed"],
    ]);
  });
});
