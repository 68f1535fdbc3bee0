/**
 * One AWS DynamoDB Local for the whole test run (a JVM costs seconds and hundreds of MB): every test
 * file gets its URL through `inject("dynamodbUrl")` and uses table names of its own.
 */
import { startDynamo } from "@atrium/local/dynamodb";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    dynamodbUrl: string;
  }
}

export default async function setup(project: TestProject) {
  const dynamo = await startDynamo();
  project.provide("dynamodbUrl", dynamo.url);
  return () => dynamo.close();
}
