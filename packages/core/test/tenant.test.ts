import { parseStageConfig } from "@atrium/core/config";
import { isTenantId } from "@atrium/core/ids";
import { newDedicatedEndpoint, newTenant } from "@atrium/core/tenant";
import { describe, expect, it } from "vitest";
import { config, refusal, tenant, tierSpec } from "./fixtures";

describe("newTenant", () => {
  it("makes an active tenant with a valid generated id", () => {
    const t = newTenant({ name: "  Acme  ", tier: "pro" }, config, new Date("2026-01-02T03:04:05Z"));
    expect(isTenantId(t.id)).toBe(true);
    expect(t).toMatchObject({ name: "Acme", tier: "pro", status: "active", compliance: [], endpoints: {} });
    expect(t.createdAt).toBe("2026-01-02T03:04:05.000Z");
  });

  it("names the offending field in a 400", () => {
    expect(refusal(() => newTenant({ tier: "pro" }, config))).toMatchObject({ status: 400, param: "name" });
    expect(refusal(() => newTenant({ name: "x".repeat(101), tier: "pro" }, config)).param).toBe("name");
    expect(refusal(() => newTenant({ name: "A", tier: "gold" }, config))).toMatchObject({
      code: "unknown_tier",
    });
    expect(refusal(() => newTenant({ name: "A", tier: "pro", compliance: ["pci"] }, config)).param).toBe(
      "compliance.0",
    );
    expect(refusal(() => newTenant({ name: "A", tier: "pro", id: "x" }, config)).status).toBe(400);
    expect(refusal(() => newTenant("not an object", config)).status).toBe(400);
  });

  it("refuses HIPAA on a pooled tier", () => {
    const err = refusal(() => newTenant({ name: "Clinic", tier: "free", compliance: ["hipaa"] }, config));
    expect(err).toMatchObject({ status: 400, code: "hipaa_requires_dedicated", param: "compliance" });
    expect(
      newTenant({ name: "Clinic", tier: "enterprise", compliance: ["hipaa"] }, config).compliance,
    ).toEqual(["hipaa"]);
  });
});

describe("newDedicatedEndpoint", () => {
  const silo = tenant({ tier: "enterprise" });

  it("accepts a SageMaker endpoint name for a silo or bridge tenant", () => {
    expect(newDedicatedEndpoint(silo, { model: "llama", endpointName: "acme-llama-1" }, config)).toEqual({
      model: "llama",
      endpoint: { endpointName: "acme-llama-1" },
    });
  });

  it("refuses pool tenants, shared endpoints and bad names", () => {
    expect(
      refusal(() => newDedicatedEndpoint(tenant(), { model: "m", endpointName: "e" }, config)).status,
    ).toBe(409);
    expect(
      refusal(() => newDedicatedEndpoint(silo, { model: "m", endpointName: "shared-llama" }, config)).code,
    ).toBe("endpoint_is_shared");
    expect(
      refusal(() => newDedicatedEndpoint(silo, { model: "m", endpointName: "bad_name!" }, config)).param,
    ).toBe("endpointName");
  });
});

describe("stage config", () => {
  it("lists every problem with its path", () => {
    expect(() =>
      parseStageConfig(
        {
          region: "mars",
          tiers: { free: { ...tierSpec("pool"), tenancy: "shared" } },
          sharedEndpoints: [
            { model: "a", endpointName: "x" },
            { model: "a", endpointName: "y" },
          ],
        },
        "config/test.json",
      ),
    ).toThrow(/Invalid config\/test.json:[\s\S]*region[\s\S]*tiers\.free\.tenancy/);
  });

  it("takes a model listed twice in the shared catalogue, in order, but not one endpoint twice", () => {
    const twice = parseStageConfig({
      region: "eu-west-1",
      tiers: { free: tierSpec("pool") },
      sharedEndpoints: [
        { model: "a", endpointName: "x" },
        { model: "a", endpointName: "y" },
      ],
    });
    expect(twice.sharedEndpoints.map((e) => e.endpointName)).toEqual(["x", "y"]);
    expect(() =>
      parseStageConfig({
        region: "eu-west-1",
        tiers: { free: tierSpec("pool") },
        sharedEndpoints: [
          { model: "a", endpointName: "x" },
          { model: "b", endpointName: "x" },
        ],
      }),
    ).toThrow(/sharedEndpoints\.1\.endpointName: endpoint name also used by sharedEndpoints\.0/);
  });

  it("defaults the cache TTLs to at most 60 s", () => {
    const parsed = parseStageConfig({
      region: "eu-west-1",
      tiers: { free: tierSpec("pool") },
      sharedEndpoints: [],
    });
    expect(parsed.authorizerCacheTtlSeconds).toBeLessThanOrEqual(60);
    expect(parsed.tenantCacheTtlSeconds).toBeLessThanOrEqual(60);
  });
});

describe("dedicated endpoint names on a deployed stage", () => {
  it("must carry the stage's prefix, which its IAM policy covers", () => {
    const silo = tenant({ tier: "enterprise" });
    const outside = refusal(() =>
      newDedicatedEndpoint(silo, { model: "m", endpointName: "other-e" }, config, "atrium-prod-"),
    );
    expect(outside).toMatchObject({
      status: 400,
      code: "endpoint_name_outside_stage",
      param: "endpointName",
    });
    const inside = newDedicatedEndpoint(
      silo,
      { model: "m", endpointName: "atrium-prod-acme-m" },
      config,
      "atrium-prod-",
    );
    expect(inside.endpoint.endpointName).toBe("atrium-prod-acme-m");
  });
});
