import { parseStageConfig } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import type { Tenant } from "@atrium/core/tenant";
import type { LedgerEntry } from "@atrium/core/usage-ledger";

/** A tier of the given tenancy with small, round limits. */
export function tierSpec(tenancy: "pool" | "bridge" | "silo") {
  return {
    tenancy,
    limits: { requestsPerMinute: 60, tokensPerMinute: 6000, concurrency: 2, monthlyTokens: 100_000 },
    maxTokens: { default: 100, cap: 1000 },
    limiterFailMode: "closed" as const,
  };
}

export const config = parseStageConfig({
  region: "eu-west-1",
  tiers: {
    free: tierSpec("pool"),
    pro: tierSpec("pool"),
    business: tierSpec("bridge"),
    enterprise: tierSpec("silo"),
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

/** One usage-ledger item as readLedger returns it. */
export const ledgerEntry = (hour: string, model: string, counters: Record<string, number>): LedgerEntry => ({
  hour,
  model,
  counters,
});
