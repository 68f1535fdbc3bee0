/**
 * Atrium's idempotency store (DynamoClient) held to Powertools' own DynamoDBPersistenceLayer (the SDK's
 * client) against DynamoDB Local, configured as Atrium configures both: the same calls at the same
 * (fake) times give the same outcomes, errors and existing records, and leave the same items, attribute
 * value for attribute value. The same journeys with the two layers taking turns on one table show that
 * what either one wrote, the other reads and takes over alike, so a deploy that mixes them is safe.
 */
import { createHash, randomUUID } from "node:crypto";
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { IdempotencyTable } from "@atrium/core/tables";
import { DynamoIdempotencyStore } from "@atrium/functions/lib/idempotency-store";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import { IdempotencyConfig } from "@aws-lambda-powertools/idempotency";
import { DynamoDBPersistenceLayer } from "@aws-lambda-powertools/idempotency/dynamodb";
import { type BasePersistenceLayer, IdempotencyRecord } from "@aws-lambda-powertools/idempotency/persistence";
import { type AttributeValue, type DynamoDBClient, QueryCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { sharedDynamoUrl, uniqueTableName } from "../support/dynamodb";

const REPLAY_SECONDS = 24 * 3600;
/** As packages/functions/src/lib/idempotency.ts configures its layers. */
const config = new IdempotencyConfig({
  eventKeyJmesPath: "idempotencyKey",
  payloadValidationJmesPath: "request",
  expiresAfterSeconds: REPLAY_SECONDS,
  hashFunction: "sha256",
});

/** The journeys' clock starts on a whole second, so expiry (rounded to seconds) is known exactly. */
const T0 = Math.floor(Date.now() / 1000) * 1000;
const EXPIRY_S = T0 / 1000 + REPLAY_SECONDS;

type Layer = BasePersistenceLayer;
type Make = (table: string, partition: string) => Layer;

let sdk: DynamoDBClient;
let db: DynamoClient;
/** One table per way of running a journey, so the items of each can be compared whole (pk included). */
const TABLES = {
  powertools: uniqueTableName("atrium-test-idempotency-powertools"),
  atrium: uniqueTableName("atrium-test-idempotency-atrium"),
  powertoolsFirst: uniqueTableName("atrium-test-idempotency-mixed-pa"),
  atriumFirst: uniqueTableName("atrium-test-idempotency-mixed-ap"),
};

beforeAll(async () => {
  const url = sharedDynamoUrl();
  sdk = localDynamoClient(url);
  db = dynamoClientFor(url);
  for (const table of Object.values(TABLES)) await ensureTable(sdk, table, IdempotencyTable);
});

afterAll(() => {
  db?.destroy();
  sdk?.destroy();
});

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  // Both layers warn when a claim does not say how long its call has.
  vi.spyOn(console, "warn").mockImplementation(() => {});
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const powertools: Make = (table, partition) => {
  const layer = new DynamoDBPersistenceLayer({
    tableName: table,
    keyAttr: "pk",
    sortKeyAttr: "sk",
    staticPkValue: partition,
    awsSdkV3Client: sdk,
  });
  layer.configure({ config, keyPrefix: "IDEMPOTENCY" });
  return layer;
};

const atrium: Make = (table, partition) => {
  const layer = new DynamoIdempotencyStore({ client: db, tableName: table, partition });
  layer.configure({ config, keyPrefix: "IDEMPOTENCY" });
  return layer;
};

const REQUEST = "POST /v1/chat/completions {hello}";
/** A call's data as idempotency.ts hashes it: the scoped key, and the request's fingerprint. */
const call = (partition: string, request = REQUEST) => ({
  idempotencyKey: `${partition}\ntenant\nkey-1`,
  request,
});

interface Step {
  label: string;
  /** Milliseconds after T0. */
  at: number;
  /** What the step comes to: "ok", or the name of the error it throws. */
  expected: string;
  run: (layer: Layer) => Promise<unknown>;
}

const plain = (record: unknown) =>
  record instanceof IdempotencyRecord ? { ...record, statusNow: record.getStatus() } : record;

/** What a call came to: "ok" and its value, or its error's name and message and any existing record. */
interface Outcome {
  outcome: string;
  value?: unknown;
  message?: string;
  existing?: unknown;
}

interface Entry extends Outcome {
  step: string;
  items: Record<string, AttributeValue>[];
}

async function outcomeOf(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    return { outcome: "ok", value: plain(await run()) ?? null };
  } catch (err) {
    const error = err as Error & { existingRecord?: IdempotencyRecord };
    return { outcome: error.name, message: error.message, existing: plain(error.existingRecord) ?? null };
  }
}

/** Every item of the partition, as DynamoDB holds it (attribute values, types and all). */
async function itemsOf(table: string, partition: string): Promise<Record<string, AttributeValue>[]> {
  const page = await sdk.send(
    new QueryCommand({
      TableName: table,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": { S: partition } },
      ConsistentRead: true,
    }),
  );
  return page.Items ?? [];
}

/** Runs `steps` on `table`, step i with `layers[i % layers.length]`: what each came to, and the items after it. */
async function journey(table: string, partition: string, layers: Make[], steps: Step[]) {
  const made = layers.map((make) => make(table, partition));
  const log: Entry[] = [];
  for (const [i, step] of steps.entries()) {
    vi.setSystemTime(T0 + step.at);
    const layer = made[i % made.length] as Layer;
    log.push({
      step: step.label,
      ...(await outcomeOf(() => step.run(layer))),
      items: await itemsOf(table, partition),
    });
  }
  return log;
}

/**
 * The journey by Powertools alone, by Atrium's store alone, and by the two taking turns either way
 * round: all four the same, step by step, and each step came to what it should.
 */
async function expectParity(steps: (partition: string) => Step[]) {
  const partition = `TENANT#${randomUUID()}#`;
  const plan = steps(partition);
  const theirs = await journey(TABLES.powertools, partition, [powertools], plan);
  const ours = await journey(TABLES.atrium, partition, [atrium], plan);
  const mixed = await journey(TABLES.powertoolsFirst, partition, [powertools, atrium], plan);
  const mixedOther = await journey(TABLES.atriumFirst, partition, [atrium, powertools], plan);
  expect(theirs.map((entry) => `${entry.step}: ${entry.outcome}`)).toEqual(
    plan.map((step) => `${step.label}: ${step.expected}`),
  );
  expect(ours).toEqual(theirs);
  expect(mixed).toEqual(theirs);
  expect(mixedOther).toEqual(theirs);
  return { log: theirs, partition };
}

const sha256 = (value: unknown) => createHash("sha256").update(JSON.stringify(value)).digest("base64");
const EXISTS = "IdempotencyItemAlreadyExistsError";

describe("Atrium's idempotency store and Powertools' DynamoDB persistence layer", () => {
  it("claim, refuse while in progress, complete, read, refuse another request, delete", async () => {
    const { log, partition } = await expectParity((p) => [
      { label: "claim", at: 0, expected: "ok", run: (l) => l.saveInProgress(call(p), 10_000) },
      { label: "claim again", at: 1_000, expected: EXISTS, run: (l) => l.saveInProgress(call(p), 10_000) },
      {
        label: "claim with another request",
        at: 1_000,
        expected: EXISTS,
        run: (l) => l.saveInProgress(call(p, "another"), 10_000),
      },
      { label: "read in progress", at: 1_500, expected: "ok", run: (l) => l.getRecord(call(p)) },
      {
        label: "read with another request",
        at: 1_500,
        expected: "IdempotencyValidationError",
        run: (l) => l.getRecord(call(p, "another")),
      },
      { label: "complete", at: 2_000, expected: "ok", run: (l) => l.saveSuccess(call(p), "sealed reply") },
      { label: "read completed", at: 3_000, expected: "ok", run: (l) => l.getRecord(call(p)) },
      // The in-progress time has passed, but a completed record holds the key until it expires.
      {
        label: "claim completed",
        at: 20_000,
        expected: EXISTS,
        run: (l) => l.saveInProgress(call(p), 10_000),
      },
      {
        label: "check another request against the existing record",
        at: 20_000,
        expected: "IdempotencyValidationError",
        run: async (l) => {
          try {
            await l.saveInProgress(call(p, "another"), 10_000);
          } catch (err) {
            const existing = (err as { existingRecord?: IdempotencyRecord }).existingRecord;
            if (existing) return l.processExistingRecord(existing, call(p, "another"));
            throw err;
          }
        },
      },
      { label: "delete", at: 21_000, expected: "ok", run: (l) => l.deleteRecord(call(p)) },
      {
        label: "read deleted",
        at: 21_000,
        expected: "IdempotencyItemNotFoundError",
        run: (l) => l.getRecord(call(p)),
      },
      { label: "delete again", at: 21_000, expected: "ok", run: (l) => l.deleteRecord(call(p)) },
      {
        label: "claim after delete",
        at: 22_000,
        expected: "ok",
        run: (l) => l.saveInProgress(call(p), 10_000),
      },
    ]);

    // What the records are, beyond both layers agreeing on them.
    const [claimed] = log[0]?.items ?? [];
    expect(claimed).toEqual({
      pk: { S: partition },
      sk: { S: `IDEMPOTENCY#${sha256(call(partition).idempotencyKey)}` },
      status: { S: "INPROGRESS" },
      expiration: { N: String(EXPIRY_S) },
      in_progress_expiration: { N: String(T0 + 10_000) },
      validation: { S: sha256(REQUEST) },
    });
    const refused = log[1]?.existing as Record<string, unknown>;
    expect(refused).toMatchObject({
      // Powertools reads the partition key as the record's idempotencyKey, the hashed key as its sortKey.
      idempotencyKey: partition,
      sortKey: claimed?.sk?.S,
      status: "INPROGRESS",
      expiryTimestamp: EXPIRY_S,
      inProgressExpiryTimestamp: T0 + 10_000,
      payloadHash: claimed?.validation?.S,
    });
    expect(log[6]?.items).toEqual([
      {
        ...claimed,
        status: { S: "COMPLETED" },
        expiration: { N: String(EXPIRY_S + 2) },
        data: { S: "sealed reply" },
      },
    ]);
    expect(log[6]?.value).toMatchObject({ status: "COMPLETED", responseData: "sealed reply" });
    expect(log[9]?.items).toEqual([]);
  });

  it("an expired record can be taken again, from the first millisecond after its expiry", async () => {
    const { log } = await expectParity((p) => [
      { label: "claim", at: 0, expected: "ok", run: (l) => l.saveInProgress(call(p), 10_000) },
      { label: "complete", at: 1_000, expected: "ok", run: (l) => l.saveSuccess(call(p), "sealed reply") },
      {
        label: "claim at expiry",
        at: (REPLAY_SECONDS + 1) * 1000,
        expected: EXISTS,
        run: (l) => l.saveInProgress(call(p), 10_000),
      },
      {
        label: "claim just after expiry",
        at: (REPLAY_SECONDS + 1) * 1000 + 1,
        expected: "ok",
        run: (l) => l.saveInProgress(call(p), 10_000),
      },
      // The item is replaced whole: the kept reply goes with the old record.
      { label: "read", at: (REPLAY_SECONDS + 2) * 1000, expected: "ok", run: (l) => l.getRecord(call(p)) },
      {
        label: "an expired record with another request",
        at: (2 * REPLAY_SECONDS + 10) * 1000,
        expected: "ok",
        run: (l) => l.saveInProgress(call(p, "another"), 10_000),
      },
    ]);
    expect(log[3]?.items[0]?.data).toBeUndefined();
    expect(log[4]?.value).toMatchObject({ status: "INPROGRESS", sortKey: log[3]?.items[0]?.sk?.S });
    expect((log[4]?.value as IdempotencyRecord | undefined)?.responseData).toBeUndefined();
  });

  it("an in-progress record can be taken once its call's time has run out, not before", async () => {
    await expectParity((p) => [
      { label: "claim", at: 0, expected: "ok", run: (l) => l.saveInProgress(call(p), 5_000) },
      { label: "claim before", at: 4_999, expected: EXISTS, run: (l) => l.saveInProgress(call(p), 5_000) },
      { label: "claim at", at: 5_000, expected: EXISTS, run: (l) => l.saveInProgress(call(p), 5_000) },
      { label: "claim after", at: 5_001, expected: "ok", run: (l) => l.saveInProgress(call(p), 5_000) },
      {
        label: "claim after with another request",
        at: 10_002,
        expected: "ok",
        run: (l) => l.saveInProgress(call(p, "another"), 5_000),
      },
      {
        label: "read with the first request",
        at: 10_003,
        expected: "IdempotencyValidationError",
        run: (l) => l.getRecord(call(p)),
      },
    ]);
  });

  it("an in-progress record that did not say how long its call had holds the key until it expires", async () => {
    const { log } = await expectParity((p) => [
      { label: "claim, no time", at: 0, expected: "ok", run: (l) => l.saveInProgress(call(p)) },
      {
        label: "claim an hour on",
        at: 3_600_000,
        expected: EXISTS,
        run: (l) => l.saveInProgress(call(p), 1_000),
      },
      {
        label: "claim after expiry",
        at: REPLAY_SECONDS * 1000 + 1,
        expected: "ok",
        run: (l) => l.saveInProgress(call(p), 1_000),
      },
    ]);
    expect(log[0]?.items[0]?.in_progress_expiration).toBeUndefined();
  });

  it("completing a record that is not there writes it whole, and any JSON response is kept as it is", async () => {
    const response = { statusCode: 200, body: "{}", headers: { a: "b" }, list: [1, "two", null, true, 2.5] };
    const { log } = await expectParity((p) => [
      { label: "complete unclaimed", at: 0, expected: "ok", run: (l) => l.saveSuccess(call(p), response) },
      { label: "read", at: 1_000, expected: "ok", run: (l) => l.getRecord(call(p)) },
      { label: "claim", at: 2_000, expected: EXISTS, run: (l) => l.saveInProgress(call(p), 1_000) },
    ]);
    expect(log[1]?.value).toMatchObject({ status: "COMPLETED", responseData: response });
    expect(log[2]?.existing).toMatchObject({ responseData: response });
  });

  it("DynamoDB's other failures come through as they are", async () => {
    vi.setSystemTime(T0);
    const missing = uniqueTableName("atrium-test-idempotency-missing");
    const names = [];
    for (const make of [powertools, atrium]) {
      const layer = make(missing, "TENANT#x#");
      for (const run of [
        () => layer.saveInProgress(call("x"), 1_000),
        () => layer.getRecord(call("x")),
        () => layer.saveSuccess(call("x"), "reply"),
        () => layer.deleteRecord(call("x")),
      ])
        names.push((await outcomeOf(run)).outcome);
    }
    expect(names).toEqual(Array(8).fill("ResourceNotFoundException"));
  });
});
