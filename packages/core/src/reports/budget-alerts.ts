/**
 * Budget alerts (docs/reports.md): after each daily run, one alert per tenant whose month-to-date use
 * crossed 80% or 100% of its monthly budget since the run before. "Now" is the limiter's month total
 * (the report's budget figure); "then" is that total less the tokens the ledger recorded since the
 * previous run, so each crossing is alerted once and a tenant that stays over is not alerted again.
 */
import type { DynamoClient } from "../dynamodb/client";
import { hourOf, readLedger } from "../usage-ledger";
import type { Report } from "./build-report";
import { monthProgress } from "./report-query";

/** Percentages of the monthly budget that raise an alert when crossed. */
export const ALERT_THRESHOLDS = [80, 100] as const;

export interface BudgetAlert {
  tenantId: string;
  /** Tenant input: carried as a JSON string value, never as markup or a subject line. */
  name: string;
  month: string;
  /** The highest threshold crossed since the last run (80 or 100). */
  threshold: number;
  usedTokens: number;
  monthlyTokens: number;
  usedPercent: number;
  projectedTokens: number;
}

/** The highest threshold that `before` was under and `now` is at or over, or undefined. */
export function crossedThreshold(before: number, now: number, limit: number): number | undefined {
  const crossed = ALERT_THRESHOLDS.filter((t) => before * 100 < t * limit && now * 100 >= t * limit);
  return crossed.at(-1);
}

export interface LedgerReader {
  db: DynamoClient;
  usageTable: string;
}

/**
 * Alerts for `report` (made at its `generatedAt`) against the run at `previousRun` (epoch ms). Only
 * tenants at or over the lowest threshold now cost a ledger Query: nobody else can have crossed one.
 */
export async function budgetAlertsOf(
  report: Report,
  ledger: LedgerReader,
  previousRun: number,
): Promise<BudgetAlert[]> {
  const asOf = Date.parse(report.generatedAt);
  const monthStart = Date.parse(`${monthProgress(asOf).firstDay}T00:00:00Z`);
  const lowest = ALERT_THRESHOLDS[0];
  const alerts: BudgetAlert[] = [];
  for (const tenant of report.tenants) {
    const { month, usedTokens, monthlyTokens, projectedTokens } = tenant.budget;
    if (!monthlyTokens || usedTokens * 100 < lowest * monthlyTokens) continue;
    // A run in an earlier month saw none of this month's use: the month starts from zero.
    const before =
      previousRun < monthStart
        ? 0
        : usedTokens - (await tokensSince(ledger, tenant.tenantId, previousRun, asOf));
    const threshold = crossedThreshold(before, usedTokens, monthlyTokens);
    if (threshold === undefined) continue;
    alerts.push({
      tenantId: tenant.tenantId,
      name: tenant.name,
      month,
      threshold,
      usedTokens,
      monthlyTokens,
      usedPercent: Math.round((usedTokens / monthlyTokens) * 1000) / 10,
      projectedTokens,
    });
  }
  return alerts;
}

/** Tokens in the tenant's ledger from the hour of `from` to the hour of `to`, inclusive. */
async function tokensSince(ledger: LedgerReader, tenantId: string, from: number, to: number) {
  const entries = await readLedger(ledger.db, ledger.usageTable, tenantId, hourOf(from), hourOf(to));
  return entries.reduce((sum, entry) => sum + (entry.counters.tokens ?? 0), 0);
}

/** The SNS message: a short ASCII subject of ids and numbers only, and the alert as JSON. */
export function budgetAlertMessage(alert: BudgetAlert): { subject: string; message: string } {
  return {
    subject: `Atrium budget: tenant ${alert.tenantId} at ${alert.threshold}% of ${alert.month}`,
    message: JSON.stringify({ type: "budget_alert", ...alert }),
  };
}
