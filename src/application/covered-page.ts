import type { EventStore, RecordedEvent } from './ports/event-store';

/**
 * One page of a subscriber's read from its checkpoint: the events after `after` (of `types` only, when given) and
 * the position the page covers. A short page of some types covers everything up to the head read before it (see
 * EventStore.readAll), so the subscriber may move its checkpoint there, past its last event or with none at all,
 * and wait for appends instead of reading the same stretch again. A full page, or a page of every type, covers up
 * to its last event.
 */
export type CoveredPage = Readonly<{ events: readonly RecordedEvent[]; full: boolean; through: bigint }>;

export async function readCoveredPage(store: EventStore, after: bigint, maxCount: number, types?: ReadonlySet<string>): Promise<CoveredPage> {
  const head = types === undefined ? undefined : await store.headPosition();
  const events = await store.readAll({ after, maxCount, ...(types === undefined ? {} : { types }) });
  const full = events.length === maxCount;
  const last = events.length > 0 ? events[events.length - 1]!.globalPosition : after;
  return { events, full, through: !full && head !== undefined && head > last ? head : last };
}
