/**
 * Issue 12's cost of leased capacity where it matters on Lambda: a tenant's calls spread over several
 * instances, each its own admission (its own allotments and limiter cache) on its own counted client,
 * against DynamoDB Local, in real time. Once each instance has seen the tenant (8 calls tell it the
 * tenant's rate), a busy tenant costs at most 0.1 limiter requests per admitted call; a tenant calling
 * rarely costs its admission and its settle, two, on every instance. The limits are far above the load.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { StageConfig } from "@atrium/core/config";
import { LimiterStore } from "@atrium/core/limiter-store";
import { LimiterTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";
import { setAdmissionEnvironment } from "../support/handler-environment";

// The handler modules read their configuration at import, as a Lambda does at cold start.
const stage: StageConfig = setAdmissionEnvironment();
const { createAdmission } = await import("@atrium/functions/lib/admission");

const TABLE = uniqueTableName("atrium-test-instances");
const INSTANCES = 4;
let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = sharedDynamo();
  await ensureTable(localDynamoClient(dynamo.url), TABLE, LimiterTable);
});
afterAll(() => dynamo?.close());

let counter = 0;
function tenant(): Tenant {
  const id = `tn-instances-${++counter}-${Date.now()}`;
  const createdAt = new Date().toISOString();
  return { id, name: id, tier: "enterprise", status: "active", compliance: [], endpoints: {}, createdAt };
}

/** One Lambda instance: its own admission (allotments, caches) on its own client, every request counted. */
function instance() {
  const db = dynamoClientFor(dynamo.url, { maxAttempts: 3 });
  const requests = { count: 0 };
  db.beforeSend(() => {
    requests.count += 1;
  });
  const store = new LimiterStore(db, TABLE);
  return { admission: createAdmission({ storeFor: () => store, config: stage }), requests };
}
type Instance = ReturnType<typeof instance>;

/** One call on `on`, settled at once with what it reserved. */
async function call(on: Instance, payer: Tenant): Promise<void> {
  const { admission } = on;
  const { ticket } = await admission.admit(payer, 100);
  if (ticket.allotted) await admission.settleAllotted({ ...ticket, allotted: ticket.allotted }, 100)();
  else await admission.settle(ticket, 100);
}

/**
 * `warmup` then `calls` calls, one every `gapMs`, each on the next instance in turn (as a load
 * balancer spreads them). Returns the limiter requests per call after the warm-up.
 */
async function drive(payer: Tenant, warmup: number, calls: number, gapMs: number): Promise<number> {
  const instances = Array.from({ length: INSTANCES }, instance);
  const requests = () => instances.reduce((sum, { requests }) => sum + requests.count, 0);
  let before = 0;
  for (let i = 0; i < warmup + calls; i++) {
    if (i === warmup) before = requests();
    await call(instances[i % INSTANCES] as Instance, payer);
    await sleep(gapMs);
  }
  return (requests() - before) / calls;
}

describe("leased capacity over several instances", () => {
  it("a tenant at about 60 calls/s over 4 instances costs at most 0.1 limiter requests per admitted call", {
    timeout: 60_000,
  }, async () => {
    // About 60 calls a second in all, 15 per instance: far above the one a second that starts allotments.
    // Measured 2026-12-01/02 after the warm-up: 0.055 to 0.068 (0.070 to 0.080 before a take guessed where
    // the other instances keep the TATs, tat-lead.ts); counting each instance's first 8 calls
    // (admitted one by one, two writes each, while they tell it the rate), about 0.16.
    const perCall = await drive(tenant(), 10 * INSTANCES, 600, 16);
    expect(perCall).toBeLessThanOrEqual(0.1);
  });

  it("a tenant calling rarely costs its admission and its settle, on every instance", {
    timeout: 60_000,
  }, async () => {
    const payer = tenant();
    // It called before this month's calls below (from another instance): its item exists.
    await call(instance(), payer);
    await sleep(1100);
    expect(await drive(payer, 0, 6, 1100)).toBe(2);
  });
});
