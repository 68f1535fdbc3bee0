/** The local platform for one test file: free ports, in-memory DynamoDB, a temporary data directory. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Platform, type PlatformOptions, startPlatform } from "@atrium/local/platform";

export async function startTestPlatform(
  options: Omit<PlatformOptions, "dataDir"> = {},
  dataDir?: string,
): Promise<{ platform: Platform; dataDir: string }> {
  const dir = dataDir ?? (await mkdtemp(join(tmpdir(), "atrium-test-")));
  const platform = await startPlatform({ port: 0, ephemeral: true, ...options, dataDir: dir });
  return { platform, dataDir: dir };
}

export async function stopTestPlatform(
  platform: Platform | undefined,
  dataDir: string | undefined,
): Promise<void> {
  await platform?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}
