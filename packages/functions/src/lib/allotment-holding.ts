/**
 * What one container holds of a tenant's capacity (per endpoint): its allotments, its slots, its calls
 * in flight, and the tenant's rate here (docs/adr/0004-exact-limits.md, "Allotments").
 */
import { type Allotment, type Slot, slotServes } from "@atrium/core/allotment";
import type { LimiterSnapshot } from "@atrium/core/limiter-item";
import type { ShardLimits } from "@atrium/core/limits";

/** Arrivals a tenant's rate is judged by. */
const ARRIVALS = 8;
/** Arrivals remembered per tenant, for the rate an allotment is sized by. */
const RATE_ARRIVALS = 32;

/** One tenant's (and endpoint's) allotments in this container. */
export class Holding {
  current?: Allotment;
  /** Earlier allotments whose calls may still settle: their unused tokens go back with the next take. */
  retired: Allotment[] = [];
  slots: Slot[] = [];
  /** Calls in flight here, and the most seen at once since the last take: the slots the next take wants. */
  inFlight = 0;
  peak = 0;
  /** Calls here waiting for a take to admit them. */
  waiting = 0;
  largestReservation = 0;
  snapshot?: LimiterSnapshot;
  /** The shard's limits as the last call here saw them: a renewal off the call's path takes with them. */
  limits?: ShardLimits;
  renewing?: Promise<void>;
  /** After a refused take, single admissions until then. */
  pausedUntil = 0;
  /** Gives everything back once the tenant has gone quiet here (see createAllotments). */
  quiet?: ReturnType<typeof setTimeout>;
  private readonly arrivals: number[] = [];

  constructor(
    readonly tenantId: string,
    readonly shard: number,
    readonly endpoint: string | undefined,
  ) {}

  /** Nothing taken and nothing running: the container may forget this tenant. */
  holdsNothing(): boolean {
    return (
      this.inFlight === 0 &&
      !this.renewing &&
      !this.current &&
      this.retired.length === 0 &&
      this.slots.length === 0
    );
  }

  arrived(at: number, tokens: number): void {
    this.arrivals.push(at);
    if (this.arrivals.length > RATE_ARRIVALS) this.arrivals.shift();
    this.largestReservation = Math.max(this.largestReservation, tokens);
  }

  /** Calls per second here, over the last ARRIVALS arrivals (a tenant is judged quickly); 0 until there are as many. */
  rate(): number {
    return this.rateOfLast(ARRIVALS);
  }

  /**
   * The rate an allotment is sized by: over the last RATE_ARRIVALS arrivals. Calls that come in waves
   * (many clients answered together) make the rate over 8 arrivals swing far above the mean, and an
   * allotment sized by that ends its hold with capacity unspent: one more take per hold. After a
   * pause the longer window reads lower: the hold is longer, its calls as many (ADR 0004, Size).
   */
  sizingRate(): number {
    return this.arrivals.length < ARRIVALS ? 0 : this.rateOfLast(this.arrivals.length);
  }

  /** Calls per second over the last `count` arrivals (no copy: this runs on every call); 0 without as many. */
  private rateOfLast(count: number): number {
    const first = this.arrivals[this.arrivals.length - count];
    const last = this.arrivals[this.arrivals.length - 1];
    if (count < 2 || first === undefined || last === undefined || last <= first) return 0;
    return ((count - 1) * 1e6) / (last - first);
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
