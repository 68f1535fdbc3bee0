/**
 * Fallback routes (docs/adr/0013-circuit-breaker-and-fallback.md): a model's shared endpoints in the
 * stage config's order, a bridge tenant's dedicated endpoint first; and, as a property over random
 * stage configs and tenants, no route or fallback of a HIPAA or silo tenant is shared and none is
 * outside a tenant's regions.
 */
import { type Compliance, parseStageConfig, type StageConfig } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { resolveRoute, resolveRoutes } from "@atrium/core/route";
import type { Tenant } from "@atrium/core/tenant";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tenant, tierSpec } from "./fixtures";

const REGIONS = ["eu-west-1", "eu-central-1", "us-east-1"] as const;
const MODELS = ["m-a", "m-b", "m-c"] as const;
const TIERS = { pool: "free", bridge: "business", silo: "enterprise" } as const;

const stage = (sharedEndpoints: { model: string; endpointName: string; region?: string }[]) =>
  parseStageConfig({
    region: "eu-west-1",
    tiers: {
      free: tierSpec("pool"),
      business: tierSpec("bridge"),
      enterprise: tierSpec("silo"),
    },
    sharedEndpoints,
  });

describe("a model's routes", () => {
  const config = stage([
    { model: "m-a", endpointName: "shared-a1" },
    { model: "m-b", endpointName: "shared-b1" },
    { model: "m-a", endpointName: "shared-a2", region: "eu-central-1" },
    { model: "m-a", endpointName: "shared-a3", region: "us-east-1" },
  ]);

  it("are its shared endpoints in the config's order, the first the primary", () => {
    const routes = resolveRoutes(tenant({ tier: "free" }), "m-a", config);
    expect(routes.map((r) => [r.endpointName, r.kind, r.region])).toEqual([
      ["shared-a1", "shared", "eu-west-1"],
      ["shared-a2", "shared", "eu-central-1"],
      ["shared-a3", "shared", "us-east-1"],
    ]);
    expect(resolveRoute(tenant({ tier: "free" }), "m-a", config).endpointName).toBe("shared-a1");
  });

  it("start with a bridge tenant's dedicated endpoint, the shared ones its fallbacks", () => {
    const business = tenant({ tier: "business", endpoints: { "m-a": { endpointName: "tn-test-a" } } });
    expect(resolveRoutes(business, "m-a", config).map((r) => r.endpointName)).toEqual([
      "tn-test-a",
      "shared-a1",
      "shared-a2",
      "shared-a3",
    ]);
  });

  it("of a HIPAA bridge tenant or a silo tenant are its dedicated endpoint only", () => {
    const endpoints = { "m-a": { endpointName: "tn-test-a" } };
    const hipaa = tenant({ tier: "business", compliance: ["hipaa"], endpoints });
    const silo = tenant({ tier: "enterprise", endpoints });
    expect(resolveRoutes(hipaa, "m-a", config).map((r) => r.endpointName)).toEqual(["tn-test-a"]);
    expect(resolveRoutes(silo, "m-a", config).map((r) => r.endpointName)).toEqual(["tn-test-a"]);
  });

  it("skip endpoints outside a tenant's regions, and refuse when none is left", () => {
    const gdpr = tenant({ tier: "free", regions: ["eu-central-1", "us-east-1"] });
    expect(resolveRoutes(gdpr, "m-a", config).map((r) => r.endpointName)).toEqual(["shared-a2", "shared-a3"]);
    const refused = (() => {
      try {
        resolveRoutes(tenant({ tier: "free", regions: ["us-east-1"] }), "m-b", config);
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(AtriumError);
    expect((refused as AtriumError).code).toBe("region_not_allowed");
  });
});

/** A stage config: each model on 0 to 3 shared endpoints, in random regions and order. */
const stageConfigs = fc
  .array(fc.record({ model: fc.constantFrom(...MODELS), region: fc.option(fc.constantFrom(...REGIONS)) }), {
    maxLength: 8,
  })
  .map((endpoints) =>
    stage(
      endpoints.map((e, i) => ({
        model: e.model,
        endpointName: `shared-${i}`,
        ...(e.region ? { region: e.region } : {}),
      })),
    ),
  );

/** A tenant of any tenancy and compliance, maybe region-restricted, with dedicated endpoints for some models. */
const tenants = fc
  .record({
    tenancy: fc.constantFrom("pool", "bridge", "silo") as fc.Arbitrary<keyof typeof TIERS>,
    compliance: fc.subarray(["hipaa", "gdpr", "soc2"] as Compliance[]),
    regions: fc.option(fc.subarray([...REGIONS], { minLength: 1 })),
    dedicated: fc.dictionary(fc.constantFrom(...MODELS), fc.option(fc.constantFrom(...REGIONS)), {
      maxKeys: 3,
    }),
  })
  .map(
    ({ tenancy, compliance, regions, dedicated }): Tenant =>
      tenant({
        tier: TIERS[tenancy],
        compliance,
        ...(regions ? { regions } : {}),
        endpoints: Object.fromEntries(
          Object.entries(dedicated).map(([model, region]) => [
            model,
            { endpointName: `tn-test-${model}`, ...(region ? { region } : {}) },
          ]),
        ),
      }),
  );

/** The tenant's routes for the model, or none when it is refused. */
function routesOrNone(t: Tenant, model: string, config: StageConfig) {
  try {
    return resolveRoutes(t, model, config);
  } catch (err) {
    if (err instanceof AtriumError && err.status >= 400 && err.status < 500) return [];
    throw err;
  }
}

describe("every route and fallback, for any stage config and tenant", () => {
  it("is never shared for a HIPAA or silo tenant, never outside the tenant's regions, never another tenant's", () => {
    fc.assert(
      fc.property(stageConfigs, tenants, fc.constantFrom(...MODELS), (config, t, model) => {
        const routes = routesOrNone(t, model, config);
        const noShared = t.compliance.includes("hipaa") || t.tier === TIERS.silo;
        for (const route of routes) {
          if (noShared) expect(route.kind).toBe("dedicated");
          if (t.regions) expect(t.regions).toContain(route.region);
          expect(route.model).toBe(model);
          if (route.kind === "dedicated") {
            expect(t.tier).not.toBe(TIERS.pool);
            expect(route.endpointName).toBe(t.endpoints[model]?.endpointName);
          } else {
            expect(config.sharedEndpoints.some((e) => e.endpointName === route.endpointName)).toBe(true);
          }
        }
        // No endpoint twice, and the dedicated one (if any) first.
        expect(new Set(routes.map((r) => r.endpointName)).size).toBe(routes.length);
        expect(routes.slice(1).every((r) => r.kind === "shared")).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("leaves out no endpoint the tenant's postures allow", () => {
    fc.assert(
      fc.property(stageConfigs, tenants, fc.constantFrom(...MODELS), (config, t, model) => {
        const routes = routesOrNone(t, model, config);
        const inRegion = (region: string) => !t.regions || t.regions.includes(region);
        const sharedAllowed = t.tier !== TIERS.silo && !t.compliance.includes("hipaa");
        const shared = config.sharedEndpoints
          .filter((e) => e.model === model && sharedAllowed && inRegion(e.region ?? config.region))
          .map((e) => e.endpointName);
        const own = t.endpoints[model];
        const dedicated =
          own && t.tier !== TIERS.pool && inRegion(own.region ?? config.region) ? [own.endpointName] : [];
        expect(routes.map((r) => r.endpointName)).toEqual([...dedicated, ...shared]);
      }),
      { numRuns: 500 },
    );
  });
});
