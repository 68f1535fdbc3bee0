import { isTenantId, newTenantId } from "@atrium/core/ids";
import { tenantKey } from "@atrium/core/keys";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const tenantIds = fc.stringMatching(/^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/);

describe("tenant keys", () => {
  it("end the id with the delimiter, so t1 is never a prefix of t10", () => {
    expect(tenantKey("t1x")).toBe("TENANT#t1x#");
    expect(tenantKey("t10x").startsWith(tenantKey("t1x"))).toBe(false);
  });

  it("never prefix-match another tenant's key (property)", () => {
    fc.assert(
      fc.property(tenantIds, tenantIds, (a, b) => {
        fc.pre(a !== b);
        expect(tenantKey(b).startsWith(tenantKey(a))).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it("refuse ids holding the delimiter or other characters outside the pattern", () => {
    for (const bad of ["t1#", "a#b", "", "ab", "UPPER", "-lead", "trail-", "a b", "x".repeat(41), "tn_1"]) {
      expect(isTenantId(bad)).toBe(false);
      expect(() => tenantKey(bad)).toThrow(/Not a tenant id/);
    }
  });

  it("accept every generated id", () => {
    for (let i = 0; i < 200; i++) expect(isTenantId(newTenantId())).toBe(true);
  });
});
