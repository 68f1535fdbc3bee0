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
  MIN_RATE_PER_SECOND,
  SLOT_REUSE_MICROS,
  type Slot,
  slotServes,
} from "@atrium/core/allotment";
import type { GiveBackWrite } from "@atrium/core/allotment-updates";
import { chargeMark, type GiveBack, type LimiterSnapshot } from "@atrium/core/limiter-item";
import type { LimiterStore } from "@atrium/core/limiter-store";
import { gcra, monthOf, type ShardLimits, type TenantLimits } from "@atrium/core/limits";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { logger, metrics } from "./observability";

/** A call admitted from an allotment: what its settle gives back here. */
export interface AllottedCall {
  allotment: Allotment;
  slot: Slot;
  key: string;
}

/** Arrivals remembered per tenant to estimate its rate here. */
const ARRIVALS = 8;

/** One tenant's (and endpoint's) allotments in this container. */
class Holding {
  current?: Allotment;
  /** Earlier allotments whose calls may still settle: their unused tokens go back with the next take. */
  retired: Allotment[] = [];
  slots: Slot[] = [];
  /** Calls in flight here, and the most seen at once since the last take: the slots the next take wants. */
  inFlight = 0;
  peak = 0;
  largestReservation = 0;
  snapshot?: LimiterSnapshot;
  /** The shard's limits as the last call here saw them: a renewal off the call's path takes with them. */
  limits?: ShardLimits;
  renewing?: Promise<void>;
  /** After a refused take, single admissions until then. */
  pausedUntil = 0;
  private readonly arrivals: number[] = [];

  constructor(
    readonly tenantId: string,
    readonly shard: number,
    readonly endpoint: string | undefined,
  ) {}

  arrived(at: number, tokens: number): void {
    this.arrivals.push(at);
    if (this.arrivals.length > ARRIVALS) this.arrivals.shift();
    this.largestReservation = Math.max(this.largestReservation, tokens);
  }

  /** Calls per second here, over the last few arrivals; 0 until there are enough. */
  rate(): number {
    const first = this.arrivals[0];
    const last = this.arrivals[this.arrivals.length - 1];
    if (this.arrivals.length < ARRIVALS || first === undefined || last === undefined || last <= first)
      return 0;
    return ((this.arrivals.length - 1) * 1e6) / (last - first);
  }

  freeSlot(now: number, callLeaseMicros: number): Slot | undefined {
    return this.slots.find((slot) => slotServes(slot, now, callLeaseMicros));
  }

  /** Slots that will still serve new calls when a take made now ends its hold. */
  servingSlots(until: number, callLeaseMicros: number): number {
    return this.slots.filter((slot) => slot.expiry - until >= callLeaseMicros).length;
  }

  /** Slots no new call can use and none is running on: to release. */
  spentSlots(now: number, callLeaseMicros: number): Slot[] {
    return this.slots.filter((slot) => !slot.busy && slot.expiry - now < callLeaseMicros);
  }
}

export interface AllotmentDeps {
  storeFor: (tenantId: string) => LimiterStore;
  /** A call's lease (microseconds): a slot must outlive it to serve a new call. */
  callLeaseMicros: number;
}

export function createAllotments({ storeFor, callLeaseMicros }: AllotmentDeps) {
  const holdings = new Map<string, Holding>();

  function holdingFor(tenantId: string, whole: TenantLimits, endpoint: string | undefined): Holding {
    const key = `${tenantId}@${endpoint ?? ""}`;
    let holding = holdings.get(key);
    if (!holding) {
      const shard = whole.shards > 1 ? Math.floor(Math.random() * whole.shards) : 0;
      holding = new Holding(tenantId, shard, endpoint);
      holdings.set(key, holding);
    }
    return holding;
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
    if (!call) {
      if (holding.renewing) await holding.renewing;
      else if (holding.rate() >= MIN_RATE_PER_SECOND && now >= holding.pausedUntil) {
        await renew(holding, limits, now);
      }
      call = local(holding, tokens, now);
    }
    if (!call || !holding.snapshot) return undefined;
    return { call, snapshot: holding.snapshot, limits };
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
   * Takes the next allotment, giving back what the last ones left unused in the same write. A
   * refusal pauses allotments for the hold (single admissions meanwhile name the exact refusal).
   */
  function renew(holding: Holding, limits: ShardLimits, now: number): Promise<void> {
    const size = allotmentSize(limits, holding.rate(), holding.largestReservation);
    if (!size) return Promise.resolve();
    holding.renewing = take(holding, limits, size, now).finally(() => {
      holding.renewing = undefined;
    });
    return holding.renewing;
  }

  async function take(holding: Holding, limits: ShardLimits, size: AllotmentSize, now: number) {
    const until = now + size.holdMicros;
    const wanted = Math.min(limits.concurrency, Math.max(1, holding.peak));
    const slots = Math.max(0, wanted - holding.servingSlots(until, callLeaseMicros));
    const returned = giveBacks(holding);
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
      holding.pausedUntil = until;
      return;
    }
    metrics.addMetric("LimiterWrites", MetricUnit.Count, admission.writes);
    holding.snapshot = admission.snapshot;
    if (!admission.admitted) {
      holding.pausedUntil = until;
      if (!admission.snapshot.leases.length && admission.reason === "contention")
        holdings.delete(keyOf(holding));
      return;
    }
    metrics.addMetric("AllotmentsTaken", MetricUnit.Count, 1);
    holding.peak = holding.inFlight;
    const after = admission.snapshot;
    holding.current = new Allotment(holding.shard, monthOf(now), until, size, {
      requestInterval: gcra(limits.requestsPerMinute, limits.burst).interval,
      tokenInterval: gcra(limits.tokensPerMinute).interval,
      requestResets: after.requestResets,
      tokenResets: after.tokenResets,
      requestMark: chargeMark(after.requestTat, after.requestRefunded),
      tokenMark: chargeMark(after.tokenTat, after.tokenRefunded),
    });
    const expiry = now + callLeaseMicros + SLOT_REUSE_MICROS;
    for (const element of admission.elements) holding.slots.push({ element, expiry, busy: false });
  }

  /** The unused capacity of the current and retired allotments, merged where their guards agree. */
  function giveBacks(holding: Holding): GiveBack[] {
    const spent = [...holding.retired, ...(holding.current ? [holding.current] : [])];
    holding.retired = spent.filter((allotment) => allotment.busy);
    holding.current = undefined;
    const merged: GiveBack[] = [];
    for (const back of spent.map((allotment) => allotment.giveBack())) {
      const same = merged.find(
        (other) =>
          other.month === back.month &&
          other.requestResets === back.requestResets &&
          other.tokenResets === back.tokenResets,
      );
      if (!same) merged.push(back);
      else {
        same.requestMicros += back.requestMicros;
        same.tokenMicros += back.tokenMicros;
        same.tokens += back.tokens;
      }
    }
    return merged.filter((back) => back.requestMicros > 0 || back.tokenMicros > 0 || back.tokens > 0);
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
    call.allotment.settle(reserved, used);
    call.slot.busy = false;
    if (!holding) return async () => {};
    holding.inFlight -= 1;
    return async () => {
      const at = Date.now() * 1000;
      await release(holding, holding.spentSlots(at, callLeaseMicros), at);
      const current = holding.current;
      const runningOut =
        current &&
        (current.requestsLeft < current.size.requests / 4 ||
          current.until - at < current.size.holdMicros / 4);
      if (runningOut && !holding.renewing && at >= holding.pausedUntil && holding.limits) {
        await renew(holding, holding.limits, at);
      }
    };
  }

  const keyOf = (holding: Holding) => `${holding.tenantId}@${holding.endpoint ?? ""}`;

  return { admit, settle };
}
