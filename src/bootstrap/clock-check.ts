import type { Logger } from 'pino';
import type { Clock } from '../application/ports/clock';

/** Beyond this, hubs on one store disagree about "now" enough to matter (the 5-minute future limit, token iat). */
export const CLOCK_SKEW_WARN_SECONDS = 5;

/**
 * Hub processes sharing a store take "now" from their own clocks: a reading uploaded without a time is stored at
 * the hub's now, a reading is refused as in the future by it, tokens' iat and exp are checked by it. A hub whose
 * clock ran 10 minutes fast stored readings that the other hubs' "last 7 days" left out, without a word. At start,
 * the hub compares its clock with the database server's (half the round trip taken off) and says so when they
 * differ by more than CLOCK_SKEW_WARN_SECONDS: a warning, not a refusal (a database's clock can be the wrong one).
 * Returns the measured difference in seconds (hub minus database), or null when the database did not answer.
 */
export const checkClockAgainstStore = async (deps: Readonly<{ serverTimeMillis: () => Promise<number>; clock: Clock; logger: Logger }>): Promise<number | null> => {
  const before = deps.clock.now().toMillis();
  const server = await deps.serverTimeMillis().catch(() => Number.NaN);
  const after = deps.clock.now().toMillis();
  if (!Number.isFinite(server)) return null;
  const skewSeconds = Math.round(((before + after) / 2 - server) / 100) / 10;
  if (Math.abs(skewSeconds) > CLOCK_SKEW_WARN_SECONDS) {
    deps.logger.warn(
      { clockSkewSeconds: skewSeconds },
      `this hub's clock differs from the database server's by ${Math.abs(skewSeconds)} s (${skewSeconds > 0 ? 'ahead' : 'behind'}): hubs sharing the store take "now" from their own clocks (readings without a time, the future limit, tokens); synchronise the clocks (NTP)`,
    );
  }
  return skewSeconds;
};
