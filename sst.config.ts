import type { SSTConfig } from "sst";
import type { FunctionProps } from "sst/constructs";
import { Api } from "./stacks/Api";
import { loadStageConfig } from "./stacks/config";
import { Data } from "./stacks/Data";
import { Inference } from "./stacks/Inference";
import { Reporting } from "./stacks/Reporting";
import { runtimeSdk } from "./stacks/runtime-sdk";

/** Applied to every function of the app; exported so the infra test synthesises with the same defaults. */
export const functionDefaults: FunctionProps = {
  runtime: "nodejs22.x",
  architecture: "arm_64",
  memorySize: "512 MB",
  // For functions without their own; the API's come from the route table (docs/adr/0007-timeouts.md).
  timeout: "30 seconds",
  tracing: "active",
  // The AWS SDK comes from the runtime, not the bundle (docs/adr/0014-lambda-bundles.md).
  nodejs: { format: "esm", minify: true, esbuild: { plugins: [runtimeSdk()] } },
};

export default {
  config(input) {
    const stage = input.stage ?? process.env.SST_STAGE;
    // The region comes from the stage's config file, so there is no personal-stage fallback.
    if (!stage)
      throw new Error("Pass --stage <name> (or set SST_STAGE): the region is read from config/<stage>.json");
    return { name: "atrium", region: loadStageConfig(stage).region };
  },
  // Must stay a method: SST strips the `stacks` method when it loads this file for config() alone.
  stacks(app) {
    app.setDefaultFunctionProps(functionDefaults);
    app.stack(Data).stack(Inference).stack(Api).stack(Reporting);
  },
} satisfies SSTConfig;
