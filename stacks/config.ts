import { readdirSync } from "node:fs";
import path from "node:path";
import { dedicatedEndpointPrefix, loadStageConfigFile, type StageConfig } from "@atrium/core/config";

/** Where a stage's config lives; `root` defaults to the cwd because SST itself resolves everything from there. */
export function stageConfigFile(stage: string, root = process.cwd()): string {
  return path.join(root, "config", `${stage}.json`);
}

/** The stages there are: one config file each. */
export function knownStages(root = process.cwd()): string[] {
  return readdirSync(path.join(root, "config"))
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.slice(0, -".json".length))
    .sort();
}

/** Reads and validates config/<stage>.json, then the rules that depend on the stage's name. */
export function loadStageConfig(stage: string, root = process.cwd()): StageConfig {
  const file = stageConfigFile(stage, root);
  const config = loadStageConfigFile(file);
  const problems = endpointNamingProblems(stage, config);
  if (problems.length > 0) throw new Error(`Invalid ${file}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  return config;
}

/**
 * Dedicated endpoints, and every endpoint the stack creates, are named `atrium-<stage>-…` so that
 * one IAM resource pattern covers the dedicated endpoints registered at runtime (docs/adr/0006).
 */
export function endpointNamingProblems(stage: string, config: StageConfig): string[] {
  const prefix = dedicatedEndpointPrefix(stage);
  const named = (name: string) => name.toLowerCase().startsWith(prefix);
  return [
    ...config.sharedEndpoints.flatMap((e, i) =>
      e.create && !named(e.endpointName)
        ? [`sharedEndpoints.${i}.endpointName: an endpoint the stack creates must start with '${prefix}'`]
        : [],
    ),
    ...config.dedicatedEndpoints.flatMap((e, i) =>
      named(e.endpointName)
        ? []
        : [`dedicatedEndpoints.${i}.endpointName: a dedicated endpoint must start with '${prefix}'`],
    ),
  ];
}

/** The config the functions receive: no deploy recipes, which they never read (Lambda environments hold 4 KB). */
export function runtimeConfig(config: StageConfig): StageConfig {
  // The recipe stays with the stack; what reports price an endpoint by (its instances) goes along.
  const withoutRecipe = <
    T extends {
      create?: { instanceType: string; minInstances: number };
      instanceType?: string;
      instanceCount?: number;
    },
  >({
    create: recipe,
    ...endpoint
  }: T) => ({
    ...endpoint,
    ...(recipe && endpoint.instanceType === undefined ? { instanceType: recipe.instanceType } : {}),
    ...(recipe && endpoint.instanceCount === undefined ? { instanceCount: recipe.minInstances } : {}),
  });
  return {
    ...config,
    sharedEndpoints: config.sharedEndpoints.map(withoutRecipe),
    dedicatedEndpoints: config.dedicatedEndpoints.map(withoutRecipe),
  };
}
