import type { RecordedEvent } from './ports/event-store';
import { completeKeyErasure } from './erasure-completion';
import { NotFoundError } from '../domain/shared/errors';
import { DIGEST_PREFIX, isSealed, type PatientDataProtection } from './ports/patient-data-protection';
import type { RegistryPosition, RegistryReadModel } from './ports/registry-read-model';
import type { RegistryEntryView } from './projections/registry-projection';
import type { Replacement } from './projector';

/**
 * The personal data of a DocumentSubmitted event (the HL7 content, which holds the CPR number, and the reading's
 * values) is stored sealed under the patient's data key: `content` holds the envelope of
 * JSON { content, summary }, and the event has no `summary` of its own. Sealing binds the document's uniqueId
 * (AEAD context), so an envelope cannot be copied into another document's event.
 *
 * PatientErased (stream `patient-<patientKey>`) records that the patient's key was deleted; the registry
 * projection then forgets the patient's rows, and a rebuild skips the documents it can no longer open.
 */
export const PATIENT_ERASED = 'PatientErased';
export const patientStreamName = (patientKey: string): string => `patient-${patientKey}`;

export type SealedPayload = Readonly<{ content: string; summary: Readonly<{ systolic: number; diastolic: number }> | null }>;

export const sealDocument = async (protection: PatientDataProtection, patientKey: string, uniqueId: string, payload: SealedPayload): Promise<string> =>
  protection.seal(patientKey, JSON.stringify(payload), `document/${uniqueId}`);

/** The content and summary of a DocumentSubmitted event's data; null when the patient's key was erased. */
export const openDocument = async (protection: PatientDataProtection, data: Readonly<Record<string, unknown>>): Promise<SealedPayload | null> => {
  const content = data['content'];
  const summary = (data['summary'] ?? null) as SealedPayload['summary'];
  if (!isSealed(content)) return typeof content === 'string' ? { content, summary } : null;
  const opened = await protection.open(String(data['patientKey']), content, `document/${String(data['uniqueId'])}`);
  return opened === null ? null : (JSON.parse(opened) as SealedPayload);
};

/** Like openDocument, without waiting: undefined when the patient's key is not in memory (see openCached). */
export const openDocumentCached = (protection: PatientDataProtection, data: Readonly<Record<string, unknown>>): SealedPayload | null | undefined => {
  const content = data['content'];
  const summary = (data['summary'] ?? null) as SealedPayload['summary'];
  if (!isSealed(content)) return typeof content === 'string' ? { content, summary } : null;
  if (protection.openCached === undefined) return undefined;
  const opened = protection.openCached(String(data['patientKey']), content, `document/${String(data['uniqueId'])}`);
  return opened === null || opened === undefined ? opened : (JSON.parse(opened) as SealedPayload);
};

/**
 * A DocumentSubmitted event as the pure evolve sees it: the opened content, and the summary when there is one. The
 * hash stays the event's: a keyed digest where the event holds one. The registry row got the plain SHA-256 instead,
 * and on SQLite it stood in clear beside the reading's time and values: the HL7 document is the hub's fixed
 * rendering of those and the CPR number, so the row alone gave the patient's CPR number to anyone with a copy of
 * the file, in minutes per patient. The plain SHA-256 (the ETag, XDS's hash) is taken of the content where it is
 * served (XdsBackend.retrieveDocument).
 */
const withOpened = (e: RecordedEvent, opened: SealedPayload): RecordedEvent => {
  // Spread and overwrite where the keys allow it: an object rest (`{ content, summary, ...rest }`) is copied key by key
  // in V8's runtime: ~6 us per upload on the registry's inline path, where the spread takes ~1.3 us.
  if (opened.summary) return { ...e, data: { ...e.data, content: opened.content, summary: opened.summary } };
  if (!Object.hasOwn(e.data, 'summary')) return { ...e, data: { ...e.data, content: opened.content } };
  const { content: _sealed, summary: _none, ...rest } = e.data;
  return { ...e, data: { ...rest, content: opened.content } };
};

/** Whether a DocumentSubmitted event holds the document's plain SHA-256 (stored by a build before the keyed digest). */
const holdsPlainHash = (e: RecordedEvent): boolean => typeof e.data['hash'] === 'string' && !e.data['hash'].startsWith(DIGEST_PREFIX);

/**
 * The event as the row is to hold it: one that holds the document's plain SHA-256 (stored by a build before the keyed
 * digest, 2026-12-01) with the keyed digest of its document instead, the one SqliteRegistry.keyPlainHashes gives the
 * rows at start. The event keeps its plain hash; the row, beside the reading's time and values in clear on SQLite,
 * must not: a rebuild (rebuildRegistry, the start's when the registry is behind) put it back until the next start.
 * Null when the patient was erased meanwhile (no key to digest under: nothing of it may reach the rows).
 */
const withKeyedHash = async (protection: PatientDataProtection, e: RecordedEvent, content: string): Promise<RecordedEvent | null> => {
  if (!holdsPlainHash(e)) return e;
  try {
    return { ...e, data: { ...e.data, hash: await protection.digest(String(e.data['patientKey']), content, `document/${String(e.data['uniqueId'])}`) } };
  } catch (error) {
    if (error instanceof NotFoundError && error.code === 'patient_erased') return null;
    throw error;
  }
};

/** The event types the registry projection reads (everything else only moves its checkpoint). */
export const REGISTRY_EVENT_TYPES: ReadonlySet<string> = new Set(['DocumentSubmitted', 'DocumentDeprecated', PATIENT_ERASED]);

/**
 * The registry's events opened without waiting, for a projection kept inside the append's transaction (which
 * cannot await): undefined when that cannot be done, so the batch is left to the background projector: a
 * patient key not in memory, or a PatientErased (forgetting the rows is the background path's).
 * Erased patients' documents are left out, as OpeningRegistry does.
 */
export const openRegistryEventsCached = (protection: PatientDataProtection, events: readonly RecordedEvent[]): RecordedEvent[] | undefined => {
  const out: RecordedEvent[] = [];
  for (const e of events) {
    if (e.type === PATIENT_ERASED) return undefined;
    if (e.type !== 'DocumentSubmitted') {
      out.push(e);
      continue;
    }
    // A plain hash is keyed by the background path (withKeyedHash waits for the key).
    if (holdsPlainHash(e)) return undefined;
    const opened = openDocumentCached(protection, e.data);
    if (opened === undefined) return undefined;
    if (opened !== null) out.push(withOpened(e, opened));
  }
  return out;
};

/** A registry adapter that can forget every row of one patient. */
export interface ForgettingRegistry extends RegistryReadModel {
  forgetPatient(patientKey: string): Promise<void>;
  rebuildBeside?(): Promise<Replacement<ForgettingRegistry>>;
}

/**
 * The registry as the projector feeds it: documents are opened before the pure evolve sees them (so the rows get
 * their values), the documents of erased patients are skipped, and PatientErased removes the patient's rows.
 * Rows and checkpoint still advance together: events before a PatientErased are applied (without moving the
 * checkpoint past it), the rows are forgotten, and the rest is applied with the batch's checkpoint; a crash in
 * between replays the same steps, each idempotent.
 */
export class OpeningRegistry implements RegistryReadModel {
  /** The inner registry's replacement, fed through an OpeningRegistry of its own (when the inner one has one). */
  readonly rebuildBeside?: () => Promise<Replacement<OpeningRegistry>>;

  constructor(
    private readonly inner: ForgettingRegistry,
    private readonly protection: PatientDataProtection,
  ) {
    const beside = inner.rebuildBeside?.bind(inner);
    if (beside) {
      this.rebuildBeside = async () => {
        const replacement = await beside();
        return {
          target: new OpeningRegistry(replacement.target, protection),
          swapIn: (force) => replacement.swapIn(force),
          close: () => replacement.close(),
        };
      };
    }
  }

  checkpoint(): Promise<bigint> {
    return this.inner.checkpoint();
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint, from?: bigint): Promise<void> {
    let segment: RecordedEvent[] = [];
    let after = from; // where the next inner apply starts: the page's start, then the end of each segment applied
    for (const e of events) {
      if (e.type === PATIENT_ERASED) {
        // The events before it, up to the last of them: a registry that ignores a checkpoint it has already
        // reached (PostgresRegistry, where several hubs project) would otherwise drop them.
        if (segment.length > 0) {
          const end = segment[segment.length - 1]!.globalPosition;
          await this.inner.apply(segment, end, after);
          after = end;
        }
        segment = [];
        const patientKey = String(e.data['patientKey']);
        // Erased by another hub process, perhaps: the documents after it in this batch must not open with a key
        // still cached here (ErasedKeysProjection drops it too, but may not have reached this event yet).
        this.protection.forgetErased?.(patientKey);
        await completeKeyErasure(this.protection, patientKey, e.data['erasedAt']); // one an erasure cut off left live
        await this.inner.forgetPatient(patientKey);
        continue;
      }
      if (e.type !== 'DocumentSubmitted') {
        segment.push(e);
        continue;
      }
      const opened = await openDocument(this.protection, e.data);
      if (opened === null) continue; // erased: nothing of it may reach the rows
      const keyed = await withKeyedHash(this.protection, e, opened.content);
      if (keyed === null) continue;
      segment.push(withOpened(keyed, opened));
    }
    await this.inner.apply(segment, checkpoint, after);
  }

  findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]> {
    return this.inner.findCurrent(patientKey, fromEpoch, toEpoch, limit);
  }

  findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): Promise<readonly RegistryEntryView[]> {
    return this.inner.findAllOf(patientKey, after, limit);
  }

  allEntriesOf(patientKey: string, pageSize: number): Promise<readonly RegistryEntryView[]> {
    return this.inner.allEntriesOf(patientKey, pageSize);
  }

  get(uniqueId: string): Promise<RegistryEntryView | null> {
    return this.inner.get(uniqueId);
  }

  knowsPatient(patientKey: string): Promise<boolean> {
    return this.inner.knowsPatient(patientKey);
  }

  reset(): Promise<void> {
    return this.inner.reset();
  }
}
