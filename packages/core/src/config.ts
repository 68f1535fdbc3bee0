import { readFileSync } from "node:fs";
import { TENANT_ID_PATTERN } from "./ids";
import { Region } from "./region";
import { DYNAMODB_REQUEST_TIMEOUT_MS, STAGE_CONFIG_ENV } from "./stage-env";
import * as z from "./zod";

/** Where a tier's calls may go (ARCHITECTURE.md, "Tenancy models"). */
export const Tenancy = z.enum(["pool", "bridge", "silo"]);
export type Tenancy = z.infer<typeof Tenancy>;

export const Compliance = z.enum(["hipaa", "gdpr", "soc2"]);
export type Compliance = z.infer<typeof Compliance>;

const name = z.string().check(z.regex(/^[a-z][a-z0-9-]{0,31}$/, "lower-case letters, digits and hyphens"));
/** SageMaker's own rule for endpoint names. */
export const EndpointName = z
  .string()
  .check(
    z.regex(
      /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/,
      "a SageMaker endpoint name: letters, digits, hyphens, 1-63",
    ),
  );
export const ModelName = z
  .string()
  .check(
    z.minLength(1),
    z.maxLength(128),
    z.regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, "letters, digits and . _ : / -"),
  );

const positive = z.number().check(z.int(), z.positive());

/** A tier's limits; a tenant may override any of them (Tenant.limits). */
export const Limits = z.strictObject({
  requestsPerMinute: positive,
  /** Requests admitted at once from idle; defaults to requestsPerMinute. */
  burst: z.optional(positive),
  tokensPerMinute: positive,
  /** Calls in flight at once. */
  concurrency: positive,
  /** Tokens per UTC calendar month. */
  monthlyTokens: positive,
});
export type Limits = z.infer<typeof Limits>;
export const LimitOverrides = z.partial(Limits);
export type LimitOverrides = z.infer<typeof LimitOverrides>;

export const TierSpec = z.strictObject({
  tenancy: Tenancy,
  limits: Limits,
  /** max_tokens when a request sets none, and the most a request may ask for. */
  maxTokens: z.strictObject({ default: positive, cap: positive }),
  /** Reserved for a body Atrium cannot read (not JSON, binary), and charged unless the reply reports usage. */
  rawCallTokens: z._default(positive, 1024),
  /** When the limiter's table cannot be reached: admit (open) or refuse with 503 (closed). */
  limiterFailMode: z.enum(["open", "closed"]),
  /** The tier's weight in a contended shared endpoint's fair share (docs/adr/0012-fair-share.md). */
  shareWeight: z._default(positive, 1),
});
export type TierSpec = z.infer<typeof TierSpec>;

/** A tier of the stage by name: own entries only, so a name such as `constructor` is no tier at all. */
export function tierSpec(config: Pick<StageConfig, "tiers">, name: string): TierSpec | undefined {
  return Object.hasOwn(config.tiers, name) ? config.tiers[name] : undefined;
}

/** An image in ECR (SageMaker pulls only from ECR): account, region, repository, then a tag or digest. */
export const EcrImage = z
  .string()
  .check(
    z.regex(
      /^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?\/[a-z0-9][a-z0-9._/-]*(:[\w.-]{1,128}|@sha256:[a-f0-9]{64})$/,
      "an ECR image URI: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>",
    ),
  );
/** One S3 object (a model.tar.gz), so the endpoint's execution role can be scoped to exactly it. */
export const S3ObjectUrl = z
  .string()
  .check(
    z.regex(
      /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/[^*?]*[^/*?]$/,
      "an S3 object URL: s3://<bucket>/<key>",
    ),
  );

const InstanceType = z
  .string()
  .check(z.regex(/^ml\.[a-z0-9]+\.[a-z0-9]+$/, "a SageMaker instance type such as ml.g5.xlarge"));

/** How the stack creates an endpoint (model, endpoint config, endpoint, autoscaling); absent: it exists already. */
export const EndpointCreate = z
  .strictObject({
    image: EcrImage,
    modelDataUrl: z.optional(S3ObjectUrl),
    instanceType: InstanceType,
    initialInstanceCount: positive,
    minInstances: positive,
    maxInstances: positive,
    /** Target of the SageMakerVariantInvocationsPerInstance tracking policy (invocations per instance per minute). */
    invocationsPerInstanceTarget: positive,
  })
  .check(
    z.superRefine((c, ctx) => {
      if (c.minInstances > c.maxInstances)
        ctx.addIssue({ code: "custom", path: ["minInstances"], message: "more than maxInstances" });
      if (c.initialInstanceCount < c.minInstances || c.initialInstanceCount > c.maxInstances)
        ctx.addIssue({
          code: "custom",
          path: ["initialInstanceCount"],
          message: "outside minInstances..maxInstances",
        });
    }),
  );
export type EndpointCreate = z.infer<typeof EndpointCreate>;

/**
 * What an endpoint runs on, for reports' cost (docs/reports.md). Absent, reports read `create`'s
 * instanceType and minInstances; an endpoint with neither is reported unpriced.
 */
const EndpointInstances = {
  instanceType: z.optional(InstanceType),
  /** Instances always on (reports charge instanceCount x hours). */
  instanceCount: z.optional(positive),
};

/**
 * What a shared endpoint serves at once, for fair share (docs/adr/0012-fair-share.md): calls in
 * flight, or calls per instance times its instances; and the model latency above which it counts
 * as contended.
 */
export const EndpointCapacity = z
  .strictObject({
    callsInFlight: z.optional(positive),
    perInstance: z.optional(positive),
    latencyTargetMs: positive,
  })
  .check(
    z.refine((c) => (c.callsInFlight === undefined) !== (c.perInstance === undefined), {
      message: "give callsInFlight or perInstance, not both",
    }),
  );
export type EndpointCapacity = z.infer<typeof EndpointCapacity>;

export const SharedEndpoint = z.object({
  model: ModelName,
  endpointName: EndpointName,
  region: z.optional(Region),
  /** Multi-model endpoints: the artifact to load (X-Amzn-SageMaker-Target-Model). */
  targetModel: z.optional(z.string().check(z.minLength(1), z.maxLength(1024))),
  /** Endpoints with inference components (X-Amzn-SageMaker-Inference-Component). */
  inferenceComponentName: z.optional(z.string().check(z.minLength(1), z.maxLength(63))),
  /** Local platform only: forward to a container honouring the SageMaker contract instead of the reference model. */
  containerUrl: z.optional(z.url()),
  create: z.optional(EndpointCreate),
  ...EndpointInstances,
  /** Weighted tokens one instance serves in an hour at full use; with it, reports show unused capacity as idle. */
  tokensPerInstanceHour: z.optional(positive),
  /** Absent: the endpoint is never fair-shared. */
  capacity: z.optional(EndpointCapacity),
});
export type SharedEndpoint = z.infer<typeof SharedEndpoint>;

/** The calls a shared endpoint serves at once, if configured. */
export function callsInFlightOf(endpoint: SharedEndpoint): number | undefined {
  const { capacity } = endpoint;
  if (!capacity) return undefined;
  if (capacity.callsInFlight !== undefined) return capacity.callsInFlight;
  const instances = endpoint.instanceCount ?? endpoint.create?.minInstances ?? 1;
  return (capacity.perInstance ?? 1) * instances;
}

/** An endpoint the stack provisions (or imports) for one tenant; `atrium endpoints add` then routes to it. */
export const DedicatedEndpointConfig = z.strictObject({
  tenantId: z.string().check(z.regex(TENANT_ID_PATTERN, "a tenant id")),
  model: ModelName,
  endpointName: EndpointName,
  region: z.optional(Region),
  create: z.optional(EndpointCreate),
  ...EndpointInstances,
});
export type DedicatedEndpointConfig = z.infer<typeof DedicatedEndpointConfig>;

/**
 * Every dedicated endpoint of a deployed stage, and every endpoint its stack creates, is named with
 * this prefix, so one IAM resource pattern covers those added at runtime (docs/adr/0006).
 * Lower case: SageMaker endpoint ARNs are.
 */
export function dedicatedEndpointPrefix(stage: string): string {
  return `atrium-${stage.toLowerCase()}-`;
}

/** How reports price and split endpoints' instance hours (docs/reports.md). */
export const ReportingConfig = z.strictObject({
  /** USD per instance hour, by SageMaker instance type. */
  instancePrices: z._default(z.record(InstanceType, z.number().check(z.nonnegative())), {}),
  /** An output token counts this many input tokens in a shared endpoint's split (generation costs more). */
  outputTokenWeight: z._default(z.number().check(z.int(), z.gte(1), z.lte(100)), 3),
});
export type ReportingConfig = z.infer<typeof ReportingConfig>;

/**
 * When an endpoint's circuit breaker opens, and for how long (docs/adr/0013-circuit-breaker-and-fallback.md):
 * `failures` counted failures within `windowSeconds` (counted in 5 s buckets) open it for `openSeconds`,
 * after which one call probes it.
 */
export const CircuitBreakerConfig = z.strictObject({
  failures: z._default(positive.check(z.lte(1000)), 5),
  windowSeconds: z._default(
    z.number().check(
      z.int(),
      z.gte(5),
      z.lte(600),
      z.refine((s) => s % 5 === 0, "a multiple of 5 (failures are counted in 5 s buckets)"),
    ),
    30,
  ),
  openSeconds: z._default(z.number().check(z.int(), z.gte(1), z.lte(3600)), 30),
});
export type CircuitBreakerConfig = z.infer<typeof CircuitBreakerConfig>;

/** One stage's configuration: the single source for the stacks, the handlers and the local platform. */
export const StageConfig = z
  .object({
    region: Region,
    tiers: z.record(name, TierSpec).check(z.refine((t) => Object.keys(t).length > 0, "at least one tier")),
    /** A model listed more than once: the first its tenant may use is its primary, the next its fallbacks. */
    sharedEndpoints: z.array(SharedEndpoint),
    authorizerCacheTtlSeconds: z._default(z.number().check(z.int(), z.gte(0), z.lte(3600)), 60),
    tenantCacheTtlSeconds: z._default(z.number().check(z.int(), z.gte(0), z.lte(3600)), 30),
    /** How long one DynamoDB request may take before the client gives up on it, once retried (docs/adr/0007). */
    dynamodbRequestTimeoutMs: z._default(
      z
        .number()
        .check(z.int(), z.gte(DYNAMODB_REQUEST_TIMEOUT_MS.min), z.lte(DYNAMODB_REQUEST_TIMEOUT_MS.max)),
      DYNAMODB_REQUEST_TIMEOUT_MS.default,
    ),
    /** How long the usage ledger keeps a day (docs/adr/0010): 400 days, so a year compares with the last. */
    usageRetentionDays: z._default(z.number().check(z.int(), z.gte(1), z.lte(3660)), 400),
    /** Production data: tables keep deletion protection and survive `sst remove`. */
    protect: z._default(z.boolean(), false),
    /** API Gateway stage-wide throttling, before any per-tenant limit. */
    throttling: z._default(z.strictObject({ rateLimit: positive, burstLimit: positive }), {
      rateLimit: 1000,
      burstLimit: 2000,
    }),
    /** Tenant-dedicated endpoints the stack creates or imports. */
    dedicatedEndpoints: z._default(z.array(DedicatedEndpointConfig), []),
    /** Further regions whose endpoints this stage may call (dedicated endpoints registered at runtime). */
    modelRegions: z._default(z.array(Region), []),
    reporting: z._default(ReportingConfig, { instancePrices: {}, outputTokenWeight: 3 }),
    circuitBreaker: z._default(CircuitBreakerConfig, { failures: 5, windowSeconds: 30, openSeconds: 30 }),
  })
  .check(
    z.superRefine((config, ctx) => {
      type Path = (string | number)[];
      const names = new Map<string, string>();
      const claim = (name: string, path: Path) => {
        const key = name.toLowerCase();
        if (names.has(key))
          ctx.addIssue({ code: "custom", path, message: `endpoint name also used by ${names.get(key)}` });
        else names.set(key, path.slice(0, 2).join("."));
      };
      const endpoints = [
        ...config.sharedEndpoints.map((e, i) => ({ e, at: ["sharedEndpoints", i] as Path })),
        ...config.dedicatedEndpoints.map((e, i) => ({ e, at: ["dedicatedEndpoints", i] as Path })),
      ];
      for (const { e, at } of endpoints) {
        claim(e.endpointName, [...at, "endpointName"]);
        // A stack creates resources in its own region only.
        if (e.create && e.region && e.region !== config.region)
          ctx.addIssue({ code: "custom", path: [...at, "region"], message: "create needs the stage region" });
      }
      const dedicated = new Set<string>();
      for (const [i, { tenantId, model }] of config.dedicatedEndpoints.entries()) {
        if (dedicated.has(`${tenantId} ${model}`))
          ctx.addIssue({
            code: "custom",
            path: ["dedicatedEndpoints", i, "model"],
            message: "tenant's model listed twice",
          });
        dedicated.add(`${tenantId} ${model}`);
      }
    }),
  );
export type StageConfig = z.infer<typeof StageConfig>;

/** Validates a parsed config, throwing one readable message listing every problem. */
export function parseStageConfig(raw: unknown, source = "stage config"): StageConfig {
  const result = StageConfig.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `  - ${i.path.join(".") || "(root)"}: ${i.message}`);
  throw new Error(`Invalid ${source}:\n${problems.join("\n")}`);
}

/** Defined in ./stage-env, which the authorizer reads without this module's schemas. */
export { STAGE_CONFIG_ENV };

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
