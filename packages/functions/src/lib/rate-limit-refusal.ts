/**
 * How a limited call is answered: OpenAI's 429 shapes and x-ratelimit-* headers, each refusal naming
 * the limit that refused it with that limit's numbers, and `retry-after` the expected wait.
 */
import { AtriumError } from "@atrium/core/errors";
import { type LimiterSnapshot, liveLeases, type Refusal, tatsFor } from "@atrium/core/limiter-item";
import {
  formatDuration,
  gcraState,
  requestGcra,
  type ShardLimits,
  type TenantLimits,
  tokenGcra,
} from "@atrium/core/limits";

export interface RefusedCall {
  refusal: Refusal;
  /** Tokens the call would have reserved. */
  tokens: number;
  shard: ShardLimits;
  whole: TenantLimits;
  snapshot: LimiterSnapshot;
  now: number;
}

/** A 429 from the limiter, naming the limit that refused the call (the ledger counts refusals by it). */
export class RefusalError extends AtriumError {
  constructor(
    readonly reason: Refusal["reason"],
    ...[status, type, code, message]: ConstructorParameters<typeof AtriumError>
  ) {
    super(status, type, code, message);
  }
}

export function refusalError(call: RefusedCall): RefusalError {
  const { refusal, whole, shard, snapshot, now } = call;
  const budget = refusal.reason === "monthly_budget";
  const held = budget ? heldReservations(call) : 0;
  const retryAfter = held > 0 ? HELD_BUDGET_WAIT_MICROS : refusal.retryAfter;
  const ms = Math.max(1, Math.ceil(retryAfter / 1000));
  const err = budget
    ? new RefusalError(
        refusal.reason,
        429,
        "insufficient_quota",
        "insufficient_quota",
        budgetMessage(call, held),
      )
    : new RefusalError(
        refusal.reason,
        429,
        refusal.reason === "tokens" ? "tokens" : "requests",
        refusal.reason === "endpoint_busy" ? "endpoint_busy" : "rate_limit_exceeded",
        `${rateMessage(call)}${shardNote(call)}. Please try again in ${formatDuration(refusal.retryAfter)}.`,
      );
  err.headers = {
    ...rateLimitHeaders(shard, whole, snapshot, now),
    "retry-after": String(Math.ceil(ms / 1000)),
    "retry-after-ms": String(ms),
    // Retrying cannot help a spent budget; OpenAI's clients honour this header. A budget held by
    // reservations that may come back is worth one more try.
    ...(budget ? { "x-should-retry": held > 0 ? "true" : "false" } : {}),
  };
  return err;
}

/**
 * How long a client is told to wait when the budget is held by reservations still out: a call in
 * flight gives back what it did not use when it ends, and an allotment's unused tokens go back about
 * a second after the tenant's last call (ADR 0004). Like a concurrency refusal's least wait.
 */
const HELD_BUDGET_WAIT_MICROS = 1_000_000;

/**
 * The leases (calls in flight, slots of allotments) on the refusing shard: while there are any, the
 * month's count includes reservations whose unused part comes back, so the refusal may not last.
 * None when the call could never fit the budget.
 */
function heldReservations({ tokens, whole, snapshot, now }: RefusedCall): number {
  return tokens > whole.monthlyTokens ? 0 : liveLeases(snapshot, now);
}

function budgetMessage({ refusal, tokens, whole }: RefusedCall, held: number): string {
  const renews = "it renews at the start of next month (UTC)";
  if (tokens > whole.monthlyTokens) {
    return `This call reserves ${tokens} tokens, more than this tenant's whole monthly budget of ${whole.monthlyTokens}. Lower max_tokens or shorten the prompt.`;
  }
  const left = refusal.monthRemaining ?? 0;
  const refused = `This tenant's monthly budget of ${whole.monthlyTokens} tokens has ${left} left, fewer than the ${tokens} this call reserves`;
  if (held === 0) return `${refused}; ${renews}.`;
  return `${refused}, while ${held} of its calls in flight or held slots still count their whole reservations; what they leave unused comes back when they end. Please try again in ${formatDuration(HELD_BUDGET_WAIT_MICROS)}; if the budget is spent, ${renews}.`;
}

function rateMessage({ refusal, tokens, whole }: RefusedCall): string {
  switch (refusal.reason) {
    case "tokens":
      return `Rate limit reached for tokens per minute (TPM): limit ${whole.tokensPerMinute}, this call reserves ${tokens}`;
    case "concurrency":
      return `Too many calls in flight at once: limit ${whole.concurrency}`;
    case "contention":
      return "The rate limiter is busy for this tenant";
    case "endpoint_busy":
      return `This model's shared endpoint is at capacity, and this tenant already has its fair share of ${refusal.share ?? 1} calls in flight on it`;
    default:
      return `Rate limit reached for requests per minute (RPM): limit ${whole.requestsPerMinute}, burst ${whole.burst}`;
  }
}

/** A sharded tenant is refused by one shard's part of a limit: say so, with that part. */
function shardNote({ refusal, shard, whole }: RefusedCall): string {
  if (whole.shards === 1) return "";
  const parts: Partial<Record<Refusal["reason"], number>> = {
    requests: shard.requestsPerMinute,
    tokens: shard.tokensPerMinute,
    concurrency: shard.concurrency,
  };
  const part = parts[refusal.reason];
  return part === undefined
    ? ""
    : ` (split over ${whole.shards} limiter shards; this call's shard has ${part})`;
}

/** OpenAI's x-ratelimit-* headers, from the limiter item as this admission left it. */
export function rateLimitHeaders(
  limits: ShardLimits,
  whole: TenantLimits,
  snapshot: LimiterSnapshot,
  now: number,
): Record<string, string> {
  const tats = tatsFor(snapshot, limits, now);
  const requests = gcraState(requestGcra(limits), tats.requestTat, now);
  const tokens = gcraState(tokenGcra(limits), tats.tokenTat, now);
  return {
    "x-ratelimit-limit-requests": String(whole.requestsPerMinute),
    "x-ratelimit-remaining-requests": String(requests.remaining * limits.shards),
    "x-ratelimit-reset-requests": formatDuration(requests.resetIn),
    "x-ratelimit-limit-tokens": String(whole.tokensPerMinute),
    "x-ratelimit-remaining-tokens": String(tokens.remaining * limits.shards),
    "x-ratelimit-reset-tokens": formatDuration(tokens.resetIn),
  };
}
