import path from "node:path";
import { loadStageConfigFile, type StageConfig } from "@atrium/core/config";

/** Where a stage's config lives; `root` defaults to the cwd because SST itself resolves everything from there. */
export function stageConfigFile(stage: string, root = process.cwd()): string {
  return path.join(root, "config", `${stage}.json`);
}

/** Reads and validates config/<stage>.json. */
export function loadStageConfig(stage: string, root = process.cwd()): StageConfig {
  return loadStageConfigFile(stageConfigFile(stage, root));
}
