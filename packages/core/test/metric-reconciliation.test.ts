/**
 * The ledger against CloudWatch (docs/reports.md): each pair compares like with like, and each
 * difference gets the status and reason that explains it. A report without CloudWatch says so with
 * null figures, never zeros.
 */
import { parseStageConfig } from "@atrium/core/config";
import { buildReport, type TenantData } from "@atrium/core/reports/build-report";
import type { MetricCounts, TenantMetricFigures } from "@atrium/core/reports/metric-figures";
import {
  INGESTION_LAG_MS,
  type MetricPair,
  reconcileWithMetrics,
} from "@atrium/core/reports/metric-reconciliation";
import type { UsageFigures } from "@atrium/core/reports/tenant-usage";
import { hourOf } from "@atrium/core/usage-ledger";
import { describe, expect, it } from "vitest";
import { ledgerEntry, tenant, tierSpec } from "./fixtures";

const ASOF = Date.parse("2026-11-20T15:30:00Z");
const ledger: UsageFigures = {
  requests: 10,
  tokens: 300,
  inputTokens: 200,
  outputTokens: 100,
  errors: 1,
  sharedCalls: 10,
  dedicatedCalls: 0,
  refused: { requests: 2, monthly_budget: 1 },
};
const same: MetricCounts = {
  requests: 14,
  modelCalls: 10,
  promptTokens: 200,
  completionTokens: 100,
  rateLimited: 3,
  callErrors: 1,
};
/** Calls of the day, ending `hoursAgo` before the report. */
const usage = (hoursAgo: number) => [
  ledgerEntry(hourOf(ASOF - hoursAgo * 3_600_000), "llama", { requests: 10 }),
];
const context = { usage: usage(5), callsInFlight: 0, asOf: ASOF, includesToday: true };
const byName = (pairs: MetricPair[]) => Object.fromEntries(pairs.map((p) => [p.name, p]));

describe("reconcileWithMetrics", () => {
  it("matches every pair when both sides count the same calls", () => {
    const pairs = reconcileWithMetrics(ledger, same, context);
    expect(pairs.map((p) => [p.name, p.ledger, p.cloudwatch, p.status, p.reason])).toEqual([
      ["requests", 10, 10, "match", null],
      ["promptTokens", 200, 200, "match", null],
      ["completionTokens", 100, 100, "match", null],
      ["refusals", 3, 3, "match", null],
      ["errors", 1, 1, "match", null],
    ]);
  });

  it("compares calls that reached the model, not Requests, which counts every authenticated call", () => {
    const pairs = byName(reconcileWithMetrics(ledger, { ...same, requests: 99 }, context));
    expect(pairs.requests).toMatchObject({ metric: "ModelLatency (SampleCount)", status: "match" });
  });

  it("says cloudwatch_more, with the duplicate EMF or lost ledger write to check, when CloudWatch counts more", () => {
    const pairs = byName(
      reconcileWithMetrics(ledger, { ...same, modelCalls: 11, promptTokens: 230, rateLimited: 5 }, context),
    );
    expect(pairs.requests).toMatchObject({ status: "cloudwatch_more", difference: 1 });
    expect(pairs.requests?.reason).toContain("LedgerWriteFailed");
    expect(pairs.requests?.reason).toContain("at least once");
    expect(pairs.promptTokens).toMatchObject({ status: "cloudwatch_more", difference: 30 });
    expect(pairs.promptTokens?.reason).toContain("UsageAboveReservation");
    // Refusals wait in their container for the tenant's next write.
    expect(pairs.refusals).toMatchObject({ status: "cloudwatch_more", difference: 2 });
    expect(pairs.refusals?.reason).toContain("next call");
  });

  it("says ledger_more when CloudWatch lacks metrics for calls that are not recent", () => {
    const pairs = byName(reconcileWithMetrics(ledger, { ...same, callErrors: 0 }, context));
    expect(pairs.errors).toMatchObject({ status: "ledger_more", difference: -1 });
    expect(pairs.errors?.reason).toContain("before it flushed");
  });

  it("says awaiting_metrics when the ledger has more and the tenant's last calls are minutes old", () => {
    const recent = { ...context, usage: usage(0) };
    const pairs = byName(reconcileWithMetrics(ledger, { ...same, modelCalls: 8 }, recent));
    expect(pairs.requests).toMatchObject({ status: "awaiting_metrics", difference: -2 });
    // The hour before counts as recent only within the ingestion lag of its end.
    const lastHour = { ...context, usage: usage(1) };
    expect(byName(reconcileWithMetrics(ledger, { ...same, modelCalls: 8 }, lastHour)).requests?.status).toBe(
      "ledger_more",
    );
    const justTurned = { ...lastHour, asOf: Date.parse("2026-11-20T15:00:00Z") + INGESTION_LAG_MS - 1 };
    expect(
      byName(reconcileWithMetrics(ledger, { ...same, modelCalls: 8 }, justTurned)).requests?.status,
    ).toBe("awaiting_metrics");
    // A range that ends before today has nothing recent.
    const past = { ...recent, includesToday: false };
    expect(byName(reconcileWithMetrics(ledger, { ...same, modelCalls: 8 }, past)).requests?.status).toBe(
      "ledger_more",
    );
  });

  it("says calls_in_flight for any difference while the tenant has calls in flight", () => {
    const pairs = byName(
      reconcileWithMetrics(
        ledger,
        { ...same, modelCalls: 9, completionTokens: 120 },
        { ...context, callsInFlight: 2 },
      ),
    );
    expect(pairs.requests?.status).toBe("calls_in_flight");
    expect(pairs.completionTokens?.status).toBe("calls_in_flight");
    expect(pairs.requests?.reason).toContain("Run the report again");
    expect(pairs.errors?.status).toBe("match");
  });
});

describe("a report's CloudWatch figures", () => {
  const config = parseStageConfig({
    region: "eu-west-1",
    tiers: { pro: tierSpec("pool") },
    sharedEndpoints: [{ model: "llama", endpointName: "shared-llama", instanceType: "ml.g5.xlarge" }],
    reporting: { instancePrices: { "ml.g5.xlarge": 1.5 } },
  });
  const data: TenantData[] = [
    {
      tenant: tenant({ id: "tn-a", tier: "pro" }),
      usage: [ledgerEntry("2026-11-10T03", "llama", { requests: 2, tokens: 30, sharedCalls: 2 })],
      monthUsage: [ledgerEntry("2026-11-10T03", "llama", { requests: 2, tokens: 30, sharedCalls: 2 })],
      limiter: { month: "2026-11", usedTokens: 30, callsInFlight: 0 },
    },
  ];
  const query = { from: "2026-11-10", to: "2026-11-10", period: "day" as const };

  it("are null, with a note, when CloudWatch was not read: never zeros", () => {
    const report = buildReport({ query, asOf: ASOF, config, tenants: data });
    expect(report.tenants[0]).toMatchObject({ latency: null, cloudwatch: null });
    expect(report.cloudwatch).toEqual({
      available: false,
      queries: 0,
      calls: 0,
      note: expect.stringContaining("latency and the reconciliation with it are unavailable"),
    });
  });

  it("put latency on the tenant and flag every pair that differs", () => {
    const figures: TenantMetricFigures = {
      latency: { model: { p50: 120, p99: 400 }, atrium: { p50: 8, p99: 30 } },
      periods: [{ period: "2026-11-10", model: { p50: 120, p99: 400 }, atrium: { p50: 8, p99: 30 } }],
      counts: { ...same, modelCalls: 3, promptTokens: 0, completionTokens: 0, rateLimited: 0, callErrors: 0 },
    };
    const read = { figures: new Map([["tn-a", figures]]), queries: 14, calls: 1 };
    const report = buildReport({
      query,
      asOf: ASOF,
      config,
      tenants: data,
      metrics: { available: true, read },
    });
    expect(report.tenants[0]?.latency).toEqual({ ...figures.latency, periods: figures.periods });
    expect(report.cloudwatch).toEqual({ available: true, queries: 14, calls: 1, note: null });
    expect(report.flags).toEqual([
      "tenant tn-a: requests: ledger requests 2, CloudWatch ModelLatency (SampleCount) 3 (cloudwatch_more)",
    ]);
  });
});
