/** The test run's shared DynamoDB Local (test/support/global-dynamodb.ts) and table names no other file uses. */
import { randomBytes } from "node:crypto";
import { inject } from "vitest";

export function sharedDynamoUrl(): string {
  return inject("dynamodbUrl");
}

/** `name` plus a random suffix: test files share one DynamoDB, never a table. */
export function uniqueTableName(name: string): string {
  return `${name}-${randomBytes(4).toString("hex")}`;
}

/** The shared DynamoDB as a LocalDynamo whose close leaves it running for the other files. */
export function sharedDynamo(): { url: string; close(): Promise<void> } {
  return { url: sharedDynamoUrl(), close: async () => {} };
}
