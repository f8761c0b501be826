import { DateTime } from 'luxon';
import { documentStreamName } from '../../domain/documents/document-entry';
import { consultationDecider, consultationStreamName, type ConsultationState, type ContentErasureCause } from '../../domain/consultation/consultation';
import { UnavailableError } from '../../domain/shared/errors';
import { handleCommand } from '../command-handling';
import { keyTombstoned } from '../erased-keys';
import { uuidV5 } from '../ids';
import type { Clock } from '../ports/clock';
import type { EventStore, RecordedEvent } from '../ports/event-store';
import type { PatientDataProtection } from '../ports/patient-data-protection';
import { consultationDataKey, holdsClearText } from './sealed-consultations';

export type ContentErasureResult = Readonly<{
  consultationId: string;
  erasedAt: string;
  alreadyErased: boolean;
  /**
   * Recorded by a build before 2026-12-02: its texts are in clear in its events, where the erasure cannot reach
   * them (the hub no longer serves or sends them). The caller says so rather than answer "erased" alone.
   */
  textsLeftInEvents: boolean;
}>;
export type ContentErasureOptions = Readonly<{ by: string; correlationId?: string; cause?: ContentErasureCause }>;

/**
 * A consultation's erasure this call recorded and whose key it deleted, but whose later steps failed (a full disk):
 * 503 erasure_incomplete, retry. `erasure` is what the answer would have been, for the caller's `consultation content
 * erased` line: written now, not left to a retry that may never come (as PatientErasure's ErasureIncompleteError).
 */
export class ContentErasureIncompleteError extends UnavailableError {
  constructor(readonly erasure: ContentErasureResult) {
    super('erasure_incomplete', "the erasure is recorded and the consultation's key deleted, but the rest could not be finished now; retry the erasure");
  }
}

/** When the consultation's texts were erased, as its events record it; `otherwise` for a stream without that. */
const contentErasedAt = (events: readonly Pick<RecordedEvent, 'type' | 'data'>[], otherwise: string): string => {
  const state = events.reduce<ConsultationState>((s, e) => consultationDecider.evolve(s, { type: e.type, data: e.data } as never), consultationDecider.initialState());
  return state.status !== 'none' && state.contentErasedAt !== null ? state.contentErasedAt : otherwise;
};

/** How many ConsultationRequested events one page of the scan by patient reads. */
const SCAN_PAGE = 500;

/**
 * Erasing a consultation's texts by crypto-shredding (sealed-consultations.ts):
 *   1. ConsultationContentErased is appended to the consultation's stream (event id derived from the id: a repeat
 *      records nothing new; the decider refuses an unknown consultation, NotFoundError consultation_not_found);
 *   2. the consultation's data key is deleted (a tombstone stays, so nothing is sealed under it again).
 * A crash between the two is repaired by repeating the call (idempotent). The read model forgets the texts when
 * its projector reaches the event (the caller catches it up).
 *
 * `erasePatient(patientKey)` erases every consultation whose request recorded that patient's key (its attachments'
 * patients): PatientErasure calls it, by CPR number or by key, so `rts erasures apply` reaches them after a
 * restore as it reaches the patient. It reads the store's ConsultationRequested events (not a read model: the
 * library composes none, and a restored copy's read model may lag), a scan proportional to the consultations
 * ever requested, paid once per erasure.
 */
export class ConsultationContentErasure {
  constructor(private readonly deps: Readonly<{ store: EventStore; protection: PatientDataProtection; clock: Clock }>) {}

  async erase(consultationId: string, options: ContentErasureOptions): Promise<ContentErasureResult> {
    const streamName = consultationStreamName(consultationId);
    const keyId = consultationDataKey(consultationId);
    // Recorded with the time its key was deleted where that came first: a restored copy (or the start completing its
    // erasures, erasures-at-start.ts) whose key store holds the tombstone and whose events lack the erasure records
    // the original erasure's moment, as a patient's erasure does (PatientErasure.eraseKey), not this call's.
    const keyErasedAt = (await this.deps.protection.erasedAt?.(keyId)) ?? null;
    const fromKey = keyErasedAt !== null ? DateTime.fromISO(keyErasedAt, { zone: 'utc' }) : null;
    const now = (fromKey?.isValid ? fromKey : this.deps.clock.now()).toUTC().toISO({ suppressMilliseconds: false })!;
    const { newEvents } = await handleCommand(
      this.deps.store,
      streamName,
      consultationDecider,
      { type: 'EraseConsultationContent', consultationId, cause: options.cause ?? 'requested', now },
      { commandId: uuidV5(`erase-consultation/${consultationId}`), metadata: { correlationId: options.correlationId, by: options.by } },
    );
    // Erased before: its event and its key's tombstone. A repeat of an erasure whose key deletion failed (a full disk)
    // completes it now, and says so (its line is written), as a patient's does (PatientErasure.eraseKey).
    const alreadyErased = newEvents.length === 0 && (await keyTombstoned(this.deps.protection, keyId));
    // The time recorded, for the 503 below: this call's, or, a repeat finishing an erasure recorded earlier, its
    // event's, read before the key goes (a read failing after it left only this call's clock for the line).
    const recordedAt = newEvents.length > 0 || alreadyErased ? now : contentErasedAt((await this.deps.store.readStream(streamName)).events, now);
    try {
      await this.deps.protection.erase(keyId);
      const { events } = await this.deps.store.readStream(streamName);
      return { consultationId, erasedAt: contentErasedAt(events, now), alreadyErased, textsLeftInEvents: events.some((e) => holdsClearText(e.type, e.data)) };
    } catch (error) {
      // Done by this call as far as a repeat can tell (event and tombstone): the caller's only chance of its line.
      if (alreadyErased || !(await keyTombstoned(this.deps.protection, keyId))) throw error;
      throw new ContentErasureIncompleteError({ consultationId, erasedAt: recordedAt, alreadyErased: false, textsLeftInEvents: false });
    }
  }

  /** Erases the content of every consultation linked to the patient, oldest request first. Idempotent. */
  async erasePatient(patientKey: string, options: Omit<ContentErasureOptions, 'cause'>): Promise<readonly ContentErasureResult[]> {
    const results: ContentErasureResult[] = [];
    for (const id of await this.consultationsOf(patientKey)) results.push(await this.erase(id, { ...options, cause: 'patient_erased' }));
    return results;
  }

  /**
   * The ids of the consultations whose request recorded the patient's key, or (a request recorded before requests
   * kept their patients' keys) attached one of the patient's documents, oldest request first; with `attaching`, also
   * those whose attachments name one of these documents. A scan of every request ever recorded, and a read of each
   * attachment's stream for the requests of builds before 2026-12-02.
   */
  async consultationsOf(patientKey: string, attaching: ReadonlySet<string> = new Set()): Promise<readonly string[]> {
    const types = new Set(['ConsultationRequested']);
    const ids: string[] = [];
    for (let after = 0n; ; ) {
      const page = await this.deps.store.readAll({ after, maxCount: SCAN_PAGE, types });
      for (const e of page) {
        if (e.type !== 'ConsultationRequested') continue;
        const keys = e.data['patientKeys'];
        const attachments = Array.isArray(e.data['attachments']) ? e.data['attachments'].filter((a): a is string => typeof a === 'string') : [];
        const named = Array.isArray(keys) ? keys.includes(patientKey) : await this.attachesDocumentOf(attachments, patientKey);
        const attached = attaching.size > 0 && attachments.some((a) => attaching.has(a));
        if (named || attached) ids.push(String(e.data['consultationId']));
      }
      if (page.length < SCAN_PAGE) return ids;
      after = page[page.length - 1]!.globalPosition;
    }
  }

  /**
   * For a request recorded before requests kept their patients' keys (builds to 2026-12-01): whether an attachment
   * is the patient's document, by the key its own stream records (kept after the patient's erasure too). Without
   * it, erasing the patient left such a consultation's texts served and sent after an upgrade.
   */
  private async attachesDocumentOf(attachments: readonly string[], patientKey: string): Promise<boolean> {
    for (const uniqueId of attachments) {
      const { events } = await this.deps.store.readStream(documentStreamName(uniqueId), { maxCount: 1 });
      if (events[0]?.type === 'DocumentSubmitted' && events[0].data['patientKey'] === patientKey) return true;
    }
    return false;
  }
}
