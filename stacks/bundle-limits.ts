/**
 * The limits every Lambda bundle must hold (docs/adr/0014-lambda-bundles.md), checked by
 * `npm run synth` and, for what a bundle may contain, by the infra test of the bundled stage.
 */
import type { Metafile } from "esbuild";

const KiB = 1024;
/** Bytes of any app function's code asset. */
export const MAX_BUNDLE_BYTES = 250 * KiB;
/** Bytes of the authorizer's: it runs whenever API Gateway's cache of a key's decision is cold. */
export const MAX_AUTHORIZER_BYTES = 100 * KiB;
/** Milliseconds of CPU an import of the bundle in a fresh `node` takes, the median of IMPORT_RUNS. */
export const MAX_IMPORT_MS = 100;
export const IMPORT_RUNS = 10;

export const AUTHORIZER_FILE = "packages/functions/src/authorizer";

/** Modules a bundle must not contain: the runtime provides the SDK; the rest is not on that function's path. */
export const FORBIDDEN_MODULES: { pattern: RegExp; why: string; in: (file: string) => boolean }[] = [
  { pattern: /node_modules\/@aws-sdk\//, why: "the AWS SDK comes from the runtime", in: () => true },
  {
    pattern: /node_modules\/aws-xray-sdk-core\//,
    why: "tracing is Lambda's own (no X-Ray SDK)",
    in: () => true,
  },
  {
    pattern: /packages\/(core|functions)\/src\/(lib\/)?(limiter|admission|limits|tenant-clients|fair-share)/,
    why: "the authorizer neither admits calls nor assumes tenant roles",
    in: (file) => file === AUTHORIZER_FILE,
  },
  {
    pattern: /node_modules\/zod\/|packages\/core\/src\/(config|tenant)\.ts$/,
    why: "the authorizer reads a key and a profile: no stage config parse, no schemas",
    in: (file) => file === AUTHORIZER_FILE,
  },
  {
    pattern: /packages\/core\/src\/(store\.ts$|admin\/)/,
    why: "only the admin functions change tenants (the local platform seeds through TenantStore)",
    in: (file) => !file.includes("/admin/"),
  },
  {
    pattern: /^runtime-sdk:@aws-sdk\/(client-sts|credential-providers)$/,
    why: "tenant sessions come from lib/sts.ts, not the SDK's credential providers (docs/adr/0016)",
    in: () => true,
  },
  {
    pattern: /packages\/functions\/src\/lib\/sts\.ts$/,
    why: "the authorizer does not assume tenant roles",
    in: (file) => file === AUTHORIZER_FILE,
  },
  {
    pattern: /^runtime-sdk:@aws-sdk\/client-sagemaker-runtime$/,
    why: "models are called through lib/sagemaker-runtime.ts, not the SDK's client (docs/adr/0015)",
    in: () => true,
  },
  {
    pattern: /^runtime-sdk:@aws-sdk\/(client-dynamodb|lib-dynamodb|util-dynamodb)$/,
    why: "DynamoDB is called through core/dynamodb/client.ts, not the SDK's client (docs/adr/0016)",
    in: () => true,
  },
  {
    pattern: /^runtime-sdk:@aws-sdk\/client-cloudwatch$/,
    why: "CloudWatch is read through core/cloudwatch.ts (docs/adr/0016)",
    in: () => true,
  },
  {
    pattern: /^runtime-sdk:@aws-sdk\/(client-s3|client-sns)$/,
    why: "the reports are written through lib/s3.ts and the alerts published through lib/sns.ts (docs/adr/0016)",
    in: () => true,
  },
  {
    pattern: /packages\/functions\/src\/lib\/sagemaker-runtime\.ts$/,
    why: "only the /v1 model routes call a model",
    in: (file) => file === AUTHORIZER_FILE || file.includes("/admin/"),
  },
  {
    pattern: /packages\/(core|functions)\/src\/(reports\/|admin\/reports)/,
    why: "only the report functions build reports",
    in: (file) => !file.includes("reports"),
  },
];

/** Why a bundle breaks its limits, one line each (none: it holds them). */
export function bundleViolations(file: string, bytes: number, importMs?: number): string[] {
  const maxBytes = file === AUTHORIZER_FILE ? MAX_AUTHORIZER_BYTES : MAX_BUNDLE_BYTES;
  const violations: string[] = [];
  if (bytes > maxBytes) violations.push(`${file}: ${kib(bytes)}, above the ${kib(maxBytes)} limit`);
  if (importMs !== undefined && importMs > MAX_IMPORT_MS) {
    violations.push(
      `${file}: imports in ${importMs.toFixed(0)} ms of CPU (p50), above the ${MAX_IMPORT_MS} ms limit`,
    );
  }
  return violations;
}

/** The modules of a bundle that FORBIDDEN_MODULES keeps out of it, each with the reason. */
export function forbiddenModules(file: string, metafile: Metafile): string[] {
  return Object.keys(metafile.inputs).flatMap((input) =>
    FORBIDDEN_MODULES.filter((rule) => rule.in(file) && rule.pattern.test(input)).map(
      (rule) => `${input} (${rule.why})`,
    ),
  );
}

export function kib(bytes: number): string {
  return `${(bytes / KiB).toFixed(1)} KiB`;
}
