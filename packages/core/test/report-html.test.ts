/**
 * The HTML report (docs/reports.md): each tenant's figures as the JSON has them, charts drawn from the
 * data, nothing fetched from anywhere, and every string from the data escaped.
 */
import { parseStageConfig } from "@atrium/core/config";
import { buildReport, type Report, type TenantData } from "@atrium/core/reports/build-report";
import { reportHtml } from "@atrium/core/reports/report-html";
import { escapeHtml } from "@atrium/core/reports/svg-charts";
import { describe, expect, it } from "vitest";
import { ledgerEntry, tenant, tierSpec } from "./fixtures";

const config = parseStageConfig({
  region: "eu-west-1",
  tiers: { pro: tierSpec("pool"), enterprise: tierSpec("silo") },
  sharedEndpoints: [
    { model: "llama", endpointName: "shared-llama", instanceType: "ml.g5.xlarge", tokensPerInstanceHour: 10 },
    { model: "mistral", endpointName: "shared-mistral", instanceType: "ml.g5.xlarge" },
  ],
  dedicatedEndpoints: [
    { tenantId: "tn-c", model: "llama", endpointName: "c-llama", instanceType: "ml.g5.xlarge" },
  ],
  reporting: { instancePrices: { "ml.g5.xlarge": 1.5 } },
});

const HOSTILE = "<script>alert(1)</script>";

/** A and B on the shared llama and mistral over two days, B refused; C on its dedicated llama. */
function data(): TenantData[] {
  const a = [
    ledgerEntry("2026-11-09T03", "llama", {
      requests: 2,
      tokens: 1200,
      promptTokens: 700,
      completionTokens: 500,
      sharedCalls: 2,
    }),
    ledgerEntry("2026-11-10T03", "mistral", {
      requests: 1,
      tokens: 90,
      promptTokens: 60,
      completionTokens: 30,
      sharedCalls: 1,
    }),
  ];
  const b = [
    ledgerEntry("2026-11-10T05", "llama", {
      requests: 3,
      tokens: 50,
      promptTokens: 40,
      completionTokens: 10,
      sharedCalls: 3,
      errors: 1,
      refusedRequests: 4,
      refusedMonthlyBudget: 2,
    }),
  ];
  const c = [
    ledgerEntry("2026-11-10T05", "llama", {
      requests: 3,
      tokens: 300,
      promptTokens: 200,
      completionTokens: 100,
      dedicatedCalls: 3,
    }),
  ];
  const limiter = (usedTokens: number) => ({ month: "2026-11", usedTokens, callsInFlight: 0 });
  return [
    {
      tenant: tenant({ id: "tn-a", name: 'Acme & "Sons"' }),
      usage: a,
      monthUsage: a,
      limiter: limiter(1290),
    },
    { tenant: tenant({ id: "tn-b", name: HOSTILE }), usage: b, monthUsage: b, limiter: limiter(80) },
    {
      tenant: tenant({
        id: "tn-c",
        name: "C",
        tier: "enterprise",
        endpoints: { llama: { endpointName: "c-llama" } },
      }),
      usage: c,
      monthUsage: c,
      limiter: limiter(300),
    },
  ];
}

const report = (): Report =>
  buildReport({
    query: { from: "2026-11-09", to: "2026-11-10", period: "day" },
    asOf: Date.parse("2026-11-11T00:00:00Z"),
    config,
    tenants: data(),
  });

/** The text of each cell of a tenant's row, tags and entities undone. */
function rowCells(html: string, tenantId: string): string[] {
  const row = html.match(new RegExp(`<tr data-tenant="${tenantId}">(.*?)</tr>`))?.[1] ?? "";
  return [...row.matchAll(/<t[hd][^>]*>(.*?)<\/t[hd]>/g)].map((m) =>
    (m[1] ?? "")
      .replace(/<small>.*<\/small>/, "")
      .replace(/&lt;/g, "<")
      .replace(/&gt;/g, ">")
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&amp;/g, "&"),
  );
}

const thousands = (n: number) => n.toLocaleString("en-US");

describe("reportHtml", () => {
  it("shows each tenant's escaped name and its figures as the JSON has them", () => {
    const json = report();
    const html = reportHtml(json);
    for (const t of json.tenants) {
      const refused = Object.values(t.totals.refused).reduce((s, n) => s + n, 0);
      expect(rowCells(html, t.tenantId).slice(0, 7), t.tenantId).toEqual([
        t.name,
        thousands(t.totals.requests),
        thousands(t.totals.inputTokens),
        thousands(t.totals.outputTokens),
        thousands(t.totals.tokens),
        thousands(t.totals.errors),
        thousands(refused),
      ]);
      expect(html).toContain(`<th scope="row">${escapeHtml(t.name)}<small>${t.tenantId}`);
    }
    const a = rowCells(html, "tn-a");
    expect(a.slice(1, 5)).toEqual(["3", "760", "530", "1,290"]);
    expect(a[7]).toBe("1,290 / 100,000 (1.3%)");
    expect(a[9]).toBe(`$${(json.tenants[0]?.totals.costUsd ?? 0).toFixed(2)}`);
    expect(rowCells(html, "tn-b")[6]).toBe("6");
    // C's dedicated endpoint: two days of one instance at $1.5.
    expect(rowCells(html, "tn-c")[9]).toBe("$72.00");
    expect(html).toContain(`<b>$${json.totals.costUsd.toFixed(2)}</b><span>total cost</span>`);
    expect(html).toContain(`<b>$${json.totals.idleUsd.toFixed(2)}</b><span>idle (shared, unused)</span>`);
  });

  it("escapes a hostile tenant name everywhere and holds no script and no external URL", () => {
    const html = reportHtml(report());
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).not.toContain(HOSTILE);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/@import|url\(/i);
    expect(html).toContain("Acme &amp; &quot;Sons&quot;");
  });

  it("draws tokens per day per model as stacked columns, refusals by reason and the cost split with idle", () => {
    const html = reportHtml(report());
    const chart = (name: string) => html.match(new RegExp(`<svg data-chart="${name}".*?</svg>`))?.[0] ?? "";
    const titles = (name: string) => [...chart(name).matchAll(/<title>(.*?)<\/title>/g)].map((m) => m[1]);
    // Day 1: A's llama; day 2: B's and C's llama, A's mistral.
    expect(titles("tokens")).toEqual(["11-09 llama: 1.2K", "11-10 llama: 350", "11-10 mistral: 90"]);
    expect(titles("refusals")).toEqual(["requests, refused: 4", "monthly budget, refused: 2"]);
    const cost = titles("cost");
    expect(cost.some((t) => t?.startsWith("shared-llama, idle: $"))).toBe(true);
    // Nobody used mistral on day 1: that day of it is idle.
    expect(cost).toContain("shared-mistral, idle: $36.00");
    expect(cost).toContain("c-llama (dedicated), C: $72.00");
    expect(cost).toContain(`shared-llama, ${escapeHtml(HOSTILE)}: $${sharedOf(report(), "tn-b", "llama")}`);
  });

  it("says so instead of drawing an empty chart, and lists the flags", () => {
    const quiet = data().map((t) => ({ ...t, usage: [], monthUsage: [] }));
    const json = buildReport({
      query: { from: "2026-11-10", to: "2026-11-10", period: "hour" },
      asOf: Date.parse("2026-11-11T00:00:00Z"),
      config,
      tenants: quiet,
    });
    const html = reportHtml(json);
    expect(html).toContain("No tokens were charged in this period.");
    expect(html).toContain("No calls were refused in this period.");
    expect(html).not.toMatch(/data-chart="(tokens|refusals)"/);
    expect(json.flags.length).toBe(3);
    for (const flag of json.flags) expect(html).toContain(`<li>${escapeHtml(flag)}</li>`);
  });
});

function sharedOf(r: Report, tenantId: string, model: string): string {
  const rows = r.tenants.find((t) => t.tenantId === tenantId)?.rows ?? [];
  return rows
    .filter((row) => row.model === model)
    .reduce((s, row) => s + row.sharedCostUsd, 0)
    .toFixed(2);
}
