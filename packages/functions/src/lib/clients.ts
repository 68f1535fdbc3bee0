import { stageConfigFromEnv } from "@atrium/core/config";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { dynamoTimeouts, ledgerTimeouts } from "./timeouts";

// Module scope: built once per container, reused by every call. The endpoint comes from the SDK's own
// configuration (AWS_ENDPOINT_URL_DYNAMODB), so the same code talks to AWS when deployed and to the
// local stand-ins under `npm start`. Timeouts and attempts: docs/adr/0007-timeouts.md.
export const config = stageConfigFromEnv();

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const dynamo = new DynamoDBClient(dynamoTimeouts(config.dynamodbRequestTimeoutMs));
export const documentClient = DynamoDBDocumentClient.from(dynamo, {
  marshallOptions: { removeUndefinedValues: true },
});
export const tenantStore = new TenantStore(documentClient, requireEnv(TenantTable.env));
/** The usage ledger's writes: no SDK retry (docs/adr/0010). */
export const ledgerClient = DynamoDBDocumentClient.from(
  new DynamoDBClient(ledgerTimeouts(config.dynamodbRequestTimeoutMs)),
);
