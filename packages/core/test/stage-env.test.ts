/** The authorizer's zod-free read of the DynamoDB request timeout agrees with the full stage config parse. */
import { readFileSync } from "node:fs";
import { stageConfigFromEnv } from "@atrium/core/config";
import {
  DYNAMODB_REQUEST_TIMEOUT_MS,
  dynamodbRequestTimeoutFromEnv,
  STAGE_CONFIG_ENV,
} from "@atrium/core/stage-env";
import { describe, expect, it } from "vitest";

const devConfig = JSON.parse(readFileSync("config/dev.json", "utf8")) as Record<string, unknown>;
const envWith = (config: Record<string, unknown>) => ({ [STAGE_CONFIG_ENV]: JSON.stringify(config) });

describe("dynamodbRequestTimeoutFromEnv", () => {
  it("reads the default when the config sets none, as the schema does", () => {
    const { dynamodbRequestTimeoutMs: _, ...withoutTimeout } = devConfig;
    const env = envWith(withoutTimeout);
    expect(dynamodbRequestTimeoutFromEnv(env)).toBe(DYNAMODB_REQUEST_TIMEOUT_MS.default);
    expect(dynamodbRequestTimeoutFromEnv(env)).toBe(stageConfigFromEnv(env).dynamodbRequestTimeoutMs);
  });

  it.each([100, 2_500, 10_000])("reads %i as the schema does", (timeout) => {
    const env = envWith({ ...devConfig, dynamodbRequestTimeoutMs: timeout });
    expect(dynamodbRequestTimeoutFromEnv(env)).toBe(timeout);
    expect(stageConfigFromEnv(env).dynamodbRequestTimeoutMs).toBe(timeout);
  });

  it.each([99, 10_001, 1.5, "1000", null])("refuses %j, as the schema does", (timeout) => {
    const env = envWith({ ...devConfig, dynamodbRequestTimeoutMs: timeout });
    expect(() => dynamodbRequestTimeoutFromEnv(env)).toThrow(/dynamodbRequestTimeoutMs/);
    expect(() => stageConfigFromEnv(env)).toThrow(/dynamodbRequestTimeoutMs/);
  });

  it("refuses to run without a stage config", () => {
    expect(() => dynamodbRequestTimeoutFromEnv({})).toThrow(`${STAGE_CONFIG_ENV} is not set`);
  });
});
