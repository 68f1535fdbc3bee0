/**
 * Gathers a report's data and builds it: every tenant from the directory, each tenant's ledger by
 * one Query per range (never a scan), its limiter items by consistent GetItem, and the shown
 * tenants' CloudWatch figures by batched GetMetricData, read alongside.
 */
import type { StageConfig } from "../config";
import type { DynamoClient } from "../dynamodb/client";
import { liveLeases } from "../limiter-item";
import { LimiterStore } from "../limiter-store";
import { getProfile, tenantNotFound } from "../profiles";
import type { Tenant } from "../tenant";
import { listTenants } from "../tenant-directory";
import type { Table } from "../transaction";
import { dayOf, readLedger } from "../usage-ledger";
import type { LimiterMonth } from "./budget";
import { buildReport, type MetricSource, type Report, type TenantData } from "./build-report";
import { type MetricsClient, readMetricFigures } from "./metric-figures";
import { monthProgress, type ReportQuery } from "./report-query";

export interface ReportSources {
  /** The tenant table (its directory index lists tenants). */
  tenants: Table;
  /** A client that may Query the usage table and GetItem the limiter table, for every tenant. */
  db: DynamoClient;
  usageTable: string;
  limiterTable: string;
  config: StageConfig;
  /** CloudWatch, for latency and the reconciliation with it; without it the report says they are unavailable. */
  metrics?: MetricsClient;
}

/** Tenants read at once: enough to hide DynamoDB's latency, few enough not to throttle it. */
const PARALLEL_TENANTS = 16;

/** `onProgress(done, total)` after each tenant's data is in, for a progress line on long reports. */
export async function loadReport(
  sources: ReportSources,
  query: ReportQuery,
  asOf = Date.now(),
  onProgress?: (done: number, total: number) => void,
): Promise<Report> {
  const tenants = await allTenants(sources.tenants);
  if (query.tenantId !== undefined && !tenants.some((t) => t.id === query.tenantId)) {
    // The directory is an index, a moment behind: a tenant just created is read from its profile.
    const profile = await getProfile(sources.tenants, query.tenantId);
    if (!profile) throw tenantNotFound(query.tenantId);
    tenants.push(profile.tenant);
  }
  const shown = query.tenantId === undefined ? tenants.map((t) => t.id) : [query.tenantId];
  const metrics = readMetrics(sources, shown, query);
  const { month, firstDay } = monthProgress(asOf);
  const today = dayOf(asOf);
  const limiter = new LimiterStore(sources.db, sources.limiterTable);
  const data: TenantData[] = [];
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < tenants.length; i = next++) {
      const tenant = tenants[i] as Tenant;
      const usage = await readLedger(sources.db, sources.usageTable, tenant.id, query.from, query.to);
      // The month's ledger too, unless the report's days already hold all of it.
      const monthUsage =
        query.from <= firstDay && query.to >= today
          ? usage
          : await readLedger(sources.db, sources.usageTable, tenant.id, firstDay, today);
      data.push({ tenant, usage, monthUsage, limiter: await limiterMonth(limiter, tenant, month, asOf) });
      onProgress?.(data.length, tenants.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_TENANTS, tenants.length) }, worker));
  return buildReport({ query, asOf, config: sources.config, tenants: data, metrics: await metrics });
}

/** CloudWatch's figures, or why there are none (none without a client: the report says so). */
async function readMetrics(
  sources: ReportSources,
  tenantIds: string[],
  query: ReportQuery,
): Promise<MetricSource | undefined> {
  if (!sources.metrics) return undefined;
  try {
    return { available: true, read: await readMetricFigures(sources.metrics, tenantIds, query) };
  } catch (err) {
    const { name, message } = err as Error;
    return {
      available: false,
      note: `CloudWatch could not be read (${name}: ${message}): latency and the reconciliation with it are unavailable.`,
    };
  }
}

async function allTenants(table: Table): Promise<Tenant[]> {
  const tenants: Tenant[] = [];
  let cursor: string | undefined;
  do {
    const page = await listTenants(table, { limit: 1000, ...(cursor ? { cursor } : {}) });
    tenants.push(...page.tenants);
    cursor = page.nextCursor;
  } while (cursor);
  return tenants;
}

/** The month's total over the tenant's shards; a shard beyond those in use reads as empty. */
async function limiterMonth(
  store: LimiterStore,
  tenant: Tenant,
  month: string,
  asOf: number,
): Promise<LimiterMonth> {
  const shards = Math.max(1, tenant.limiterShards ?? 1);
  const snapshots = await Promise.all(
    Array.from({ length: shards }, (_, shard) => store.read(tenant.id, shard)),
  );
  return {
    month,
    usedTokens: snapshots.reduce((sum, s) => sum + (s.month === month ? s.monthUsed : 0), 0),
    callsInFlight: snapshots.reduce((sum, s) => sum + liveLeases(s, asOf * 1000), 0),
  };
}
