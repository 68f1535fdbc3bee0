/**
 * `npm run synth -- --stage <stage>`: every stack's CloudFormation template in .atrium/synth/<stage>/,
 * offline (no AWS credentials, no network), each function bundled as `sst deploy` bundles it, and
 * cdk-nag's AwsSolutions checks applied. Prints each app function's bundle size and import time and
 * checks them against stacks/bundle-limits.ts (docs/adr/0014-lambda-bundles.md). Exits 1 on an
 * unsuppressed finding or a bundle above its limits, 2 on a usage error.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
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

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON.
type Resource = { Type: string; Properties?: Record<string, any> };
type Bundle = { stack: string; fn: string; bytes: number; code?: string; env: Record<string, string> };
const bundles: Bundle[] = [];
const findings: string[] = [];
for (const artifact of assembly.stacks) {
  const file = path.join(outdir, artifact.templateFile);
  const resources: Record<string, Resource> = JSON.parse(readFileSync(file, "utf8")).Resources ?? {};
  process.stdout.write(
    `  ✓ ${artifact.stackName.padEnd(24)} ${String(Object.keys(resources).length).padStart(3)} resources  ${shown(file)}\n`,
  );
  for (const [id, resource] of Object.entries(resources)) {
    const key = resource.Properties?.Code?.S3Key;
    if (resource.Type !== "AWS::Lambda::Function" || typeof key !== "string") continue;
    const asset = path.join(outdir, `asset.${key.replace(/\.zip$/, "")}`);
    const handler: string = resource.Properties?.Handler ?? "";
    // The app's functions by handler; SST's own (index.handler) by logical id.
    const app = handler.startsWith("packages/");
    const fn = app ? handler : `${id} (${handler})`;
    const code = app ? path.join(asset, `${handler.replace(/\.[^./]+$/, "")}.mjs`) : undefined;
    const env = environmentOf(resource.Properties?.Environment?.Variables ?? {});
    bundles.push({ stack: artifact.stackName, fn, bytes: sizeOf(asset), code, env });
  }
  for (const message of artifact.messages) {
    const text = String(message.entry.data);
    if (message.level !== "info" && text.startsWith("AwsSolutions-")) findings.push(`${message.id}: ${text}`);
  }
}
process.stdout.write(`Synthesised ${assembly.stacks.length} stacks in ${seconds} s.\n\n`);

/** What Lambda sets in every function's environment (credentials are dummies: nothing is called at import). */
const lambdaEnvironment: Record<string, string> = {
  PATH: process.env.PATH ?? "",
  AWS_REGION: "eu-west-1",
  AWS_LAMBDA_FUNCTION_NAME: "import-probe",
  AWS_LAMBDA_INITIALIZATION_TYPE: "on-demand",
  AWS_EXECUTION_ENV: "AWS_Lambda_nodejs22.x",
  AWS_ACCESS_KEY_ID: "import-probe",
  AWS_SECRET_ACCESS_KEY: "import-probe",
  AWS_SESSION_TOKEN: "import-probe",
  // The SDK's warning about this machine's Node 20 (Lambda runs 22) is not the bundle's.
  AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE: "1",
  NODE_NO_WARNINGS: "1",
};

// One import measurement per bundle file: the admin handlers of one file share their bundle.
process.stdout.write(`Importing each bundle ${IMPORT_RUNS} times, each in a fresh node…\n`);
const imports = new Map<string, { wallMs: number; cpuMs: number }>();
for (const b of bundles)
  if (b.code && !imports.has(fileOf(b))) imports.set(fileOf(b), importTime(b.code, b.env));

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

/** Bytes of every file under a bundle's asset directory (the code Lambda unpacks). */
function sizeOf(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

/**
 * The medians of IMPORT_RUNS imports of a bundle, each in a fresh `node`, with the function's own
 * environment as Lambda sets it. CPU time is what the check holds: wall time on a shared machine
 * counts the other processes' turns too.
 */
function importTime(code: string, env: Record<string, string>): { wallMs: number; cpuMs: number } {
  const probe = path.resolve("scripts", "import-probe.mjs");
  const runs = Array.from({ length: IMPORT_RUNS }, () => {
    const run = spawnSync(process.execPath, [probe, code], {
      env: { ...lambdaEnvironment, ...env },
      encoding: "utf8",
    });
    if (run.status !== 0) throw new Error(`${shown(code)} failed to import:\n${run.stderr}`);
    const [wallMs, cpuMs] = run.stdout.trim().split(" ").map(Number) as [number, number];
    return { wallMs, cpuMs };
  });
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
  return { wallMs: median(runs.map((r) => r.wallMs)), cpuMs: median(runs.map((r) => r.cpuMs)) };
}

/** The handler's file, without its export: the admin handlers of one file share one bundle. */
function fileOf(bundle: Bundle): string {
  return bundle.fn.replace(/\.[^./]+$/, "");
}

/** A function's environment from its template: references to other resources become placeholders. */
function environmentOf(variables: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(variables).map(([name, value]) => [
      name,
      typeof value === "string" ? value : `synth-placeholder-${name.toLowerCase()}`,
    ]),
  );
}
