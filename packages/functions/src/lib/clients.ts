import { stageConfigFromEnv } from "@atrium/core/config";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { ledgerTimeouts } from "./timeouts";

export { documentClient, tenantTable } from "./document-client";
export { requireEnv } from "./stack-env";

// Module scope: parsed and built once per container, reused by every call.
export const config = stageConfigFromEnv();

/** The usage ledger's writes: no SDK retry (docs/adr/0010). */
export const ledgerClient = DynamoDBDocumentClient.from(
  new DynamoDBClient(ledgerTimeouts(config.dynamodbRequestTimeoutMs)),
);
