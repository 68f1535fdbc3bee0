import { parseStageConfig } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import type { Tenant } from "@atrium/core/tenant";

export const config = parseStageConfig({
  region: "eu-west-1",
  tiers: {
    free: { tenancy: "pool" },
    pro: { tenancy: "pool" },
    business: { tenancy: "bridge" },
    enterprise: { tenancy: "silo" },
  },
  sharedEndpoints: [
    { model: "llama", endpointName: "shared-llama" },
    { model: "mistral", endpointName: "shared-mistral", targetModel: "mistral.tar.gz" },
    { model: "usa-only", endpointName: "shared-us", region: "us-east-1" },
  ],
});

export function tenant(overrides: Partial<Tenant> = {}): Tenant {
  return {
    id: "tn-test",
    name: "Test",
    tier: "pro",
    status: "active",
    compliance: [],
    endpoints: {},
    createdAt: "2026-11-28T00:00:00.000Z",
    ...overrides,
  };
}

/** Runs fn and returns the AtriumError it throws; fails the test if it throws nothing. */
export function refusal(fn: () => unknown): AtriumError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AtriumError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}
