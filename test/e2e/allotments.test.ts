/**
 * Allotments on the local platform (docs/adr/0004-exact-limits.md, "Allotments"): a tenant calling
 * often is admitted from a batch its container took in one write, so its calls cost a fraction of a
 * limiter write each, while the ledger records every call exactly and the limiter's month never
 * charges less than was used; 16 calls at once cost at most 0.1 limiter writes each (issue 12). DynamoDB
 * requests are counted by a proxy in front of DynamoDB Local.
 */
import { LimiterStore } from "@atrium/core/limiter-store";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import type { Platform } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CountingProxy, countsBetween, startCountingProxy } from "../../scripts/dynamodb-counting-proxy";
import { startTestPlatformWith, stopTestPlatform } from "../support/platform";
import { onboard, postChat, todaysLedger } from "../support/tenant-calls";

const MODEL = "llama-3.1-8b-instruct";
const CALLS = 100;
let platform: Platform;
let dataDir: string;
let proxy: CountingProxy | undefined;

beforeAll(async () => {
  ({ platform, dataDir } = await startTestPlatformWith(
    {},
    {
      interposeDynamodb: async (url) => {
        proxy = await startCountingProxy(url);
        return proxy.url;
      },
    },
  ));
});
afterAll(async () => {
  await stopTestPlatform(platform, dataDir);
  await proxy?.close();
});

describe("a tenant calling often", () => {
  it("is admitted from allotments: a fraction of a limiter write per call, every call in the ledger", async () => {
    const tenant = await onboard(platform, "business");
    const counting = proxy as CountingProxy;
    const before = counting.snapshot();
    let used = 0;
    for (let i = 0; i < CALLS; i++) {
      const response = await postChat(platform, tenant.apiKey, {
        model: MODEL,
        messages: [{ role: "user", content: `call ${i}` }],
        max_tokens: 8,
      });
      expect(response.status).toBe(200);
      used += ((await response.json()) as { usage: { total_tokens: number } }).usage.total_tokens;
    }
    await platform.gateway.idle();
    const limiterWrites =
      countsBetween(before, counting.snapshot()).byTable[platform.limitsTable]?.writes ?? 0;
    // One by one, each call costs an admission and a settle: 200 writes. The first calls still are
    // (until the container has seen the tenant's rate), then one take serves dozens of calls.
    expect(limiterWrites).toBeGreaterThan(0);
    expect(limiterWrites).toBeLessThanOrEqual(CALLS / 3);

    const [entry, ...others] = await todaysLedger(platform, tenant.id);
    expect(others).toEqual([]);
    expect(entry?.counters).toMatchObject({ requests: CALLS, tokens: used });

    // The month charges what was used, plus what the current allotment holds unused: never less.
    const store = new LimiterStore(dynamoClientFor(platform.dynamodbUrl), platform.limitsTable);
    expect((await store.read(tenant.id, 0)).monthUsed).toBeGreaterThanOrEqual(used);
    // Once the tenant has gone quiet, everything comes back: no slot left, the month exactly what was used.
    await expect
      .poll(async () => (await store.read(tenant.id, 0)).leases, { interval: 100, timeout: 15_000 })
      .toEqual([]);
    expect((await store.read(tenant.id, 0)).monthUsed).toBe(used);
  });

  it("at 16 calls at once, costs at most 0.1 limiter writes per call once its container knows it", async () => {
    const tenant = await onboard(platform, "business");
    const counting = proxy as CountingProxy;
    const call = async (i: number) => {
      const response = await postChat(platform, tenant.apiKey, {
        model: MODEL,
        messages: [{ role: "user", content: `call ${i}` }],
        max_tokens: 8,
      });
      expect(response.status).toBe(200);
      await response.arrayBuffer();
    };
    const clients = (count: number) =>
      Promise.all(
        Array.from({ length: 16 }, async (_, client) => {
          for (let i = client; i < count; i += 16) await call(i);
        }),
      );
    // The first calls are admitted one by one, until the container has seen the tenant's rate.
    await clients(32);
    await platform.gateway.idle();
    const before = counting.snapshot();
    const measured = 320;
    await clients(measured);
    await platform.gateway.idle();
    const limiterWrites =
      countsBetween(before, counting.snapshot()).byTable[platform.limitsTable]?.writes ?? 0;
    expect(limiterWrites).toBeGreaterThan(0);
    expect(limiterWrites).toBeLessThanOrEqual(measured / 10);
  });
});
