import { availableModels, resolveRoute } from "@atrium/core/route";
import { describe, expect, it } from "vitest";
import { config, refusal, tenant } from "./fixtures";

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
