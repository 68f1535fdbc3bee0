/**
 * Admission and settlement on a tenant's limiter items: every limit checked and reserved by one
 * conditional UpdateItem, with no read; a shard that runs out of month allowance borrows from the
 * tenant's other shards. The proof of exactness is in docs/adr/0004-exact-limits.md.
 */
import { randomUUID } from "node:crypto";
import { withoutForgotten } from "./allotment";
import {
  type GiveBackParts,
  type GiveBackWrite,
  giveBackUpdate,
  holdLeasesUpdate,
  partsStillOurs,
} from "./allotment-updates";
import { type DynamoClient, isConditionFailed } from "./dynamodb/client";
import type { UpdateInput } from "./dynamodb/operations";
import { DELIMITER } from "./ids";
import {
  type AdmitRequest,
  type AllotmentRequest,
  admissionCost,
  chargeMark,
  emptySnapshot,
  exactRefusal,
  headroom,
  type LimiterSnapshot,
  leaseExpiry,
  limiterKey,
  needsRescale,
  type Refusal,
  toSnapshot,
} from "./limiter-item";
import {
  admissionUpdate,
  creditUpdate,
  dropElementsUpdate,
  type Lease,
  lendUpdate,
  rescaleUpdate,
  settleUpdate,
  type Transfer,
} from "./limiter-updates";
import { monthOf, tokenGcra } from "./limits";
import { guessed, type Lead, leadAfter, leadSeen } from "./tat-lead";
import { safeRefund } from "./tat-refund";

export type Admission =
  | {
      admitted: true;
      lease: Lease;
      /** The lease elements added: the call's one, or an allotment's slots (possibly none). */
      elements: string[];
      snapshot: LimiterSnapshot;
      writes: number;
    }
  | ({ admitted: false; snapshot: LimiterSnapshot; writes: number } & Refusal);

export interface Settlement {
  writes: number;
  /** False when the lease was no longer held (the tenant erased, or the lease already settled): nothing changed. */
  settled: boolean;
}

const MAX_ATTEMPTS = 4;
const CONTENTION_RETRY_MICROS = 50_000;
/** Attempts per lender and per credit: each refused one returns the fresh state, so each retry is informed. */
const LEND_ATTEMPTS = 3;
/** Only a missing item or an older month fails a credit: the wrong form, then a concurrent start of the month. */
const CREDIT_ATTEMPTS = 3;
/** A loan's marker outlives any retry of its credit (the client's retries take seconds), then is dropped. */
const LOAN_MARKER_MICROS = 60_000_000;

/** A write's outcome: the attributes it set, or (its condition failed) the item as it was, if any. */
type Outcome =
  | { ok: true; updated: Partial<LimiterSnapshot> }
  | { ok: false; item: LimiterSnapshot | undefined };

export class LimiterStore {
  /** Per container: the last state seen per limiter item, used only to choose the update's form. */
  private readonly known = new Map<string, LimiterSnapshot>();
  /** Per container and item: how far ahead other containers' takes were last seen to keep the TATs. */
  private readonly leads = new Map<string, Lead>();

  constructor(
    private readonly db: DynamoClient,
    private readonly tableName: string,
  ) {}

  /** The client this store writes with (one store per tenant when clients are tenant-scoped). */
  get client(): DynamoClient {
    return this.db;
  }

  async admit(request: AdmitRequest): Promise<Admission> {
    const cacheKey = itemKey(request.tenantId, request.shard);
    const month = monthOf(request.now);
    const elements = leaseElements(request);
    const element = elements[0] ?? "";
    let snapshot = this.known.get(cacheKey);
    let writes = 0;
    let retriedWithGiveBack = false;
    // The one retry that keeps a give-back riding along is not counted against the attempts.
    for (let attempt = 0; attempt < MAX_ATTEMPTS + (retriedWithGiveBack ? 1 : 0); attempt++) {
      if (snapshot && needsRescale(snapshot, request.limits, request.now)) {
        // The tenant's limits changed: once per item and change, before anything is decided on it.
        writes += 1;
        snapshot = await this.rescale(request, snapshot);
        continue;
      }
      writes += 1;
      // Only a take (an allotment) guesses from a lead: the other containers' takes are what it follows.
      const lead = request.allotment ? this.leads.get(cacheKey) : undefined;
      const guess = guessed(snapshot, lead, request.now);
      const outcome = await this.write(admissionUpdate(this.tableName, request, guess, month, elements));
      if (!outcome.ok && outcome.item) this.noteLead(cacheKey, outcome.item, request);
      if (!outcome.ok && !outcome.item && request.allotment?.renewal) {
        // The item is gone (the tenant erased): nothing to renew, and nothing may re-create it.
        this.known.delete(cacheKey);
        return { admitted: false, reason: "contention", retryAfter: 0, snapshot: emptySnapshot(), writes };
      }
      const giveBack = request.allotment?.giveBack;
      if (!outcome.ok && giveBack && outcome.item && !retriedWithGiveBack) {
        const actual = outcome.item;
        if (!exactRefusal(request, actual, month)) {
          // Most often the form was guessed from an item this container's own concurrent writes had
          // moved on: once more, from the item as it is, the give-back still riding along without the
          // parts a restart forgot. A wrong guess or give-back only fails again (then the path below).
          retriedWithGiveBack = true;
          snapshot = actual;
          this.known.set(cacheKey, snapshot);
          request = {
            ...request,
            allotment: {
              ...(request.allotment as AllotmentRequest),
              giveBack: withoutForgotten(giveBack, actual),
            },
          };
          continue;
        }
      }
      if (!outcome.ok && giveBack && outcome.item) {
        // The give-back could not ride along (a restart, a new month, a limit): on its own, then a plain take.
        writes += await this.giveBack(
          { tenantId: request.tenantId, shard: request.shard, giveBack, release: [], now: request.now },
          outcome.item,
        );
        request = {
          ...request,
          allotment: { ...(request.allotment as AllotmentRequest), giveBack: undefined },
        };
        snapshot = this.known.get(cacheKey) ?? outcome.item;
        continue;
      }
      if (outcome.ok) {
        // Either month form leaves the item in `month`; the same-month one does not return it.
        const after = { ...merged(snapshot ?? emptySnapshot(), outcome.updated), month };
        this.known.set(cacheKey, after);
        if (lead) this.leads.set(cacheKey, leadAfter(after, request.now));
        const lease: Lease = {
          tenantId: request.tenantId,
          shard: request.shard,
          element,
          tokens: request.tokens,
          tokenInterval: tokenGcra(request.limits).interval,
          tokenResets: after.tokenResets,
          tokenMark: chargeMark(after.tokenTat, after.tokenRefunded),
          month,
          ...(request.endpoint ? { endpoint: request.endpoint.name } : {}),
        };
        return { admitted: true, lease, elements, snapshot: after, writes };
      }
      const actual = outcome.item ?? emptySnapshot();
      snapshot = actual;
      this.known.set(cacheKey, snapshot);

      // A refusal is decided, and its wait told, in the scale the item will keep.
      if (needsRescale(snapshot, request.limits, request.now)) continue;
      const refusal = exactRefusal(request, snapshot, month);
      const { shards, monthlyTokens } = request.limits;
      if (refusal?.reason === "monthly_budget" && shards > 1 && request.tokens <= monthlyTokens) {
        const loan = await this.borrow(request, snapshot, month);
        writes += loan.writes;
        snapshot = this.known.get(cacheKey) ?? snapshot;
        if (loan.enough) continue;
        return { admitted: false, ...refusal, monthRemaining: loan.seen, snapshot, writes };
      }
      if (refusal) return { admitted: false, ...refusal, snapshot, writes };
      const isExpired = (lease: string) => leaseExpiry(lease) <= request.now;
      const expired = snapshot.leases.filter(isExpired);
      if (expired.length > 0) {
        // Leases of holders that never settled: drop them, then try again.
        writes += 1;
        await this.write(
          dropElementsUpdate(this.tableName, request.tenantId, request.shard, "leases", expired),
        );
        snapshot = { ...snapshot, leases: snapshot.leases.filter((lease) => !expired.includes(lease)) };
      }
      const endpoint = request.endpoint?.name;
      const expiredThere = endpoint ? (snapshot.endpointLeases?.[endpoint] ?? []).filter(isExpired) : [];
      if (endpoint && expiredThere.length > 0) {
        writes += 1;
        await this.write(
          dropElementsUpdate(this.tableName, request.tenantId, request.shard, { endpoint }, expiredThere),
        );
        snapshot = withoutEndpointLeases(snapshot, endpoint, expiredThere);
      }
    }
    return {
      admitted: false,
      reason: "contention",
      retryAfter: CONTENTION_RETRY_MICROS,
      snapshot: snapshot ?? emptySnapshot(),
      writes,
    };
  }

  /**
   * Releases the lease and replaces the reservation with what was used, never more than was
   * reserved: one UpdateItem, plus one more only when the month rolled over or the token TAT restarted
   * while the call ran. Both need the lease still held: an erased item is never re-created.
   */
  async settle(lease: Lease, usedTokens: number, now: number): Promise<Settlement> {
    const refund = lease.tokens - Math.min(lease.tokens, Math.max(0, usedTokens));
    const known = this.known.get(itemKey(lease.tenantId, lease.shard));
    // Giving tokens back to the TAT only matters while it runs far enough ahead of now (tat-refund.ts).
    const tat = refund > 0 ? safeRefund(refund * lease.tokenInterval, lease.tokenMark, now) : undefined;
    const parts = { tat, month: refund > 0 };
    this.forget(lease);
    const guarded = await this.write(settleUpdate(this.tableName, lease, refund, parts, true));
    if (guarded.ok) {
      if (known) this.known.set(itemKey(lease.tenantId, lease.shard), merged(known, guarded.updated));
      return { writes: 1, settled: true };
    }
    if (!guarded.item?.leases.includes(lease.element)) return { writes: 1, settled: false };
    const item = guarded.item;
    const tatStillOurs =
      item.tokenResets === lease.tokenResets && (item.tokenRefunded ?? 0) <= (parts.tat?.cap ?? 0);
    const stillOurs = {
      tat: tatStillOurs ? parts.tat : undefined,
      month: parts.month && item.month === lease.month,
    };
    const plain = await this.write(settleUpdate(this.tableName, lease, refund, stillOurs, false));
    return { writes: 2, settled: plain.ok };
  }

  /**
   * Gives an allotment's unused capacity back and releases the slots it no longer needs: one write,
   * guarded like a settle, plus one (guarded too) with only the parts still ours when a guard failed.
   * `seen`: the item as a refused write returned it, when known (then the first write is skipped).
   * Returns the writes.
   */
  async giveBack(write: GiveBackWrite, seen?: LimiterSnapshot): Promise<number> {
    const key = itemKey(write.tenantId, write.shard);
    const all = refundableParts(write);
    let writes = 0;
    let parts = seen && write.giveBack ? partsStillOurs(write.giveBack, seen, all) : all;
    if (!seen) {
      if (!hasWork(write, all)) return 0;
      writes += 1;
      const guarded = await this.write(giveBackUpdate(this.tableName, write, all));
      if (guarded.ok || !guarded.item || !write.giveBack) return this.noted(key, guarded, writes);
      parts = partsStillOurs(write.giveBack, guarded.item, all);
    }
    if (!hasWork(write, parts)) return writes;
    const ours = await this.write(giveBackUpdate(this.tableName, write, parts));
    return this.noted(key, ours, writes + 1);
  }

  /** Adds leases that replace slots already held (holdLeasesUpdate); false when the item is gone. */
  async holdLeases(write: { tenantId: string; shard: number; elements: string[]; endpoint?: string }) {
    const outcome = await this.write(holdLeasesUpdate(this.tableName, write));
    return outcome.ok;
  }

  private noted(key: string, outcome: Outcome, writes: number): number {
    const known = this.known.get(key);
    if (outcome.ok && known) this.known.set(key, merged(known, outcome.updated));
    else if (!outcome.ok && outcome.item) this.known.set(key, outcome.item);
    return writes;
  }

  /** The limiter item as stored (for usage reports; not on the admission path). */
  async read(tenantId: string, shard: number): Promise<LimiterSnapshot> {
    const { Item } = await this.db.get({
      TableName: this.tableName,
      Key: limiterKey(tenantId, shard),
      ConsistentRead: true,
    });
    return { ...emptySnapshot(), ...toSnapshot(Item ?? {}) };
  }

  /**
   * Moves month allowance to the request's shard from the tenant's other shards (shard 0 first, where
   * each month's budget starts), until the call fits. Each lender is charged by a conditional write
   * that keeps it within its own allowance, then the borrower is credited: a crash in between loses
   * the loan (refusing early), never spends it twice. `seen` is the month's remaining total as observed.
   */
  private async borrow(
    request: AdmitRequest,
    own: LimiterSnapshot,
    month: string,
  ): Promise<{ enough: boolean; seen: number; writes: number }> {
    const { tenantId, shard, limits, now } = request;
    const left = (state: LimiterSnapshot | undefined, of: number) =>
      state ? Math.max(0, headroom(state, month, limits.monthlyTokens, of)) : 0;
    const needed = request.tokens - headroom(own, month, limits.monthlyTokens, shard);
    // A fair share at a time, so a shard borrows about once per share rather than once per call.
    const chunk = Math.ceil(limits.monthlyTokens / limits.shards);
    let moved = 0;
    let seenElsewhere = 0;
    let writes = 0;
    for (let lender = 0; lender < limits.shards && moved < needed; lender++) {
      if (lender === shard) continue;
      let state = this.known.get(itemKey(tenantId, lender));
      let exact = false;
      for (let attempt = 0; attempt < LEND_ATTEMPTS && moved < needed; attempt++) {
        const wanted = Math.max(needed - moved, chunk);
        // What this container last saw only picks the form: the first write asks, a refusal tells exactly.
        const amount = exact ? Math.min(left(state, lender), wanted) : wanted;
        if (amount <= 0) break;
        const sameMonth = state === undefined || state.month === month;
        const transfer: Transfer = { tenantId, shard: lender, amount, month, sameMonth, now };
        writes += 1;
        const outcome = await this.write(lendUpdate(this.tableName, transfer, limits.monthlyTokens));
        if (outcome.ok) moved += amount;
        // A lend succeeds only in `month` and returns what it changed; a refused one returns the item.
        state = outcome.ok
          ? { ...(state ?? emptySnapshot()), ...outcome.updated, month }
          : (outcome.item ?? emptySnapshot());
        exact = true;
        this.known.set(itemKey(tenantId, lender), state);
      }
      if (exact) seenElsewhere += left(state, lender);
    }
    if (moved > 0) writes += await this.credit(request, own, month, moved);
    return { enough: moved >= needed, seen: left(own, shard) + moved + seenElsewhere, writes };
  }

  /**
   * Credits a loan to the borrower by an ADD that concurrent admissions and settles cannot fail; its
   * marker makes a retried credit fail instead of applying twice, and a failure showing the marker
   * means it was applied. Returns the writes.
   */
  private async credit(request: AdmitRequest, own: LimiterSnapshot, month: string, amount: number) {
    const { tenantId, shard, now } = request;
    const marker = `${now + LOAN_MARKER_MICROS}:${randomUUID()}`;
    let state = own;
    let writes = 0;
    for (let attempt = 1; attempt <= CREDIT_ATTEMPTS; attempt++) {
      const transfer: Transfer = { tenantId, shard, amount, month, sameMonth: state.month === month, now };
      writes += 1;
      const outcome = await this.write(creditUpdate(this.tableName, transfer, marker));
      if (outcome.ok) {
        this.known.set(itemKey(tenantId, shard), { ...state, ...outcome.updated, month });
        const expired = (outcome.updated.loans ?? []).filter((element) => leaseExpiry(element) <= now);
        if (expired.length === 0) return writes;
        await this.write(dropElementsUpdate(this.tableName, tenantId, shard, "loans", expired));
        return writes + 1;
      }
      state = outcome.item ?? emptySnapshot();
      this.known.set(itemKey(tenantId, shard), state);
      if (state.loans?.includes(marker)) return writes;
    }
    return writes;
  }

  /** One conditional UpdateItem; a failed condition is an outcome carrying the item as it was (if any). */
  private async write(input: UpdateInput): Promise<Outcome> {
    try {
      const { Attributes } = await this.db.update(input);
      return { ok: true, updated: toSnapshot(Attributes ?? {}) };
    } catch (err) {
      if (!isConditionFailed(err)) throw err;
      return {
        ok: false,
        item: err.item ? { ...emptySnapshot(), ...toSnapshot(err.item) } : undefined,
      };
    }
  }

  /** What a refused write showed of other writers ahead of this one (tat-lead.ts). */
  private noteLead(cacheKey: string, actual: LimiterSnapshot, request: AdmitRequest): void {
    const lead = leadSeen(actual, request.now, request.now + admissionCost(request).hold);
    if (lead) this.leads.set(cacheKey, lead);
    else this.leads.delete(cacheKey);
  }

  /** Rescales the item's TATs to the request's limits (rescaleUpdate); returns the item as it is now. */
  private async rescale(request: AdmitRequest, seen: LimiterSnapshot): Promise<LimiterSnapshot> {
    const { tenantId, shard, limits, now } = request;
    const outcome = await this.write(rescaleUpdate(this.tableName, tenantId, shard, seen, limits, now));
    const item = outcome.ok ? merged(seen, outcome.updated) : (outcome.item ?? emptySnapshot());
    this.known.set(itemKey(tenantId, shard), item);
    return item;
  }

  /** Our own settle moved the item: the next admission should not count its lease. */
  private forget(lease: Lease): void {
    const key = itemKey(lease.tenantId, lease.shard);
    const known = this.known.get(key);
    if (!known) return;
    known.leases = known.leases.filter((element) => element !== lease.element);
    if (lease.endpoint) this.known.set(key, withoutEndpointLeases(known, lease.endpoint, [lease.element]));
  }
}

/** The item after a write, from what was known and the attributes the write returned. */
function merged(known: LimiterSnapshot, updated: Partial<LimiterSnapshot>): LimiterSnapshot {
  const after = { ...known, ...updated };
  if (known.endpointLeases || updated.endpointLeases) {
    after.endpointLeases = { ...known.endpointLeases, ...updated.endpointLeases };
  }
  return after;
}

function withoutEndpointLeases(snapshot: LimiterSnapshot, endpoint: string, gone: string[]): LimiterSnapshot {
  const leases = snapshot.endpointLeases?.[endpoint];
  if (!leases) return snapshot;
  const kept = leases.filter((element) => !gone.includes(element));
  return { ...snapshot, endpointLeases: { ...snapshot.endpointLeases, [endpoint]: kept } };
}

const itemKey = (tenantId: string, shard: number) => `${tenantId}${DELIMITER}${shard}`;

/** The lease elements an admission adds: one per call, or an allotment's slots, all expiring together. */
function leaseElements(request: AdmitRequest): string[] {
  const expiry = request.now + request.leaseMicros;
  const slots = request.allotment?.slots;
  if (slots === undefined) return [`${expiry}:${request.leaseId}`];
  return Array.from({ length: slots }, (_, i) => `${expiry}:${request.leaseId}.${i}`);
}

/** What of a give-back may go back at its time: each TAT's safe part, and the month's tokens. */
function refundableParts(write: GiveBackWrite): GiveBackParts {
  const { giveBack, now } = write;
  if (!giveBack) return { requests: undefined, tokens: undefined, month: false };
  return {
    requests: safeRefund(giveBack.requestMicros, giveBack.requestMark, now),
    tokens: safeRefund(giveBack.tokenMicros, giveBack.tokenMark, now),
    month: giveBack.tokens > 0,
  };
}

function hasWork(write: GiveBackWrite, parts: GiveBackParts): boolean {
  return (
    write.release.length > 0 || parts.requests !== undefined || parts.tokens !== undefined || parts.month
  );
}
