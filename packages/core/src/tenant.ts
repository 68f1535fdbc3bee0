import {
  Compliance,
  EndpointName,
  LimitOverrides,
  Limits,
  ModelName,
  type StageConfig,
  tierSpec,
} from "./config";
import { conflict, fromValidationIssues, invalidRequest } from "./errors";
import { newTenantId } from "./ids";
import { Region } from "./region";
import * as z from "./zod";

export const DedicatedEndpoint = z.object({
  endpointName: EndpointName,
  region: z.optional(Region),
  targetModel: z.optional(z.string().check(z.minLength(1), z.maxLength(1024))),
  inferenceComponentName: z.optional(z.string().check(z.minLength(1), z.maxLength(63))),
});
export type DedicatedEndpoint = z.infer<typeof DedicatedEndpoint>;

/** `deleted`: keys revoked and endpoints released, data kept until an erase. */
export type TenantStatus = "active" | "suspended" | "deleted";

export interface Tenant {
  id: string;
  name: string;
  tier: string;
  status: TenantStatus;
  compliance: Compliance[];
  /** When set, calls may only go to endpoints in these regions (GDPR data residency). */
  regions?: string[];
  /** Dedicated endpoints by model name (bridge and silo tiers). */
  endpoints: Record<string, DedicatedEndpoint>;
  /** When set, the only models this tenant may call; any other answers model_not_found. */
  models?: string[];
  /** Per-tenant overrides of the tier's limits. */
  limits?: LimitOverrides;
  /** Hot tenants: the limiter is split over this many items, each with 1/N of the rate. Default 1. */
  limiterShards?: number;
  createdAt: string;
}

const TenantName = z
  .string()
  .check(z.trim(), z.minLength(1), z.maxLength(100), z.regex(/^[^\p{Cc}]*$/u, "no control characters"));
const TierName = z.string().check(z.minLength(1), z.maxLength(32));
const unique = <T>(list: T[]) => new Set(list).size === list.length;
const ComplianceList = z.array(Compliance).check(z.maxLength(3), z.refine(unique, "listed twice"));
const RegionList = z.array(Region).check(z.minLength(1), z.maxLength(20), z.refine(unique, "listed twice"));
const ModelList = z
  .array(ModelName)
  .check(z.minLength(1), z.maxLength(100), z.refine(unique, "listed twice"));

export const NewTenantInput = z.strictObject({
  name: TenantName,
  tier: TierName,
  compliance: z._default(ComplianceList, []),
  regions: z.optional(RegionList),
  limits: z.optional(LimitOverrides),
  models: z.optional(ModelList),
});
export type NewTenantInput = z.input<typeof NewTenantInput>;

export const NewEndpointInput = z.strictObject({ ...DedicatedEndpoint.shape, model: ModelName });
export type NewEndpointInput = z.input<typeof NewEndpointInput>;

export function tenancyOf(tier: string, config: StageConfig) {
  return tierSpec(config, tier)?.tenancy;
}

/** The tenant's dedicated endpoint for a model: own entries only, so no model name reaches Object.prototype. */
export function dedicatedEndpointOf(
  tenant: Pick<Tenant, "endpoints">,
  model: string,
): DedicatedEndpoint | undefined {
  return Object.hasOwn(tenant.endpoints, model) ? tenant.endpoints[model] : undefined;
}

/** Checks a create request against the stage's catalogue and returns the tenant to store. */
export function newTenant(raw: unknown, config: StageConfig, now = new Date()): Tenant {
  const parsed = NewTenantInput.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const input = parsed.data;
  const tenant: Tenant = {
    id: newTenantId(),
    name: input.name,
    tier: input.tier,
    status: "active",
    compliance: input.compliance,
    ...(input.regions ? { regions: input.regions } : {}),
    endpoints: {},
    ...(input.limits && Object.keys(input.limits).length > 0 ? { limits: input.limits } : {}),
    ...(input.models ? { models: input.models } : {}),
    createdAt: now.toISOString(),
  };
  checkTenant(tenant, config, new Set(UPDATABLE_FIELDS));
  return tenant;
}

/** The fields an update can change, in the order changes are reported. */
export const UPDATABLE_FIELDS = [
  "name",
  "tier",
  "compliance",
  "regions",
  "models",
  "limits",
  "limiterShards",
] as const;
type UpdatableField = (typeof UPDATABLE_FIELDS)[number];

/**
 * Checks the rules a tenant must keep, for the fields a call sets; fields it leaves alone are not
 * re-judged (a model later dropped from the catalogue must not block a rename).
 */
function checkTenant(tenant: Tenant, config: StageConfig, changed: ReadonlySet<UpdatableField>): void {
  const tenancy = tenancyOf(tenant.tier, config);
  if (changed.has("tier") && !tenancy) {
    const known = Object.keys(config.tiers).join(", ");
    throw invalidRequest(
      "unknown_tier",
      `tier: unknown tier '${tenant.tier}' (this stage has: ${known})`,
      "tier",
    );
  }
  const hipaaParam = changed.has("compliance") ? "compliance" : "tier";
  if (
    (changed.has("tier") || changed.has("compliance")) &&
    tenant.compliance.includes("hipaa") &&
    tenancy === "pool"
  ) {
    throw invalidRequest(
      "hipaa_requires_dedicated",
      `${hipaaParam}: hipaa needs dedicated endpoints; tier '${tenant.tier}' is pooled`,
      hipaaParam,
    );
  }
  for (const [model, endpoint] of changed.has("regions") ? Object.entries(tenant.endpoints) : []) {
    const region = endpoint.region ?? config.region;
    if (tenant.regions && !tenant.regions.includes(region)) {
      throw invalidRequest(
        "region_not_allowed",
        `regions: the dedicated endpoint for '${model}' is in ${region}, which these regions leave out`,
        "regions",
      );
    }
  }
  const known = new Set([...config.sharedEndpoints.map((e) => e.model), ...Object.keys(tenant.endpoints)]);
  for (const [i, model] of changed.has("models") ? (tenant.models ?? []).entries() : []) {
    if (!known.has(model)) {
      throw invalidRequest(
        "unknown_model",
        `models.${i}: unknown model '${model}' (neither a shared model of this stage nor dedicated to this tenant)`,
        `models.${i}`,
      );
    }
  }
}

const limitNames = Object.keys(Limits.shape) as [keyof Limits, ...(keyof Limits)[]];

/** What an update may change; `null` clears a field (a single limit override, or all of them). */
export const TenantUpdateInput = z
  .strictObject({
    name: z.optional(TenantName),
    tier: z.optional(TierName),
    compliance: z.optional(ComplianceList),
    regions: z.optional(z.nullable(RegionList)),
    models: z.optional(z.nullable(ModelList)),
    limits: z.optional(
      z.nullable(z.partialRecord(z.enum(limitNames), z.nullable(z.number().check(z.int(), z.positive())))),
    ),
    /** Hot tenants: split the limiter over N items (docs/adr/0004); null returns to one. */
    limiterShards: z.optional(z.nullable(z.number().check(z.int(), z.gte(2), z.lte(64)))),
  })
  .check(
    z.refine(
      (input) => Object.keys(input).length > 0,
      "send at least one of name, tier, compliance, regions, models, limits, limiterShards",
    ),
  );
export type TenantUpdateInput = z.input<typeof TenantUpdateInput>;

/** Applies an update request to a tenant and checks the result as a whole; returns the tenant to store. */
export function updatedTenant(tenant: Tenant, raw: unknown, config: StageConfig): Tenant {
  if (tenant.status === "deleted") {
    throw conflict("tenant_deleted", `tenant ${tenant.id} is deleted; it can only be erased`);
  }
  const parsed = TenantUpdateInput.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const input = parsed.data;
  const next: Tenant = { ...tenant };
  if (input.name !== undefined) next.name = input.name;
  if (input.tier !== undefined) next.tier = input.tier;
  if (input.compliance !== undefined) next.compliance = input.compliance;
  if (input.regions !== undefined) setOrClear(next, "regions", input.regions);
  if (input.models !== undefined) setOrClear(next, "models", input.models);
  if (input.limits !== undefined) {
    const merged: Record<string, number> = { ...(input.limits === null ? {} : tenant.limits) };
    for (const [name, value] of Object.entries(input.limits ?? {})) {
      if (value === null) delete merged[name];
      else if (value !== undefined) merged[name] = value;
    }
    const limits = LimitOverrides.safeParse(merged);
    if (!limits.success)
      throw fromValidationIssues(limits.error.issues.map((i) => ({ ...i, path: ["limits", ...i.path] })));
    setOrClear(next, "limits", Object.keys(limits.data).length > 0 ? limits.data : null);
  }
  if (input.limiterShards !== undefined) setOrClear(next, "limiterShards", input.limiterShards);
  const changed = new Set(UPDATABLE_FIELDS.filter((field) => input[field] !== undefined));
  checkTenant(next, config, changed);
  return next;
}

function setOrClear<K extends "regions" | "models" | "limits" | "limiterShards">(
  tenant: Tenant,
  field: K,
  value: Tenant[K] | null,
) {
  if (value === null) delete tenant[field];
  else tenant[field] = value;
}

/** Checks a dedicated-endpoint registration for a tenant. */
export function newDedicatedEndpoint(
  tenant: Tenant,
  raw: unknown,
  config: StageConfig,
  /** Deployed stages: the name prefix their IAM policies cover (dedicatedEndpointPrefix, ADR 0006). */
  namePrefix?: string,
) {
  const parsed = NewEndpointInput.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const { model, ...endpoint } = parsed.data;
  if (tenant.status === "deleted") {
    throw conflict("tenant_deleted", `tenant ${tenant.id} is deleted; it can only be erased`);
  }
  if (tenancyOf(tenant.tier, config) === "pool") {
    throw conflict(
      "tier_has_no_dedicated_endpoints",
      `tenant ${tenant.id} is on the pooled tier '${tenant.tier}'; dedicated endpoints need a bridge or silo tier`,
    );
  }
  if (config.sharedEndpoints.some((shared) => shared.endpointName === endpoint.endpointName)) {
    throw conflict(
      "endpoint_is_shared",
      `endpointName: ${endpoint.endpointName} is a shared endpoint`,
      "endpointName",
    );
  }
  if (namePrefix && !endpoint.endpointName.startsWith(namePrefix)) {
    throw invalidRequest(
      "endpoint_name_outside_stage",
      `endpointName: dedicated endpoints of this stage are named ${namePrefix}...; its functions may not invoke ${endpoint.endpointName}`,
      "endpointName",
    );
  }
  const region = endpoint.region ?? config.region;
  if (tenant.regions && !tenant.regions.includes(region)) {
    throw invalidRequest(
      "region_not_allowed",
      `region: ${region} is outside this tenant's allowed regions (${tenant.regions.join(", ")})`,
      "region",
    );
  }
  return { model, endpoint };
}
