/**
 * A monthly budget held by the tenant's own calls in flight (ADR 0004, "Refusals"): a call is admitted
 * only if its whole reservation fits what the month has left, and a call in flight counts its whole
 * reservation until it settles (after its last byte). A call refused then is told to try again in a
 * second (`x-should-retry: true`), not that the budget is spent; the official openai client retries
 * it and is admitted once the call before has settled. A budget nothing holds is refused for good.
 */
import type { AccessLogEntry } from "@atrium/local/gateway";
import type { Platform } from "@atrium/local/platform";
import OpenAI from "openai";
import { describe, expect, it } from "vitest";
import type { GatedModel } from "../support/gated-model";
import { GATED_MODEL, useGatedPlatform } from "../support/gated-platform";
import { errorOf } from "../support/http";
import { onboard, postChat, promptReservation, settledUsageOf } from "../support/tenant-calls";

let platform: Platform;
let gated: GatedModel;
const access: AccessLogEntry[] = [];

useGatedPlatform(
  (started) => {
    ({ platform, gated } = started);
  },
  { onAccess: (e) => access.push(e) },
);

const request = {
  model: GATED_MODEL,
  messages: [{ role: "user" as const, content: "Hold the budget" }],
  max_tokens: 40,
  stream: true,
};
const reservation = promptReservation(request) + request.max_tokens;

/** A month that fits one call's reservation but not two at once (a settled call uses less than it reserved). */
const BUDGET = 2 * reservation - 1;
const budgetForOne = () => onboard(platform, "pro", { monthlyTokens: BUDGET });

describe("a monthly budget held by the tenant's own call in flight", () => {
  it("refuses the next call with a retry in a second, and the openai client's retry is admitted once that call settles", async () => {
    const tenant = await budgetForOne();
    const gate = gated.holdAfter(2);
    const held = await postChat(platform, tenant.apiKey, request);
    expect(held.status).toBe(200);
    await gate.reached;

    const refused = await postChat(platform, tenant.apiKey, request);
    expect(refused.status).toBe(429);
    expect(refused.headers.get("x-should-retry")).toBe("true");
    expect(refused.headers.get("retry-after")).toBe("1");
    const error = await errorOf(refused);
    expect(error).toMatchObject({ type: "insufficient_quota", code: "insufficient_quota" });
    expect(error.message).toMatch(/while 1 of its calls in flight or held slots still count/);

    // The client retries after the second it was told; the held call ends meanwhile and settles.
    const openai = new OpenAI({ apiKey: tenant.apiKey, baseURL: `${platform.gatewayUrl}/v1`, maxRetries: 2 });
    const logged = access.length;
    const retried = openai.chat.completions.create({ ...request, stream: false });
    await expect.poll(() => access.slice(logged).some((e) => e.status === 429), { interval: 10 }).toBe(true);
    gate.release();
    await held.text();
    const answer = await retried;
    expect(answer.usage?.total_tokens).toBeGreaterThan(0);
    const heldId = held.headers.get("x-amzn-requestid");
    const attempts = access.slice(logged).filter((e) => e.requestId !== heldId);
    // Refused while the held call had not settled (once; twice on a slow machine), then admitted.
    const statuses = attempts.map((e) => e.status);
    expect(statuses.at(-1)).toBe(200);
    expect(statuses.slice(0, -1)).toEqual(statuses.slice(0, -1).map(() => 429));
    expect(statuses.length).toBeGreaterThanOrEqual(2);
    // Both calls charged what they used, within the budget.
    expect(await settledUsageOf(platform, tenant.apiKey)).toBeLessThanOrEqual(BUDGET);
  });

  it("once nothing holds it, a spent budget is refused for good (x-should-retry: false)", async () => {
    const tenant = await budgetForOne();
    let last: Response | undefined;
    for (let i = 0; i < 10; i++) {
      last = await postChat(platform, tenant.apiKey, { ...request, stream: false });
      if (last.status !== 200) break;
      await last.text();
      await settledUsageOf(platform, tenant.apiKey);
    }
    expect(last?.status).toBe(429);
    expect(last?.headers.get("x-should-retry")).toBe("false");
    expect((await errorOf(last as Response)).message).toMatch(
      /; it renews at the start of next month \(UTC\)\.$/,
    );
  });
});
