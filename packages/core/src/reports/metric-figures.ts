/**
 * What CloudWatch says of the report's tenants: p50 and p99 of the per-tenant latency metrics per
 * period and over the range, and the per-tenant counters summed over the range. One MetricStat query
 * per figure, sent for all tenants at once in GetMetricData calls of at most 500 queries.
 */
import type { CloudWatchMetrics, MetricDataQuery, MetricDataResult } from "../cloudwatch";
import type { Period, ReportQuery } from "./report-query";

/** Milliseconds; null when CloudWatch has no data for it (no call reached the model). */
export interface Percentiles {
  p50: number | null;
  p99: number | null;
}

/** The model's part of a call (`ModelLatency`) and Atrium's (`OverheadLatency`). */
export interface LatencyFigures {
  model: Percentiles;
  atrium: Percentiles;
}

export interface PeriodLatency extends LatencyFigures {
  period: string;
}

/** The per-tenant counters over the range, as CloudWatch sums them (docs/reports.md). */
export interface MetricCounts {
  /** `Requests`: every authenticated call the tenant's key made, on any route. */
  requests: number;
  /** SampleCount of `ModelLatency`: calls that reached the model. */
  modelCalls: number;
  promptTokens: number;
  completionTokens: number;
  rateLimited: number;
  callErrors: number;
}

export interface TenantMetricFigures {
  /** Over the whole range. */
  latency: LatencyFigures;
  /** Per period with a call that reached the model, in order. */
  periods: PeriodLatency[];
  counts: MetricCounts;
}

export interface MetricRead {
  figures: Map<string, TenantMetricFigures>;
  queries: number;
  /** GetMetricData calls made, NextToken pages included. */
  calls: number;
}

/** GetMetricData takes at most 500 queries per call. */
export const MAX_QUERIES_PER_CALL = 500;
/** GetMetricData calls at once: CloudWatch allows 50 per second per account by default. */
const PARALLEL_CALLS = 4;
const NAMESPACE = "Atrium";
const SERVICE = "atrium";
const PERIOD_SECONDS: Record<Period, number> = { day: 86_400, hour: 3_600 };
const LATENCY = { model: "ModelLatency", atrium: "OverheadLatency" } as const;
const COUNTS: Record<Exclude<keyof MetricCounts, "modelCalls">, string> = {
  requests: "Requests",
  promptTokens: "PromptTokens",
  completionTokens: "CompletionTokens",
  rateLimited: "RateLimited",
  callErrors: "CallErrors",
};

/** What the figures need of CloudWatch: GetMetricData (core/cloudwatch.ts's client, or a stand-in for it). */
export type MetricsClient = Pick<CloudWatchMetrics, "getMetricData">;

/** Where one query's answer goes: a tenant, and a setter on its figures. */
interface Target {
  tenant: number;
  apply(figures: TenantMetricFigures, result: MetricDataResult): void;
}

export async function readMetricFigures(
  client: MetricsClient,
  tenantIds: readonly string[],
  query: Pick<ReportQuery, "from" | "to" | "period">,
  /** Datapoints per page (CloudWatch's default, 100,800, when absent); more follow with NextToken. */
  maxDatapoints?: number,
): Promise<MetricRead> {
  const start = new Date(`${query.from}T00:00:00Z`);
  const end = new Date(Date.parse(`${query.to}T00:00:00Z`) + 86_400_000);
  const rangeSeconds = (end.getTime() - start.getTime()) / 1000;
  const period = PERIOD_SECONDS[query.period];
  const label = (at: Date) => at.toISOString().slice(0, query.period === "day" ? 10 : 13);

  // Per tenant, its figures and its periods by name.
  const figures = tenantIds.map(emptyFigures);
  const periods = tenantIds.map(() => new Map<string, PeriodLatency>());
  const periodOf = (tenant: number, name: string) => {
    const known = periods[tenant]?.get(name);
    if (known) return known;
    const made = { period: name, model: nothing(), atrium: nothing() };
    periods[tenant]?.set(name, made);
    return made;
  };
  const queries: MetricDataQuery[] = [];
  const targets: Target[] = [];
  const add = (tenant: number, metric: string, stat: string, seconds: number, apply: Target["apply"]) => {
    queries.push({
      Id: `q${queries.length}`,
      MetricStat: {
        Metric: {
          Namespace: NAMESPACE,
          MetricName: metric,
          Dimensions: [
            { Name: "service", Value: SERVICE },
            { Name: "tenantId", Value: tenantIds[tenant] as string },
          ],
        },
        Period: seconds,
        Stat: stat,
      },
    });
    targets.push({ tenant, apply });
  };
  tenantIds.forEach((_, tenant) => {
    for (const part of ["model", "atrium"] as const) {
      for (const p of ["p50", "p99"] as const) {
        add(tenant, LATENCY[part], p, rangeSeconds, (f, r) => {
          f.latency[part][p] = r.Values?.[0] ?? null;
        });
        add(tenant, LATENCY[part], p, period, (_, r) => {
          (r.Timestamps ?? []).forEach((at, i) => {
            periodOf(tenant, label(at))[part][p] = r.Values?.[i] ?? null;
          });
        });
      }
    }
    for (const [field, metric] of Object.entries(COUNTS) as [keyof typeof COUNTS, string][]) {
      add(tenant, metric, "Sum", rangeSeconds, (f, r) => {
        f.counts[field] = sum(r);
      });
    }
    add(tenant, LATENCY.model, "SampleCount", rangeSeconds, (f, r) => {
      f.counts.modelCalls = sum(r);
    });
  });

  let calls = 0;
  const batches = chunks(queries, MAX_QUERIES_PER_CALL);
  let next = 0;
  const worker = async () => {
    for (let b = next++; b < batches.length; b = next++) {
      const batch = batches[b] as MetricDataQuery[];
      let token: string | undefined;
      const results = new Map<string, MetricDataResult>();
      do {
        const page = await client.getMetricData({
          MetricDataQueries: batch,
          StartTime: start,
          EndTime: end,
          ScanBy: "TimestampAscending",
          ...(maxDatapoints ? { MaxDatapoints: maxDatapoints } : {}),
          ...(token ? { NextToken: token } : {}),
        });
        calls += 1;
        for (const result of page.MetricDataResults ?? []) merge(results, result);
        token = page.NextToken;
      } while (token);
      for (const [id, result] of results) {
        const target = targets[Number(id.slice(1))];
        if (target) target.apply(figures[target.tenant] as TenantMetricFigures, result);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_CALLS, batches.length) }, worker));
  figures.forEach((f, tenant) => {
    f.periods = [...(periods[tenant]?.values() ?? [])].sort((a, b) => (a.period < b.period ? -1 : 1));
  });
  return {
    figures: new Map(tenantIds.map((id, i) => [id, figures[i] as TenantMetricFigures])),
    queries: queries.length,
    calls,
  };
}

/** A query cut by a page (PartialData) goes on in the next page: its datapoints are joined. */
function merge(results: Map<string, MetricDataResult>, result: MetricDataResult): void {
  const id = result.Id as string;
  const known = results.get(id);
  if (!known) {
    results.set(id, {
      ...result,
      Timestamps: [...(result.Timestamps ?? [])],
      Values: [...(result.Values ?? [])],
    });
    return;
  }
  known.Timestamps?.push(...(result.Timestamps ?? []));
  known.Values?.push(...(result.Values ?? []));
}

const sum = (result: MetricDataResult) => (result.Values ?? []).reduce((total, v) => total + v, 0);

const nothing = (): Percentiles => ({ p50: null, p99: null });

function emptyFigures(): TenantMetricFigures {
  return {
    latency: { model: nothing(), atrium: nothing() },
    periods: [],
    counts: {
      requests: 0,
      modelCalls: 0,
      promptTokens: 0,
      completionTokens: 0,
      rateLimited: 0,
      callErrors: 0,
    },
  };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
