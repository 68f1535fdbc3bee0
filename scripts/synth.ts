/**
 * `npm run synth -- --stage <stage>`: every stack's CloudFormation template in .atrium/synth/<stage>/,
 * offline (no AWS credentials, no network), each function bundled as `sst deploy` bundles it, and
 * cdk-nag's AwsSolutions checks applied. Exits 1 on an unsuppressed finding, 2 on a usage error.
 */
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
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
const { assembly } = await synthStage(stage, { outdir, nag: true });
const seconds = ((performance.now() - started) / 1000).toFixed(1);

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON.
type Resource = { Type: string; Properties?: Record<string, any> };
const bundles: { stack: string; fn: string; bytes: number }[] = [];
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
    const fn = handler.startsWith("packages/") ? handler : `${id} (${handler})`;
    bundles.push({ stack: artifact.stackName, fn, bytes: sizeOf(asset) });
  }
  for (const message of artifact.messages) {
    const text = String(message.entry.data);
    if (message.level !== "info" && text.startsWith("AwsSolutions-")) findings.push(`${message.id}: ${text}`);
  }
}
process.stdout.write(`Synthesised ${assembly.stacks.length} stacks in ${seconds} s.\n\n`);

const width = Math.max(...bundles.map((b) => b.fn.length), "function".length);
process.stdout.write(`  ${"function (handler)".padEnd(width)}  ${"bundle".padStart(9)}  stack\n`);
for (const b of bundles.sort((x, y) => x.stack.localeCompare(y.stack) || y.bytes - x.bytes)) {
  process.stdout.write(`  ${b.fn.padEnd(width)}  ${kib(b.bytes).padStart(9)}  ${b.stack}\n`);
}
const total = bundles.reduce((sum, b) => sum + b.bytes, 0);
process.stdout.write(`  ${"total".padEnd(width)}  ${kib(total).padStart(9)}\n\n`);

if (findings.length > 0) {
  process.stderr.write(
    `cdk-nag (AwsSolutions): ${findings.length} unsuppressed findings\n${findings.join("\n")}\n`,
  );
  process.exit(1);
}
process.stdout.write("cdk-nag (AwsSolutions): no unsuppressed findings.\n");

/** Bytes of every file under a bundle's asset directory (the code Lambda unpacks). */
function sizeOf(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

function kib(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KiB`;
}
