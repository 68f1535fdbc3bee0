import { stageConfigFromEnv } from "@atrium/core/config";
import { TenantStore } from "@atrium/core/store";
import { TenantTable } from "@atrium/core/tables";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { tracer } from "./observability";
import { dynamoTimeouts, ledgerTimeouts, sagemakerTimeouts } from "./timeouts";

// Module scope: built once per container, reused by every call. Endpoints come from the SDK's own
// configuration (AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME), so the same code
// talks to AWS when deployed and to the local stand-ins under `npm start`. Timeouts and attempts:
// docs/adr/0007-timeouts.md.
export const config = stageConfigFromEnv();

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const dynamo = tracer.captureAWSv3Client(new DynamoDBClient(dynamoTimeouts(config.dynamodbRequestTimeoutMs)));
export const documentClient = DynamoDBDocumentClient.from(dynamo, {
  marshallOptions: { removeUndefinedValues: true },
});
export const tenantStore = new TenantStore(documentClient, requireEnv(TenantTable.env));
/** The usage ledger's writes: no SDK retry (docs/adr/0010). */
export const ledgerClient = DynamoDBDocumentClient.from(
  tracer.captureAWSv3Client(new DynamoDBClient(ledgerTimeouts(config.dynamodbRequestTimeoutMs))),
);

export const sagemaker = tracer.captureAWSv3Client(new SageMakerRuntimeClient(sagemakerTimeouts));
