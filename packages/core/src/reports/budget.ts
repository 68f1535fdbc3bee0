/** A tenant's monthly budget in a report: what the limiter has charged this month, and where that is heading. */

/** What the limiter's items hold for a tenant, summed over its shards. */
export interface LimiterMonth {
  /** The UTC month the total is for (YYYY-MM). */
  month: string;
  /** Tokens charged to `month`: settled usage plus what calls in flight have reserved (ADR 0004). */
  usedTokens: number;
  callsInFlight: number;
}

export interface BudgetFigures {
  month: string;
  usedTokens: number;
  /** The tenant's monthly budget; null when its tier is no longer configured. */
  monthlyTokens: number | null;
  /** At this month's rate so far, used tokens at the month's end: used / elapsed fraction of the month. */
  projectedTokens: number;
  /** Projected use as a percentage of the budget, one decimal; null without a budget. */
  projectedPercent: number | null;
}

/** `elapsed`: how far through the month the report was made, in (0, 1]. */
export function budgetOf(
  limiter: LimiterMonth,
  monthlyTokens: number | null,
  elapsed: number,
): BudgetFigures {
  const projectedTokens = Math.round(limiter.usedTokens / elapsed);
  return {
    month: limiter.month,
    usedTokens: limiter.usedTokens,
    monthlyTokens,
    projectedTokens,
    projectedPercent: monthlyTokens ? Math.round((projectedTokens / monthlyTokens) * 1000) / 10 : null,
  };
}
