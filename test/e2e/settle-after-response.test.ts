/**
 * A call's writes after the model has answered (its settle, its ledger record) come after the client
 * has its last byte (issue 12's "settle off the critical path"), for a chat call answered in one body
 * and for a raw invocation alike, and nothing they write is lost. Shown without timing anything: the
 * handlers reach DynamoDB through a proxy that holds those writes, and the whole response arrives
 * while they are held.
 */
import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type HoldingProxy, startHoldingProxy } from "../support/holding-proxy";
import { startTestPlatform, stopTestPlatform } from "../support/platform";
import { onboard, postChat, settledUsageOf, todaysLedger } from "../support/tenant-calls";

const MODEL = "llama-3.1-8b-instruct";
let platform: Platform;
let dataDir: string;
let proxy: HoldingProxy | undefined;

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatform({
    interposeDynamodb: async (url) => {
      proxy = await startHoldingProxy(url);
      return proxy.url;
    },
  }));
});
afterAll(async () => {
  proxy?.release();
  await stopTestPlatform(platform, dataDir);
  await proxy?.close();
});

/** The ledger's record of the call, and the settle (the only limiter write that releases a lease). */
const afterTheModel = ({ operation, body }: { operation: string; body: string }) =>
  operation === "UpdateItem" &&
  (body.includes(`"${platform.usageTable}"`) ||
    (body.includes(`"${platform.limitsTable}"`) && body.includes("DELETE #leases")));

const calls = {
  "a chat call answered in one body": (apiKey: string) =>
    postChat(platform, apiKey, { model: MODEL, messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
  "a raw invocation": (apiKey: string) =>
    fetch(`${platform.gatewayUrl}/v1/models/${MODEL}/invocations`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 8 }),
    }),
};

describe("writes after the model's answer", () => {
  it.each(Object.entries(calls))(
    "%s: the client has its whole response first, and nothing is lost",
    async (_, call) => {
      const tenant = await onboard(platform);
      const held = proxy as HoldingProxy;
      held.hold(afterTheModel);

      const response = await call(tenant.apiKey);
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(text.length).toBeGreaterThan(0);

      // The call's first write after the model is on its way, held (the others follow it): the
      // response above did not wait for it.
      await expect.poll(() => held.held().length).toBeGreaterThan(0);

      held.release();
      const ledger = await todaysLedger(platform, tenant.id);
      const used = await settledUsageOf(platform, tenant.apiKey);
      expect(ledger.map(({ counters }) => [counters.requests, counters.tokens])).toEqual([[1, used]]);
      expect(used).toBeGreaterThan(0);
    },
  );
});
