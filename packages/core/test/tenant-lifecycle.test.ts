/** The lifecycle rules without I/O: tenant updates, key states and rotation, audit diffs, cursors. */
import { changesBetween } from "@atrium/core/audit";
import { decodeCursor, encodeCursor, pageLimit } from "@atrium/core/cursor";
import {
  checkRevocable,
  checkRoomForKey,
  keyView,
  MAX_LIVE_KEYS,
  rotationExpiry,
} from "@atrium/core/key-lifecycle";
import {
  isKeyUsable,
  type KeyRecord,
  keyState,
  LAST_USED_RESOLUTION_MS,
  lastUsedIsStale,
} from "@atrium/core/key-state";
import { newDedicatedEndpoint, newTenant, UPDATABLE_FIELDS, updatedTenant } from "@atrium/core/tenant";
import { describe, expect, it } from "vitest";
import { config, refusal, tenant } from "./fixtures";

describe("newTenant, lifecycle fields", () => {
  it("takes limit overrides and a model allow-list", () => {
    const t = newTenant(
      { name: "Acme", tier: "pro", limits: { requestsPerMinute: 30, burst: 5 }, models: ["llama"] },
      config,
    );
    expect(t).toMatchObject({ limits: { requestsPerMinute: 30, burst: 5 }, models: ["llama"] });
  });

  it("names the field of every refusal", () => {
    const cases: [unknown, string, string][] = [
      [{ name: "A", tier: "pro", models: ["gpt-9"] }, "unknown_model", "models.0"],
      [{ name: "A", tier: "pro", models: [] }, "invalid_request", "models"],
      [
        { name: "A", tier: "pro", limits: { requestsPerMinute: 0 } },
        "invalid_request",
        "limits.requestsPerMinute",
      ],
      [{ name: "A", tier: "pro", limits: { rpm: 10 } }, "invalid_request", "limits"],
      [{ name: "A\u0000B", tier: "pro" }, "invalid_request", "name"],
      [{ name: "A", tier: "pro", regions: ["eu-west-1", "eu-west-1"] }, "invalid_request", "regions"],
      [{ name: "A", tier: "pro", regions: ["mars-1"] }, "invalid_request", "regions.0"],
    ];
    for (const [input, code, param] of cases) {
      expect(
        refusal(() => newTenant(input, config)),
        JSON.stringify(input),
      ).toMatchObject({
        status: 400,
        code,
        param,
      });
    }
  });
});

describe("updatedTenant", () => {
  const pro = tenant({ limits: { requestsPerMinute: 30, burst: 5 } });

  it("changes only what it is given and reports nothing for a no-op", () => {
    const next = updatedTenant(pro, { tier: "business", models: ["llama"] }, config);
    expect(next).toMatchObject({ tier: "business", models: ["llama"], limits: pro.limits, name: pro.name });
    expect(changesBetween(pro, next, UPDATABLE_FIELDS)).toEqual({
      tier: { from: "pro", to: "business" },
      models: { to: ["llama"] },
    });
    const same = updatedTenant(pro, { tier: "pro" }, config);
    expect(changesBetween(pro, same, UPDATABLE_FIELDS)).toEqual({});
  });

  it("merges limit overrides; null drops one override, or all of them", () => {
    expect(updatedTenant(pro, { limits: { tokensPerMinute: 900, burst: null } }, config).limits).toEqual({
      requestsPerMinute: 30,
      tokensPerMinute: 900,
    });
    expect(updatedTenant(pro, { limits: null }, config).limits).toBeUndefined();
    expect(
      updatedTenant(pro, { limits: { requestsPerMinute: null, burst: null } }, config).limits,
    ).toBeUndefined();
  });

  it("clears regions and models with null", () => {
    const limited = tenant({ regions: ["eu-west-1"], models: ["llama"] });
    const next = updatedTenant(limited, { regions: null, models: null }, config);
    expect(next.regions).toBeUndefined();
    expect(next.models).toBeUndefined();
  });

  it("refuses HIPAA on a pooled tier, naming whichever field the update set", () => {
    expect(refusal(() => updatedTenant(pro, { compliance: ["hipaa"] }, config))).toMatchObject({
      status: 400,
      code: "hipaa_requires_dedicated",
      param: "compliance",
    });
    const clinic = tenant({ tier: "enterprise", compliance: ["hipaa"] });
    expect(refusal(() => updatedTenant(clinic, { tier: "free" }, config))).toMatchObject({
      code: "hipaa_requires_dedicated",
      param: "tier",
    });
    expect(updatedTenant(clinic, { tier: "business" }, config).tier).toBe("business");
  });

  it("refuses an unknown tier, an unknown model, and regions that leave out a dedicated endpoint", () => {
    expect(refusal(() => updatedTenant(pro, { tier: "gold" }, config))).toMatchObject({
      code: "unknown_tier",
      param: "tier",
    });
    expect(refusal(() => updatedTenant(pro, { models: ["llama", "nope"] }, config))).toMatchObject({
      code: "unknown_model",
      param: "models.1",
    });
    const silo = tenant({
      tier: "enterprise",
      endpoints: { own: { endpointName: "e1", region: "eu-west-1" } },
    });
    expect(updatedTenant(silo, { models: ["own"] }, config).models).toEqual(["own"]);
    expect(refusal(() => updatedTenant(silo, { regions: ["us-east-1"] }, config))).toMatchObject({
      code: "region_not_allowed",
      param: "regions",
    });
  });

  it("refuses an empty update, unknown fields and deleted tenants", () => {
    expect(refusal(() => updatedTenant(pro, {}, config)).status).toBe(400);
    expect(refusal(() => updatedTenant(pro, { status: "active" }, config)).status).toBe(400);
    expect(
      refusal(() => updatedTenant(tenant({ status: "deleted" }), { tier: "pro" }, config)),
    ).toMatchObject({
      status: 409,
      code: "tenant_deleted",
    });
  });

  it("does not re-judge fields the update leaves alone", () => {
    const legacy = tenant({ models: ["retired-model"] });
    expect(updatedTenant(legacy, { name: "Renamed" }, config).name).toBe("Renamed");
  });
});

describe("newDedicatedEndpoint, regions", () => {
  it("refuses an endpoint outside the tenant's allowed regions", () => {
    const gdpr = tenant({ tier: "enterprise", regions: ["eu-west-1"] });
    expect(
      refusal(() =>
        newDedicatedEndpoint(gdpr, { model: "m", endpointName: "e", region: "us-east-1" }, config),
      ),
    ).toMatchObject({ status: 400, code: "region_not_allowed", param: "region" });
    expect(newDedicatedEndpoint(gdpr, { model: "m", endpointName: "e" }, config).endpoint).toEqual({
      endpointName: "e",
    });
  });
});

describe("key lifecycle", () => {
  const now = Date.parse("2026-11-28T12:00:00Z");
  const key = (overrides: Partial<KeyRecord> = {}): KeyRecord => ({
    tenantId: "tn-test",
    keyId: "key-aaaaaaaaaaaa",
    hint: "atr_AbCd…wxyz",
    status: "active",
    createdAt: "2026-11-01T00:00:00.000Z",
    ...overrides,
  });

  it("is usable while active or inside its grace period, and not from its expiry on", () => {
    expect(keyState(key(), now)).toBe("active");
    const rotated = key({ expiresAt: new Date(now + 1000).toISOString() });
    expect([keyState(rotated, now), isKeyUsable(rotated, now)]).toEqual(["expiring", true]);
    expect([keyState(rotated, now + 1000), isKeyUsable(rotated, now + 1000)]).toEqual(["expired", false]);
    expect(isKeyUsable(key({ status: "revoked" }), now)).toBe(false);
  });

  it("rotates only an active key, with a grace period of 0 to 30 days", () => {
    expect(rotationExpiry(key(), { graceSeconds: 86400 }, now).toISOString()).toBe(
      "2026-11-29T12:00:00.000Z",
    );
    expect(rotationExpiry(key(), { graceSeconds: 0 }, now).getTime()).toBe(now);
    expect(refusal(() => rotationExpiry(key(), { graceSeconds: 31 * 86400 }, now)).param).toBe(
      "graceSeconds",
    );
    expect(refusal(() => rotationExpiry(key(), {}, now)).param).toBe("graceSeconds");
    const rotating = key({ expiresAt: new Date(now + 5000).toISOString(), replacedBy: "key-bbbbbbbbbbbb" });
    expect(refusal(() => rotationExpiry(rotating, { graceSeconds: 60 }, now))).toMatchObject({
      status: 409,
      code: "key_expiring",
    });
  });

  it("revokes a live key once", () => {
    expect(() => checkRevocable(key(), now)).not.toThrow();
    expect(() => checkRevocable(key({ expiresAt: new Date(now + 1).toISOString() }), now)).not.toThrow();
    expect(refusal(() => checkRevocable(key({ status: "revoked" }), now)).code).toBe("key_revoked");
  });

  it("caps the working keys of a tenant, not the dead ones", () => {
    const live = Array.from({ length: MAX_LIVE_KEYS }, () => key());
    expect(refusal(() => checkRoomForKey(live, now))).toMatchObject({ status: 409, code: "too_many_keys" });
    expect(() => checkRoomForKey([...live.slice(1), key({ status: "revoked" })], now)).not.toThrow();
  });

  it("stamps last use at most once per resolution window", () => {
    expect(lastUsedIsStale(key(), now)).toBe(true);
    const used = key({ lastUsedAt: new Date(now - LAST_USED_RESOLUTION_MS + 1).toISOString() });
    expect(lastUsedIsStale(used, now)).toBe(false);
    expect(lastUsedIsStale(used, now + 1)).toBe(true);
  });

  it("is shown by hint and dates, never by secret", () => {
    const view = keyView(key({ lastUsedAt: "2026-11-28T11:00:00.000Z" }), now);
    expect(view).toEqual({
      keyId: "key-aaaaaaaaaaaa",
      hint: "atr_AbCd…wxyz",
      state: "active",
      createdAt: "2026-11-01T00:00:00.000Z",
      lastUsedAt: "2026-11-28T11:00:00.000Z",
      expiresAt: null,
    });
  });
});

describe("cursors and page limits", () => {
  it("round-trip, and refuse what this API did not hand out", () => {
    const position = { pk: "AUDIT#tn-a#", sk: "2026-11-28T00:00:00.000Z#x" };
    const fits = (p: Record<string, string>) => p.pk === "AUDIT#tn-a#";
    expect(decodeCursor(encodeCursor(position), fits)).toEqual(position);
    const other = encodeCursor({ pk: "AUDIT#tn-b#", sk: "x" });
    for (const bad of [
      other,
      "not a cursor!",
      encodeCursor({ pk: "AUDIT#tn-a#", sk: 1 } as never),
      "x".repeat(3000),
    ]) {
      expect(refusal(() => decodeCursor(bad, fits))).toMatchObject({ status: 400, param: "cursor" });
    }
  });

  it("take limits from 1 to the maximum", () => {
    expect(pageLimit(undefined, 100, 1000)).toBe(100);
    expect(pageLimit("5", 100, 1000)).toBe(5);
    for (const bad of ["0", "1001", "-1", "2.5", "ten"]) {
      expect(refusal(() => pageLimit(bad, 100, 1000)).param).toBe("limit");
    }
  });
});
