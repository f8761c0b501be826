import { uuidV5 } from './ids';
import { ExpectedVersionConflictError, type EventStore } from './ports/event-store';
import { recordedSetting, type RecordedSetting } from './recorded-setting';

/**
 * Which builds may open a store. Each build knows the store format it writes (`format`) and the oldest format a
 * build must know to open what it writes without harm (`readableFrom`); the store records both, as the newest build
 * that opened it left them. A build whose format is below the store's `readableFrom` refuses to start, before it
 * serves anything: a rollback to such a build would read data it does not understand (and answer wrongly) or write
 * data the newer build does not expect.
 *
 * Builds before this marker existed record nothing and check nothing (an unmarked store is format 0), so a
 * rollback to one of them is not guarded: README "Upgrading and rolling back" says what that costs.
 *
 * Raise `format` with every change of what is stored (a new event type or field, a new table, a new digest).
 * Raise `readableFrom` to the new format only when builds of older formats must not open the store any more; left
 * as it is, a rollback to them stays allowed.
 */
export type StoreFormat = Readonly<{ format: number; readableFrom: number }>;

/**
 * 1: the first marked format. What the builds before it did not write: keyed document digests (an older build
 * answers 409 observation_id_reused to a repeat of such an upload), the erased_patients table, the store-recorded
 * settings (pseudonym secret, hub keys, token verification). Older builds open it still (they cannot be stopped).
 */
/**
 * 2: documents' effectiveTime written with its offset, `+0000` (hl7-builder.ts). A format-1 build reads them (its
 * parser honours an offset) but answers 409 observation_id_reused to a retry of one, which it rebuilds without the
 * offset: so it may still open the store, with the warning to stop the newer build's processes first.
 */
/**
 * 3: registry rows hold a keyed digest of their document, not the plain SHA-256 (on SQLite the plain hash, in clear
 * beside the reading, gave the CPR number back): their event's, or for an event that holds the plain hash (an older
 * build's), one made of the document; rows written before are mended at every open. An earlier build reads them, but
 * serves such a document's ETag as the digest and answers an exact retry of a correction already in place with 409:
 * it may still open the store, with the warning to stop this build first.
 */
export const THIS_BUILD_STORE_FORMAT: StoreFormat = { format: 3, readableFrom: 1 };

export const STORE_FORMAT_STREAM = 'hub-store-format';
export const STORE_FORMAT_RECORDED = 'StoreFormatRecorded';

const isFormatNumber = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

const STORE_FORMAT: Pick<RecordedSetting<StoreFormat, never>, 'stream' | 'type' | 'parse'> = {
  stream: STORE_FORMAT_STREAM,
  type: STORE_FORMAT_RECORDED,
  parse: (data) => (isFormatNumber(data['format']) && isFormatNumber(data['readableFrom']) ? { format: data['format'], readableFrom: data['readableFrom'] } : null),
};

export class StoreFormatTooNewError extends Error {
  readonly code = 'store_format_too_new';
  constructor(
    readonly recorded: StoreFormat,
    readonly mine: StoreFormat,
  ) {
    super(`this store was written by a newer build (store format ${recorded.format}, opened only by builds of format ${recorded.readableFrom} or later); this build knows format ${mine.format}`);
    this.name = 'StoreFormatTooNewError';
  }
}

/**
 * 'recorded' (an unmarked store: a new one, or one written by builds before the marker), 'upgraded' (the store had
 * an older format: ours is recorded now), 'matches', or 'newer' (a newer build wrote it and still lets this one
 * open it: the marker stays as it is). Throws StoreFormatTooNewError when this build may not open the store.
 * Processes racing to record the same format append it once (the event id follows format and version).
 */
export const checkStoreFormat = async (
  store: EventStore,
  recordedAt: string,
  mine: StoreFormat = THIS_BUILD_STORE_FORMAT,
): Promise<{ outcome: 'recorded' | 'upgraded' | 'matches' | 'newer'; recorded: StoreFormat | null }> => {
  for (let attempt = 0; ; attempt++) {
    const { value: last, version } = await recordedSetting<StoreFormat>(store, STORE_FORMAT as RecordedSetting<StoreFormat, never>);
    if (last !== null && last.readableFrom > mine.format) throw new StoreFormatTooNewError(last, mine);
    if (last !== null && last.format > mine.format) return { outcome: 'newer', recorded: last };
    if (last !== null && last.format === mine.format && last.readableFrom >= mine.readableFrom) return { outcome: 'matches', recorded: last };
    // Never lower what the store holds: a readableFrom raised by a build of this format stays raised.
    const next: StoreFormat = { format: mine.format, readableFrom: Math.max(mine.readableFrom, last?.readableFrom ?? 0) };
    const at = version === null ? 0n : version + 1n;
    try {
      const result = await store.appendToStream(
        STORE_FORMAT_STREAM,
        [{ id: uuidV5(`store-format/${next.format}/${next.readableFrom}/${at}`), type: STORE_FORMAT_RECORDED, data: { ...next, recordedAt } }],
        { expectedVersion: version ?? 'no_stream' },
      );
      if (result.idempotent) return { outcome: 'matches', recorded: next };
      return { outcome: last === null ? 'recorded' : 'upgraded', recorded: last };
    } catch (error) {
      if (!(error instanceof ExpectedVersionConflictError) || attempt > 2) throw error;
    }
  }
};
