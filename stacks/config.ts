import { readFileSync } from "node:fs";
import path from "node:path";
import { parseStageConfig, type StageConfig } from "@atrium/core/config";

/** Where a stage's config lives; `root` defaults to the cwd because SST itself resolves everything from there. */
export function stageConfigFile(stage: string, root = process.cwd()): string {
  return path.join(root, "config", `${stage}.json`);
}

/** Reads and validates config/<stage>.json, failing with an error that names the file and each bad field. */
export function loadStageConfig(stage: string, root = process.cwd()): StageConfig {
  const file = stageConfigFile(stage, root);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    throw new Error(
      `No config for stage '${stage}': ${file} does not exist (copy config/dev.json to start one).`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`Invalid ${file}: not JSON (${(err as Error).message})`);
  }
  return parseStageConfig(raw, file);
}
