import type { Logger } from 'pino';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';

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

/** A newest event further ahead of the clock than this says the clock was set back (or ran ahead before). */
export const CLOCK_BEHIND_STORE_WARN_SECONDS = 60;

/**
 * Every store, the embedded one too (which has no server clock to ask): the store's newest event, recorded by a
 * hub's clock, lies ahead of this clock. A hub started with its clock 400 days back said nothing: readings without a
 * time were stored 400 days ago, the page's "last week" was that week, and the audit entries went onto days a
 * patient's export did not read. Said at start, a warning (the clock that was wrong may have been the earlier one).
 * Returns how far the newest event lies ahead, in seconds (0 or less: not ahead), or null for an empty store.
 */
export const checkClockAgainstNewestEvent = async (deps: Readonly<{ store: Pick<EventStore, 'headPosition' | 'readAll'>; clock: Clock; logger: Logger }>): Promise<number | null> => {
  const head = await deps.store.headPosition();
  if (head <= 0n) return null;
  const [newest] = await deps.store.readAll({ after: head - 1n, maxCount: 1 });
  if (!newest) return null;
  const aheadSeconds = Math.round((Date.parse(newest.recordedAt) - deps.clock.now().toMillis()) / 1000);
  if (aheadSeconds > CLOCK_BEHIND_STORE_WARN_SECONDS) {
    deps.logger.warn(
      { clockBehindStoreSeconds: aheadSeconds, newestEventRecordedAt: newest.recordedAt },
      `this hub's clock is ${aheadSeconds} s behind the newest event in the store: the clock was set back (or ran ahead when that event was recorded). Readings sent without a time are stored at this clock's now, and queries "up to now" end there; synchronise the clock (NTP)`,
    );
  }
  return aheadSeconds;
};
