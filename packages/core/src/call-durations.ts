/**
 * How long a tenant's calls take, as one container has seen them: the median of the last few, which
 * is what a concurrency refusal can honestly tell a client to wait for (ADR 0004, "Refusals").
 */
const SAMPLES_PER_TENANT = 16;
/** Tenants remembered per container; the least recently seen is forgotten first. */
const MAX_TENANTS = 1000;

export class CallDurations {
  private readonly samples = new Map<string, number[]>();

  record(tenantId: string, micros: number): void {
    const recent = this.samples.get(tenantId) ?? [];
    recent.push(micros);
    if (recent.length > SAMPLES_PER_TENANT) recent.shift();
    // Re-inserting keeps the map in least-recently-seen order.
    this.samples.delete(tenantId);
    this.samples.set(tenantId, recent);
    if (this.samples.size > MAX_TENANTS) {
      const oldest = this.samples.keys().next().value;
      if (oldest !== undefined) this.samples.delete(oldest);
    }
  }

  /** The median of the tenant's recent call durations, in microseconds; undefined before any call. */
  typical(tenantId: string): number | undefined {
    const recent = this.samples.get(tenantId);
    if (!recent || recent.length === 0) return undefined;
    const sorted = [...recent].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }
}
