/**
 * A container's allotments over the local DynamoDB (docs/adr/0004-exact-limits.md, "Allotments").
 * A stream admitted on an allotment's slot: before the slot's lease ends, the stream takes a lease of
 * its own and the slot goes; if it cannot, the stream is told to end while its slot still counts it.
 * The slot's lease is 70 s; these tests move its end near (what the passing of a minute would do)
 * rather than wait for it. A tenant whose calls follow one another (a client streaming one answer
 * after the other) never finds its next call waiting for the next allotment's take: it starts beside
 * the call that leaves the allotment running out, and is back while that call runs, also when it
 * waits for that call's model to have its request, as the functions have it (call-upkeep.ts). And
 * the container's memory of tenants stays bounded.
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { eraseTenantPartition } from "@atrium/core/erase";
import type { AdmitRequest } from "@atrium/core/limiter-item";
import { LimiterStore } from "@atrium/core/limiter-store";
import { shardLimits, type TenantLimits } from "@atrium/core/limits";
import { LimiterTable } from "@atrium/core/tables";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAllotments } from "../../packages/functions/src/lib/allotments";
import {
  atOnce,
  startUpkeep,
  upkeepDone,
  whenCallAllows,
} from "../../packages/functions/src/lib/call-upkeep";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-allotment-streams");
const SECOND = 1_000_000;
const CALL_LEASE = 60 * SECOND;
const STREAM_LEASE = 16 * 60 * SECOND;
let dynamo: LocalDynamo;
let db: DynamoClient;
let tenantCounter = 0;

beforeAll(async () => {
  dynamo = sharedDynamo();
  await ensureTable(localDynamoClient(dynamo.url), TABLE, LimiterTable);
  db = dynamoClientFor(dynamo.url);
});
afterAll(() => dynamo?.close());

const whole: TenantLimits = {
  shards: 1,
  requestsPerMinute: 60_000,
  burst: 60_000,
  tokensPerMinute: 10_000_000,
  concurrency: 50,
  monthlyTokens: 1e12,
};

/** A container's allotments for a fresh tenant, warmed until a call is admitted from one. */
async function streamOnSlot() {
  const tenantId = `tn-stream-slot-${++tenantCounter}`;
  const store = new LimiterStore(db, TABLE);
  const allotments = createAllotments({ storeFor: () => store, callLeaseMicros: CALL_LEASE });
  const start = Date.now() * 1000;
  const admit = (i: number) =>
    allotments.admit(
      tenantId,
      whole,
      (shard) => shardLimits(whole, shard),
      100,
      undefined,
      start + i * 10_000,
    );
  // Eight arrivals 10 ms apart give the rate; the ninth takes an allotment and is admitted from it.
  for (let i = 0; i < 8; i++) await admit(i);
  const admitted = await admit(8);
  if (!admitted) throw new Error("expected a call admitted from an allotment");
  return { tenantId, store, allotments, call: admitted.call };
}

describe("a container's memory of tenants", () => {
  it("stays bounded: tenants seen once, holding nothing, are forgotten first", async () => {
    const store = new LimiterStore(db, TABLE);
    const allotments = createAllotments({ storeFor: () => store, callLeaseMicros: CALL_LEASE });
    const now = Date.now() * 1000;
    for (let i = 0; i < 1500; i++) {
      // One call each: no rate, so no allotment and no write; the call is admitted on its own.
      const admitted = await allotments.admit(
        `tn-once-${i}`,
        whole,
        (shard) => shardLimits(whole, shard),
        10,
        undefined,
        now,
      );
      expect(admitted).toBeUndefined();
    }
    expect(allotments.remembered()).toBe(1000);
  });
});

describe("a stream on an allotment's slot", () => {
  it("takes a lease of its own before its slot's lease ends; the slot goes, and the lease at its settle", async () => {
    const { tenantId, store, allotments, call } = await streamOnSlot();
    const slot = call.slot.element;
    // The slot's lease 5 s from its end: the move is due at once, the end in 2 s.
    call.slot.expiry = Date.now() * 1000 + 5 * SECOND;
    const ends = allotments.keepForStream(call, STREAM_LEASE);
    await expect.poll(() => call.ownLease, { interval: 20, timeout: 10_000 }).toBeDefined();
    await expect.poll(async () => (await store.read(tenantId, 0)).leases.includes(slot)).toBe(false);
    const leases = (await store.read(tenantId, 0)).leases;
    expect(leases).toContain(call.ownLease);
    await sleep(2_500);
    expect(ends.aborted).toBe(false);

    await allotments.settle(call, 100, 40)();
    expect((await store.read(tenantId, 0)).leases).not.toContain(call.ownLease);
  });

  it("is told to end before its slot's lease ends when it cannot take its own (the tenant erased)", async () => {
    const { tenantId, store, allotments, call } = await streamOnSlot();
    await eraseTenantPartition({ db, tableName: TABLE }, tenantId);
    call.slot.expiry = Date.now() * 1000 + 5 * SECOND;
    const ends = allotments.keepForStream(call, STREAM_LEASE);
    await expect.poll(() => ends.aborted, { interval: 50, timeout: 10_000 }).toBe(true);
    expect(call.ownLease).toBeUndefined();
    // Nothing re-created the erased item.
    expect((await store.read(tenantId, 0)).leases).toEqual([]);
  });
});

/** A burst of 100 at 6,000 a minute: a one-second request window, so each hold is at most 250 ms. */
const shortWindow: TenantLimits = { ...whole, requestsPerMinute: 6_000, burst: 100, concurrency: 10 };

/** The limiter item's store, noting the allotment takes on their way (admissions that carry one). */
class WatchedStore extends LimiterStore {
  readonly takes = new Set<Promise<unknown>>();
  taken = 0;

  override admit(request: AdmitRequest) {
    const admission = super.admit(request);
    if (request.allotment) {
      this.taken += 1;
      this.takes.add(admission);
      void admission.finally(() => this.takes.delete(admission)).catch(() => {});
    }
    return admission;
  }
}

describe("a tenant whose calls follow one another", () => {
  // The renewal starts beside the admission (at once), or once the call's model has its request,
  // as the functions wire it (call-upkeep.ts): either way it is back before the next call.
  it.each([
    { wiring: "at once", startRenewal: atOnce, deferred: false },
    { wiring: "on the call's upkeep", startRenewal: whenCallAllows, deferred: true },
  ])(
    "finds its next allotment taken while the call before ran, never waits for it, and stays exact ($wiring)",
    async ({ startRenewal, deferred }) => {
      const store = new WatchedStore(db, TABLE);
      const allotments = createAllotments({
        storeFor: () => store,
        callLeaseMicros: CALL_LEASE,
        startRenewal,
      });
      const tenantId = `tn-renewal-${++tenantCounter}`;
      const calls = 80;
      let waited = 0;
      let allotted = 0;
      // Takes started within admissions themselves.
      let takenByAdmissions = 0;
      let settling: Promise<void> = Promise.resolve();
      for (let i = 0; i < calls; i++) {
        // A call arriving while a take is on its way would wait for it (the last call's settle started it).
        const takeOnItsWay = store.takes.size > 0;
        const takenBefore = store.taken;
        const admitted = await allotments.admit(
          tenantId,
          shortWindow,
          (shard) => shardLimits(shortWindow, shard),
          100,
          undefined,
          Date.now() * 1000,
        );
        takenByAdmissions += store.taken - takenBefore;
        if (!admitted) {
          // Before the container knows the tenant's rate (8 arrivals): admitted on its own, as the
          // limiter would, and running as long.
          expect(i).toBeLessThan(8);
          await sleep(10);
          continue;
        }
        allotted += 1;
        if (takeOnItsWay) waited += 1;
        // The call's model has its request: the upkeep it found due goes out.
        startUpkeep();
        // The call runs about 10 ms; a take started for it is back by its end.
        await Promise.all([sleep(10), ...store.takes, upkeepDone()]);
        // Its settle's upkeep runs after its response, while the client's next call arrives.
        settling = settling.then(allotments.settle(admitted.call, 100, 60));
      }
      await settling;

      expect(store.taken).toBeGreaterThanOrEqual(3);
      expect(waited).toBe(0);
      // Left to the call's upkeep, no admission starts a take but the first (no allotment yet).
      if (deferred) expect(takenByAdmissions).toBe(1);
      else expect(takenByAdmissions).toBeGreaterThan(1);
      // Every token taken is either used by a call or given back: the month counts exactly what the
      // allotted calls used once the allotments go back (the container gives all back when quiet).
      await expect
        .poll(async () => (await store.read(tenantId, 0)).monthUsed, { interval: 100, timeout: 10_000 })
        .toBe(allotted * 60);
    },
  );
});
