import type { Plugin } from "esbuild";

/**
 * The packages the `nodejs22.x` runtime ships, which the bundles take from it rather than carry
 * (docs/adr/0014-lambda-bundles.md): the AWS SDK v3 and the Smithy packages it is built on.
 */
export const RUNTIME_PROVIDED = /^@(aws-sdk|smithy)\//;

/**
 * Leaves the runtime's AWS SDK out of a bundle and loads it with `require`: the runtime's copy is
 * CommonJS, and requiring it costs about half what an ESM `import` of it does (the ESM loader parses
 * each CommonJS module it imports to find its exports). Each import becomes a one-line CommonJS shim
 * whose `require` esbuild leaves to the runtime, through the `require` SST's ESM banner defines.
 */
export function runtimeSdk(): Plugin {
  return {
    name: "atrium-runtime-sdk",
    setup(build) {
      build.onResolve({ filter: RUNTIME_PROVIDED }, (args) =>
        args.kind === "require-call"
          ? { path: args.path, external: true }
          : { path: args.path, namespace: "runtime-sdk" },
      );
      build.onLoad({ filter: /.*/, namespace: "runtime-sdk" }, (args) => ({
        contents: `module.exports = require(${JSON.stringify(args.path)});`,
        loader: "js",
      }));
    },
  };
}
