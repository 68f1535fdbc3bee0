/**
 * The month's settled tokens never exceed the budget, whatever the bodies, content types and replies:
 * raw invocations bounded by core's token-bound, admitted and settled by the Lambda-side admission
 * against the real limiter store on the local DynamoDB, many at once, over one to four shards.
 */
import { parseStageConfig, type TierSpec } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { LimiterStore } from "@atrium/core/limiter-store";
import { tenantLimits } from "@atrium/core/limits";
import { LimiterTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import { boundInvocation, reportedUsage } from "@atrium/core/token-bound";
import { createAdmission } from "@atrium/functions/lib/admission";
import { dynamoClientFor, ensureTable, type LocalDynamo, localDynamoClient } from "@atrium/local/dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamo, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-billing");
let dynamo: LocalDynamo;
let stores: LimiterStore[];

beforeAll(async () => {
  dynamo = sharedDynamo();
  const client = localDynamoClient(dynamo.url, { maxAttempts: 10 });
  await ensureTable(client, TABLE, LimiterTable);
  // Three "containers", each with its own SDK client and caches.
  stores = [0, 1, 2].map(() => new LimiterStore(dynamoClientFor(dynamo.url, { maxAttempts: 10 }), TABLE));
});
afterAll(() => dynamo?.close());

const tier: TierSpec = {
  tenancy: "pool",
  limits: { requestsPerMinute: 1_000_000, tokensPerMinute: 100_000_000, concurrency: 1000, monthlyTokens: 1 },
  maxTokens: { default: 20, cap: 200 },
  rawCallTokens: 150,
  limiterFailMode: "closed",
  shareWeight: 1,
};
const stage = parseStageConfig({ region: "eu-west-1", tiers: { metered: tier }, sharedEndpoints: [] });
const T0 = Date.UTC(2026, 10, 28, 12) * 1000;

let tenantCounter = 0;
function tenant(monthlyTokens: number, limiterShards: number): Tenant {
  return {
    id: `tn-billing-${++tenantCounter}`,
    name: "billing",
    tier: "metered",
    status: "active",
    compliance: [],
    endpoints: {},
    limits: { monthlyTokens },
    limiterShards,
    createdAt: "2026-11-28T00:00:00.000Z",
  };
}

const lengthValue = fc.oneof(
  fc.integer({ min: 1, max: 300 }),
  fc.constant(null),
  fc.constant("100000"),
  fc.double({ min: -5, max: 500, noNaN: true }),
  fc.boolean(),
);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const prompt = fc.string({ maxLength: 400 });
const body = fc.oneof(
  fc.record({ inputs: prompt, parameters: maybe(fc.record({ max_new_tokens: maybe(lengthValue) })) }),
  fc.record({
    messages: fc.array(fc.record({ role: fc.constant("user"), content: prompt }), {
      minLength: 1,
      maxLength: 3,
    }),
    max_tokens: maybe(lengthValue),
    max_completion_tokens: maybe(lengthValue),
    max_new_tokens: maybe(lengthValue),
  }),
  fc.record({
    inputs: prompt,
    max_tokens: maybe(lengthValue),
    parameters: maybe(fc.record({ max_new_tokens: maybe(lengthValue) })),
  }),
);
const bytes = fc.oneof(
  body.map((value) => Buffer.from(JSON.stringify(value))),
  fc.string({ maxLength: 300 }).map((text) => Buffer.from(`{${text}`)),
  fc.uint8Array({ maxLength: 300 }).map((array) => Buffer.from(array)),
);
const contentType = fc.constantFrom(
  "application/json",
  "APPLICATION/JSON; charset=utf-8",
  "multipart/x+json",
  "image/x+json",
  "text/json",
  "text/plain",
  "application/octet-stream",
  "image/png",
);
const count = fc.integer({ min: 0, max: 5000 });
const reply = fc.oneof(
  fc.record({ usage: fc.record({ prompt_tokens: count, completion_tokens: count }) }),
  fc.record({ usage: fc.record({ total_tokens: count }) }),
  fc.array(fc.record({ generated_text: fc.string(), details: fc.record({ generated_tokens: count }) }), {
    minLength: 1,
    maxLength: 2,
  }),
  fc.record({ generated_text: fc.string() }),
);
const replyType = fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain");

describe("billing raw invocations", () => {
  it("property: settled tokens equal what was charged, never above the reservation, never above the budget", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 100, max: 3000 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.record({ body: bytes, type: contentType, reply, replyType }), {
          minLength: 1,
          maxLength: 16,
        }),
        async (budget, limiterShards, calls) => {
          const payer = tenant(budget, limiterShards);
          let clock = T0;
          const admissions = stores.map((store) =>
            createAdmission({ storeFor: () => store, config: stage, now: () => clock++ }),
          );
          let charged = 0;
          await Promise.all(
            calls.map(async (call, i) => {
              const admission = admissions[i % admissions.length] as (typeof admissions)[number];
              let ticket: Awaited<ReturnType<typeof admission.admit>>["ticket"];
              let bound: ReturnType<typeof boundInvocation>;
              try {
                bound = boundInvocation(call.body, call.type, tier);
                ({ ticket } = await admission.admit(payer, bound.reserved, bound.field));
              } catch (err) {
                // Refused calls (400 for a bad length field, 429 for the budget) charge nothing.
                expect(err).toBeInstanceOf(AtriumError);
                expect([400, 429]).toContain((err as AtriumError).status);
                return;
              }
              const replied = Buffer.from(JSON.stringify(call.reply));
              const used = reportedUsage(replied, call.replyType, bound) ?? bound.reserved;
              charged += Math.min(used, ticket.reserved);
              await admission.settle(ticket, used);
            }),
          );
          const { shards } = tenantLimits(payer, stage);
          let settled = 0;
          for (let shard = 0; shard < shards; shard++) {
            settled += (await stores[0]?.read(payer.id, shard))?.monthUsed ?? 0;
          }
          expect(settled).toBe(charged);
          expect(settled).toBeLessThanOrEqual(budget);
        },
      ),
      { numRuns: 20 },
    );
    // Hundreds of writes: on a loaded machine that takes longer than vitest's default.
  }, 180_000);
});
