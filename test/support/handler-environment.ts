/** The environment a handler module reads at import, as a Lambda does at cold start, for tests that import handlers directly. */
import { readFileSync } from "node:fs";
import { loadStageConfigFile, type StageConfig } from "@atrium/core/config";

export function setHandlerEnvironment(options: {
  dynamodbUrl: string;
  tenantsTable: string;
  sagemakerUrl?: string;
}): void {
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: options.dynamodbUrl,
    ...(options.sagemakerUrl ? { AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME: options.sagemakerUrl } : {}),
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    // The deployed stages' DynamoDB request timeout (the local stage's is longer).
    ATRIUM_STAGE_CONFIG: JSON.stringify({
      ...JSON.parse(readFileSync("config/local.json", "utf8")),
      dynamodbRequestTimeoutMs: 1_000,
    }),
    ATRIUM_TENANTS_TABLE: options.tenantsTable,
    ATRIUM_LIMITER_TABLE: "unused-limits",
    ATRIUM_USAGE_TABLE: "unused-usage",
    ATRIUM_ENDPOINTS_TABLE: "unused-endpoints",
  });
}

/**
 * The environment the admission module reads at import, for tests that give it their own limiter
 * store: the local stage's configuration as it is, and no table it would reach by itself.
 */
export function setAdmissionEnvironment(): StageConfig {
  Object.assign(process.env, {
    ATRIUM_STAGE_CONFIG: readFileSync("config/local.json", "utf8"),
    ATRIUM_TENANTS_TABLE: "unused-tenants",
    ATRIUM_LIMITER_TABLE: "unused-limits",
    ATRIUM_USAGE_TABLE: "unused-usage",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  });
  return loadStageConfigFile("config/local.json");
}
