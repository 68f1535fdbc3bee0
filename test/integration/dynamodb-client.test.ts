/**
 * Atrium's DynamoDB client against DynamoDB Local, held to the AWS SDK's document client: what one
 * writes the other reads the same, the same failures are the same errors, and retries follow the
 * SDK's standard mode (a local server answers what DynamoDB Local never does: throttling, 5xx, silence).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  DynamoCallError,
  DynamoClient,
  isConditionFailed,
  isTransactionCanceled,
} from "@atrium/core/dynamodb/client";
import { dynamoClientFor, ensureTable, localDynamoClient } from "@atrium/local/dynamodb";
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedDynamoUrl, uniqueTableName } from "../support/dynamodb";

const TABLE = uniqueTableName("atrium-test-dynamodb-client");
const SHAPE = { partitionKey: "pk", sortKey: "sk", indexes: {} };

let db: DynamoClient;
let sdk: DynamoDBDocumentClient;

beforeAll(async () => {
  const url = sharedDynamoUrl();
  await ensureTable(localDynamoClient(url), TABLE, SHAPE);
  db = dynamoClientFor(url);
  sdk = DynamoDBDocumentClient.from(localDynamoClient(url), {
    marshallOptions: { removeUndefinedValues: true },
  });
});

afterAll(() => {
  db?.destroy();
  sdk?.destroy();
});

/** What the error of a call is, or that it did not fail. */
async function failureOf(call: Promise<unknown>): Promise<Error> {
  try {
    await call;
  } catch (err) {
    return err as Error;
  }
  throw new Error("the call did not fail");
}

const attributeName = fc
  .string({ minLength: 1, maxLength: 8 })
  .filter((name) => name !== "pk" && name !== "sk");
const value = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string(),
    fc.integer(),
    // Within DynamoDB's range of magnitudes (1e-130 to 1e126); its numbers have no -0 (stored as 0).
    fc
      .double({ min: -1e12, max: 1e12, noNaN: true })
      .filter((n) => !Object.is(n, -0) && (n === 0 || Math.abs(n) > 1e-100)),
    fc.boolean(),
    fc.constant(null),
    fc.uint8Array({ minLength: 1, maxLength: 8 }),
    fc.array(tie("value"), { maxLength: 3 }),
    fc.dictionary(attributeName, tie("value"), { maxKeys: 3 }),
  ),
})).value;

describe("Atrium's DynamoDB client and the SDK's document client", () => {
  it("read back what the other wrote, member for member", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(attributeName, value, { maxKeys: 5 }),
        fc.boolean(),
        async (members, ours) => {
          const Key = { pk: "parity", sk: `${Math.random()}` };
          const Item = { ...members, ...Key };
          if (ours) await db.put({ TableName: TABLE, Item });
          else await sdk.send(new PutCommand({ TableName: TABLE, Item }));
          const theirs = (await sdk.send(new GetCommand({ TableName: TABLE, Key, ConsistentRead: true })))
            .Item;
          const mine = (await db.get({ TableName: TABLE, Key, ConsistentRead: true })).Item;
          expect(mine).toEqual(theirs);
          expect(mine).toEqual(Item);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("return what ReturnValues asks for, as the SDK does", async () => {
    const Key = { pk: "returns", sk: "1" };
    await db.put({ TableName: TABLE, Item: { ...Key, n: 1 } });
    const update = {
      TableName: TABLE,
      Key,
      UpdateExpression: "ADD #n :one",
      ExpressionAttributeNames: { "#n": "n" },
      ExpressionAttributeValues: { ":one": 1 },
      ReturnValues: "ALL_NEW" as const,
    };
    expect(await db.update(update)).toEqual({ Attributes: { ...Key, n: 2 } });
    expect((await sdk.send(new UpdateCommand(update))).Attributes).toEqual({ ...Key, n: 3 });
    expect(await db.delete({ TableName: TABLE, Key, ReturnValues: "ALL_OLD" })).toEqual({
      Attributes: { ...Key, n: 3 },
    });
    expect(await db.get({ TableName: TABLE, Key })).toEqual({});
  });

  it("page through a query, batch-read and batch-write", async () => {
    const keys = [1, 2, 3, 4, 5].map((i) => ({ pk: "pages", sk: `item-${i}` }));
    await db.batchWrite({
      RequestItems: { [TABLE]: keys.map((Key, i) => ({ PutRequest: { Item: { ...Key, i } } })) },
    });
    const pages = [];
    for await (const page of db.queryPages({
      TableName: TABLE,
      KeyConditionExpression: "pk = :pk",
      ExpressionAttributeValues: { ":pk": "pages" },
      Limit: 2,
      ConsistentRead: true,
    }))
      pages.push(page.Items.map((item) => item.i));
    expect(pages.flat()).toEqual([0, 1, 2, 3, 4]);
    expect(pages[0]).toEqual([0, 1]);
    const read = await db.batchGet({
      RequestItems: { [TABLE]: { Keys: keys.slice(0, 3), ConsistentRead: true } },
    });
    expect(read.Responses[TABLE]?.map((item) => item.i).sort()).toEqual([0, 1, 2]);
    expect(read.UnprocessedKeys).toEqual({});
  });
});

describe("failures", () => {
  it("a false condition is ConditionalCheckFailedException with the item as it was, as the SDK reports it", async () => {
    const Key = { pk: "condition", sk: "1" };
    await db.put({ TableName: TABLE, Item: { ...Key, state: "held", count: 7 } });
    const put = {
      TableName: TABLE,
      Item: { ...Key, state: "new" },
      ConditionExpression: "attribute_not_exists(pk)",
      ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
    };
    const ours = await failureOf(db.put(put));
    const theirs = (await failureOf(sdk.send(new PutCommand(put)))) as Error & { Item?: never };
    expect(isConditionFailed(ours)).toBe(true);
    expect(ours.name).toBe(theirs.name);
    expect(ours.message).toBe(theirs.message);
    expect((ours as DynamoCallError).item).toEqual(unmarshall(theirs.Item ?? {}));
    expect((ours as DynamoCallError).item).toEqual({ ...Key, state: "held", count: 7 });
  });

  it("a cancelled transaction names each action's reason, with the item where asked", async () => {
    const held = { pk: "transaction", sk: "held" };
    await db.put({ TableName: TABLE, Item: { ...held, owner: "a" } });
    const transaction = {
      TransactItems: [
        { Put: { TableName: TABLE, Item: { pk: "transaction", sk: "free", owner: "b" } } },
        {
          Put: {
            TableName: TABLE,
            Item: { ...held, owner: "b" },
            ConditionExpression: "attribute_not_exists(pk)",
            ReturnValuesOnConditionCheckFailure: "ALL_OLD" as const,
          },
        },
      ],
    };
    const ours = (await failureOf(db.transactWrite(transaction))) as DynamoCallError;
    const theirs = (await failureOf(sdk.send(new TransactWriteCommand(transaction)))) as Error & {
      CancellationReasons?: { Code?: string; Message?: string; Item?: never }[];
    };
    expect(isTransactionCanceled(ours)).toBe(true);
    expect(ours.name).toBe(theirs.name);
    expect(ours.message).toBe(theirs.message);
    expect(ours.cancellationReasons).toEqual(
      theirs.CancellationReasons?.map((reason) => ({
        code: reason.Code,
        ...(reason.Message ? { message: reason.Message } : {}),
        ...(reason.Item ? { item: unmarshall(reason.Item) } : {}),
      })),
    );
    expect(ours.cancellationReasons?.map((reason) => reason.code)).toEqual([
      "None",
      "ConditionalCheckFailed",
    ]);
    expect(ours.cancellationReasons?.[1]?.item).toEqual({ ...held, owner: "a" });
    expect((await db.get({ TableName: TABLE, Key: { pk: "transaction", sk: "free" } })).Item).toBeUndefined();
  });

  it("a bad request is DynamoDB's ValidationException, message and all, and is not retried", async () => {
    const bad = { TableName: TABLE, Key: { pk: "only-half" } };
    const ours = await failureOf(db.get(bad));
    const theirs = await failureOf(sdk.send(new GetCommand(bad)));
    expect(ours).toBeInstanceOf(DynamoCallError);
    expect([ours.name, ours.message]).toEqual([theirs.name, theirs.message]);
    expect((ours as DynamoCallError).status).toBe(400);
  });

  it("a value DynamoDB cannot hold fails before anything is sent", async () => {
    const sent: string[] = [];
    const stop = db.beforeSend((operation) => {
      sent.push(operation);
    });
    await expect(db.put({ TableName: TABLE, Item: { pk: "x", sk: "y", n: Number.NaN } })).rejects.toThrow();
    stop();
    expect(sent).toEqual([]);
  });
});

describe("retries, as the SDK's standard mode makes them", () => {
  let server: Server;
  let answers: ((respond: (status: number, body?: object) => void) => void)[] = [];
  let attempts = 0;
  let url = "";

  beforeAll(async () => {
    server = createServer((request, response) => {
      attempts += 1;
      request.resume();
      request.on("end", () => {
        const answer = answers.shift();
        answer?.((status, body = {}) => {
          response.writeHead(status, { "content-type": "application/x-amz-json-1.0" });
          response.end(JSON.stringify(body));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const error = (type: string) => ({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message: type });
  const ok = (respond: (status: number, body?: object) => void) => respond(200, { Item: { pk: { S: "a" } } });
  const get = (client: DynamoClient) => client.get({ TableName: "t", Key: { pk: "a" } });

  async function run(maxAttempts: number, first: (respond: (status: number, body?: object) => void) => void) {
    const client = dynamoClientFor(url, { maxAttempts, requestTimeout: 200 });
    attempts = 0;
    answers = [first, ok];
    try {
      return { result: await get(client), attempts };
    } catch (err) {
      return { error: err as DynamoCallError, attempts };
    } finally {
      answers = [];
      client.destroy();
    }
  }

  for (const [what, first] of [
    [
      "throttling",
      (respond: (s: number, b?: object) => void) =>
        respond(400, error("ProvisionedThroughputExceededException")),
    ],
    ["a 500", (respond: (s: number, b?: object) => void) => respond(500, error("InternalServerError"))],
    ["silence past the request timeout", () => {}],
  ] as const) {
    it(`${what} is tried again when a second attempt is allowed, and is the error when not`, async () => {
      const twice = await run(2, first);
      expect(twice).toEqual({ result: { Item: { pk: "a" } }, attempts: 2 });
      const once = await run(1, first);
      expect(once.attempts).toBe(1);
      expect(once.error).toBeInstanceOf(DynamoCallError);
    });
  }

  it("a false condition is never tried again", async () => {
    const { error: failed, attempts: made } = await run(2, (respond) =>
      respond(400, error("ConditionalCheckFailedException")),
    );
    expect(made).toBe(1);
    expect(isConditionFailed(failed)).toBe(true);
  });

  it("a refused connection fails as not sent, and is tried again", async () => {
    const client = new DynamoClient({
      endpoint: "http://127.0.0.1:1",
      region: "eu-west-1",
      credentials: async () => ({ accessKeyId: "a", secretAccessKey: "b" }),
      connectionTimeout: 200,
      requestTimeout: 200,
      maxAttempts: 2,
    });
    const sent: string[] = [];
    client.beforeSend((operation) => {
      sent.push(operation);
    });
    const failed = (await failureOf(get(client))) as DynamoCallError;
    expect([failed.name, failed.notSent]).toEqual(["ECONNREFUSED", true]);
    expect(sent).toEqual(["GetItem", "GetItem"]);
  });
});
