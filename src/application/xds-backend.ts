import type { DateTime } from 'luxon';
import { documentEntryDecider, documentStreamName, type DocumentEntryData, type SubmitDocument } from '../domain/documents/document-entry';
import { BLOOD_PRESSURE_DOCUMENT_CODES, checkXmlCharacters, parseHl7Observation, withoutEffectiveTimeOffset, type DocumentMetadata } from '../domain/documents/hl7';
import { parseCpr, type Cpr } from '../domain/monitoring/cpr';
import { checkedInterval } from '../domain/monitoring/time-interval';
import { createTeleObservation, toIsoSeconds } from '../domain/monitoring/tele-observation';
import { ConflictError, NotFoundError, ValidationError } from '../domain/shared/errors';
import { isoInstantMillis } from '../domain/shared/iso-instant';
import { checkPatientIdempotencyKey } from '../domain/shared/idempotency-key';
import { handleCommand } from './command-handling';
import { sha256Hex, uuidToOid, uuidV5 } from './ids';
import type { Clock } from './ports/clock';
import type { DocumentRepository } from './ports/document-repository';
import type { EventStore } from './ports/event-store';
import type { IdGenerator } from './ports/id-generator';
import type { PatientDataProtection } from './ports/patient-data-protection';
import type { PatientKeys } from './ports/patient-keys';
import type { RegistryReadModel } from './ports/registry-read-model';
import type { RegistryEntryView } from './projections/registry-projection';
import type { Projector } from './projector';
import { sealDocument } from './sealed-documents';

/** The most documents one query returns; a wider answer asks the caller to narrow the interval. */
export const MAX_QUERY_RESULTS = 10_000;
/** The registry entries one page of `allEntriesOf` reads. */
const ENTRIES_PAGE = 1_000;

export type SubmitOptions = Readonly<{
  /** Client-supplied idempotency key: the same key for the same patient gives the same uniqueId. */
  observationId?: string;
  replaces?: string;
  correlationId?: string;
  /** The values the document holds, when the caller built it from them (saves the registry a parse). */
  summary?: Readonly<{ systolic: number; diastolic: number }>;
}>;

export type SubmitResult = Readonly<{ uniqueId: string; created: boolean; position: bigint | null }>;

/**
 * A repeat's answer (`created: false`) names the document that holds the reading now when it was corrected since
 * (`currentUniqueId`, its chain of corrections followed): the repeat answers with the replaced document, and a caller
 * retrying after a lost answer otherwise took the old values for stored. Absent when the document is current.
 */
export type RepeatedResult = Readonly<{ currentUniqueId?: string }>;

/** Corrections followed at most from a document to the current version of its reading (a chain is one link per correction). */
export const MAX_CHAIN_HOPS = 1000;

export type RetrievedDocument = Readonly<{ entry: RegistryEntryView; content: string }>;

export type XdsDependencies = Readonly<{
  store: EventStore;
  registry: RegistryReadModel;
  projector: Projector;
  repositories: readonly DocumentRepository[];
  /** Repository that receives new documents. */
  repositoryUniqueId: string;
  patientKeys: PatientKeys;
  clock: Clock;
  ids: IdGenerator;
  /**
   * Seals each document's personal data (content and values) under the patient's own key before it is appended,
   * and opens it on retrieval (crypto-shredding). Without it documents are stored in clear (unit tests only).
   */
  protection?: PatientDataProtection;
}>;

/**
 * What the registry projection needs of a built document's entry, checked without parsing the document (the *Built
 * paths trust their caller to have validated the reading): a time it can index, numeric values and the fixed fields
 * MetadataBuilder writes. One entry stored with a time the projection cannot read stopped it at that event, and every
 * later registry query failed, for every patient, until the store was repaired by hand.
 */
const checkBuilt = (metadata: DocumentMetadata, summary: NonNullable<SubmitOptions['summary']>): void => {
  const start: unknown = metadata?.serviceStartTime;
  const problems = [
    (typeof start !== 'string' || Number.isNaN(isoInstantMillis(start))) && { path: 'serviceStartTime', message: 'must be an ISO-8601 instant' },
    metadata?.serviceStopTime !== start && { path: 'serviceStopTime', message: 'must equal serviceStartTime (a reading is an instant)' },
    ...Object.entries(BLOOD_PRESSURE_DOCUMENT_CODES)
      .filter(([field, value]) => (metadata as Record<string, unknown> | undefined)?.[field] !== value)
      .map(([field, value]) => ({ path: field, message: `must be "${value}"` })),
    !(Number.isFinite(summary?.systolic) && Number.isFinite(summary?.diastolic)) && { path: 'summary', message: 'systolic and diastolic must be numbers' },
  ].filter((m): m is { path: string; message: string } => m !== false);
  if (problems.length > 0) throw new ValidationError('invalid_document', `the built document's metadata is not valid: ${problems.map((m) => `${m.path} ${m.message}`).join('; ')}`, problems);
};

/** The uniqueId of the replacement of `uniqueId` by the correction `correctionId`. */
const replacementIdOf = (uniqueId: string, correctionId: string): string => uuidToOid(uuidV5(`correction/${uniqueId}/${correctionId}`));

/**
 * The correction ids an earlier build derived for a correction sent without one: from the plain SHA-256 of the new
 * document (until 2026-12-05), or of the bytes a build before that wrote (effectiveTime without +0000).
 */
const earlierCorrectionIds = (newDocument: string): string[] => {
  const earlier = withoutEffectiveTimeOffset(newDocument);
  return [newDocument, ...(earlier === null ? [] : [earlier])].map((document) => `document/${sha256Hex(document)}`);
};

/** The refusal of an upload's or a correction's id already used for a document with other bytes. */
const isIdReused = (error: unknown): boolean =>
  error instanceof ConflictError && (error.code === 'observation_id_reused' || error.code === 'correction_id_reused');

/**
 * The seed's XDSBackend: provide-and-register, query by patient and interval, retrieve, and correct (RPLC).
 * Registering and storing are one append to the document's own stream; the registry query side is a projection.
 */
export class XdsBackend {
  constructor(private readonly deps: XdsDependencies) {}

  /** Now, by the backend's clock (TeleMedService validates readings against it). */
  now(): DateTime {
    return this.deps.clock.now();
  }

  /** uniqueId for an upload: derived from the client's observation id when given, random otherwise. */
  uniqueIdFor(patientKey: string, observationId: string | undefined): string {
    return uuidToOid(observationId === undefined ? this.deps.ids.uuid() : uuidV5(`observation/${patientKey}/${observationId}`));
  }

  /**
   * The seed's provide-and-register, for a document from anywhere: it is parsed and must be a valid reading (as an
   * upload: CPR, plausible values, not in the future, not before birth) of the patient and at the time its
   * metadata names. A document that is not would be stored, then break every later read of the registry.
   */
  async provideAndRegisterDocument(metadata: DocumentMetadata, document: string, options: SubmitOptions = {}): Promise<SubmitResult> {
    const summary = this.checkedSummary(metadata, document);
    if (options.observationId !== undefined) checkPatientIdempotencyKey(options.observationId, metadata.patientId.replace('-', ''), 'observationId', 'invalid_document');
    return this.provideAndRegisterBuilt(metadata, document, { ...options, summary });
  }

  /**
   * provideAndRegisterDocument without the parse, for a document `buildDocument` made from a TeleObservation that
   * createTeleObservation validated (TeleMedService's path: parsing back what was just built cost more than the
   * rest of an upload). `summary` must be that observation's values.
   */
  async provideAndRegisterBuilt(metadata: DocumentMetadata, document: string, options: SubmitOptions & Readonly<{ summary: NonNullable<SubmitOptions['summary']> }>): Promise<SubmitResult> {
    checkBuilt(metadata, options.summary);
    const patientKey = this.deps.patientKeys.keyFor(metadata.patientId);
    const uniqueId = this.uniqueIdFor(patientKey, options.observationId);
    return this.register(uniqueId, patientKey, metadata, document, options);
  }

  /** The values of a document from outside, after checking it holds a valid new reading matching its metadata. */
  private checkedSummary(metadata: DocumentMetadata, document: string): NonNullable<SubmitOptions['summary']> {
    if (typeof document !== 'string') throw new ValidationError('invalid_document', 'the document must be HL7 XML text');
    checkXmlCharacters(document);
    const reading = createTeleObservation(parseHl7Observation(document), this.deps.clock.now());
    // The rest of the metadata is a blood pressure document's, as MetadataBuilder makes it: these fields are stored
    // in clear, and free text (a title naming the patient) would outlive an erasure.
    const fixed = Object.entries(BLOOD_PRESSURE_DOCUMENT_CODES).filter(([field, value]) => (metadata as Record<string, unknown> | undefined)?.[field] !== value);
    const mismatch = [
      reading.patientId !== metadata?.patientId && { path: 'patientId', message: "differs from the document's patient" },
      reading.measuredAt !== metadata?.serviceStartTime && { path: 'serviceStartTime', message: "differs from the document's effectiveTime" },
      metadata?.serviceStopTime !== metadata?.serviceStartTime && { path: 'serviceStopTime', message: 'must equal serviceStartTime (a reading is an instant)' },
      ...fixed.map(([field, value]) => ({ path: field, message: `must be "${value}" (a blood pressure document's, as MetadataBuilder makes it)` })),
    ].filter((m): m is { path: string; message: string } => m !== false);
    if (mismatch.length > 0) throw new ValidationError('invalid_document', `the metadata does not describe the document: ${mismatch.map((m) => `${m.path} ${m.message}`).join('; ')}`, mismatch);
    return { systolic: reading.systolic.value, diastolic: reading.diastolic.value };
  }

  /**
   * Register `newDocument` as the replacement of `uniqueId` (XDS RPLC): the old entry is deprecated and the new
   * one approved, so queries return only the current one. The old document is deprecated first, under optimistic
   * concurrency, so of two concurrent corrections exactly one wins; the replacement's uniqueId is derived from
   * the correction id (by default, from the new document itself), so a correction retried after a failure
   * between the two appends completes the same way. Queries see the swap at once when the replacement is
   * registered: until then the old entry stays current, with only its successor's id recorded
   * (evolveRegistryEntry).
   *
   * A document deprecated for a replacement that was never registered (the second append failed and nobody
   * retried) stays in queries, but would refuse every later correction as already replaced: the next correction
   * of it, whatever its id, registers its document as that replacement. Its registry row names that successor in
   * `replacedBy`, as Approved (or, written before replacements did the swap, as Deprecated).
   */
  async correctDocument(uniqueId: string, metadata: DocumentMetadata, newDocument: string, options: { correctionId?: string; correlationId?: string } = {}): Promise<SubmitResult> {
    const summary = this.checkedSummary(metadata, newDocument);
    if (options.correctionId !== undefined) checkPatientIdempotencyKey(options.correctionId, metadata.patientId.replace('-', ''), 'correctionId', 'invalid_document');
    return this.correctBuilt(uniqueId, metadata, newDocument, { ...options, summary });
  }

  /** correctDocument without the parse: TeleMedService's path, as provideAndRegisterBuilt. */
  async correctBuilt(uniqueId: string, metadata: DocumentMetadata, newDocument: string, options: { correctionId?: string; correlationId?: string; summary: NonNullable<SubmitOptions['summary']> }): Promise<SubmitResult> {
    return this.correctOnce(uniqueId, metadata, newDocument, options, false);
  }

  private async correctOnce(
    uniqueId: string,
    metadata: DocumentMetadata,
    newDocument: string,
    options: { correctionId?: string; correlationId?: string; summary: NonNullable<SubmitOptions['summary']> },
    again: boolean,
  ): Promise<SubmitResult> {
    checkBuilt(metadata, options.summary);
    const old = await this.entry(uniqueId);
    const patientKey = this.deps.patientKeys.keyFor(metadata.patientId);
    if (old.patientKey !== patientKey) {
      throw new ValidationError('correction_patient_mismatch', 'a correction must concern the same patient as the document it replaces', [
        { path: 'patientId', message: 'differs from the patient of the corrected document' },
      ]);
    }
    const replacement = { replaces: uniqueId, correlationId: options.correlationId, summary: options.summary };
    if (old.replacedBy !== null) {
      const successor = await this.findEntry(old.replacedBy);
      if (successor === null) {
        // The replacement is missing: a correction interrupted between its two appends, or one that another request
        // (or hub) is between them right now. This one registers its document as that replacement; whichever
        // registers first is the correction, and the other is told the document was replaced.
        return this.registerReplacement(old.replacedBy, patientKey, metadata, newDocument, replacement, true);
      }
      // The same document again: the correction is in place (the registry row's hash is its event's: the keyed
      // digest of a sealed document, the plain SHA-256 of one stored before 2026-12-01 or unsealed; of a correction an
      // earlier build stored, that of its bytes, without effectiveTime's +0000). With a correction id too: a
      // correction that completed an interrupted one registered under that one's id, so its own retry derives
      // another replacement id, and was told 409 document_deprecated although its values are the ones in place.
      const earlier = withoutEffectiveTimeOffset(newDocument);
      const same = [...(await this.hashesOf(patientKey, successor.uniqueId, newDocument)), ...(earlier === null ? [] : await this.hashesOf(patientKey, successor.uniqueId, earlier))];
      if (same.includes(successor.hash)) return { uniqueId: successor.uniqueId, created: false, position: null };
      if (options.correctionId !== undefined && replacementIdOf(uniqueId, options.correctionId) === old.replacedBy) {
        // This id's replacement holds another document: the id was used for other values, or this correction was
        // interrupted and a later one completed it with its own (whose id nothing recorded): either way not this one.
        throw new ConflictError(
          'correction_id_reused',
          'this correction id was already used for a different correction, or its correction was interrupted and another correction completed it: the document holds other values now; correct the current one',
        );
      }
    }
    const correctionId = options.correctionId ?? (await this.documentCorrectionId(patientKey, uniqueId, old.replacedBy, newDocument));
    const newUniqueId = replacementIdOf(uniqueId, correctionId);
    let deprecation: Awaited<ReturnType<typeof handleCommand>>;
    try {
      deprecation = await handleCommand(
        this.deps.store,
        documentStreamName(uniqueId),
        documentEntryDecider,
        { type: 'DeprecateDocument', uniqueId, replacedBy: newUniqueId, now: toIsoSeconds(this.deps.clock.now()) },
        { commandId: `deprecate/${uniqueId}/${correctionId}`, metadata: { correlationId: options.correlationId } },
      );
    } catch (error) {
      // Another correction deprecated the document since this one read it (two at once: a client's retry after a
      // timeout while the first still ran). Read again, as a request arriving now would: the same document is the
      // correction in place (200), or, while the other is between its two appends, registered as that replacement as
      // for an interrupted one (whichever registers first); other values stay refused. Three at once with the same
      // values answered 201, 409, 409.
      if (again || !(error instanceof ConflictError && error.code === 'document_deprecated')) throw error;
      return this.correctOnce(uniqueId, metadata, newDocument, options, true);
    }
    // Only when this request deprecated the document can a different document under its replacement's id mean that
    // a concurrent correction completed it first; otherwise that is a correction id used again for other values.
    return this.registerReplacement(newUniqueId, patientKey, metadata, newDocument, replacement, deprecation.newEvents.length > 0);
  }

  /**
   * Registers a correction's replacement. `contested`: another correction may have registered a different document
   * under this id between this request's reads and its append (two hubs, or two requests, correcting one document
   * at once); that one is the correction then, and this request lost: document_deprecated, as for a correction of a
   * document already replaced (CI once saw correction_id_reused here, for a correction id the caller used once).
   */
  private async registerReplacement(
    replacementId: string,
    patientKey: string,
    metadata: DocumentMetadata,
    document: string,
    options: SubmitOptions,
    contested: boolean,
  ): Promise<SubmitResult> {
    try {
      return await this.register(replacementId, patientKey, metadata, document, options);
    } catch (error) {
      if (!contested || (error as { code?: string }).code !== 'correction_id_reused') throw error;
      throw new ConflictError('document_deprecated', 'the document was already replaced by a correction; correct the current one');
    }
  }

  /** Current (approved) documents of a patient whose service time lies in [start, end). */
  async retrieveDocumentSet(patientId: Cpr, start: DateTime, end: DateTime): Promise<readonly RetrievedDocument[]> {
    const interval = checkedInterval({ from: start, to: end }); // the query's rules: order, at most 366 days
    const entries = await this.findEntries(parseCpr(patientId), interval.from, interval.to);
    return Promise.all(entries.map(async (entry) => this.retrieved(entry)));
  }

  /**
   * An entry with its content, and the content's plain SHA-256 as the entry's hash (the ETag; XDS's hash). The
   * registry row keeps the event's digest, keyed for a sealed document: a plain SHA-256 there, beside the reading's
   * time and values in clear, gave the CPR number back to anyone with a copy of the file (sealed-documents.ts).
   */
  private async retrieved(entry: RegistryEntryView): Promise<RetrievedDocument> {
    const content = await this.content(entry);
    return { entry: { ...entry, hash: sha256Hex(content) }, content };
  }

  /** Registry entries of a patient in [start, end), without retrieving content. */
  async findEntries(patientId: Cpr, start: DateTime, end: DateTime): Promise<readonly RegistryEntryView[]> {
    const patientKey = this.deps.patientKeys.keyFor(patientId);
    const rows = await this.deps.projector.read(() => this.deps.registry.findCurrent(patientKey, Math.floor(start.toSeconds()), Math.floor(end.toSeconds()), MAX_QUERY_RESULTS + 1));
    if (rows.length > MAX_QUERY_RESULTS) {
      throw new ValidationError('too_many_results', `more than ${MAX_QUERY_RESULTS} documents match; narrow the interval`);
    }
    if (rows.length === 0 && !(await this.deps.registry.knowsPatient(patientKey))) {
      if (await this.deps.protection?.isErased(patientKey)) throw new NotFoundError('patient_erased', 'the patient was erased: their data no longer exists');
      throw new NotFoundError('unknown_patient', 'no document is registered for this patient');
    }
    return rows;
  }

  /**
   * Every registry entry of a patient, current and deprecated (a correction's old reading, with `replacedBy`), oldest
   * first, without retrieving content: the patient's whole record, for the right of access. Read in pages of the
   * registry, so no cap applies (a query's MAX_QUERY_RESULTS would refuse a patient of many years), all of them in one
   * read snapshot (RegistryReadModel.allEntriesOf): a correction or upload applied while the pages are read is in the
   * answer whole or not at all, never a reading twice (the old and the new of a correction, both current) or neither.
   * Empty for a patient the registry holds nothing of, erased or never known: the caller tells those apart.
   */
  async allEntriesOf(patientId: Cpr): Promise<readonly RegistryEntryView[]> {
    const patientKey = this.deps.patientKeys.keyFor(parseCpr(patientId));
    return this.deps.projector.read(() => this.deps.registry.allEntriesOf(patientKey, ENTRIES_PAGE));
  }

  /**
   * The pseudonymous key of a document's patient, from the document's own stream: also for a document whose patient
   * was erased (its registry row is gone, its first event still names the key). Null for a document the hub does
   * not hold.
   */
  async patientKeyOfDocument(uniqueId: string): Promise<string | null> {
    const { events } = await this.deps.store.readStream(documentStreamName(uniqueId), { maxCount: 1 });
    const patientKey = events[0]?.type === 'DocumentSubmitted' ? events[0].data['patientKey'] : undefined;
    return typeof patientKey === 'string' ? patientKey : null;
  }

  async retrieveDocument(uniqueId: string): Promise<RetrievedDocument> {
    return this.retrieved(await this.entry(uniqueId));
  }

  /** The registry entry of the patient's upload with this observation id, or null when there is none. */
  async entryOfObservation(patientId: Cpr, observationId: string): Promise<RegistryEntryView | null> {
    return this.findEntry(this.uniqueIdFor(this.deps.patientKeys.keyFor(patientId), observationId));
  }

  /**
   * Whether `uniqueId` names a document whose patient was erased (its registry row went with the erasure, so `entry`
   * says document_not_found): the document's own stream still names the patient's key. For the library, whose
   * README promises patient_erased; HTTP keeps its 404 (its access check cannot place a document without a row).
   */
  async isOfErasedPatient(uniqueId: string): Promise<boolean> {
    if (!this.deps.protection) return false;
    const patientKey = await this.patientKeyOfDocument(uniqueId);
    return patientKey !== null && (await this.deps.protection.isErased(patientKey));
  }

  async entry(uniqueId: string): Promise<RegistryEntryView> {
    const entry = await this.findEntry(uniqueId);
    if (!entry) throw new NotFoundError('document_not_found', 'no document has this uniqueId');
    return entry;
  }

  /**
   * The entry a document's chain of corrections ends at, followed at most MAX_CHAIN_HOPS links (each a registry read):
   * Deprecated still when the chain is longer than that.
   */
  async chainEnd(uniqueId: string): Promise<RegistryEntryView> {
    let entry = await this.entry(uniqueId);
    for (let hops = 0; entry.status === 'Deprecated' && entry.replacedBy && hops < MAX_CHAIN_HOPS; hops++) entry = await this.entry(entry.replacedBy);
    return entry;
  }

  /**
   * The current document of a repeat's reading (RepeatedResult), nothing when it is current; a created one is. Nothing
   * either when the chain is longer than MAX_CHAIN_HOPS: the entry reached is Deprecated itself, not current (as the 409
   * document_deprecated then names none).
   */
  async repeatedResult(result: SubmitResult): Promise<RepeatedResult> {
    if (result.created) return {};
    let end: RegistryEntryView;
    try {
      end = await this.chainEnd(result.uniqueId);
    } catch (error) {
      // The patient's erasure overtook the repeat between its look-up and this read (their rows went with it): say so,
      // as the upload would a moment later. It said document_not_found, a 404 that POST /observations does not list.
      if (error instanceof NotFoundError && error.code === 'document_not_found' && (await this.isOfErasedPatient(result.uniqueId))) {
        throw new NotFoundError('patient_erased', 'the patient was erased: their data no longer exists');
      }
      throw error;
    }
    return end.uniqueId === result.uniqueId || end.status === 'Deprecated' ? {} : { currentUniqueId: end.uniqueId };
  }

  private async findEntry(uniqueId: string): Promise<RegistryEntryView | null> {
    return this.deps.projector.read(() => this.deps.registry.get(uniqueId));
  }

  private async content(entry: RegistryEntryView): Promise<string> {
    // A document registered under an earlier RTS_REPOSITORY_UNIQUE_ID (a region's OID set after a trial run) is in
    // the same event store: the repository receiving new documents reads it. Without this every earlier document
    // answered 404 document_content_missing once the OID changed.
    const repository =
      this.deps.repositories.find((r) => r.repositoryUniqueId === entry.repositoryUniqueId) ??
      this.deps.repositories.find((r) => r.repositoryUniqueId === this.deps.repositoryUniqueId);
    const content = repository ? await repository.retrieve(entry.uniqueId) : null;
    if (content === null) throw new NotFoundError('document_content_missing', 'the repository named by the registry entry does not hold the document');
    if (!this.deps.protection) return content;
    const opened = await this.deps.protection.open(entry.patientKey, content, `document/${entry.uniqueId}`);
    if (opened === null) throw new NotFoundError('patient_erased', 'the patient was erased: their data no longer exists');
    // Sealed documents hold { content, summary }; a document stored before sealing is its content itself.
    return opened === content ? content : (JSON.parse(opened) as { content: string }).content;
  }

  private async register(uniqueId: string, patientKey: string, metadata: DocumentMetadata, document: string, options: SubmitOptions): Promise<SubmitResult> {
    const plainHash = sha256Hex(document);
    const entry: DocumentEntryData = {
      uniqueId,
      patientKey,
      repositoryUniqueId: this.deps.repositoryUniqueId,
      observationId: options.observationId ?? null,
      creationTime: toIsoSeconds(this.deps.clock.now()),
      serviceStartTime: metadata.serviceStartTime,
      serviceStopTime: metadata.serviceStopTime,
      mimeType: metadata.mimeType,
      classCode: metadata.classCode,
      typeCode: metadata.typeCode,
      formatCode: metadata.formatCode,
      title: metadata.title,
      languageCode: metadata.languageCode,
      // Sealed documents get a keyed digest: a plain SHA-256 in clear would outlive an erasure and give the
      // reading back to anyone trying the plausible values (see PatientDataProtection.digest).
      hash: this.deps.protection ? await this.deps.protection.digest(patientKey, document, `document/${uniqueId}`) : plainHash,
      size: Buffer.byteLength(document, 'utf8'),
      replaces: options.replaces ?? null,
      ...(options.summary && !this.deps.protection ? { summary: { systolic: options.summary.systolic, diastolic: options.summary.diastolic } } : {}),
    };
    const summary = options.summary ? { systolic: options.summary.systolic, diastolic: options.summary.diastolic } : null;
    const stored = this.deps.protection ? await sealDocument(this.deps.protection, patientKey, uniqueId, { content: document, summary }) : document;
    const command: SubmitDocument = { type: 'SubmitDocument', entry, content: stored, plainHash };
    const handle = (c: SubmitDocument, expectNewStream: boolean) =>
      handleCommand(this.deps.store, documentStreamName(uniqueId), documentEntryDecider, c, { commandId: `submit/${uniqueId}`, metadata: { correlationId: options.correlationId }, expectNewStream });
    let result: Awaited<ReturnType<typeof handle>>;
    try {
      result = await handle(command, true);
    } catch (error) {
      // A retry of a reading an earlier build stored, in the bytes it wrote (effectiveTime without +0000): the same
      // reading, so the same answer as any retry. Looked at only on a refusal, so an upload pays nothing for it.
      const earlier = isIdReused(error) ? withoutEffectiveTimeOffset(document) : null;
      if (earlier === null) throw error;
      result = await handle({ ...command, earlierHashes: await this.hashesOf(patientKey, uniqueId, earlier) }, false);
    }
    return { uniqueId, created: result.newEvents.length > 0, position: result.lastGlobalPosition };
  }

  /**
   * The correction id of a correction sent without one: derived from the new document, so that a retry completes the
   * same correction. Keyed under the patient's data key when documents are sealed: the id goes into the replacement's
   * uniqueId, the events' ids and their causationId, all of which outlive an erasure, and the plain SHA-256 of a
   * document as predictable as a reading's gave the corrected values back to anyone trying the plausible ones (60,000
   * tries, under a second). When the document's recorded replacement is that of an id an earlier build derived, its
   * retry today is the same correction.
   */
  private async documentCorrectionId(patientKey: string, uniqueId: string, replacedBy: string | null, newDocument: string): Promise<string> {
    const current = `document/${this.deps.protection ? await this.deps.protection.digest(patientKey, newDocument, `correction/${uniqueId}`) : sha256Hex(newDocument)}`;
    if (replacedBy === null || replacementIdOf(uniqueId, current) === replacedBy) return current;
    return earlierCorrectionIds(newDocument).find((id) => replacementIdOf(uniqueId, id) === replacedBy) ?? current;
  }

  /** The hashes a document stored under `uniqueId` could have in its entry: the plain SHA-256, and the keyed digest when sealed. */
  private async hashesOf(patientKey: string, uniqueId: string, document: string): Promise<string[]> {
    const plain = sha256Hex(document);
    return this.deps.protection ? [plain, await this.deps.protection.digest(patientKey, document, `document/${uniqueId}`)] : [plain];
  }
}

