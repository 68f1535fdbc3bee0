import { createRequire } from "node:module";
import type { TableShape } from "@atrium/core/tables";
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { listen } from "./http-server";

interface DynaliteDb {
  checkConditional(
    data: Record<string, unknown>,
    existing: unknown,
  ): (Error & { body?: Record<string, unknown> }) | null;
}

/**
 * dynalite predates ReturnValuesOnConditionCheckFailure (DynamoDB, 2023): a failed condition never
 * carries the item. Teach it the real behaviour, which the limiter relies on to avoid reads: with
 * ALL_OLD, the ConditionalCheckFailedException body holds the item as it was.
 */
function addReturnValuesOnConditionCheckFailure(): void {
  const require = createRequire(import.meta.url);
  const db = require("dynalite/db") as DynaliteDb & { atriumPatched?: boolean };
  if (db.atriumPatched) return;
  // Its request validation drops parameters it does not know, so declare this one first.
  for (const action of ["putItem", "updateItem", "deleteItem"]) {
    const { types } = require(`dynalite/validations/${action}`) as { types: Record<string, unknown> };
    types.ReturnValuesOnConditionCheckFailure = { type: "String", enum: ["ALL_OLD", "NONE"] };
  }
  const check = db.checkConditional;
  db.checkConditional = (data, existing) => {
    const err = check(data, existing);
    if (err?.body && existing && data.ReturnValuesOnConditionCheckFailure === "ALL_OLD")
      err.body.Item = existing;
    return err;
  };
  db.atriumPatched = true;
}

export interface LocalDynamo {
  url: string;
  close(): Promise<void>;
}

/**
 * dynalite speaks the real DynamoDB wire protocol on loopback. With `path` it keeps its LevelDB
 * files there across restarts; without, it is in memory.
 */
export async function startDynamo(
  options: { port?: number; host?: string; path?: string } = {},
): Promise<LocalDynamo> {
  const host = options.host ?? "127.0.0.1";
  addReturnValuesOnConditionCheckFailure();
  const server = dynalite({
    createTableMs: 0,
    deleteTableMs: 0,
    updateTableMs: 0,
    ...(options.path ? { path: options.path } : {}),
  });
  const url = await listen(server, options.port ?? 0, host);
  return {
    url,
    // dynalite's close also closes LevelDB, flushing it to disk.
    close: () =>
      new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve()))),
  };
}

/** Creates a table from its shared shape unless it exists already. */
export async function ensureTable(
  client: DynamoDBClient,
  tableName: string,
  shape: TableShape,
): Promise<void> {
  try {
    await client.send(new DescribeTableCommand({ TableName: tableName }));
    return;
  } catch (err) {
    if (!(err instanceof ResourceNotFoundException)) throw err;
  }
  const attributes = new Set([shape.partitionKey, shape.sortKey]);
  for (const index of Object.values(shape.indexes)) {
    attributes.add(index.partitionKey);
    attributes.add(index.sortKey);
  }
  const indexes = Object.entries(shape.indexes);
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: "S" })),
      KeySchema: [
        { AttributeName: shape.partitionKey, KeyType: "HASH" },
        { AttributeName: shape.sortKey, KeyType: "RANGE" },
      ],
      ...(indexes.length > 0
        ? {
            GlobalSecondaryIndexes: indexes.map(([name, index]) => ({
              IndexName: name,
              KeySchema: [
                { AttributeName: index.partitionKey, KeyType: "HASH" },
                { AttributeName: index.sortKey, KeyType: "RANGE" },
              ],
              Projection: { ProjectionType: "ALL" },
            })),
          }
        : {}),
    }),
  );
}

/** An SDK client for a local DynamoDB: its URL, any region, static credentials (nothing verifies them). */
export function localDynamoClient(url: string, options: DynamoDBClientConfig = {}): DynamoDBClient {
  return new DynamoDBClient({
    endpoint: url,
    region: "eu-west-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    ...options,
  });
}
