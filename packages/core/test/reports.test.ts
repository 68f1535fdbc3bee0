/**
 * The report's arithmetic (docs/reports.md): shared endpoints' cost split by weighted tokens with idle
 * apart, dedicated endpoints' cost to their tenant, the budget's projection, reconciliation's flags,
 * the query's checks and the CSV's quoting.
 */
import { parseStageConfig } from "@atrium/core/config";
import { AtriumError } from "@atrium/core/errors";
import { buildReport, type TenantData } from "@atrium/core/reports/build-report";
import { splitSharedCost } from "@atrium/core/reports/endpoint-cost";
import { reconcile } from "@atrium/core/reports/reconciliation";
import { reportCsv } from "@atrium/core/reports/report-csv";
import { hoursBegun, parseReportQuery, periodsOf } from "@atrium/core/reports/report-query";
import { sharedWeight } from "@atrium/core/reports/tenant-usage";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ledgerEntry, tenant, tierSpec } from "./fixtures";

const stage = (llama: Record<string, unknown> = {}) =>
  parseStageConfig({
    region: "eu-west-1",
    tiers: { pro: tierSpec("pool"), enterprise: tierSpec("silo") },
    sharedEndpoints: [
      {
        model: "llama",
        endpointName: "shared-llama",
        instanceType: "ml.g5.xlarge",
        instanceCount: 2,
        ...llama,
      },
      { model: "mistral", endpointName: "shared-mistral", instanceType: "ml.g5.2xlarge" },
    ],
    dedicatedEndpoints: [
      { tenantId: "tn-c", model: "llama", endpointName: "c-llama", instanceType: "ml.g5.xlarge" },
    ],
    reporting: { instancePrices: { "ml.g5.xlarge": 1.5 } },
  });

/** A, B on the shared llama; C on its dedicated llama. The report is made at the start of 2026-11-11. */
function tenants(): TenantData[] {
  const a = [
    ledgerEntry("2026-11-10T03", "llama", {
      requests: 2,
      tokens: 100,
      promptTokens: 60,
      completionTokens: 40,
      sharedCalls: 2,
    }),
  ];
  const b = [
    ledgerEntry("2026-11-10T05", "llama", {
      requests: 2,
      tokens: 50,
      promptTokens: 40,
      completionTokens: 10,
      sharedCalls: 2,
      errors: 1,
      refusedRequests: 4,
    }),
  ];
  const c = [
    ledgerEntry("2026-11-10T05", "llama", {
      requests: 3,
      tokens: 300,
      completionTokens: 100,
      promptTokens: 200,
      dedicatedCalls: 3,
    }),
  ];
  const month = "2026-11";
  return [
    {
      tenant: tenant({ id: "tn-a", name: "A" }),
      usage: a,
      monthUsage: a,
      limiter: { month, usedTokens: 100, callsInFlight: 0 },
    },
    {
      tenant: tenant({ id: "tn-b", name: "B" }),
      usage: b,
      monthUsage: b,
      limiter: { month, usedTokens: 80, callsInFlight: 0 },
    },
    {
      tenant: tenant({
        id: "tn-c",
        name: "C",
        tier: "enterprise",
        endpoints: { llama: { endpointName: "c-llama" } },
      }),
      usage: c,
      monthUsage: c,
      limiter: { month, usedTokens: 350, callsInFlight: 1 },
    },
  ];
}

const DAY = { from: "2026-11-10", to: "2026-11-10", period: "day" as const };
const NOV_11 = Date.parse("2026-11-11T00:00:00Z");

describe("the shared endpoint's split", () => {
  it("weighs each output token outputTokenWeight times, and only the shared part of a mixed item", () => {
    expect(sharedWeight({ tokens: 100, completionTokens: 40, sharedCalls: 2 }, 3)).toBe(180);
    expect(sharedWeight({ tokens: 100, completionTokens: 40, sharedCalls: 1, dedicatedCalls: 3 }, 3)).toBe(
      45,
    );
    expect(sharedWeight({ tokens: 100, completionTokens: 40, dedicatedCalls: 3 }, 3)).toBe(0);
    // A raw call's unsplit charge counts once per token.
    expect(sharedWeight({ tokens: 1024, sharedCalls: 1 }, 3)).toBe(1024);
  });

  it("splits by weight, idle is the capacity nobody used, and no traffic is all idle", () => {
    const weights = new Map([
      ["tn-a", 180],
      ["tn-b", 70],
    ]);
    expect(splitSharedCost(72_000_000, weights)).toEqual({
      shares: new Map([
        ["tn-a", 51_840_000],
        ["tn-b", 20_160_000],
      ]),
      idle: 0,
    });
    expect(splitSharedCost(72_000_000, weights, 480)).toEqual({
      shares: new Map([
        ["tn-a", 27_000_000],
        ["tn-b", 10_500_000],
      ]),
      idle: 34_500_000,
    });
    // Capacity exceeded: nobody is idle, the cost is split by use.
    expect(splitSharedCost(72_000_000, weights, 100).idle).toBe(0);
    expect(splitSharedCost(5, new Map(), 480)).toEqual({ shares: new Map(), idle: 5 });
  });

  it("gives out remainders so the shares and idle add up to the cost exactly", () => {
    expect(
      splitSharedCost(
        10,
        new Map([
          ["x", 1],
          ["y", 1],
          ["z", 1],
        ]),
      ).shares,
    ).toEqual(
      new Map([
        ["x", 4],
        ["y", 3],
        ["z", 3],
      ]),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 10 ** 13 }),
        fc.array(fc.integer({ min: 0, max: 10 ** 9 }), { maxLength: 20 }),
        fc.option(fc.integer({ min: 1, max: 10 ** 10 }), { nil: undefined }),
        (cost, list, capacity) => {
          const weights = new Map(list.map((w, i) => [`t${i}`, w]));
          const { shares, idle } = splitSharedCost(cost, weights, capacity);
          const sum = [...shares.values()].reduce((s, v) => s + v, 0) + idle;
          expect(sum).toBe(cost);
          const used = list.reduce((s, w) => s + w, 0);
          const whole = Math.max(used, capacity ?? 0);
          // Nothing used and no capacity: the whole cost is idle.
          if (whole === 0) expect(idle).toBe(cost);
          // Each part is within one micro-dollar of its exact share.
          for (const [id, share] of whole === 0 ? [] : shares) {
            const exact = (cost * (weights.get(id) ?? 0)) / whole;
            expect(Math.abs(share - exact)).toBeLessThan(1 + 1e-6 * exact);
          }
        },
      ),
    );
  });
});

describe("buildReport", () => {
  it("charges dedicated instance hours to their tenant and splits the shared ones by weighted tokens", () => {
    const report = buildReport({ query: DAY, asOf: NOV_11, config: stage(), tenants: tenants() });
    const [a, b, c] = report.tenants;
    expect(a?.rows).toEqual([
      {
        period: "2026-11-10",
        model: "llama",
        requests: 2,
        tokens: 100,
        inputTokens: 60,
        outputTokens: 40,
        errors: 0,
        sharedCalls: 2,
        dedicatedCalls: 0,
        refused: {},
        sharedCostUsd: 51.84,
        dedicatedCostUsd: 0,
        costUsd: 51.84,
      },
    ]);
    expect(b?.totals).toMatchObject({ requests: 2, errors: 1, refused: { requests: 4 }, costUsd: 20.16 });
    expect(c?.totals).toMatchObject({
      dedicatedCalls: 3,
      sharedCostUsd: 0,
      dedicatedCostUsd: 36,
      costUsd: 36,
    });
    expect(report.endpoints).toEqual([
      expect.objectContaining({
        endpointName: "shared-llama",
        instanceHours: 48,
        costUsd: 72,
        tenantsUsd: 72,
        idleUsd: 0,
      }),
      expect.objectContaining({
        endpointName: "shared-mistral",
        hourlyPriceUsd: null,
        costUsd: 0,
        idleUsd: 0,
      }),
      expect.objectContaining({ endpointName: "c-llama", kind: "dedicated", tenantId: "tn-c", costUsd: 36 }),
    ]);
    expect(report.totals).toEqual({ tenantsUsd: 108, idleUsd: 0, costUsd: 108 });
    expect(report.flags).toEqual([
      "endpoint shared-mistral: no price (reporting.instancePrices has no ml.g5.2xlarge); its cost reads 0",
      "tenant tn-b: 2026-11 ledger 50 tokens, limiter 80 (difference 30)",
      "tenant tn-c: 2026-11 ledger 300 tokens, limiter 350 (difference 50, 1 calls in flight)",
    ]);
  });

  it("shows unused shared capacity as its own idle line, not in tenants' bills", () => {
    const report = buildReport({
      query: DAY,
      asOf: NOV_11,
      config: stage({ tokensPerInstanceHour: 10 }),
      tenants: tenants(),
    });
    expect(report.tenants.map((t) => t.totals.sharedCostUsd)).toEqual([27, 10.5, 0]);
    expect(report.idle).toEqual([
      { period: "2026-11-10", endpointName: "shared-llama", model: "llama", costUsd: 34.5 },
    ]);
    expect(report.totals).toEqual({ tenantsUsd: 73.5, idleUsd: 34.5, costUsd: 108 });
  });

  it("by hour, charges only the hours begun, and an hour without traffic is idle", () => {
    const asOf = Date.parse("2026-11-10T05:30:00Z");
    const report = buildReport({
      query: { ...DAY, period: "hour" },
      asOf,
      config: stage(),
      tenants: tenants(),
    });
    const llama = report.endpoints.find((e) => e.endpointName === "shared-llama");
    expect(llama).toMatchObject({ instanceHours: 12, costUsd: 18, tenantsUsd: 6, idleUsd: 12 });
    expect(report.idle.map((i) => i.period)).toEqual([
      "2026-11-10T00",
      "2026-11-10T01",
      "2026-11-10T02",
      "2026-11-10T04",
    ]);
    expect(report.tenants[0]?.rows.map((r) => [r.period, r.costUsd])).toEqual([["2026-11-10T03", 3]]);
    // C's dedicated endpoint costs its tenant every hour begun, with calls or without.
    expect(report.tenants[2]?.rows.map((r) => [r.period, r.requests, r.dedicatedCostUsd])).toEqual([
      ["2026-11-10T00", 0, 1.5],
      ["2026-11-10T01", 0, 1.5],
      ["2026-11-10T02", 0, 1.5],
      ["2026-11-10T03", 0, 1.5],
      ["2026-11-10T04", 0, 1.5],
      ["2026-11-10T05", 3, 1.5],
    ]);
  });

  it("for one tenant, still splits shared cost with every tenant, and shows its endpoints only", () => {
    const report = buildReport({
      query: { ...DAY, tenantId: "tn-b" },
      asOf: NOV_11,
      config: stage(),
      tenants: tenants(),
    });
    expect(report.tenants.map((t) => [t.tenantId, t.totals.costUsd])).toEqual([["tn-b", 20.16]]);
    expect(report.endpoints.map((e) => e.endpointName)).toEqual(["shared-llama", "shared-mistral"]);
    expect(report.totals.tenantsUsd).toBe(20.16);
  });

  it("projects the month linearly from the part of it gone by", () => {
    const report = buildReport({ query: DAY, asOf: NOV_11, config: stage(), tenants: tenants() });
    // 10 of November's 30 days have passed: a third of the month.
    expect(report.tenants[0]?.budget).toEqual({
      month: "2026-11",
      usedTokens: 100,
      monthlyTokens: 100_000,
      projectedTokens: 300,
      projectedPercent: 0.3,
    });
  });
});

describe("reconciliation", () => {
  const month = [
    ledgerEntry("2026-11-02T10", "llama", { tokens: 70 }),
    ledgerEntry("2026-11-09T00", "mistral", { tokens: 30 }),
  ];

  it("matches when the ledger's month adds up to the limiter's total, and flags any difference", () => {
    expect(reconcile(month, { month: "2026-11", usedTokens: 100, callsInFlight: 0 })).toMatchObject({
      ledgerTokens: 100,
      difference: 0,
      status: "match",
    });
    expect(reconcile(month, { month: "2026-11", usedTokens: 130, callsInFlight: 0 })).toMatchObject({
      difference: 30,
      status: "mismatch",
    });
    expect(reconcile(month, { month: "2026-11", usedTokens: 90, callsInFlight: 0 }).status).toBe("mismatch");
    expect(reconcile(month, { month: "2026-11", usedTokens: 140, callsInFlight: 2 }).status).toBe(
      "calls_in_flight",
    );
    // Another month's entries are not this month's.
    expect(reconcile(month, { month: "2026-10", usedTokens: 0, callsInFlight: 0 }).status).toBe("match");
  });
});

describe("the report's query", () => {
  it("lists the periods and the hours begun of each", () => {
    expect(periodsOf({ from: "2026-02-27", to: "2026-03-01", period: "day" })).toEqual([
      "2026-02-27",
      "2026-02-28",
      "2026-03-01",
    ]);
    expect(periodsOf({ from: "2026-11-10", to: "2026-11-10", period: "hour" })).toHaveLength(24);
    expect(hoursBegun("2026-11-10", Date.parse("2026-11-10T00:00:00Z"))).toBe(0);
    expect(hoursBegun("2026-11-10", Date.parse("2026-11-10T00:00:01Z"))).toBe(1);
    expect(hoursBegun("2026-11-10", Date.parse("2026-12-01T00:00:00Z"))).toBe(24);
    expect(hoursBegun("2026-11-10T07", Date.parse("2026-11-10T07:59:00Z"))).toBe(1);
  });

  it("is a 400 naming the parameter for a bad date, period, range or tenant", () => {
    const cases: [Record<string, string>, string][] = [
      [{ to: "2026-11-10" }, "from"],
      [{ from: "2026-02-30", to: "2026-03-01" }, "from"],
      [{ from: "2026-11-10", to: "11/12/2026" }, "to"],
      [{ from: "2026-11-10", to: "2026-11-09" }, "to"],
      [{ from: "2026-01-01", to: "2026-06-01" }, "to"],
      [{ from: "2026-11-01", to: "2026-12-31", period: "hour" }, "to"],
      [{ from: "2026-11-01", to: "2026-11-02", period: "week" }, "period"],
      [{ from: "2026-11-01", to: "2026-11-02", tenant: "TN#x" }, "tenant"],
    ];
    for (const [params, param] of cases) {
      let thrown: unknown;
      try {
        parseReportQuery(params);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, JSON.stringify(params)).toBeInstanceOf(AtriumError);
      expect({ status: (thrown as AtriumError).status, param: (thrown as AtriumError).param }).toEqual({
        status: 400,
        param,
      });
    }
    expect(parseReportQuery({ from: "2026-11-01", to: "2026-11-30", tenant: "tn-a" })).toEqual({
      from: "2026-11-01",
      to: "2026-11-30",
      period: "day",
      tenantId: "tn-a",
    });
  });
});

describe("the CSV", () => {
  it("is RFC 4180: CRLF, fields with commas, quotes or line breaks quoted, quotes doubled; formulas kept text", () => {
    const data = tenants();
    (data[0] as TenantData).tenant.name = 'Acme, "Big" Co';
    (data[1] as TenantData).tenant.name = "=HYPERLINK(1)";
    const csv = reportCsv(
      buildReport({ query: DAY, asOf: NOV_11, config: stage({ tokensPerInstanceHour: 10 }), tenants: data }),
    );
    const lines = csv.split("\r\n");
    expect(lines.at(-1)).toBe("");
    expect(lines[0]).toBe(
      "line,tenant_id,tenant_name,period,model,endpoint,requests,tokens,input_tokens,output_tokens,errors,shared_calls,dedicated_calls,refused_requests,refused_tokens,refused_concurrency,refused_monthly_budget,refused_endpoint_busy,refused_contention,shared_cost_usd,dedicated_cost_usd,cost_usd",
    );
    expect(lines.slice(1, -1)).toEqual([
      'tenant,tn-a,"Acme, ""Big"" Co",2026-11-10,llama,,2,100,60,40,0,2,0,0,0,0,0,0,0,27.000000,0.000000,27.000000',
      "tenant,tn-b,'=HYPERLINK(1),2026-11-10,llama,,2,50,40,10,1,2,0,4,0,0,0,0,0,10.500000,0.000000,10.500000",
      "tenant,tn-c,C,2026-11-10,llama,,3,300,200,100,0,0,3,0,0,0,0,0,0,0.000000,36.000000,36.000000",
      "idle,,,2026-11-10,llama,shared-llama,0,0,0,0,0,0,0,0,0,0,0,0,0,34.500000,0.000000,34.500000",
    ]);
    // No tenant at all: the shared endpoint's whole day is idle.
    const empty = reportCsv(buildReport({ query: DAY, asOf: NOV_11, config: stage(), tenants: [] }));
    expect(empty.split("\r\n").slice(1)).toEqual([
      "idle,,,2026-11-10,llama,shared-llama,0,0,0,0,0,0,0,0,0,0,0,0,0,72.000000,0.000000,72.000000",
      "",
    ]);
  });
});
