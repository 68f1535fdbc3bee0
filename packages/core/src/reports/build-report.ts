/**
 * A report from the data it is made of (pure): per tenant, its usage per period and model, what it
 * cost, its budget and the month's reconciliation; per endpoint, its cost and idle share. The
 * definitions are in docs/reports.md; `loadReport` gathers the data.
 */
import type { StageConfig } from "../config";
import type { Tenant } from "../tenant";
import type { LedgerEntry } from "../usage-ledger";
import { addCounters, dayOf } from "../usage-ledger";
import { type BudgetFigures, budgetOf, type LimiterMonth } from "./budget";
import {
  type CostLedger,
  capacityMicros,
  charge,
  type EndpointSpec,
  endpointsOf,
  type RowCost,
  splitSharedCost,
} from "./endpoint-cost";
import type { MetricRead } from "./metric-figures";
import { metricFlags, type TenantMetrics, tenantMetrics } from "./metric-reconciliation";
import { type Reconciliation, reconcile } from "./reconciliation";
import { hoursBegun, monthProgress, periodsOf, type ReportQuery } from "./report-query";
import { figuresOf, sharedWeight, type UsageFigures, type UsageRow, usageRows } from "./tenant-usage";

export interface TenantData {
  tenant: Tenant;
  /** The tenant's ledger over the report's days. */
  usage: LedgerEntry[];
  /** The tenant's ledger over the month of `asOf`, for reconciliation. */
  monthUsage: LedgerEntry[];
  limiter: LimiterMonth;
}

export interface ReportInput {
  query: ReportQuery;
  /** When the report is made (epoch ms): hours not yet begun cost nothing, the month is this one. */
  asOf: number;
  config: Pick<StageConfig, "tiers" | "sharedEndpoints" | "dedicatedEndpoints" | "reporting">;
  /** Every tenant, even for a one-tenant report: a shared endpoint is split between all of its users. */
  tenants: TenantData[];
  /** What CloudWatch said of the shown tenants, or why it said nothing; absent: it was not read. */
  metrics?: MetricSource;
}

export type MetricSource = { available: true; read: MetricRead } | { available: false; note: string };

export interface Costs {
  sharedCostUsd: number;
  dedicatedCostUsd: number;
  costUsd: number;
}

export interface ReportRow extends UsageFigures, Costs {
  period: string;
  model: string;
}

export interface TenantReport extends TenantMetrics {
  tenantId: string;
  name: string;
  tier: string;
  status: string;
  totals: UsageFigures & Costs;
  rows: ReportRow[];
  budget: BudgetFigures;
  reconciliation: Reconciliation;
}

export interface EndpointReport {
  endpointName: string;
  model: string;
  kind: "shared" | "dedicated";
  tenantId: string | null;
  instanceType: string | null;
  instanceCount: number;
  hourlyPriceUsd: number | null;
  instanceHours: number;
  costUsd: number;
  /** What tenants pay of it. */
  tenantsUsd: number;
  idleUsd: number;
}

export interface IdleLine {
  period: string;
  endpointName: string;
  model: string;
  costUsd: number;
}

export interface Report {
  object: "report";
  from: string;
  to: string;
  period: ReportQuery["period"];
  tenantId: string | null;
  generatedAt: string;
  currency: "USD";
  outputTokenWeight: number;
  tenants: TenantReport[];
  endpoints: EndpointReport[];
  idle: IdleLine[];
  totals: { tenantsUsd: number; idleUsd: number; costUsd: number };
  /** Whether CloudWatch was read (latency, reconciliation with the ledger), with how many queries and calls. */
  cloudwatch: { available: boolean; queries: number; calls: number; note: string | null };
  /** Every difference or gap a reader must not miss: reconciliation differences, unpriced endpoints. */
  flags: string[];
}

const usd = (micros: number) => micros / 1_000_000;

/** A row's key: its period (of one fixed length in a report), then its model. */
const rowKey = (row: { period: string; model: string }) => `${row.period} ${row.model}`;

const NOT_READ: MetricSource = {
  available: false,
  note: "CloudWatch was not read: latency and the reconciliation with it are unavailable.",
};

export function buildReport(input: ReportInput): Report {
  const { query, asOf, config } = input;
  const metrics = input.metrics ?? NOT_READ;
  const weight = config.reporting.outputTokenWeight;
  const periods = periodsOf(query).map((period) => ({ period, hours: hoursBegun(period, asOf) }));
  const inRange = (entry: LedgerEntry) => {
    const day = entry.hour.slice(0, 10);
    return day >= query.from && day <= query.to;
  };
  const rowsOf = new Map(
    input.tenants.map((t) => [
      t.tenant.id,
      new Map(usageRows(t.usage.filter(inRange), query.period).map((row) => [rowKey(row), row])),
    ]),
  );
  const specs = endpointsOf(
    config,
    input.tenants.map((t) => t.tenant),
  );

  const costs: CostLedger = new Map();
  const idle: { line: Omit<IdleLine, "costUsd">; micros: number }[] = [];
  const endpointTotals = new Map<EndpointSpec, { hours: number; cost: number; idle: number }>();
  for (const spec of specs) {
    const total = { hours: 0, cost: 0, idle: 0 };
    for (const { period, hours } of periods) {
      const cost = capacityMicros(spec, hours);
      total.hours += spec.instanceCount * hours;
      total.cost += cost;
      const key = rowKey({ period, model: spec.model });
      if (spec.kind === "dedicated") {
        if (cost > 0) charge(costs, spec.tenantId as string, key, "dedicated", cost);
        continue;
      }
      const weights = new Map<string, number>();
      for (const [tenantId, rows] of rowsOf) {
        const row = rows.get(key);
        const w = row ? sharedWeight(row.counters, weight) : 0;
        if (w > 0) weights.set(tenantId, w);
      }
      const capacity =
        spec.tokensPerInstanceHour === undefined
          ? undefined
          : spec.tokensPerInstanceHour * spec.instanceCount * hours;
      const split = splitSharedCost(cost, weights, capacity);
      for (const [tenantId, micros] of split.shares) charge(costs, tenantId, key, "shared", micros);
      total.idle += split.idle;
      if (split.idle > 0) {
        idle.push({
          line: { period, endpointName: spec.endpointName, model: spec.model },
          micros: split.idle,
        });
      }
    }
    endpointTotals.set(spec, total);
  }

  const { month, elapsed } = monthProgress(asOf);
  const selected = input.tenants
    .filter((t) => query.tenantId === undefined || t.tenant.id === query.tenantId)
    .sort((a, b) => (a.tenant.id < b.tenant.id ? -1 : 1));
  const tenants = selected.map((data) =>
    tenantReport(
      data,
      rowsOf.get(data.tenant.id) ?? new Map(),
      costs.get(data.tenant.id) ?? new Map(),
      input,
      elapsed,
    ),
  );

  const shown = specs.filter((s) => s.kind === "shared" || selected.some((t) => t.tenant.id === s.tenantId));
  const endpoints = shown.map((spec): EndpointReport => {
    const total = endpointTotals.get(spec) ?? { hours: 0, cost: 0, idle: 0 };
    return {
      endpointName: spec.endpointName,
      model: spec.model,
      kind: spec.kind,
      tenantId: spec.tenantId ?? null,
      instanceType: spec.instanceType ?? null,
      instanceCount: spec.instanceCount,
      hourlyPriceUsd: spec.hourlyPrice ?? null,
      instanceHours: total.hours,
      costUsd: usd(total.cost),
      tenantsUsd: usd(total.cost - total.idle),
      idleUsd: usd(total.idle),
    };
  });
  const idleMicros = idle.reduce((sum, i) => sum + i.micros, 0);
  const tenantsMicros = selected.reduce(
    (sum, t) =>
      sum + [...(costs.get(t.tenant.id)?.values() ?? [])].reduce((s, c) => s + c.shared + c.dedicated, 0),
    0,
  );
  const flags = [
    ...shown
      .filter((s) => s.hourlyPrice === undefined)
      .map(
        (s) =>
          `endpoint ${s.endpointName}: no price (${s.instanceType ? `reporting.instancePrices has no ${s.instanceType}` : "no instanceType in the stage config"}); its cost reads 0`,
      ),
    ...tenants
      .filter((t) => t.reconciliation.status !== "match")
      .map(
        (t) =>
          `tenant ${t.tenantId}: ${month} ledger ${t.reconciliation.ledgerTokens} tokens, limiter ${t.reconciliation.limiterTokens} (difference ${t.reconciliation.difference}${t.reconciliation.status === "calls_in_flight" ? `, ${t.reconciliation.callsInFlight} calls in flight` : ""})`,
      ),
    ...tenants.flatMap((t) => metricFlags(t.tenantId, t.cloudwatch?.reconciliation ?? [])),
  ];
  const read = metrics.available ? metrics.read : undefined;
  return {
    object: "report",
    from: query.from,
    to: query.to,
    period: query.period,
    tenantId: query.tenantId ?? null,
    generatedAt: new Date(asOf).toISOString(),
    currency: "USD",
    outputTokenWeight: weight,
    tenants,
    endpoints,
    idle: idle.map(({ line, micros }) => ({ ...line, costUsd: usd(micros) })),
    totals: {
      tenantsUsd: usd(tenantsMicros),
      idleUsd: usd(idleMicros),
      costUsd: usd(tenantsMicros + idleMicros),
    },
    cloudwatch: {
      available: read !== undefined,
      queries: read?.queries ?? 0,
      calls: read?.calls ?? 0,
      note: metrics.available ? null : metrics.note,
    },
    flags,
  };
}

function tenantReport(
  data: TenantData,
  usage: Map<string, UsageRow>,
  costs: Map<string, RowCost>,
  input: ReportInput,
  elapsed: number,
): TenantReport {
  const keys = [...new Set([...usage.keys(), ...costs.keys()])].sort();
  const rows = keys.map((key): ReportRow => {
    const { period, model } = usage.get(key) ?? (costs.get(key) as RowCost);
    const cost = costs.get(key) ?? { shared: 0, dedicated: 0 };
    return {
      period,
      model,
      ...figuresOf(usage.get(key)?.counters ?? {}),
      ...costsOf(cost.shared, cost.dedicated),
    };
  });
  const all = [...usage.values()].reduce((sum, r) => addCounters(sum, r.counters), {});
  const shared = [...costs.values()].reduce((sum, c) => sum + c.shared, 0);
  const dedicated = [...costs.values()].reduce((sum, c) => sum + c.dedicated, 0);
  const { tenant } = data;
  const totals = figuresOf(all);
  const today = dayOf(input.asOf);
  const figures = input.metrics?.available ? input.metrics.read.figures.get(tenant.id) : undefined;
  const tier = Object.hasOwn(input.config.tiers, tenant.tier) ? input.config.tiers[tenant.tier] : undefined;
  const monthlyTokens = tier ? (tenant.limits?.monthlyTokens ?? tier.limits.monthlyTokens) : null;
  return {
    tenantId: tenant.id,
    name: tenant.name,
    tier: tenant.tier,
    status: tenant.status,
    totals: { ...totals, ...costsOf(shared, dedicated) },
    rows,
    budget: budgetOf(data.limiter, monthlyTokens, elapsed),
    reconciliation: reconcile(data.monthUsage, data.limiter),
    ...tenantMetrics(figures, totals, {
      usage: data.usage,
      callsInFlight: data.limiter.callsInFlight,
      asOf: input.asOf,
      includesToday: input.query.from <= today && today <= input.query.to,
    }),
  };
}

const costsOf = (shared: number, dedicated: number): Costs => ({
  sharedCostUsd: usd(shared),
  dedicatedCostUsd: usd(dedicated),
  costUsd: usd(shared + dedicated),
});
