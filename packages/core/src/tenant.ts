import { z } from "zod";
import { Compliance, EndpointName, type LimitOverrides, ModelName, type StageConfig } from "./config";
import { conflict, fromValidationIssues, invalidRequest } from "./errors";
import { newTenantId } from "./ids";
import { Region } from "./region";

export const DedicatedEndpoint = z.object({
  endpointName: EndpointName,
  region: Region.optional(),
  targetModel: z.string().min(1).max(1024).optional(),
  inferenceComponentName: z.string().min(1).max(63).optional(),
});
export type DedicatedEndpoint = z.infer<typeof DedicatedEndpoint>;

export type TenantStatus = "active" | "suspended";

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
  /** Per-tenant overrides of the tier's limits. */
  limits?: LimitOverrides;
  /** Hot tenants: the limiter is split over this many items, each with 1/N of the rate. Default 1. */
  limiterShards?: number;
  createdAt: string;
}

export const NewTenantInput = z.strictObject({
  name: z.string().trim().min(1).max(100),
  tier: z.string().min(1).max(32),
  compliance: z
    .array(Compliance)
    .max(3)
    .refine((c) => new Set(c).size === c.length, "listed twice")
    .default([]),
  regions: z.array(Region).min(1).max(20).optional(),
});
export type NewTenantInput = z.input<typeof NewTenantInput>;

export const NewEndpointInput = DedicatedEndpoint.extend({ model: ModelName }).strict();
export type NewEndpointInput = z.input<typeof NewEndpointInput>;

export function tenancyOf(tier: string, config: StageConfig) {
  return config.tiers[tier]?.tenancy;
}

/** Checks a create request against the stage's catalogue and returns the tenant to store. */
export function newTenant(raw: unknown, config: StageConfig, now = new Date()): Tenant {
  const parsed = NewTenantInput.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const input = parsed.data;
  const tenancy = tenancyOf(input.tier, config);
  if (!tenancy) {
    const known = Object.keys(config.tiers).join(", ");
    throw invalidRequest(
      "unknown_tier",
      `tier: unknown tier '${input.tier}' (this stage has: ${known})`,
      "tier",
    );
  }
  if (input.compliance.includes("hipaa") && tenancy === "pool") {
    throw invalidRequest(
      "hipaa_requires_dedicated",
      `compliance: hipaa needs dedicated endpoints; tier '${input.tier}' is pooled`,
      "compliance",
    );
  }
  return {
    id: newTenantId(),
    name: input.name,
    tier: input.tier,
    status: "active",
    compliance: input.compliance,
    ...(input.regions ? { regions: input.regions } : {}),
    endpoints: {},
    createdAt: now.toISOString(),
  };
}

/** Checks a dedicated-endpoint registration for a tenant. */
export function newDedicatedEndpoint(tenant: Tenant, raw: unknown, config: StageConfig) {
  const parsed = NewEndpointInput.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const { model, ...endpoint } = parsed.data;
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
  return { model, endpoint };
}
