/**
 * How many retries one Lambda instance may send one endpoint: each call earns a tenth of a retry,
 * each retry spends a whole one, and at most RETRY_BURST are saved up. Over any stretch of time,
 * retries <= RETRY_BURST + calls / CALLS_PER_RETRY, so a failing endpoint sees about 10% more calls
 * rather than three times as many (docs/adr/0011-retries-and-model-errors.md).
 */

/** One retry per ten calls: retries add at most 10% to the load of an endpoint already failing. */
export const CALLS_PER_RETRY = 10;

/** Retries saved up: an idle or fresh instance can still ride out a short throttle on its first calls. */
export const RETRY_BURST = 5;

/** Credits are counted in whole calls, so ten calls make exactly one retry (no floating-point drift). */
const CAPACITY = RETRY_BURST * CALLS_PER_RETRY;

export class RetryBudget {
  private credits = CAPACITY;

  /** A call to the endpoint (its first attempt): earns a tenth of a retry. */
  recordCall(): void {
    this.credits = Math.min(CAPACITY, this.credits + 1);
  }

  /** Takes one retry if the budget holds one; false when the endpoint has had too many lately. */
  trySpend(): boolean {
    if (this.credits < CALLS_PER_RETRY) return false;
    this.credits -= CALLS_PER_RETRY;
    return true;
  }
}

/** Endpoints whose budgets an instance keeps; the oldest is dropped beyond this (dedicated endpoints are many). */
const MAX_ENDPOINTS = 500;
const budgets = new Map<string, RetryBudget>();

/** This instance's budget for `endpointName`, created full on first use. */
export function retryBudgetFor(endpointName: string): RetryBudget {
  let budget = budgets.get(endpointName);
  if (!budget) {
    budget = new RetryBudget();
    budgets.set(endpointName, budget);
    if (budgets.size > MAX_ENDPOINTS) {
      const oldest = budgets.keys().next().value;
      if (oldest !== undefined) budgets.delete(oldest);
    }
  }
  return budget;
}
