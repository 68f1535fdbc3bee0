/**
 * A test platform with one more shared endpoint, GATED_MODEL, served by a gated model (gated-model.ts):
 * started before the file's tests, stopped after them. The streaming tests hold a stream with it.
 */
import type { Platform, PlatformOptions } from "@atrium/local/platform";
import { afterAll, beforeAll } from "vitest";
import { type GatedModel, startGatedModel } from "./gated-model";
import { startTestPlatformWith, stopTestPlatform } from "./platform";

export const GATED_MODEL = "gated-reference";
export const GATED_ENDPOINT = "atrium-shared-gated-reference";

export function useGatedPlatform(
  onStart: (started: { platform: Platform; gated: GatedModel }) => void,
  options: Omit<PlatformOptions, "dataDir" | "configFile"> = {},
): void {
  let gated: GatedModel | undefined;
  let started: { platform: Platform; dataDir: string } | undefined;
  beforeAll(async () => {
    gated = await startGatedModel(GATED_ENDPOINT);
    const endpoint = { model: GATED_MODEL, endpointName: GATED_ENDPOINT, containerUrl: gated.url };
    started = await startTestPlatformWith({ sharedEndpoints: [endpoint] }, options);
    onStart({ platform: started.platform, gated });
  });
  afterAll(async () => {
    await stopTestPlatform(started?.platform, started?.dataDir);
    await gated?.close();
  });
}
