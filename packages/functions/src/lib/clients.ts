import { stageConfigFromEnv } from "@atrium/core/config";
import { DynamoClient } from "@atrium/core/dynamodb/client";
import { ledgerTimeouts } from "./timeouts";

export { documentClient, tenantTable } from "./document-client";
export { requireEnv } from "./stack-env";

// Module scope: parsed and built once per container, reused by every call.
export const config = stageConfigFromEnv();

/** The usage ledger's writes: never retried (docs/adr/0010). */
export const ledgerClient = new DynamoClient(ledgerTimeouts(config.dynamodbRequestTimeoutMs));
