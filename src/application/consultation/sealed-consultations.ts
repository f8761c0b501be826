import { sha256Hex } from '../ids';
import type { AggregateOptions, AggregateStreamResult, AppendResult, EventStore, ExpectedVersion, NewEvent, ReadAllOptions, ReadStreamResult, RecordedEvent } from '../ports/event-store';
import { isSealed, type PatientDataProtection } from '../ports/patient-data-protection';

/**
 * Crypto-shredding of a consultation's texts. The free texts of its events (ConsultationRequested's
 * clinicalQuestion and summary, ReportIssued's diagnosis and recommendations, the reason of ConsultationDeclined
 * and ConsultationCancelled) are patient information; they are stored sealed (AES-256-GCM, the
 * PatientDataProtection of documents) under one data key per consultation, so that deleting that key
 * (ConsultationContentErasure) makes every copy of them unreadable: the store, its backups, the read model
 * rebuilt from it. One key per consultation rather than per patient: a consultation may concern the documents of
 * several patients, or of none the hub knows, and erasing any one of them must reach its texts.
 *
 * The key's id, `c` and 32 hex digits of SHA-256 over a label and the consultation id, cannot be a patient's key
 * (`p` and 32 hex digits) and says nothing but which consultation it belongs to (the id is a UUID, no patient
 * data). The AEAD context binds the consultation and the field (and for a decline its offer), so a sealed text
 * cannot be moved to another consultation or field and still open.
 *
 * Empty texts (a cancel without reason) stay '' (sealing would hide nothing: GCM keeps lengths). A value without
 * SEALED_PREFIX (events of builds before sealing) is read as it is.
 */
export const consultationDataKey = (consultationId: string): string => `c${sha256Hex(`telemed-rts consultation data key v1\n${consultationId}`).slice(0, 32)}`;

/** The fields of an event that hold free text, each with its AEAD place. */
const sealedFields = (type: string, data: Readonly<Record<string, unknown>>): readonly (readonly [field: string, place: string])[] => {
  switch (type) {
    case 'ConsultationRequested':
      return [
        ['clinicalQuestion', 'clinicalQuestion'],
        ['summary', 'summary'],
      ];
    case 'ReportIssued':
      return [
        ['diagnosis', 'report/diagnosis'],
        ['recommendations', 'report/recommendations'],
      ];
    case 'ConsultationDeclined':
      return [['reason', `declined/${String(data['offerIndex'])}/reason`]];
    case 'ConsultationCancelled':
      return [['reason', 'cancelled/reason']];
    default:
      return [];
  }
};
const contextOf = (consultationId: string, place: string): string => `consultation/${consultationId}/${place}`;

/**
 * Whether the event holds a text in clear that sealing would have sealed: an event of a build before sealing
 * (2026-12-02). No erasure reaches such a text (it has no key to delete; events are never rewritten).
 */
export const holdsClearText = (type: string, data: Readonly<Record<string, unknown>>): boolean =>
  sealedFields(type, data).some(([field]) => typeof data[field] === 'string' && data[field] !== '' && !isSealed(data[field]));

/** The event's data with its texts sealed (one AES-GCM operation per non-empty text). PatientErasedError once erased. */
export const sealConsultationData = async (protection: PatientDataProtection, type: string, data: Readonly<Record<string, unknown>>): Promise<Record<string, unknown>> => {
  const fields = sealedFields(type, data);
  if (fields.length === 0) return { ...data };
  const id = String(data['consultationId']);
  const out: Record<string, unknown> = { ...data };
  for (const [field, place] of fields) {
    const text = data[field];
    if (typeof text === 'string' && text !== '' && !isSealed(text)) out[field] = await protection.seal(consultationDataKey(id), text, contextOf(id, place));
  }
  return out;
};

/** Opened data: each text in clear, or null where it cannot be read (its key erased, or the envelope damaged). */
export type OpenedData = Readonly<{ data: Record<string, unknown>; unreadable: boolean }>;

/**
 * The event's data with its texts opened. Never throws for a text that cannot be opened (null instead): a
 * projection or the downlink must not stop on one consultation. The key is fetched first, outside the catch, so a
 * key store that cannot be reached fails the caller (which retries) instead of making texts look erased.
 */
export const openConsultationData = async (protection: PatientDataProtection, type: string, data: Readonly<Record<string, unknown>>): Promise<OpenedData> => {
  const fields = sealedFields(type, data);
  const sealed = fields.filter(([field]) => isSealed(data[field]));
  if (sealed.length === 0) return { data: { ...data }, unreadable: false };
  const id = String(data['consultationId']);
  const key = consultationDataKey(id);
  await protection.isErased(key);
  const out: Record<string, unknown> = { ...data };
  let unreadable = false;
  for (const [field, place] of sealed) {
    let opened: string | null;
    try {
      opened = await protection.open(key, String(data[field]), contextOf(id, place));
    } catch {
      opened = null; // altered or damaged: as unreadable as an erased one
    }
    if (opened === null) unreadable = true;
    out[field] = opened;
  }
  return { data: out, unreadable };
};

/** A recorded consultation event with its texts opened (null where unreadable); other events as they are. */
export const openConsultationEvent = async (protection: PatientDataProtection, event: RecordedEvent): Promise<RecordedEvent> => {
  const { data } = await openConsultationData(protection, event.type, event.data);
  return { ...event, data };
};

/**
 * The consultation streams as the ConsultationService's command handling sees them (handleCommand): events are
 * opened before the decider folds them (it compares a repeated request's or report's texts), with '' for a text
 * that cannot be read, and sealed before they are appended. Everything else goes to the store as it is.
 */
export class SealingConsultationStore implements EventStore {
  constructor(
    private readonly store: EventStore,
    private readonly protection: PatientDataProtection,
  ) {}

  async aggregateStream<State>(streamName: string, options: AggregateOptions<State>): Promise<AggregateStreamResult<State>> {
    const { events, currentVersion } = await this.store.readStream(streamName);
    let state = options.initialState();
    for (const e of events) {
      const { data } = await openConsultationData(this.protection, e.type, e.data);
      for (const [field] of sealedFields(e.type, data)) if (data[field] === null) data[field] = '';
      state = options.evolve(state, { ...e, data });
    }
    return { state, currentVersion };
  }

  async appendToStream(streamName: string, events: readonly NewEvent[], options?: { expectedVersion?: ExpectedVersion }): Promise<AppendResult> {
    const sealed = await Promise.all(events.map(async (e) => ({ ...e, data: await sealConsultationData(this.protection, e.type, e.data) })));
    return this.store.appendToStream(streamName, sealed, options);
  }

  readStream(streamName: string, options?: { fromVersion?: bigint; maxCount?: number }): Promise<ReadStreamResult> {
    return this.store.readStream(streamName, options);
  }

  readAll(options: ReadAllOptions): Promise<readonly RecordedEvent[]> {
    return this.store.readAll(options);
  }

  waitForAppend(after: bigint, timeoutMs: number): Promise<void> {
    return this.store.waitForAppend(after, timeoutMs);
  }

  headPosition(): Promise<bigint> {
    return this.store.headPosition();
  }

  close(): Promise<void> {
    return this.store.close();
  }
}
