import { stageConfigFromEnv } from "@atrium/core/config";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { documentClient } from "./document-client";
import { requireEnv } from "./stack-env";
import { ledgerTimeouts } from "./timeouts";

export { documentClient } from "./document-client";
export { requireEnv } from "./stack-env";

// Module scope: parsed and built once per container, reused by every call.
export const config = stageConfigFromEnv();

export const tenantStore = new TenantStore(documentClient, requireEnv(TenantTable.env));
/** The usage ledger's writes: no SDK retry (docs/adr/0010). */
export const ledgerClient = DynamoDBDocumentClient.from(
  new DynamoDBClient(ledgerTimeouts(config.dynamodbRequestTimeoutMs)),
);
