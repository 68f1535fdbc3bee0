/**
 * How `npm run synth` and `npm run bench:bundles` measure a synthesised stage's Lambda bundles: the
 * app's functions in its templates, each asset's size, and the time a fresh `node` takes to import it.
 */
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation templates are untyped JSON.
type Resource = { Type: string; Properties?: Record<string, any> };
/** `code`: the handler's file in `asset` (the directory Lambda unpacks), for the app's own functions. */
export type Bundle = {
  stack: string;
  fn: string;
  bytes: number;
  asset: string;
  code?: string;
  env: Record<string, string>;
};

/** The functions of one synthesised template, each with its asset's size; `code` for the app's own. */
export function bundlesOf(outdir: string, templateFile: string, stack: string): Bundle[] {
  const file = path.join(outdir, templateFile);
  const resources: Record<string, Resource> = JSON.parse(readFileSync(file, "utf8")).Resources ?? {};
  const bundles: Bundle[] = [];
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
    bundles.push({ stack, fn, bytes: sizeOf(asset), asset, code, env });
  }
  return bundles;
}

/** The number of resources in a synthesised template. */
export function resourceCount(outdir: string, templateFile: string): number {
  const template = JSON.parse(readFileSync(path.join(outdir, templateFile), "utf8"));
  return Object.keys(template.Resources ?? {}).length;
}

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

/** Bytes of every file under a bundle's asset directory (the code Lambda unpacks). */
function sizeOf(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

/**
 * Where the runtime's AWS SDK is found, in NODE_PATH's order: the versions the functions package locks
 * (what the tests run against), then the workspace's. Not whatever a walk up from the bundle meets
 * first: the root node_modules also holds older SDK packages that SST's CLI pulls in.
 */
const root = path.resolve(import.meta.dirname, "..");
const runtimeModules = [
  path.join(root, "packages", "functions", "node_modules"),
  path.join(root, "node_modules"),
].join(path.delimiter);

/**
 * The medians of `runs` imports of a bundle, each in a fresh `node`, with the function's own
 * environment as Lambda sets it. As on Lambda, the asset is unpacked where no node_modules lies above
 * it (Lambda's /var/task) and the SDK comes through NODE_PATH (Lambda's /var/runtime/node_modules).
 * CPU time is what the check holds: wall time on a shared machine counts the other processes' turns too.
 */
export function importTime(
  bundle: Bundle & { code: string },
  runs: number,
): { wallMs: number; cpuMs: number } {
  const probe = path.resolve(import.meta.dirname, "import-probe.mjs");
  const task = mkdtempSync(path.join(tmpdir(), "atrium-task-"));
  try {
    cpSync(bundle.asset, task, { recursive: true });
    const code = path.join(task, path.relative(bundle.asset, bundle.code));
    const times = Array.from({ length: runs }, () => {
      const run = spawnSync(process.execPath, [probe, code], {
        env: { ...lambdaEnvironment, NODE_PATH: runtimeModules, ...bundle.env },
        encoding: "utf8",
      });
      if (run.status !== 0) throw new Error(`${bundle.code} failed to import:\n${run.stderr}`);
      const [wallMs, cpuMs] = run.stdout.trim().split(" ").map(Number) as [number, number];
      return { wallMs, cpuMs };
    });
    const median = (values: number[]) =>
      values.sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    return { wallMs: median(times.map((r) => r.wallMs)), cpuMs: median(times.map((r) => r.cpuMs)) };
  } finally {
    rmSync(task, { recursive: true, force: true });
  }
}

/** The handler's file, without its export: the admin handlers of one file share one bundle. */
export function fileOf(bundle: Bundle): string {
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
