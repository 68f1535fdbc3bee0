import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { StageConfig } from "@atrium/core/config";
import { Aspects, Aws, type Stack } from "aws-cdk-lib";
import { type CloudAssembly, PATH_METADATA_ENABLE_CONTEXT } from "aws-cdk-lib/cx-api";
import { AwsSolutionsChecks } from "cdk-nag";
import type { Metafile, Plugin } from "esbuild";
import { App, getStack } from "sst/constructs";
import { initProject, useProject } from "sst/project.js";
import { useRuntimeHandlers } from "sst/runtime/handlers.js";
import sstConfig, { functionDefaults } from "../sst.config";
import { Api } from "./Api";
import { knownStages, loadStageConfig, stageConfigFile } from "./config";
import { Data } from "./Data";
import { Inference } from "./Inference";
import { Reporting } from "./Reporting";

export interface StageSynth {
  stage: string;
  config: StageConfig;
  project: { name: string; region?: string };
  app: App;
  stacks: { data: Stack; inference: Stack; api: Stack; reporting: Stack };
  /** Every stack's template, the function bundles, the manifest, and cdk-nag's findings as messages. */
  assembly: CloudAssembly;
  outdir: string;
  /**
   * esbuild's metafile of each bundled handler file (`packages/functions/src/authorizer`): what is in
   * the bundle and why. Also written to <outdir>/metafiles/ for esbuild's analyser. Empty without bundling.
   */
  metafiles: Record<string, Metafile>;
}

/**
 * Synthesises a stage the way `sst deploy` does (initProject, App in deploy mode, sst.config.ts's
 * stacks, every function bundled), but offline: no credentials, the account left to CloudFormation.
 * Used by the infra tests and `npm run synth`. `bundle: false` (tests of the templates only) gives
 * each function a placeholder file instead of its esbuild bundle; nothing else in the templates changes.
 */
export async function synthStage(
  stage: string,
  options: { outdir: string; nag?: boolean; bundle?: boolean },
): Promise<StageSynth> {
  if (!existsSync(stageConfigFile(stage))) {
    throw new Error(
      `Unknown stage '${stage}': there is no ${stageConfigFile(stage)} (stages: ${knownStages().join(", ")})`,
    );
  }
  // SST skips its AWS lookups (bootstrap bucket for sourcemaps, live-Lambda permissions) only under NODE_ENV=test.
  process.env.NODE_ENV = "test";
  // SST bundles with (cores - 1) tasks at once; each mostly waits on esbuild and npm, so more overlap helps.
  process.env.SST_BUILD_CONCURRENCY ??= "4";
  await initProject({ stage });
  const project = useProject();
  // SST's scratch (bundles, generated types) per synth, so concurrent synths of other stages cannot collide.
  project.paths.out = path.join(options.outdir, ".sst");
  project.paths.artifacts = path.join(project.paths.out, "artifacts");
  const { name, region } = project.config;
  const app = new App(
    { mode: "deploy", stage, name, region, account: Aws.ACCOUNT_ID },
    { outdir: options.outdir, context: { [PATH_METADATA_ENABLE_CONTEXT]: false } },
  );
  if (options.nag) Aspects.of(app).add(new AwsSolutionsChecks());
  await sstConfig.stacks(app);
  const metafiles: Record<string, Metafile> = {};
  if (options.bundle === false) await withPlaceholderCode(() => app.finish());
  else await withMetafiles(metafiles, path.join(options.outdir, "metafiles"), () => app.finish());
  const assembly = app.synth();
  return {
    stage,
    config: loadStageConfig(stage),
    project: { name, region },
    app,
    stacks: {
      data: getStack(Data),
      inference: getStack(Inference),
      api: getStack(Api),
      reporting: getStack(Reporting),
    },
    assembly,
    outdir: options.outdir,
    metafiles,
  };
}

/** Runs `finish` with SST's Node build swapped for one that writes placeholder code instead of bundling. */
async function withPlaceholderCode(finish: () => Promise<void>): Promise<void> {
  const node = useRuntimeHandlers().for(functionDefaults.runtime as string);
  const bundle = node.build;
  node.build = async ({ out, props }) => {
    const file = path.join(out, "placeholder.mjs");
    await writeFile(file, "// placeholder: synthesised without bundling\n");
    await writeFile(`${file}.map`, "{}");
    // As SST's build reports them: a handler inside the repo keeps its path, and there is a source map.
    return { type: "success", handler: props.handler as string, sourcemap: `${file}.map` };
  };
  try {
    await finish();
  } finally {
    node.build = bundle;
  }
}

/** Runs `finish` with SST's Node build keeping each bundle's esbuild metafile, keyed by handler file. */
async function withMetafiles(metafiles: Record<string, Metafile>, dir: string, finish: () => Promise<void>) {
  const node = useRuntimeHandlers().for(functionDefaults.runtime as string);
  const bundle = node.build;
  await mkdir(dir, { recursive: true });
  node.build = (input) => {
    const file = (input.props.handler as string).replace(/\.[^./]+$/, "");
    const keep: Plugin = {
      name: "atrium-keep-metafile",
      setup: (build) =>
        build.onEnd(async (result) => {
          if (!result.metafile) return;
          metafiles[file] = result.metafile;
          await writeFile(
            path.join(dir, `${file.replaceAll("/", "_")}.json`),
            JSON.stringify(result.metafile),
          );
        }),
    };
    const esbuild = input.props.nodejs?.esbuild ?? {};
    const nodejs = {
      ...input.props.nodejs,
      esbuild: { ...esbuild, plugins: [...(esbuild.plugins ?? []), keep] },
    };
    return bundle({ ...input, props: { ...input.props, nodejs } });
  };
  try {
    await finish();
  } finally {
    node.build = bundle;
  }
}
