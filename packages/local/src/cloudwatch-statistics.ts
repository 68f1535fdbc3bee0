/**
 * CloudWatch's statistics over one period's datapoints: the five basic ones and percentiles (pNN).
 * Percentiles are exact here (nearest rank); CloudWatch's own are approximations of the same.
 */

export const BASIC_STATISTICS = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"] as const;
export type BasicStatistic = (typeof BASIC_STATISTICS)[number];

export type Stat = { kind: "basic"; name: BasicStatistic } | { kind: "percentile"; name: string; p: number };

/** What one period holds: the sums a StatisticSet carries, and each value's count where it is known. */
export interface Aggregate {
  sampleCount: number;
  sum: number;
  min: number;
  max: number;
  /** value → how many times; null once a StatisticSet (which carries no distribution) was added. */
  values: Map<number, number> | null;
}

const PERCENTILE = /^p(\d{1,2}(\.\d+)?|100(\.0+)?)$/;

export function parseStat(text: string): Stat | undefined {
  if ((BASIC_STATISTICS as readonly string[]).includes(text)) {
    return { kind: "basic", name: text as BasicStatistic };
  }
  const match = PERCENTILE.exec(text);
  return match?.[1] ? { kind: "percentile", name: text, p: Number(match[1]) } : undefined;
}

export function emptyAggregate(): Aggregate {
  return {
    sampleCount: 0,
    sum: 0,
    min: Number.POSITIVE_INFINITY,
    max: Number.NEGATIVE_INFINITY,
    values: new Map(),
  };
}

/** Values with their counts (EMF arrays, PutMetricData Values/Counts). */
export function valuesAggregate(values: number[], counts: number[] = values.map(() => 1)): Aggregate {
  const aggregate = emptyAggregate();
  values.forEach((value, i) => {
    const count = counts[i] ?? 1;
    aggregate.sampleCount += count;
    aggregate.sum += value * count;
    aggregate.min = Math.min(aggregate.min, value);
    aggregate.max = Math.max(aggregate.max, value);
    aggregate.values?.set(value, (aggregate.values.get(value) ?? 0) + count);
  });
  return aggregate;
}

/** Adds `from` into `into` (both one period's, or one stored cell's, data). */
export function mergeAggregate(into: Aggregate, from: Aggregate): void {
  into.sampleCount += from.sampleCount;
  into.sum += from.sum;
  into.min = Math.min(into.min, from.min);
  into.max = Math.max(into.max, from.max);
  if (into.values && from.values) {
    for (const [value, count] of from.values) into.values.set(value, (into.values.get(value) ?? 0) + count);
  } else {
    into.values = null;
  }
}

/** The statistic's value, or undefined when the data cannot give it (a percentile of StatisticSets). */
export function statValue(aggregate: Aggregate, stat: Stat): number | undefined {
  if (aggregate.sampleCount === 0) return undefined;
  if (stat.kind === "percentile") return percentile(aggregate, stat.p);
  switch (stat.name) {
    case "SampleCount":
      return aggregate.sampleCount;
    case "Sum":
      return aggregate.sum;
    case "Average":
      return aggregate.sum / aggregate.sampleCount;
    case "Minimum":
      return aggregate.min;
    case "Maximum":
      return aggregate.max;
  }
}

/** Nearest rank: the smallest value that at least p% of the samples do not exceed. */
function percentile(aggregate: Aggregate, p: number): number | undefined {
  if (!aggregate.values) return undefined;
  const sorted = [...aggregate.values].sort((a, b) => a[0] - b[0]);
  const total = sorted.reduce((n, [, count]) => n + count, 0);
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const [value, count] of sorted) {
    seen += count;
    if (seen >= rank) return value;
  }
  return aggregate.max;
}
