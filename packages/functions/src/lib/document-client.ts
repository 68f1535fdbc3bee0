import { DynamoClient } from "@atrium/core/dynamodb/client";
import { dynamodbRequestTimeoutFromEnv } from "@atrium/core/stage-env";
import { TenantTable } from "@atrium/core/tables";
import type { Table } from "@atrium/core/transaction";
import { requireEnv } from "./stack-env";
import { dynamoTimeouts } from "./timeouts";

// Module scope: built once per container, reused by every call. The endpoint comes from
// AWS_ENDPOINT_URL_DYNAMODB when set, as the SDKs read it, so the same code talks to AWS when deployed
// and to the local stand-ins under `npm start`. Timeouts and attempts: docs/adr/0007-timeouts.md. Only the request
// timeout is read of the stage config, so the authorizer, which needs no more, never parses the rest.
export const documentClient = new DynamoClient(dynamoTimeouts(dynamodbRequestTimeoutFromEnv()));

/** The tenant table (keys, profiles, endpoint claims, audit), read and written through that client. */
export const tenantTable: Table = { db: documentClient, name: requireEnv(TenantTable.env) };
