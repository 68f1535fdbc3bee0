/**
 * What endpoints cost and who pays (docs/reports.md): an endpoint's instances are always on, so a
 * period costs instances x hours begun x the instance type's hourly price. A dedicated endpoint's cost
 * is its tenant's; a shared endpoint's is split between tenants by weighted tokens, and what no
 * tenant used is idle. Amounts are integer micro-dollars, apportioned so the parts add up exactly.
 */
import type { ReportingConfig, StageConfig } from "../config";
import type { Tenant } from "../tenant";

export interface EndpointSpec {
  endpointName: string;
  model: string;
  kind: "shared" | "dedicated";
  /** The tenant a dedicated endpoint serves. */
  tenantId?: string;
  instanceType?: string;
  instanceCount: number;
  /** USD per instance hour; absent: the endpoint is unpriced (its cost reads 0 and the report flags it). */
  hourlyPrice?: number;
  /** A shared endpoint's capacity in weighted tokens per instance hour, when configured. */
  tokensPerInstanceHour?: number;
}

interface Instances {
  instanceType?: string | undefined;
  instanceCount?: number | undefined;
  create?: { instanceType: string; minInstances: number } | undefined;
}

function instancesOf(endpoint: Instances | undefined, reporting: ReportingConfig) {
  const instanceType = endpoint?.instanceType ?? endpoint?.create?.instanceType;
  const hourlyPrice =
    instanceType !== undefined && Object.hasOwn(reporting.instancePrices, instanceType)
      ? reporting.instancePrices[instanceType]
      : undefined;
  return {
    ...(instanceType !== undefined ? { instanceType } : {}),
    instanceCount: endpoint?.instanceCount ?? endpoint?.create?.minInstances ?? 1,
    ...(hourlyPrice !== undefined ? { hourlyPrice } : {}),
  };
}

/**
 * The stage's shared endpoints, and every dedicated endpoint the tenants have registered (what they
 * run on from the stage's `dedicatedEndpoints` entry of the same name, when there is one).
 */
export function endpointsOf(
  config: Pick<StageConfig, "sharedEndpoints" | "dedicatedEndpoints" | "reporting">,
  tenants: readonly Tenant[],
): EndpointSpec[] {
  const shared = config.sharedEndpoints.map(
    (e): EndpointSpec => ({
      endpointName: e.endpointName,
      model: e.model,
      kind: "shared",
      ...instancesOf(e, config.reporting),
      ...(e.tokensPerInstanceHour !== undefined ? { tokensPerInstanceHour: e.tokensPerInstanceHour } : {}),
    }),
  );
  const dedicated = tenants.flatMap((tenant) =>
    Object.entries(tenant.endpoints).map(
      ([model, e]): EndpointSpec => ({
        endpointName: e.endpointName,
        model,
        kind: "dedicated",
        tenantId: tenant.id,
        ...instancesOf(
          config.dedicatedEndpoints.find((d) => d.endpointName === e.endpointName),
          config.reporting,
        ),
      }),
    ),
  );
  return [...shared, ...dedicated];
}

/** An endpoint's cost over `hours` hours, in micro-dollars (0 when unpriced). */
export function capacityMicros(endpoint: EndpointSpec, hours: number): number {
  return Math.round(endpoint.instanceCount * hours * (endpoint.hourlyPrice ?? 0) * 1_000_000);
}

/**
 * A shared endpoint's cost for one period, split: each tenant pays cost x weight / D and idle is
 * cost x (D - used) / D, where D is the period's capacity in weighted tokens when configured and
 * exceeded by nobody, else the weighted tokens used. No traffic at all: the whole cost is idle.
 * Remainders go to the largest fractional parts (ties: tenants in the given order, idle last), so
 * the shares and idle add up to `costMicros` exactly.
 */
export function splitSharedCost(
  costMicros: number,
  weights: ReadonlyMap<string, number>,
  capacityTokens?: number,
): { shares: Map<string, number>; idle: number } {
  const used = [...weights.values()].reduce((sum, w) => sum + w, 0);
  const whole = Math.max(used, capacityTokens ?? 0);
  if (whole === 0) return { shares: new Map([...weights.keys()].map((id) => [id, 0])), idle: costMicros };
  const parts = [...weights.entries(), [IDLE, whole - used] as const];
  const cost = BigInt(costMicros);
  const total = BigInt(whole);
  const exact = parts.map(([id, weight]) => {
    const scaled = cost * BigInt(weight);
    return { id, amount: scaled / total, remainder: scaled % total };
  });
  let left = cost - exact.reduce((sum, part) => sum + part.amount, 0n);
  const byRemainder = exact
    .map((part, order) => ({ part, order }))
    .sort((a, b) =>
      a.part.remainder === b.part.remainder
        ? a.order - b.order
        : a.part.remainder > b.part.remainder
          ? -1
          : 1,
    );
  for (const { part } of byRemainder) {
    if (left === 0n) break;
    part.amount += 1n;
    left -= 1n;
  }
  const shares = new Map<string, number>();
  let idle = 0;
  for (const part of exact) {
    if (part.id === IDLE) idle = Number(part.amount);
    else shares.set(part.id, Number(part.amount));
  }
  return { shares, idle };
}

/** Not a tenant id (those never start with a space), so idle cannot collide with one. */
const IDLE = " idle";

/** What a row of a tenant has been charged, in micro-dollars, by its shared and dedicated endpoints. */
export interface RowCost {
  period: string;
  model: string;
  shared: number;
  dedicated: number;
}

/** Micro-dollars per tenant, then per row key: what its shared and dedicated endpoints cost it. */
export type CostLedger = Map<string, Map<string, RowCost>>;

/** Adds `micros` to the tenant's row `key` ("period model"). */
export function charge(
  costs: CostLedger,
  tenantId: string,
  key: string,
  part: "shared" | "dedicated",
  micros: number,
) {
  const rows = costs.get(tenantId) ?? new Map<string, RowCost>();
  const [period, model] = [key.slice(0, key.indexOf(" ")), key.slice(key.indexOf(" ") + 1)];
  const row = rows.get(key) ?? { period, model, shared: 0, dedicated: 0 };
  row[part] += micros;
  rows.set(key, row);
  costs.set(tenantId, rows);
}
