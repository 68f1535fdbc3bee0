/**
 * An endpoint view a second old is read again for the call that finds it so, but not before that
 * call's model is called (ADR 0012, "No call waits on the endpoint's state"; lib/call-upkeep.ts): for
 * a stream, once the model has answered its head. Shown without timing anything: the handlers reach
 * DynamoDB through a proxy that holds the endpoint table's reads, the gated model holds the stream
 * open, and the read is seen on its way while the model still works on the stream and the client
 * already has its first bytes. Once both are let go, the stream ends whole and the view is current.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { VIEW_MICROS } from "@atrium/functions/lib/endpoint-view";
import type { Platform } from "@atrium/local/platform";
import { describe, expect, it } from "vitest";
import type { Gate, GatedModel } from "../support/gated-model";
import { GATED_ENDPOINT, GATED_MODEL, useGatedPlatform } from "../support/gated-platform";
import { type HoldingProxy, startHoldingProxy } from "../support/holding-proxy";
import { onboard, postChat } from "../support/tenant-calls";

let platform: Platform;
let gated: GatedModel;
let proxy: HoldingProxy | undefined;

useGatedPlatform(
  (started) => {
    ({ platform, gated } = started);
  },
  {
    interposeDynamodb: async (url) => {
      proxy = await startHoldingProxy(url);
      return proxy.url;
    },
  },
);

const request = {
  model: GATED_MODEL,
  messages: [{ role: "user" as const, content: "Read the endpoint while I stream" }],
  max_tokens: 16,
};

/** A read of the gated endpoint's item (fair share's and the breaker's view). */
const viewRead = ({ operation, body }: { operation: string; body: string }) =>
  operation === "GetItem" && body.includes(`"${platform.endpointsTable}"`) && body.includes(GATED_ENDPOINT);

/** A tenant whose calls have given this instance a view of the gated endpoint, now a second old. */
async function staleView() {
  const tenant = await onboard(platform);
  // The first call waits for this instance's first read of the endpoint; then the view ages.
  const first = await postChat(platform, tenant.apiKey, request);
  expect(first.status).toBe(200);
  await first.text();
  await platform.gateway.idle();
  await sleep(VIEW_MICROS / 1000 + 100);
  return tenant;
}

/**
 * Streams one call on a stale view with the view's reads held by the proxy and the model held after
 * `events` events; `body` acts meanwhile. Then lets both go and checks the stream ended whole.
 */
async function streamHeld(
  events: number,
  body: (held: HoldingProxy, gate: Gate, streamed: Promise<Response>) => Promise<void>,
) {
  const tenant = await staleView();
  const held = proxy as HoldingProxy;
  held.hold(viewRead);
  const gate = gated.holdAfter(events);
  try {
    const streamed = postChat(platform, tenant.apiKey, { ...request, stream: true });
    await body(held, gate, streamed);
    held.release();
    gate.release();
    const response = await streamed;
    expect(response.status).toBe(200);
    expect((await response.text()).trimEnd().endsWith("data: [DONE]")).toBe(true);
    await platform.gateway.idle();
  } finally {
    held.release();
    gate.release();
  }
}

const viewReadsHeld = (held: HoldingProxy) => held.held().filter(viewRead).length;

describe("a stale endpoint view", () => {
  it("is not read while the model has the call and has not answered", async () => {
    await streamHeld(0, async (held, gate, streamed) => {
      await gate.reached;
      // Long enough for a read made beside the call (as before 2026-12-02) to reach the proxy.
      await sleep(300);
      expect(viewReadsHeld(held)).toBe(0);
      gate.release();
      expect((await streamed).status).toBe(200);
      await expect.poll(() => viewReadsHeld(held), { timeout: 10_000 }).toBe(1);
    });
  });

  it("is read again once the stream's model has answered, without the call waiting for it", async () => {
    await streamHeld(2, async (held, gate, streamed) => {
      // The client has the stream's head while the view's read is held: the call did not wait on it.
      expect((await streamed).status).toBe(200);
      await gate.reached;
      // The model is still on the stream, and the read is already on its way.
      await expect.poll(() => viewReadsHeld(held), { timeout: 10_000 }).toBe(1);
    });
  });
});
