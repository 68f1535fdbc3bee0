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
 * Where one call of `tenant` for `model` goes. Pool tiers use shared endpoints only, silo tiers
 * dedicated only, bridge tiers dedicated where the tenant has one and shared otherwise; HIPAA
 * tenants never touch a shared endpoint and region-restricted tenants only their regions.
 */
export function resolveRoute(tenant: Tenant, model: string, config: StageConfig): Route {
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
  const shared = config.sharedEndpoints.find((e) => e.model === model);

  let route: Route | undefined;
  if (dedicated) {
    route = { model, kind: "dedicated", ...dedicated, region: dedicated.region ?? config.region };
  } else if (shared && sharedAllowed) {
    const { containerUrl: _local, ...endpoint } = shared;
    route = { ...endpoint, kind: "shared", region: shared.region ?? config.region };
  }

  if (!route) {
    if (shared && !sharedAllowed) {
      throw notFound(
        "model_not_provisioned",
        `The model '${model}' has no dedicated endpoint for this tenant yet, and this tenant's calls never go to shared endpoints. Ask the operator to provision one.`,
        "model",
      );
    }
    throw modelNotFound(model);
  }
  if (tenant.regions && !tenant.regions.includes(route.region)) {
    throw new AtriumError(
      403,
      "permission_error",
      "region_not_allowed",
      `The model '${model}' is served from ${route.region}, outside this tenant's allowed regions (${tenant.regions.join(", ")}).`,
      "model",
    );
  }
  return route;
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
