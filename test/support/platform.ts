/** The local platform for one test file: free ports, the run's shared DynamoDB Local, a temporary data directory. */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dynamoClientFor } from "@atrium/local/dynamodb";
import { type Platform, type PlatformOptions, REPO_ROOT, startPlatform } from "@atrium/local/platform";
import { afterAll, beforeAll } from "vitest";
import { sharedDynamoUrl, uniqueTableName } from "./dynamodb";
import type { Json } from "./http";

export async function startTestPlatform(
  options: Omit<PlatformOptions, "dataDir"> = {},
  dataDir?: string,
): Promise<{ platform: Platform; dataDir: string }> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "atrium-test-")));
  const platform = await startPlatform({
    port: 0,
    ephemeral: true,
    dynamodbUrl: sharedDynamoUrl(),
    tablePrefix: uniqueTableName("atrium-test"),
    ...options,
    dataDir: dir,
  });
  return { platform, dataDir: dir };
}

/**
 * A test platform whose stage config is config/local.json with more shared endpoints (a test's own
 * model containers), tiers and circuit breaker settings, written into the platform's temporary data directory.
 */
export async function startTestPlatformWith(
  extra: { sharedEndpoints?: unknown[]; tiers?: Record<string, unknown>; circuitBreaker?: unknown },
  options: Omit<PlatformOptions, "dataDir" | "configFile"> = {},
): Promise<{ platform: Platform; dataDir: string }> {
  const dir = await mkdtemp(join(tmpdir(), "atrium-test-"));
  const base = JSON.parse(await readFile(join(REPO_ROOT, "config/local.json"), "utf8"));
  const config = {
    ...base,
    sharedEndpoints: [...base.sharedEndpoints, ...(extra.sharedEndpoints ?? [])],
    tiers: { ...base.tiers, ...extra.tiers },
    ...(extra.circuitBreaker ? { circuitBreaker: extra.circuitBreaker } : {}),
  };
  const configFile = join(dir, "config.json");
  await writeFile(configFile, JSON.stringify(config));
  return startTestPlatform({ ...options, configFile }, dir);
}

export async function stopTestPlatform(
  platform: Platform | undefined,
  dataDir: string | undefined,
): Promise<void> {
  await platform?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}

/** One admin API call with the platform's admin credential; the body is parsed when there is one. */
export async function adminCall(
  platform: Platform,
  method: string,
  path: string,
  body?: unknown,
  token = platform.adminToken,
): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${platform.gatewayUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Every item of one of the platform's tables, as stored (to check what was or was not kept). */
export async function scanTable(platform: Platform, tableName: string): Promise<Record<string, unknown>[]> {
  const doc = dynamoClientFor(platform.dynamodbUrl);
  try {
    return (await doc.scan({ TableName: tableName, ConsistentRead: true })).Items ?? [];
  } finally {
    doc.destroy();
  }
}

/**
 * One platform for the test file: started before its tests and stopped (data directory removed)
 * after them; `onStart` receives it.
 */
export function useTestPlatform(
  onStart: (platform: Platform) => void,
  options: Omit<PlatformOptions, "dataDir"> = {},
): void {
  let started: { platform: Platform; dataDir: string } | undefined;
  beforeAll(async () => {
    started = await startTestPlatform(options);
    onStart(started.platform);
  });
  afterAll(() => stopTestPlatform(started?.platform, started?.dataDir));
}
