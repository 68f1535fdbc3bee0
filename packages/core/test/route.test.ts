import { tierSpec } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { availableModels, resolveRoute } from "@atrium/core/route";
import { tenancyOf } from "@atrium/core/tenant";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { config, refusal, tenant } from "./fixtures";

/** Every name a plain object answers without owning it: what a lookup must never mistake for an entry. */
const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype);

const dedicated = { llama: { endpointName: "tn-test-llama" } };

describe("resolveRoute", () => {
  it("sends pool tenants to shared endpoints, with the catalogue's TargetModel", () => {
    expect(resolveRoute(tenant(), "mistral", config)).toEqual({
      model: "mistral",
      kind: "shared",
      endpointName: "shared-mistral",
      targetModel: "mistral.tar.gz",
      region: "eu-west-1",
    });
  });

  it("ignores dedicated endpoints recorded on a pool tenant", () => {
    const route = resolveRoute(tenant({ endpoints: dedicated }), "llama", config);
    expect(route.kind).toBe("shared");
  });

  it("sends bridge tenants to their dedicated endpoint where they have one, shared otherwise", () => {
    const business = tenant({ tier: "business", endpoints: dedicated });
    expect(resolveRoute(business, "llama", config)).toMatchObject({
      kind: "dedicated",
      endpointName: "tn-test-llama",
    });
    expect(resolveRoute(business, "mistral", config)).toMatchObject({
      kind: "shared",
      endpointName: "shared-mistral",
    });
  });

  it("never sends silo tenants to a shared endpoint", () => {
    const silo = tenant({ tier: "enterprise", endpoints: dedicated });
    expect(resolveRoute(silo, "llama", config).kind).toBe("dedicated");
    const err = refusal(() => resolveRoute(silo, "mistral", config));
    expect(err).toMatchObject({ status: 404, code: "model_not_provisioned", param: "model" });
  });

  it("never sends HIPAA tenants to a shared endpoint, even on a bridge tier", () => {
    const hipaa = tenant({ tier: "business", compliance: ["hipaa"], endpoints: dedicated });
    expect(resolveRoute(hipaa, "llama", config).kind).toBe("dedicated");
    expect(refusal(() => resolveRoute(hipaa, "mistral", config)).code).toBe("model_not_provisioned");
  });

  it("refuses unknown models with OpenAI's not-found wording", () => {
    const err = refusal(() => resolveRoute(tenant(), "gpt-5", config));
    expect(err).toMatchObject({ status: 404, type: "not_found_error", code: "model_not_found" });
    expect(err.message).toContain("does not exist or you do not have access to it");
  });

  it("refuses endpoints outside a tenant's allowed regions", () => {
    const gdpr = tenant({ compliance: ["gdpr"], regions: ["eu-west-1"] });
    expect(resolveRoute(gdpr, "llama", config).region).toBe("eu-west-1");
    expect(refusal(() => resolveRoute(gdpr, "usa-only", config))).toMatchObject({
      status: 403,
      code: "region_not_allowed",
    });
  });

  it("refuses a model outside the tenant's allow-list as not found, as if it did not exist", () => {
    const limited = tenant({ models: ["llama"] });
    expect(resolveRoute(limited, "llama", config).kind).toBe("shared");
    const err = refusal(() => resolveRoute(limited, "mistral", config));
    expect(err).toMatchObject({ status: 404, code: "model_not_found", param: "model" });
    expect(err.message).toBe("The model 'mistral' does not exist or you do not have access to it.");
  });

  it("applies the allow-list to dedicated models too, and never widens what the tier allows", () => {
    const silo = tenant({ tier: "enterprise", endpoints: dedicated, models: ["llama", "mistral"] });
    expect(resolveRoute(silo, "llama", config).kind).toBe("dedicated");
    expect(refusal(() => resolveRoute(silo, "mistral", config)).code).toBe("model_not_provisioned");
    const bridge = tenant({ tier: "business", endpoints: dedicated, models: ["mistral"] });
    expect(refusal(() => resolveRoute(bridge, "llama", config)).code).toBe("model_not_found");
  });

  it("reports a tier missing from the stage's catalogue as a service problem, not the caller's", () => {
    expect(refusal(() => resolveRoute(tenant({ tier: "retired" }), "llama", config)).status).toBe(503);
  });
});

describe("availableModels", () => {
  it("lists exactly the models resolveRoute accepts", () => {
    const cases = [
      tenant(),
      tenant({ tier: "business", endpoints: dedicated }),
      tenant({ tier: "enterprise", endpoints: dedicated }),
      tenant({ regions: ["eu-west-1"] }),
      tenant({ tier: "business", endpoints: dedicated, models: ["llama", "usa-only"] }),
    ];
    const listed = cases.map((t) => availableModels(t, config).map((r) => `${r.model}:${r.kind}`));
    expect(listed).toEqual([
      ["llama:shared", "mistral:shared", "usa-only:shared"],
      ["llama:dedicated", "mistral:shared", "usa-only:shared"],
      ["llama:dedicated"],
      ["llama:shared", "mistral:shared"],
      ["llama:dedicated", "usa-only:shared"],
    ]);
  });
});

describe("names that are Object.prototype properties", () => {
  const tenants = [
    tenant(),
    tenant({ tier: "business", endpoints: dedicated }),
    tenant({ tier: "enterprise", endpoints: dedicated }),
    tenant({ tier: "business", compliance: ["hipaa"], endpoints: dedicated }),
  ];

  it("are unknown models on every tier: 404 model_not_found, never a route", () => {
    for (const t of tenants) {
      for (const model of PROTOTYPE_NAMES) {
        const err = refusal(() => resolveRoute(t, model, config));
        expect({ tier: t.tier, model, code: err.code, status: err.status }).toEqual({
          tier: t.tier,
          model,
          code: "model_not_found",
          status: 404,
        });
      }
      for (const route of availableModels(t, config)) expect(PROTOTYPE_NAMES).not.toContain(route.model);
    }
  });

  it("are no tier: the catalogue answers only for its own entries", () => {
    for (const name of PROTOTYPE_NAMES) {
      expect(tierSpec(config, name)).toBeUndefined();
      expect(tenancyOf(name, config)).toBeUndefined();
      expect(refusal(() => resolveRoute(tenant({ tier: name }), "llama", config)).code).toBe(
        "tier_not_configured",
      );
    }
    expect(tierSpec(config, "business")?.tenancy).toBe("bridge");
  });

  it("still route where a tenant really has a dedicated endpoint of that name", () => {
    const odd = tenant({ tier: "enterprise", endpoints: { constructor: { endpointName: "tn-test-ctor" } } });
    expect(resolveRoute(odd, "constructor", config)).toMatchObject({
      kind: "dedicated",
      endpointName: "tn-test-ctor",
    });
    expect(refusal(() => resolveRoute(odd, "toString", config)).code).toBe("model_not_found");
  });

  it("property: any model name resolves to a real endpoint of the catalogue or the tenant, or is refused", () => {
    const shared = new Set(config.sharedEndpoints.map((e) => e.endpointName));
    const model = fc.oneof(
      fc.constantFrom(...PROTOTYPE_NAMES, "llama", "mistral", "usa-only", "own-model"),
      fc.string({ maxLength: 20 }),
    );
    const someTenant = fc.record({
      tier: fc.constantFrom("free", "pro", "business", "enterprise", ...PROTOTYPE_NAMES),
      endpoints: fc.dictionary(fc.constantFrom("llama", "own-model", "toString"), fc.constant(null)),
      hipaa: fc.boolean(),
    });
    fc.assert(
      fc.property(someTenant, model, ({ tier, endpoints, hipaa }, name) => {
        const own = Object.fromEntries(
          Object.keys(endpoints).map((m) => [m, { endpointName: `tn-test-${m}` }]),
        );
        const t = tenant({ tier, endpoints: own, compliance: hipaa ? ["hipaa"] : [] });
        let route: ReturnType<typeof resolveRoute>;
        try {
          route = resolveRoute(t, name, config);
        } catch (err) {
          expect(err).toBeInstanceOf(AtriumError);
          expect([403, 404, 503]).toContain((err as AtriumError).status);
          return;
        }
        expect(route.model).toBe(name);
        if (route.kind === "dedicated") {
          expect(Object.hasOwn(own, name)).toBe(true);
          expect(route.endpointName).toBe(`tn-test-${name}`);
        } else {
          expect(shared.has(route.endpointName)).toBe(true);
        }
        expect(PROTOTYPE_NAMES.includes(name) && !Object.hasOwn(own, name)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
