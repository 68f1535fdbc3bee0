/**
 * What a report covers: UTC days `from` to `to` (inclusive), in periods of a day or an hour, for one
 * tenant or all; and the time arithmetic of those periods.
 */
import { invalidRequest } from "../errors";
import { isTenantId } from "../ids";

export type Period = "day" | "hour";

export interface ReportQuery {
  /** First UTC day, YYYY-MM-DD. */
  from: string;
  /** Last UTC day, YYYY-MM-DD, inclusive. */
  to: string;
  period: Period;
  /** One tenant; absent: every tenant. */
  tenantId?: string;
}

/** The most days one report covers: a quarter by day, a month by hour (the admin API answers within 29 s). */
export const MAX_DAYS: Record<Period, number> = { day: 93, hour: 31 };
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const PERIOD_MS: Record<Period, number> = { day: DAY_MS, hour: HOUR_MS };

/** Reads `from`, `to`, `period` and `tenant`; a bad one is a 400 naming it. */
export function parseReportQuery(params: Record<string, string | undefined>): ReportQuery {
  const from = day(params.from, "from");
  const to = day(params.to, "to");
  const period = params.period ?? "day";
  if (period !== "day" && period !== "hour") {
    throw invalidRequest("invalid_request", "period: must be day or hour", "period");
  }
  if (to < from) throw invalidRequest("invalid_request", "to: must not be before from", "to");
  const days = (Date.parse(to) - Date.parse(from)) / DAY_MS + 1;
  if (days > MAX_DAYS[period]) {
    throw invalidRequest(
      "invalid_request",
      `to: at most ${MAX_DAYS[period]} days by ${period} in one report; ask for a shorter range`,
      "to",
    );
  }
  const tenantId = params.tenant;
  if (tenantId !== undefined && !isTenantId(tenantId)) {
    throw invalidRequest("invalid_tenant_id", "tenant: not a tenant id", "tenant");
  }
  return { from, to, period, ...(tenantId !== undefined ? { tenantId } : {}) };
}

function day(value: string | undefined, param: string): string {
  if (value === undefined)
    throw invalidRequest("invalid_request", `${param}: required (YYYY-MM-DD, UTC)`, param);
  // Date.parse rolls 2026-02-30 over to March: a real day reads back as itself.
  const at = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T00:00:00Z`) : Number.NaN;
  const valid = !Number.isNaN(at) && new Date(at).toISOString().startsWith(value);
  if (!valid) throw invalidRequest("invalid_request", `${param}: must be a date YYYY-MM-DD`, param);
  return value;
}

/** The period a ledger hour (YYYY-MM-DDTHH) falls in: its day, or itself. */
export function periodOf(hour: string, period: Period): string {
  return period === "day" ? hour.slice(0, 10) : hour;
}

/** Every period of the query, in order: YYYY-MM-DD or YYYY-MM-DDTHH. */
export function periodsOf(query: Pick<ReportQuery, "from" | "to" | "period">): string[] {
  const size = PERIOD_MS[query.period];
  const end = Date.parse(`${query.to}T00:00:00Z`) + DAY_MS;
  const periods: string[] = [];
  for (let at = Date.parse(`${query.from}T00:00:00Z`); at < end; at += size) {
    periods.push(new Date(at).toISOString().slice(0, query.period === "day" ? 10 : 13));
  }
  return periods;
}

/** Whole hours of a period begun by `asOf` (epoch ms): endpoints are charged for an hour once it starts. */
export function hoursBegun(period: string, asOf: number): number {
  const isHour = period.length === 13;
  const start = Date.parse(`${period}${isHour ? ":00:00Z" : "T00:00:00Z"}`);
  const length = isHour ? 1 : 24;
  return Math.min(length, Math.max(0, Math.ceil((asOf - start) / HOUR_MS)));
}

/** The UTC month of a moment (YYYY-MM), its first day, and how far through it the moment is (0..1]. */
export function monthProgress(asOf: number): { month: string; firstDay: string; elapsed: number } {
  const now = new Date(asOf);
  const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  const firstDay = new Date(start).toISOString().slice(0, 10);
  return { month: firstDay.slice(0, 7), firstDay, elapsed: Math.max(asOf - start, 1) / (end - start) };
}
