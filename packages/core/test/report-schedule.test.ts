/**
 * The scheduled runs' arithmetic (docs/reports.md): which period each run reports, where its files
 * go, and when a tenant's month-to-date use has crossed a budget threshold since the last run.
 */
import {
  ALERT_THRESHOLDS,
  type BudgetAlert,
  budgetAlertMessage,
  crossedThreshold,
} from "@atrium/core/reports/budget-alerts";
import { MAX_DAYS, parseReportQuery } from "@atrium/core/reports/report-query";
import { reportObjectKey, scheduledReportOf } from "@atrium/core/reports/report-schedule";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const at = (iso: string) => Date.parse(iso);
const DAY_MS = 86_400_000;
const moments = fc.integer({ min: at("2000-01-01T00:00:00Z"), max: at("2099-12-31T23:59:59Z") });

describe("the daily run", () => {
  it.each([
    ["2026-11-30T01:00:00Z", "2026-11-29"],
    ["2026-12-01T01:00:00Z", "2026-11-30"],
    ["2027-01-01T01:00:00Z", "2026-12-31"],
    ["2027-03-01T01:00:00Z", "2027-02-28"],
    ["2028-03-01T01:00:00Z", "2028-02-29"],
    ["2026-11-30T00:00:00Z", "2026-11-29"],
    ["2026-11-30T23:59:59Z", "2026-11-29"],
  ])("scheduled at %s reports %s, by day, for every tenant", (time, day) => {
    expect(scheduledReportOf("daily", at(time))).toEqual({
      kind: "daily",
      label: day,
      query: { from: day, to: day, period: "day" },
    });
  });

  it("always reports the whole UTC day before the run, a query the admin API would accept", () => {
    fc.assert(
      fc.property(moments, (t) => {
        const { query, label } = scheduledReportOf("daily", t);
        const today = Date.parse(`${new Date(t).toISOString().slice(0, 10)}T00:00:00Z`);
        expect(Date.parse(`${label}T00:00:00Z`)).toBe(today - DAY_MS);
        expect(parseReportQuery({ from: query.from, to: query.to, period: query.period })).toEqual(query);
      }),
    );
  });
});

describe("the monthly run", () => {
  it.each([
    ["2026-12-01T02:00:00Z", "2026-11", "2026-11-01", "2026-11-30"],
    ["2027-01-01T02:00:00Z", "2026-12", "2026-12-01", "2026-12-31"],
    ["2027-03-01T02:00:00Z", "2027-02", "2027-02-01", "2027-02-28"],
    ["2028-03-01T02:00:00Z", "2028-02", "2028-02-01", "2028-02-29"],
    ["2026-08-15T12:00:00Z", "2026-07", "2026-07-01", "2026-07-31"],
  ])("scheduled at %s reports %s, from %s to %s", (time, month, from, to) => {
    expect(scheduledReportOf("monthly", at(time))).toEqual({
      kind: "monthly",
      label: month,
      query: { from, to, period: "day" },
    });
  });

  it("always reports the whole UTC month before the run's, within one report's limit", () => {
    fc.assert(
      fc.property(moments, (t) => {
        const { query, label } = scheduledReportOf("monthly", t);
        const now = new Date(t);
        expect(query.from).toBe(`${label}-01`);
        // The day after the last is the first of the run's own month.
        expect(Date.parse(`${query.to}T00:00:00Z`) + DAY_MS).toBe(
          Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1),
        );
        expect(parseReportQuery({ ...query }).to).toBe(query.to);
        expect((Date.parse(query.to) - Date.parse(query.from)) / DAY_MS + 1).toBeLessThanOrEqual(
          MAX_DAYS.day,
        );
      }),
    );
  });
});

describe("report object keys", () => {
  it("puts each run's files under its kind and period", () => {
    expect(reportObjectKey({ kind: "daily", label: "2026-11-29" }, "json")).toBe(
      "daily/2026-11-29/report.json",
    );
    expect(reportObjectKey({ kind: "daily", label: "2026-11-29" }, "csv")).toBe(
      "daily/2026-11-29/report.csv",
    );
    expect(reportObjectKey({ kind: "monthly", label: "2026-11" }, "csv")).toBe("monthly/2026-11/report.csv");
  });
});

describe("a budget threshold crossed since the last run", () => {
  it.each([
    [0, 799, 1000, undefined],
    [0, 800, 1000, 80],
    [799, 800, 1000, 80],
    [800, 999, 1000, undefined],
    [900, 1000, 1000, 100],
    [500, 1200, 1000, 100],
    [1000, 1500, 1000, undefined],
    [1, 2, 3, undefined],
    // 80% of 3 is 2.4: 3 crosses both at once, and the higher one is alerted.
    [2, 3, 3, 100],
  ])("from %d to %d of %d: %s", (before, now, limit, expected) => {
    expect(crossedThreshold(before, now, limit)).toBe(expected);
  });

  it("alerts exactly when a threshold lies in (before, now], and at the highest one", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.nat(2_000_000),
        fc.nat(2_000_000),
        (limit, a, b) => {
          const [before, now] = a <= b ? [a, b] : [b, a];
          const inside = ALERT_THRESHOLDS.filter((t) => before / limit < t / 100 && now / limit >= t / 100);
          expect(crossedThreshold(before, now, limit)).toBe(inside.at(-1));
          // Use that did not grow crosses nothing: the same alert is never repeated.
          expect(crossedThreshold(now, now, limit)).toBeUndefined();
        },
      ),
    );
  });
});

describe("the alert message", () => {
  const alert: BudgetAlert = {
    tenantId: "tn-acme",
    name: 'Acme "Labs"\n<script>alert(1)</script>',
    month: "2026-11",
    threshold: 80,
    usedTokens: 850,
    monthlyTokens: 1000,
    usedPercent: 85,
    projectedTokens: 1200,
  };

  it("carries the tenant's name only as a JSON value, and a subject of ids and numbers", () => {
    const { subject, message } = budgetAlertMessage(alert);
    expect(subject).toBe("Atrium budget: tenant tn-acme at 80% of 2026-11");
    expect(subject.length).toBeLessThanOrEqual(100);
    expect(JSON.parse(message)).toEqual({ type: "budget_alert", ...alert });
    expect(message).not.toContain("\n");
  });
});
