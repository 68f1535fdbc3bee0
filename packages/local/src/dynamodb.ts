import type { TableShape } from "@atrium/core/tables";
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  ResourceNotFoundException,
} from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { listen } from "./http-server";

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
