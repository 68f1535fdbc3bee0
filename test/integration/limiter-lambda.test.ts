/**
 * The Lambda side of admission: fail-open and fail-closed when DynamoDB cannot be reached, and
 * refusing locally, with no DynamoDB call, while a tenant is known to be limited.
 */
import { readFileSync } from "node:fs";
import { loadStageConfigFile, type StageConfig } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { LimiterStore } from "@atrium/core/limiter-store";
import { LimiterTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import { ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

// The handler modules read their configuration at import, as a Lambda does at cold start.
const stage: StageConfig = loadStageConfigFile("config/local.json");
process.env.ATRIUM_STAGE_CONFIG = readFileSync("config/local.json", "utf8");
process.env.ATRIUM_TENANTS_TABLE = "unused-tenants";
process.env.ATRIUM_LIMITER_TABLE = "unused-limits";
process.env.AWS_ACCESS_KEY_ID = "test";
process.env.AWS_SECRET_ACCESS_KEY = "test";
const { createLimiter } = await import("@atrium/functions/lib/limiter");
const { metrics } = await import("@atrium/functions/lib/observability");

const LAMBDA_LIMITS = uniqueTableName("atrium-test-limits");
let dynamo: LocalDynamo;
beforeAll(async () => {
  dynamo = sharedDynamo();
});
afterAll(() => dynamo?.close());

function tenant(tier: string, id = `tn-${tier}-lambda`): Tenant {
  return {
    id,
    name: id,
    tier,
    status: "active",
    compliance: [],
    endpoints: {},
    createdAt: new Date().toISOString(),
  };
}

/** A client whose every call is counted by an SDK middleware. */
function countedClient(endpoint: string) {
  const client = localDynamoClient(endpoint, { maxAttempts: 1 });
  const calls = { count: 0 };
  client.middlewareStack.add(
    (next) => (args) => {
      calls.count += 1;
      return next(args);
    },
    { step: "initialize", name: "countCalls" },
  );
  return { client, doc: DynamoDBDocumentClient.from(client), calls };
}

describe("when DynamoDB cannot be reached", () => {
  // Nothing listens on port 9 of loopback: connections are refused at once.
  const unreachable = countedClient("http://127.0.0.1:9");
  const unreachableStore = new LimiterStore(unreachable.doc, LAMBDA_LIMITS);
  const limiter = createLimiter({
    storeFor: () => unreachableStore,
    config: stage,
  });

  it("a fail-closed tier refuses with a 503 that says why, never a 500", async () => {
    expect(stage.tiers.free?.limiterFailMode).toBe("closed");
    const refused = limiter.admit(tenant("free"), 10);
    await expect(refused).rejects.toBeInstanceOf(AtriumError);
    await expect(refused).rejects.toMatchObject({ status: 503, code: "limiter_unavailable" });
  });

  it("a fail-open tier admits and counts a LimiterFailOpen metric", async () => {
    expect(stage.tiers.pro?.limiterFailMode).toBe("open");
    const addMetric = vi.spyOn(metrics, "addMetric");
    const { ticket } = await limiter.admit(tenant("pro"), 10);
    expect(ticket.lease).toBeUndefined();
    expect(addMetric).toHaveBeenCalledWith("LimiterFailOpen", "Count", 1);
    const before = unreachable.calls.count;
    await limiter.settle(ticket, 5);
    expect(unreachable.calls.count).toBe(before);
  });
});

describe("a tenant known to be limited", () => {
  it("is refused in the Lambda, with no DynamoDB call, until its retry time", async () => {
    const { client, doc, calls } = countedClient(dynamo.url);
    await ensureTable(client, LAMBDA_LIMITS, LimiterTable);
    calls.count = 0;
    let clock = Date.UTC(2026, 10, 28, 12) * 1000;
    const store = new LimiterStore(doc, LAMBDA_LIMITS);
    const limiter = createLimiter({
      storeFor: () => store,
      config: stage,
      now: () => clock,
    });
    const free = tenant("free", "tn-free-blocked");
    const burst = stage.tiers.free?.limits.requestsPerMinute ?? 0;
    for (let i = 0; i < burst; i++) {
      const { ticket } = await limiter.admit(free, 1);
      await limiter.settle(ticket, 1);
    }
    // One admission write and one settle write per call, no reads.
    expect(calls.count).toBe(2 * burst);

    const first = await limiter.admit(free, 1).catch((err: AtriumError) => err);
    expect(first).toMatchObject({ status: 429, code: "rate_limit_exceeded" });
    expect(calls.count).toBe(2 * burst + 1);
    const retryMs = Number((first as AtriumError).headers["retry-after-ms"]);

    for (let i = 0; i < 5; i++) {
      await expect(limiter.admit(free, 1)).rejects.toMatchObject({ status: 429 });
    }
    expect(calls.count).toBe(2 * burst + 1);

    clock += retryMs * 1000;
    await limiter.admit(free, 1);
    expect(calls.count).toBe(2 * burst + 2);
  });
});
