import { performance } from 'node:perf_hooks';

/**
 * A token bucket per caller: `burst` requests at once, refilled at `perSecond`. Buckets are kept in a map in
 * insertion order and the oldest are dropped beyond `maxCallers`, so a flood of new callers cannot grow the heap.
 *
 * Time is the monotonic clock (`performance.now()`), not the wall clock: the wall clock stepped back by N seconds
 * (an NTP step, a VM resumed) made the elapsed time negative, took N × perSecond tokens from every bucket, and locked
 * every caller out for about N seconds (8 h: retry after 28,675 s). An injected clock that goes back refills nothing.
 */
export type RateDecision = Readonly<{ allowed: true }> | Readonly<{ allowed: false; retryAfterSeconds: number }>;

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly options: Readonly<{ perSecond: number; burst: number; maxCallers?: number; now?: () => number }>,
  ) {}

  take(caller: string): RateDecision {
    const now = this.options.now ? this.options.now() : performance.now();
    const { perSecond, burst } = this.options;
    const bucket = this.buckets.get(caller) ?? { tokens: burst, at: now };
    bucket.tokens = Math.min(burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    this.buckets.delete(caller);
    this.buckets.set(caller, bucket);
    while (this.buckets.size > (this.options.maxCallers ?? 100_000)) this.buckets.delete(this.buckets.keys().next().value as string);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)) };
  }
}
