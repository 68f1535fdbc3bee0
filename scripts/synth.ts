/**
 * `npm run synth -- --stage <stage>`: every stack's CloudFormation template in .atrium/synth/<stage>/,
 * offline (no AWS credentials, no network), each function bundled as `sst deploy` bundles it, and
 * cdk-nag's AwsSolutions checks applied. Prints each app function's bundle size and import time and
 * checks them against stacks/bundle-limits.ts (docs/adr/0014-lambda-bundles.md). Exits 1 on an
 * unsuppressed finding or a bundle above its limits, 2 on a usage error.
 */
import { rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  bundleViolations,
  forbiddenModules,
  IMPORT_RUNS,
  kib,
  MAX_AUTHORIZER_BYTES,
  MAX_BUNDLE_BYTES,
  MAX_IMPORT_MS,
} from "../stacks/bundle-limits";
import { knownStages } from "../stacks/config";
import { type Bundle, bundlesOf, fileOf, importTime, resourceCount } from "./bundle-measure";

const { values } = parseArgs({ options: { stage: { type: "string" } }, strict: true });
const stage = values.stage ?? process.env.SST_STAGE;
if (!stage || !knownStages().includes(stage)) {
  const known = knownStages().join(", ");
  process.stderr.write(
    stage
      ? `Unknown stage '${stage}': there is no config/${stage}.json. Stages: ${known}.\n`
      : `Usage: npm run synth -- --stage <stage>   (stages: ${known})\n`,
  );
  process.exit(2);
}

// SST's CLI dependencies load AWS SDK v2, which announces its end of support on import; nothing here uses it.
process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE ??= "1";
const { synthStage } = await import("../stacks/synth");

const outdir = path.resolve(".atrium", "synth", stage);
const shown = (file: string) => path.relative(process.cwd(), file);
rmSync(outdir, { recursive: true, force: true });
process.stdout.write(`Synthesising stage ${stage} into ${shown(outdir)}/ (bundling every function)…\n`);
const started = performance.now();
const { assembly, metafiles } = await synthStage(stage, { outdir, nag: true });
const seconds = ((performance.now() - started) / 1000).toFixed(1);

const bundles: Bundle[] = [];
const findings: string[] = [];
for (const artifact of assembly.stacks) {
  const file = path.join(outdir, artifact.templateFile);
  process.stdout.write(
    `  ✓ ${artifact.stackName.padEnd(24)} ${String(resourceCount(outdir, artifact.templateFile)).padStart(3)} resources  ${shown(file)}\n`,
  );
  bundles.push(...bundlesOf(outdir, artifact.templateFile, artifact.stackName));
  for (const message of artifact.messages) {
    const text = String(message.entry.data);
    if (message.level !== "info" && text.startsWith("AwsSolutions-")) findings.push(`${message.id}: ${text}`);
  }
}
process.stdout.write(`Synthesised ${assembly.stacks.length} stacks in ${seconds} s.\n\n`);

// One import measurement per bundle file: the admin handlers of one file share their bundle.
process.stdout.write(`Importing each bundle ${IMPORT_RUNS} times, each in a fresh node…\n`);
const imports = new Map<string, { wallMs: number; cpuMs: number }>();
for (const b of bundles)
  if (b.code && !imports.has(fileOf(b)))
    imports.set(fileOf(b), importTime({ ...b, code: b.code }, IMPORT_RUNS));

const width = Math.max(...bundles.map((b) => b.fn.length), "function".length);
process.stdout.write(
  `  ${"function (handler)".padEnd(width)}  ${"bundle".padStart(10)}  ${"import p50 cpu/wall".padStart(19)}  stack\n`,
);
for (const b of bundles.sort((x, y) => x.stack.localeCompare(y.stack) || y.bytes - x.bytes)) {
  const t = b.code ? imports.get(fileOf(b)) : undefined;
  const time = t ? `${t.cpuMs.toFixed(0)} / ${t.wallMs.toFixed(0)} ms` : "(SST's own)";
  process.stdout.write(
    `  ${b.fn.padEnd(width)}  ${kib(b.bytes).padStart(10)}  ${time.padStart(19)}  ${b.stack}\n`,
  );
}
const total = bundles.reduce((sum, b) => sum + b.bytes, 0);
process.stdout.write(`  ${"total".padEnd(width)}  ${kib(total).padStart(10)}\n\n`);

const violations = new Set<string>();
for (const b of bundles) {
  if (!b.code) continue;
  const file = fileOf(b);
  for (const v of bundleViolations(file, b.bytes, imports.get(file)?.cpuMs)) violations.add(v);
  for (const m of forbiddenModules(file, metafiles[file] ?? { inputs: {}, outputs: {} })) {
    violations.add(`${file}: contains ${m}`);
  }
}
if (violations.size > 0) {
  process.stderr.write(
    `Bundles above their limits (${kib(MAX_BUNDLE_BYTES)}, the authorizer ${kib(MAX_AUTHORIZER_BYTES)}; ` +
      `import ${MAX_IMPORT_MS} ms of CPU, p50 of ${IMPORT_RUNS}; stacks/bundle-limits.ts):\n` +
      `${[...violations].map((v) => `  ${v}`).join("\n")}\n` +
      `Why a module is in a bundle: ${shown(path.join(outdir, "metafiles"))}/ (esbuild's metafile, e.g. https://esbuild.github.io/analyze/).\n`,
  );
}

if (findings.length > 0) {
  process.stderr.write(
    `cdk-nag (AwsSolutions): ${findings.length} unsuppressed findings\n${findings.join("\n")}\n`,
  );
  process.exit(1);
}
process.stdout.write("cdk-nag (AwsSolutions): no unsuppressed findings.\n");
if (violations.size > 0) process.exit(1);
process.stdout.write("Every bundle holds its size and import-time limits.\n");
