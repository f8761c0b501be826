import { ExpectedVersionConflictError, type EventStore } from './ports/event-store';

/**
 * A setting that every hub process on one store must share, recorded in the store so that a process started
 * with another one notices before it serves anything (pseudonym-check.ts, security/hub-keys-check.ts,
 * security/message-security-check.ts, security/token-verification-check.ts). The stream holds the setting as each
 * recording left it; the last one counts. What is recorded must tell settings apart without revealing a secret:
 * fingerprints and public ids, never keys.
 */
export type RecordedSetting<T, Outcome extends string> = Readonly<{
  stream: string;
  /** The event type of a recording. */
  type: string;
  /** The setting a recorded event's data holds; null for data that is not one (skipped). */
  parse(data: Readonly<Record<string, unknown>>): T | null;
  /** The event data that records `mine` (recordedAt is added). */
  data(mine: T): Record<string, unknown>;
  /** The event id of recording `mine` as the stream's event `version`: processes that race to record the same setting append it once. */
  eventId(mine: T, version: bigint): string;
  same(last: T, mine: T): boolean;
  /** Another setting than the last recorded: the outcome of recording it over that one, or throw to refuse it. */
  judge(last: T, mine: T): Outcome;
}>;

export type SettingOutcome<Outcome extends string> = 'recorded' | 'matches' | Outcome;

/** The setting last recorded in the store and the stream's version; null when none was recorded yet. */
export const recordedSetting = async <T>(store: EventStore, setting: RecordedSetting<T, string>): Promise<{ value: T | null; version: bigint | null }> => {
  const { state, currentVersion } = await store.aggregateStream<T | null>(setting.stream, {
    initialState: () => null,
    evolve: (last, event) => (event.type === setting.type ? (setting.parse(event.data) ?? last) : last),
  });
  return { value: state, version: currentVersion };
};

/**
 * 'recorded' (the store had none: ours is the store's now), 'matches' (the same as last recorded), or what
 * `judge` says of another setting (which then is recorded as the one in use); `judge` throws to refuse it. A
 * process that loses a race to record reads what the winner recorded and judges again.
 */
export const checkRecordedSetting = async <T, Outcome extends string>(
  store: EventStore,
  setting: RecordedSetting<T, Outcome>,
  mine: T,
  recordedAt: string,
): Promise<SettingOutcome<Outcome>> => {
  for (let attempt = 0; ; attempt++) {
    const { value: last, version } = await recordedSetting(store, setting);
    if (last !== null && setting.same(last, mine)) return 'matches';
    const outcome: SettingOutcome<Outcome> = last === null ? 'recorded' : setting.judge(last, mine);
    try {
      const result = await store.appendToStream(
        setting.stream,
        [{ id: setting.eventId(mine, version === null ? 0n : version + 1n), type: setting.type, data: { ...setting.data(mine), recordedAt } }],
        { expectedVersion: version ?? 'no_stream' },
      );
      return result.idempotent ? 'matches' : outcome;
    } catch (error) {
      if (!(error instanceof ExpectedVersionConflictError) || attempt > 2) throw error;
    }
  }
};
