import { readFileSync } from "node:fs";
import { z } from "zod";
import { Region } from "./region";

/** Where a tier's calls may go (ARCHITECTURE.md, "Tenancy models"). */
export const Tenancy = z.enum(["pool", "bridge", "silo"]);
export type Tenancy = z.infer<typeof Tenancy>;

export const Compliance = z.enum(["hipaa", "gdpr", "soc2"]);
export type Compliance = z.infer<typeof Compliance>;

const name = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, "lower-case letters, digits and hyphens");
/** SageMaker's own rule for endpoint names. */
export const EndpointName = z
  .string()
  .regex(/^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/, "a SageMaker endpoint name: letters, digits, hyphens, 1-63");
export const ModelName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "letters, digits and . _ : / -");

const positive = z.number().int().positive();

/** A tier's limits; a tenant may override any of them (Tenant.limits). */
export const Limits = z.strictObject({
  requestsPerMinute: positive,
  /** Requests admitted at once from idle; defaults to requestsPerMinute. */
  burst: positive.optional(),
  tokensPerMinute: positive,
  /** Calls in flight at once. */
  concurrency: positive,
  /** Tokens per UTC calendar month. */
  monthlyTokens: positive,
});
export type Limits = z.infer<typeof Limits>;
export const LimitOverrides = Limits.partial();
export type LimitOverrides = z.infer<typeof LimitOverrides>;

export const TierSpec = z.strictObject({
  tenancy: Tenancy,
  limits: Limits,
  /** max_tokens when a request sets none, and the most a request may ask for. */
  maxTokens: z.strictObject({ default: positive, cap: positive }),
  /** When the limiter's table cannot be reached: admit (open) or refuse with 503 (closed). */
  limiterFailMode: z.enum(["open", "closed"]),
});
export type TierSpec = z.infer<typeof TierSpec>;

export const SharedEndpoint = z.object({
  model: ModelName,
  endpointName: EndpointName,
  region: Region.optional(),
  /** Multi-model endpoints: the artifact to load (X-Amzn-SageMaker-Target-Model). */
  targetModel: z.string().min(1).max(1024).optional(),
  /** Endpoints with inference components (X-Amzn-SageMaker-Inference-Component). */
  inferenceComponentName: z.string().min(1).max(63).optional(),
  /** Local platform only: forward to a container honouring the SageMaker contract instead of the reference model. */
  containerUrl: z.url().optional(),
});
export type SharedEndpoint = z.infer<typeof SharedEndpoint>;

/** One stage's configuration: the single source for the stacks, the handlers and the local platform. */
export const StageConfig = z
  .object({
    region: Region,
    tiers: z.record(name, TierSpec).refine((t) => Object.keys(t).length > 0, "at least one tier"),
    sharedEndpoints: z.array(SharedEndpoint),
    authorizerCacheTtlSeconds: z.number().int().min(0).max(3600).default(60),
    tenantCacheTtlSeconds: z.number().int().min(0).max(3600).default(30),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    for (const [i, endpoint] of config.sharedEndpoints.entries()) {
      if (seen.has(endpoint.model)) {
        ctx.addIssue({
          code: "custom",
          path: ["sharedEndpoints", i, "model"],
          message: "model listed twice",
        });
      }
      seen.add(endpoint.model);
    }
  });
export type StageConfig = z.infer<typeof StageConfig>;

/** Validates a parsed config, throwing one readable message listing every problem. */
export function parseStageConfig(raw: unknown, source = "stage config"): StageConfig {
  const result = StageConfig.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `  - ${i.path.join(".") || "(root)"}: ${i.message}`);
  throw new Error(`Invalid ${source}:\n${problems.join("\n")}`);
}

/** The environment variable through which a deployed or local function receives its stage config. */
export const STAGE_CONFIG_ENV = "ATRIUM_STAGE_CONFIG";

export function stageConfigFromEnv(env: NodeJS.ProcessEnv = process.env): StageConfig {
  const raw = env[STAGE_CONFIG_ENV];
  if (!raw) throw new Error(`${STAGE_CONFIG_ENV} is not set`);
  return parseStageConfig(JSON.parse(raw), STAGE_CONFIG_ENV);
}

/** Reads and validates a stage config file, failing with an error that names the file and each bad field. */
export function loadStageConfigFile(file: string): StageConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    throw new Error(`No stage config: ${file} does not exist (copy config/dev.json to start one).`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`Invalid ${file}: not JSON (${(err as Error).message})`);
  }
  return parseStageConfig(raw, file);
}
