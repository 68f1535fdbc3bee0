/**
 * Allotments as one container holds them (docs/adr/0004-exact-limits.md, Allotments): for a tenant
 * it sees often, one write takes a batch of request and token capacity and the slots its calls run
 * on, and calls are then admitted here without a write; the next take gives back what went unused.
 * A tenant seen rarely gets none: its calls are admitted one write each, as before.
 */
import { randomUUID } from "node:crypto";
import {
  Allotment,
  type AllotmentSize,
  allotmentSize,
  chargeAfter,
  MIN_RATE_PER_SECOND,
  mergeGiveBacks,
  SLOT_REUSE_MICROS,
  type Slot,
} from "@atrium/core/allotment";
import type { GiveBackWrite } from "@atrium/core/allotment-updates";
import type { GiveBack, LimiterSnapshot } from "@atrium/core/limiter-item";
import type { LimiterStore } from "@atrium/core/limiter-store";
import { monthOf, type ShardLimits, type TenantLimits } from "@atrium/core/limits";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { Holding } from "./allotment-holding";
import { atOnce, type StartUpkeep } from "./call-upkeep";
import { logger, metrics } from "./observability";

/** A call admitted from an allotment: what its settle gives back here. */
export interface AllottedCall {
  allotment: Allotment;
  slot: Slot;
  key: string;
  /** A stream that outlived its slot's cover holds its own lease instead (see keepForStream). */
  ownLease?: string;
  /** Stops the timers of keepForStream. */
  stopTimers?: () => void;
}

/** Tenants (per endpoint) a container remembers; those holding nothing are forgotten first. */
const MAX_HOLDINGS = 1000;
/** A tenant with no call here this long after its allotment's hold ended has gone quiet. */
const QUIET_MS = 1_000;
/** A stream still running this long before its slot's lease ends moves to a lease of its own. */
const MOVE_BEFORE_MS = 10_000;
/** A stream that could not move ends this long before its slot's lease ends, settling in time. */
const END_BEFORE_MS = 3_000;

export interface AllotmentDeps {
  storeFor: (tenantId: string) => LimiterStore;
  /** A call's lease (microseconds): a slot must outlive it to serve a new call. */
  callLeaseMicros: number;
  /**
   * When a renewal found due at an admission starts: the functions pass call-upkeep's, which starts
   * it once the call's model has the call (a stream's head, a buffered call's request sent) or its
   * response is sent, never before the model's request.
   */
  startRenewal?: StartUpkeep;
  /** Microseconds since the epoch, when a renewal starts; the admission's clock. */
  now?: () => number;
}

export function createAllotments({
  storeFor,
  callLeaseMicros,
  startRenewal = atOnce,
  now: clock = () => Date.now() * 1000,
}: AllotmentDeps) {
  const holdings = new Map<string, Holding>();

  function holdingFor(tenantId: string, whole: TenantLimits, endpoint: string | undefined): Holding {
    const key = `${tenantId}@${endpoint ?? ""}`;
    let holding = holdings.get(key);
    if (!holding) {
      const shard = whole.shards > 1 ? Math.floor(Math.random() * whole.shards) : 0;
      holding = new Holding(tenantId, shard, endpoint);
    }
    // Re-inserting keeps the map in least-recently-seen order; tenants holding nothing are forgotten first.
    holdings.delete(key);
    holdings.set(key, holding);
    if (holdings.size > MAX_HOLDINGS) forgetIdle();
    return holding;
  }

  /** Forgets the least recently seen tenants that hold nothing here, down to MAX_HOLDINGS. */
  function forgetIdle(): void {
    for (const [key, holding] of holdings) {
      if (holdings.size <= MAX_HOLDINGS) return;
      if (holding.holdsNothing()) holdings.delete(key);
    }
  }

  /**
   * Admits a call from the tenant's allotment here, taking one first if the tenant is seen often
   * enough; undefined when the call must be admitted on its own. `limitsOf` gives the shard's limits.
   */
  async function admit(
    tenantId: string,
    whole: TenantLimits,
    limitsOf: (shard: number) => ShardLimits,
    tokens: number,
    endpoint: { name: string; share?: number } | undefined,
    now: number,
  ): Promise<{ call: AllottedCall; snapshot: LimiterSnapshot; limits: ShardLimits } | undefined> {
    const holding = holdingFor(tenantId, whole, endpoint?.name);
    holding.arrived(now, tokens);
    const limits = limitsOf(holding.shard);
    holding.limits = limits;
    // A contended endpoint caps each tenant's calls in flight by its share: no slots held in reserve.
    if (endpoint?.share !== undefined) {
      void release(
        holding,
        holding.slots.filter((slot) => !slot.busy),
        now,
      );
      return undefined;
    }
    let call = local(holding, tokens, now);
    if (call) {
      if (renewalDue(holding, now))
        startRenewal(`renewal ${keyOf(holding)}`, () =>
          renewIfRunningOut(holding, holding.limits ?? limits, clock()),
        );
    } else {
      // Counted while it waits, so a take made meanwhile brings a slot for it too.
      holding.waiting += 1;
      try {
        call = await afterTake(holding, limits, tokens, now);
        // Capacity left but every slot busy (calls arrived together): one more take adds the slots
        // of all the calls waiting now, instead of a lease and a settle for each.
        if (!call && holding.current?.fits(tokens, now)) call = await afterTake(holding, limits, tokens, now);
      } finally {
        holding.waiting -= 1;
      }
    }
    call ??= await onFreeSlot(holding, limits, tokens, now);
    if (!call || !holding.snapshot) return undefined;
    return { call, snapshot: holding.snapshot, limits };
  }

  /**
   * Whether the current allotment is unlikely to serve the tenant's next call here: nearly spent, or
   * its hold ending before that call (expected in about one and a half gaps between calls) arrives.
   */
  function runningOut(holding: Holding, at: number): boolean {
    const current = holding.current;
    if (!current) return false;
    const nextCallIn = 1.5e6 / Math.max(holding.rate(), 1e-6);
    return current.requestsLeft < current.size.requests / 4 || current.until - at < nextCallIn;
  }

  /**
   * Takes the next allotment if the current one is running out and no take is on its way or paused.
   * Started for a call just admitted (not awaited; by `startRenewal`, once that call's model has its
   * request), the take is back while that call runs: a tenant whose calls follow one another (a
   * client streaming one answer after the other) finds the next allotment ready instead of waiting
   * for it. At a settle, for a hold that ran down meanwhile. Whether it is due is judged again when
   * it starts: a call finding the allotment spent meanwhile may have taken the next one itself.
   */
  function renewIfRunningOut(holding: Holding, limits: ShardLimits, at: number): Promise<void> {
    return renewalDue(holding, at) ? renew(holding, limits, at) : Promise.resolve();
  }

  /** The allotment is running out, and no take is on its way or paused. */
  const renewalDue = (holding: Holding, at: number) =>
    !holding.renewing && at >= holding.pausedUntil && runningOut(holding, at);

  /** Waits for the take on its way, or makes one if the tenant is seen often; then admits locally. */
  async function afterTake(holding: Holding, limits: ShardLimits, tokens: number, now: number) {
    if (holding.renewing) await holding.renewing;
    else if (holding.rate() >= MIN_RATE_PER_SECOND && now >= holding.pausedUntil) {
      await renew(holding, limits, now);
    }
    return local(holding, tokens, now);
  }

  function local(holding: Holding, tokens: number, now: number): AllottedCall | undefined {
    const allotment = holding.current;
    if (!allotment?.fits(tokens, now)) return undefined;
    const slot = holding.freeSlot(now, callLeaseMicros);
    if (!slot) {
      // More calls at once than slots: this one is admitted on its own, the next take adds a slot.
      holding.peak = Math.max(holding.peak, holding.inFlight + 1);
      return undefined;
    }
    allotment.take(tokens);
    slot.busy = true;
    holding.inFlight += 1;
    holding.peak = Math.max(holding.peak, holding.inFlight);
    return { allotment, slot, key: `${holding.tenantId}@${holding.endpoint ?? ""}` };
  }

  /**
   * A call the allotment cannot serve (spent, or its renewal refused or on its way) while a slot here
   * is free: the call runs on that slot, and takes only its request and tokens in one write, an
   * allotment of one with no hold, whose unused tokens go back with the next take. Without this, the
   * call would take a lease of its own beside an idle slot, and a tenant near its concurrency limit
   * would be refused while it has fewer calls in flight than the limit.
   */
  async function onFreeSlot(holding: Holding, limits: ShardLimits, tokens: number, now: number) {
    const slot = holding.freeSlot(now, callLeaseMicros);
    if (!slot) return undefined;
    // Kept for this call while its write is on its way.
    slot.busy = true;
    const taken = await takeAllotment(holding, limits, { requests: 1, tokens, holdMicros: 0 }, 0, now, []);
    if (!taken) {
      slot.busy = false;
      return undefined;
    }
    holding.retired.push(taken.allotment);
    taken.allotment.take(tokens);
    holding.inFlight += 1;
    return { allotment: taken.allotment, slot, key: keyOf(holding) };
  }

  /**
   * Takes the next allotment, giving back what the last ones left unused in the same write. A
   * refusal pauses allotments for the hold (single admissions meanwhile name the exact refusal).
   */
  function renew(holding: Holding, limits: ShardLimits, now: number): Promise<void> {
    const size = allotmentSize(limits, holding.sizingRate(), holding.largestReservation);
    if (!size) return Promise.resolve();
    holding.renewing = take(holding, limits, size, now).finally(() => {
      holding.renewing = undefined;
    });
    return holding.renewing;
  }

  async function take(holding: Holding, limits: ShardLimits, size: AllotmentSize, now: number) {
    const until = now + size.holdMicros;
    const wanted = Math.min(
      limits.concurrency,
      Math.max(1, holding.peak, holding.inFlight + holding.waiting),
    );
    const slots = Math.max(0, wanted - holding.servingSlots(until, callLeaseMicros));
    const taken = await takeAllotment(holding, limits, size, slots, now, giveBacks(holding));
    if (!taken) {
      holding.pausedUntil = until;
      return;
    }
    metrics.addMetric("AllotmentsTaken", MetricUnit.Count, 1);
    holding.peak = holding.inFlight;
    holding.current = taken.allotment;
    const expiry = now + callLeaseMicros + SLOT_REUSE_MICROS;
    for (const element of taken.elements) holding.slots.push({ element, expiry, busy: false });
  }

  /** One take (the admission write) and the allotment it gives; undefined when refused or failed. */
  async function takeAllotment(
    holding: Holding,
    limits: ShardLimits,
    size: AllotmentSize,
    slots: number,
    now: number,
    returned: GiveBack[],
  ): Promise<{ allotment: Allotment; elements: string[] } | undefined> {
    const [first, ...others] = returned;
    const store = storeFor(holding.tenantId);
    let admission: Awaited<ReturnType<LimiterStore["admit"]>>;
    try {
      // Give-backs charged under other guards (a restart, a new month) go on their own.
      for (const giveBack of others) await store.giveBack(giveBackWrite(holding, giveBack, [], now));
      admission = await store.admit({
        tenantId: holding.tenantId,
        shard: holding.shard,
        limits,
        now,
        tokens: size.tokens,
        leaseId: randomUUID(),
        leaseMicros: callLeaseMicros + SLOT_REUSE_MICROS,
        allotment: {
          requests: size.requests,
          slots,
          holdMicros: size.holdMicros,
          renewal: holding.slots.length > 0 || holding.retired.length > 0,
          ...(first ? { giveBack: first } : {}),
        },
        ...(holding.endpoint ? { endpoint: { name: holding.endpoint } } : {}),
      });
    } catch (err) {
      // The limiter is unreachable: single admissions apply the tier's fail mode.
      logger.warn("allotment take failed", { error: (err as Error).name });
      return undefined;
    }
    metrics.addMetric("LimiterWrites", MetricUnit.Count, admission.writes);
    holding.snapshot = admission.snapshot;
    if (!admission.admitted) {
      // The item is gone (an erase): this container forgets the tenant.
      if (!admission.snapshot.leases.length && admission.reason === "contention")
        holdings.delete(keyOf(holding));
      return undefined;
    }
    const allotment = new Allotment(
      holding.shard,
      monthOf(now),
      now + size.holdMicros,
      size,
      chargeAfter(limits, admission.snapshot),
    );
    return { allotment, elements: admission.elements };
  }

  /** The unused capacity of the current and retired allotments, merged where their guards agree. */
  function giveBacks(holding: Holding): GiveBack[] {
    const spent = [...holding.retired, ...(holding.current ? [holding.current] : [])];
    holding.retired = spent.filter((allotment) => allotment.busy);
    holding.current = undefined;
    return mergeGiveBacks(
      spent.map((allotment) => allotment.giveBack()),
      holding.snapshot,
    );
  }

  function giveBackWrite(
    holding: Holding,
    giveBack: GiveBack | undefined,
    release: string[],
    now: number,
  ): GiveBackWrite {
    return {
      tenantId: holding.tenantId,
      shard: holding.shard,
      release,
      now,
      ...(giveBack ? { giveBack } : {}),
      ...(holding.endpoint ? { endpoint: holding.endpoint } : {}),
    };
  }

  /** Releases slots this container holds but no longer needs (one write), and forgets them. */
  async function release(holding: Holding, slots: Slot[], now: number): Promise<void> {
    if (slots.length === 0) return;
    holding.slots = holding.slots.filter((slot) => !slots.includes(slot));
    const elements = slots.map((slot) => slot.element);
    try {
      const writes = await storeFor(holding.tenantId).giveBack(
        giveBackWrite(holding, undefined, elements, now),
      );
      metrics.addMetric("LimiterWrites", MetricUnit.Count, writes);
    } catch (err) {
      // The slots expire with their leases.
      logger.warn("slot release failed", { error: (err as Error).name });
    }
  }

  /**
   * A call admitted from an allotment settled: its slot serves the next call, its unused tokens the
   * allotment's next calls (or the next give-back). Then, off the call's path: the next allotment is
   * taken before this one runs out, and slots past their reuse are released.
   */
  function settle(call: AllottedCall, reserved: number, used: number): () => Promise<void> {
    const holding = holdings.get(call.key);
    call.stopTimers?.();
    call.allotment.settle(reserved, used);
    call.slot.busy = false;
    if (!holding) return async () => {};
    holding.inFlight -= 1;
    return async () => {
      const at = Date.now() * 1000;
      if (call.ownLease) await release(holding, [{ element: call.ownLease, expiry: 0, busy: false }], at);
      await release(holding, holding.spentSlots(at, callLeaseMicros), at);
      // Off the calls' path: its hold may have run down while this call ran.
      if (holding.limits) await renewIfRunningOut(holding, holding.limits, at);
      whenQuiet(holding);
    };
  }

  /**
   * Once the tenant has gone quiet here (no call in flight, none since its allotment's hold ended),
   * everything goes back in one write: unused requests and tokens, and the free slots. A process that
   * keeps running (the local platform, a Lambda container thawed for another call) does it about a
   * second after the last call; a container frozen for good keeps what ADR 0004 bounds.
   */
  function whenQuiet(holding: Holding): void {
    clearTimeout(holding.quiet);
    const holdLeftMs = Math.max(0, (holding.current?.until ?? 0) / 1000 - Date.now());
    holding.quiet = setTimeout(() => void returnAll(holding), holdLeftMs + QUIET_MS);
    holding.quiet.unref?.();
  }

  async function returnAll(holding: Holding): Promise<void> {
    if (holding.inFlight > 0 || holding.renewing) return;
    const at = Date.now() * 1000;
    const [first, ...others] = giveBacks(holding);
    const free = holding.slots.filter((slot) => !slot.busy);
    holding.slots = holding.slots.filter((slot) => slot.busy);
    const store = storeFor(holding.tenantId);
    try {
      let writes = 0;
      const elements = free.map((slot) => slot.element);
      writes += await store.giveBack(giveBackWrite(holding, first, elements, at));
      for (const back of others) writes += await store.giveBack(giveBackWrite(holding, back, [], at));
      metrics.addMetric("LimiterWrites", MetricUnit.Count, writes);
    } catch (err) {
      // What was not given back stays charged (refused early, never admitted more); slots expire.
      logger.warn("giving back a quiet tenant's allotment failed", { error: (err as Error).name });
    }
  }

  /**
   * A stream admitted on a slot may run longer than the slot's lease (a call's 60 s at least). Before
   * that lease ends, the stream takes a lease of its own (`leaseMicros`, added before its slot goes,
   * so it is never counted less than once); if it cannot, the returned signal aborts it in time to
   * settle while its slot still counts it. Streams that end sooner cost no write for this.
   */
  function keepForStream(call: AllottedCall, leaseMicros: number): AbortSignal {
    const lost = new AbortController();
    const holding = holdings.get(call.key);
    const coverMs = (call.slot.expiry - Date.now() * 1000) / 1000;
    const move = setTimeout(async () => {
      if (!holding) return;
      const element = `${Date.now() * 1000 + leaseMicros}:${randomUUID()}`;
      try {
        const held = await storeFor(holding.tenantId).holdLeases({
          tenantId: holding.tenantId,
          shard: holding.shard,
          elements: [element],
          ...(holding.endpoint ? { endpoint: holding.endpoint } : {}),
        });
        if (!held) return;
        call.ownLease = element;
        clearTimeout(end);
        // The slot served its last call: released now, never reused.
        const slot = call.slot;
        slot.expiry = 0;
        slot.busy = false;
        await release(holding, [slot], Date.now() * 1000);
      } catch (err) {
        logger.warn("a stream's own lease could not be taken; it ends before its slot's lease", {
          error: (err as Error).name,
        });
      }
    }, coverMs - MOVE_BEFORE_MS);
    const end = setTimeout(() => lost.abort(), coverMs - END_BEFORE_MS);
    move.unref?.();
    end.unref?.();
    call.stopTimers = () => {
      clearTimeout(move);
      clearTimeout(end);
    };
    return lost.signal;
  }

  const keyOf = (holding: Holding) => `${holding.tenantId}@${holding.endpoint ?? ""}`;

  /** How many tenants (per endpoint) this container remembers. */
  const remembered = () => holdings.size;

  return { admit, settle, keepForStream, remembered };
}
