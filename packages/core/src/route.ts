import type { StageConfig } from "./config";
import { AtriumError, notFound } from "./errors";
import { dedicatedEndpointOf, type Tenant, tenancyOf } from "./tenant";

export type RouteKind = "shared" | "dedicated";

export interface Route {
  model: string;
  kind: RouteKind;
  endpointName: string;
  region: string;
  targetModel?: string;
  inferenceComponentName?: string;
}

/**
 * Where one call of `tenant` for `model` may go, in order of preference: the primary first, then
 * its fallbacks (docs/adr/0013-circuit-breaker-and-fallback.md). Pool tiers use shared endpoints
 * only, silo tiers dedicated only, bridge tiers their dedicated endpoint where they have one and the
 * shared ones after it; shared endpoints of a model in the stage config's order. HIPAA tenants never
 * touch a shared endpoint and region-restricted tenants only their regions, primary or fallback.
 */
export function resolveRoutes(tenant: Tenant, model: string, config: StageConfig): Route[] {
  const tenancy = tenancyOf(tenant.tier, config);
  if (!tenancy) {
    throw new AtriumError(
      503,
      "api_error",
      "tier_not_configured",
      `Tier '${tenant.tier}' is not configured on this stage`,
    );
  }
  if (tenant.models && !tenant.models.includes(model)) throw modelNotFound(model);
  const sharedAllowed = tenancy !== "silo" && !tenant.compliance.includes("hipaa");
  const dedicated = tenancy === "pool" ? undefined : dedicatedEndpointOf(tenant, model);
  const shared = config.sharedEndpoints.filter((e) => e.model === model);

  const candidates: Route[] = [];
  if (dedicated) {
    candidates.push({ model, kind: "dedicated", ...dedicated, region: dedicated.region ?? config.region });
  }
  if (sharedAllowed) {
    for (const endpoint of shared) candidates.push(sharedRoute(endpoint, config.region));
  }

  if (candidates.length === 0) {
    if (shared.length > 0) {
      throw notFound(
        "model_not_provisioned",
        `The model '${model}' has no dedicated endpoint for this tenant yet, and this tenant's calls never go to shared endpoints. Ask the operator to provision one.`,
        "model",
      );
    }
    throw modelNotFound(model);
  }
  const regions = tenant.regions;
  const routes = regions ? candidates.filter((r) => regions.includes(r.region)) : candidates;
  if (routes.length === 0 && regions) {
    throw new AtriumError(
      403,
      "permission_error",
      "region_not_allowed",
      `The model '${model}' is served from ${candidates[0]?.region}, outside this tenant's allowed regions (${regions.join(", ")}).`,
      "model",
    );
  }
  return routes;
}

/** The primary route of one call of `tenant` for `model` (resolveRoutes' first). */
export function resolveRoute(tenant: Tenant, model: string, config: StageConfig): Route {
  const [primary] = resolveRoutes(tenant, model, config);
  if (!primary) throw modelNotFound(model);
  return primary;
}

/** A shared endpoint as a route: only the fields a call sends, in the stage's region when it names none. */
function sharedRoute(endpoint: StageConfig["sharedEndpoints"][number], stageRegion: string): Route {
  const { model, endpointName, region, targetModel, inferenceComponentName } = endpoint;
  return {
    model,
    kind: "shared",
    endpointName,
    region: region ?? stageRegion,
    ...(targetModel ? { targetModel } : {}),
    ...(inferenceComponentName ? { inferenceComponentName } : {}),
  };
}

/** The same answer whether a model does not exist or this tenant may not use it, so nothing leaks. */
export function modelNotFound(model: string): AtriumError {
  return notFound(
    "model_not_found",
    `The model '${model}' does not exist or you do not have access to it.`,
    "model",
  );
}

/** Every model this tenant can call right now, with where it would go. */
export function availableModels(tenant: Tenant, config: StageConfig): Route[] {
  const models = new Set([...config.sharedEndpoints.map((e) => e.model), ...Object.keys(tenant.endpoints)]);
  const routes: Route[] = [];
  for (const model of [...models].sort()) {
    try {
      routes.push(resolveRoute(tenant, model, config));
    } catch (err) {
      if (!(err instanceof AtriumError)) throw err;
    }
  }
  return routes;
}
