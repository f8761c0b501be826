import { randomBytes, randomUUID } from 'node:crypto';
import type { Container } from 'inversify';
import type { DateTime } from 'luxon';
import pino, { type Logger } from 'pino';
import { ErasureIncompleteError, type ErasureOptions, type ErasurePage, type ErasureResult, type PatientErasure } from '../application/patient-erasure';
import { ContentErasureIncompleteError, type ConsultationContentErasure, type ContentErasureResult } from '../application/consultation/consultation-erasure';
import { consultationViewFromStream } from '../application/consultation/consultation-view-from-stream';
import { AuditTrail } from '../application/audit/audit-trail';
import type { AuditEntry } from '../application/audit/audit-chain';
import { PatientExport } from '../application/patient-export';
import type { Clock } from '../application/ports/clock';
import type { PatientKeys } from '../application/ports/patient-keys';
import { CONSULTATION_ID_PATTERN } from '../domain/consultation/consultation';
import type { EventStore } from '../application/ports/event-store';
import type { PatientDataProtection, PatientKeyStore } from '../application/ports/patient-data-protection';
import { startErasedKeys } from '../application/erased-keys';
import type { Projector } from '../application/projector';
import type { CorrectResult, RecordOptions, RecordResult, StoredObservation, TeleMedService } from '../application/telemed';
import type { RepeatedResult, RetrievedDocument, SubmitResult, XdsBackend } from '../application/xds-backend';
import type { DocumentMetadata } from '../domain/documents/hl7';
import { parseCpr, type Cpr } from '../domain/monitoring/cpr';
import type { TeleObservation } from '../domain/monitoring/tele-observation';
import type { TimeInterval } from '../domain/monitoring/time-interval';
import { NotFoundError, RtsError, UnavailableError, ValidationError } from '../domain/shared/errors';
import { STORAGE_UNAVAILABLE } from '../adapters/event-store/sqlite/storage-failure';
import { InMemoryKeyStore } from '../adapters/crypto/key-stores';
import { InMemoryEventStore } from '../adapters/event-store/memory/in-memory-event-store';
import { InMemoryRegistry } from '../adapters/registry/in-memory-registry';
import { logConsultationErasure, logErasure } from '../adapters/backup/erasure-log-line';
import { patientExportDto, type PatientExportDocument } from '../adapters/http/export-routes';
import { codeAndStatusOf } from '../adapters/errors/error-codes';
import type { DataDirLock } from '../adapters/system/data-dir-lock';
import { ConfigError, loadConfig, type Config } from './config';
import { TOKENS, auditEventsByField, buildContainer, openContainer } from './container';
import { lockEmbeddedStore } from './embedded-store-lock';
import { completeErasuresOfKeyStore } from './erasures-at-start';
import { TransientStartError, startupSettingProblem, storeStartProblem } from './main';
import {
  CORRECTION_OPTIONS,
  ERASURE_BY_KEY_OPTIONS,
  ERASURE_OPTIONS,
  EXPORT_OPTIONS,
  LIST_ERASURES_OPTIONS,
  MAX_ERASURES_PAGE,
  PATIENT_KEY,
  RECORD_OPTIONS,
  SUBMIT_OPTIONS,
  checkedOptions,
  openOptionProblems,
} from './library-options';

/** A patient export's options: who asked (the audit entry's subject) and the request id the entry carries. */
export type ExportOptions = Readonly<{ by: string; correlationId?: string }>;

/** A correction's options: its idempotency key and the correlation id its events carry. */
export type CorrectionOptions = Readonly<{ correctionId?: string; correlationId?: string }>;

/** The seed's TeleMed interface: processAndStore, getObservationsFor, plus record, correct and patientOf. */
export type EmbeddedTeleMedService = Readonly<{
  processAndStore(teleObs: TeleObservation): Promise<string>;
  getObservationsFor(patientId: Cpr, interval: TimeInterval): Promise<readonly StoredObservation[]>;
  record(observation: TeleObservation, options?: RecordOptions): Promise<RecordResult>;
  correct(uniqueId: string, corrected: TeleObservation, options?: CorrectionOptions): Promise<CorrectResult>;
  patientOf(uniqueId: string): Promise<Cpr>;
}>;

/** The seed's XDSBackend: provideAndRegisterDocument, retrieveDocumentSet, correctDocument, plus retrieveDocument. */
export type EmbeddedXds = Readonly<{
  provideAndRegisterDocument(metadata: DocumentMetadata, document: string, options?: Readonly<{ observationId?: string; correlationId?: string }>): Promise<SubmitResult & RepeatedResult>;
  retrieveDocumentSet(patientId: Cpr, start: DateTime, end: DateTime): Promise<readonly RetrievedDocument[]>;
  retrieveDocument(uniqueId: string): Promise<RetrievedDocument>;
  correctDocument(uniqueId: string, metadata: DocumentMetadata, newDocument: string, options?: CorrectionOptions): Promise<SubmitResult & RepeatedResult>;
}>;

/** What a backend team gets when it embeds the core without HTTP. */
export type EmbeddedTeleMed = Readonly<{
  telemed: EmbeddedTeleMedService;
  xds: EmbeddedXds;
  /**
   * Rebuild the registry projection from the events. The registry is rebuilt beside the live one, which goes on
   * answering (queries, retrieves, corrections, uploads) and, on PostgreSQL, every hub on the schema goes on reading
   * and feeding, and swapped in when it has caught up (README, "Design": corrections). With the registry in memory
   * (EventStoreDB, `inMemory`), calls that read it meanwhile wait for the rebuild instead.
   */
  rebuildRegistry(): Promise<void>;
  /**
   * Forget a patient by crypto-shredding (what POST /erasures does): their data key is deleted, their
   * registry rows go, and every stored document of theirs stays an envelope nobody can open. Idempotent; later
   * uploads and reads for the patient throw NotFoundError code 'patient_erased' (410 over HTTP). `by` is recorded in the PatientErased event.
   * A patient the hub holds nothing of throws NotFoundError code 'unknown_patient' and nothing changes, unless
   * `ifUnknown: 'erase'` (then their uploads are refused from now on; the result says `known: false`).
   */
  erasePatient(patientId: Cpr, options: ErasureOptions): Promise<ErasureResult>;
  /**
   * Forget a patient by pseudonymous key (what PUT /erasures/{patientKey} does): how the erasures a restored backup
   * predates are repeated, from `listErasures` of the newer copy, saved answers of it, or the `patient erased` log
   * lines. Always recorded, as `ifUnknown: 'erase'` (a key comes from a record of an erasure).
   */
  eraseByKey(patientKey: string, options: Omit<ErasureOptions, 'ifUnknown'>): Promise<ErasureResult>;
  /**
   * Erase one consultation's texts (question, summary, report, reasons) by deleting its data key (what DELETE
   * /consultations/{id}/content does): for a consultation no patient's erasure reaches. Idempotent (`alreadyErased`);
   * NotFoundError code 'consultation_not_found' for an unknown id. `by` is recorded with the event.
   */
  eraseConsultationContent(consultationId: string, options: Omit<ErasureOptions, 'ifUnknown'>): Promise<ContentErasureResult>;
  /**
   * The erasures recorded, oldest first (what GET /erasures answers): patients' (`kind: 'patient'`, key and time;
   * repeat with `eraseByKey`) and consultations' content erased by id (`kind: 'consultation'`, id and time; repeat
   * with `eraseConsultationContent`); `limit` (1-10,000, default 10,000) from after position `after` (default 0n);
   * `next` is the `after` of the next page, null on the last (a page may hold fewer items than `limit`).
   */
  listErasures(options?: Readonly<{ after?: bigint; limit?: number }>): Promise<ErasurePage>;
  /**
   * The patient's right of access (GDPR art. 15; what POST /patients/export answers, the same document): everything
   * the hub holds of the patient (readings current and deprecated, consultations, the audit entries under their key,
   * whether they were erased), with `format` 'telemed-rts/patient-export' and `formatVersion`. Changes nothing, but
   * is audited as the HTTP export is: `patient.export` under the patient's key, subject `by` (role 'library'; request
   * id `correlationId`, or a new UUID), and returned only once that entry is stored (UnavailableError
   * 'audit_unavailable' otherwise: call again); so the patient's next export shows this one. An erased patient's
   * export says so (`erasure.erasedAt`) with what is left of them. A patient the hub holds nothing of throws
   * NotFoundError 'unknown_patient' (recorded too, as over HTTP). The answer holds the CPR number (`patient.cpr`).
   */
  exportPatient(patientId: Cpr, options: ExportOptions): Promise<PatientExportDocument>;
  /**
   * Let the calls in flight finish, then close the stores. Idempotent. A call after it throws UnavailableError code
   * 'closed'.
   */
  close(): Promise<void>;
}>;

export type OpenOptions =
  /**
   * The server's stores: SQLite under `dataDir` by default; `settings` are RTS_* variables as the server reads
   * them, e.g. { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: '...' } (the environment is not read).
   */
  | Readonly<{ dataDir: string; settings?: Partial<Record<keyof Config, string>>; logger?: Logger }>
  /** Everything in memory, gone at close: for tests of code that embeds TeleMed. */
  | Readonly<{ inMemory: true; pseudonymSecret?: Buffer; logger?: Logger }>;

/**
 * Open the TeleMed core in-process: the server's container, with the same sealing of patient data and the same
 * erasure, on the configured store or in memory.
 *
 *   const rts = await openTeleMed({ dataDir: './data' });
 *   const uniqueId = await rts.telemed.processAndStore(createTeleObservation({...}, DateTime.utc()));
 *   const week = await rts.telemed.getObservationsFor(patientId, lastDays(7, DateTime.utc()));
 *   await rts.close();
 */
export const openTeleMed = async (given: OpenOptions): Promise<EmbeddedTeleMed> => {
  let container: Container;
  let lock: DataDirLock | null = null;
  const problems = openOptionProblems(given);
  if (problems.length > 0) throw new ConfigError(problems);
  let logger: Logger = pino({ level: 'silent' });
  // Only `inMemory: true` is memory: `{ dataDir, inMemory: false }` (or undefined, from a config file) ran in memory
  // and lost everything at close.
  if ((given as { inMemory?: unknown }).inMemory === true) {
    const memory = given as Extract<OpenOptions, { inMemory: true }>;
    // Given the pseudonym secret and the stores, the container touches no file.
    const config = loadConfig({ RTS_PSEUDONYM_SECRET: (memory.pseudonymSecret ?? randomBytes(32)).toString('hex') });
    const opened = { store: new InMemoryEventStore(), registry: new InMemoryRegistry(), registryKind: 'memory' as const, keys: new InMemoryKeyStore() };
    logger = memory.logger ?? logger;
    container = buildContainer(config, logger, opened);
  } else {
    const options = given as Extract<OpenOptions, { dataDir: string }>;
    // An empty path would be read as unset and open ./data: say so instead.
    if (typeof options.dataDir !== 'string' || options.dataDir.trim() === '') throw new ConfigError(['dataDir: must name a directory (it is created when missing)']);
    const config = loadConfig({ ...options.settings, RTS_DATA_DIR: options.dataDir });
    // One process per embedded store, a hub or a library (data-dir-lock.ts): beside a running hub, the library
    // kept an erased patient's key in its cache and took their uploads, which the hub then never showed.
    try {
      lock = lockEmbeddedStore(config, 'dataDir');
      logger = options.logger ?? logger;
      container = await openContainer(config, logger);
    } catch (error) {
      lock?.release();
      throw openProblem(error, config);
    }
  }
  const projector = container.get<Projector>(TOKENS.Projector);
  const store = container.get<EventStore>(TOKENS.EventStore);
  // As startHub does, before openTeleMed resolves: the erasures a restored backup holds the key deletion of and not
  // the event, each with its `patient erased` line in the embedder's logger.
  await completeErasuresOfKeyStore(container, logger).catch(async (error: unknown) => {
    await store.close();
    await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
    lock?.release();
    throw error;
  });
  // As startHub does: erasures recorded by hub processes sharing a PostgreSQL store drop the keys cached here at once.
  const erasedKeys = await startErasedKeys(store, container.get<PatientDataProtection>(TOKENS.PatientDataProtection), logger).catch(async (error: unknown) => {
    await store.close();
    await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
    lock?.release();
    throw error;
  });
  const erasure = container.get<PatientErasure>(TOKENS.PatientErasure);
  // As startHub does: the registry's background catch-up runs from the start. Without it the checkpoint stayed behind
  // the events written at open (settings), every upload's inline registry write declined (it needs the checkpoint
  // at the batch's start), and each query had to project in a write transaction of its own.
  projector.start();
  const life = new Lifecycle();
  // The hub's `patient erased` line (key and time, never the CPR number) in the embedder's logger: a record of the
  // erasures outside the store, which `rts erasures apply --from` reads after a restore.
  const logged = async (erasing: Promise<ErasureResult>): Promise<ErasureResult> => {
    try {
      const result = await erasing;
      logErasure(logger, result); // at every level of the embedder's logger but silent
      return result;
    } catch (error) {
      // Recorded but not finished: its line is written now, not left to a retry that may never come.
      if (error instanceof ErasureIncompleteError) logErasure(logger, error.erasure);
      throw error;
    }
  };
  const telemed = container.get<TeleMedService>(TOKENS.TeleMed);
  const xds = container.get<XdsBackend>(TOKENS.Xds);
  const clock = container.get<Clock>(TOKENS.Clock);
  const patientKeys = container.get<PatientKeys>(TOKENS.PatientKeys);
  // The hub's audit trail on the same store (security-module.ts makes it for HTTP): the exports are recorded in it,
  // and an export reads it back for the patient.
  const audit = new AuditTrail({ store, eventsByField: auditEventsByField(container), logger });
  const protection = container.get<PatientDataProtection>(TOKENS.PatientDataProtection);
  // As main.ts composes it for POST /patients/export. The library runs no consultation read model: a consultation
  // (a hub's, on the same store) is folded from its own stream by the same projection.
  const exporter = new PatientExport({
    patientKeys,
    documents: xds,
    erasure,
    consultations: { linked: container.get<ConsultationContentErasure>(TOKENS.ConsultationErasure), get: (id) => consultationViewFromStream(store, protection, id) },
    audit,
    store,
    clock,
  });
  /**
   * The export as POST /patients/export answers it, audited as security.ts audits that route: under the patient's
   * key, `by` as the subject; an allowed export returned only once its entry is stored, a failed one recorded
   * without waiting and its error thrown as it is. Invalid arguments throw before: no patient to record it under.
   */
  const exportPatient = async (patientId: Cpr, exportOptions: ExportOptions): Promise<PatientExportDocument> => {
    const { by, correlationId } = checkedOptions(EXPORT_OPTIONS, exportOptions, 'options');
    const cpr = parseCpr(patientId, 'patientId');
    const entry = (outcome: Pick<AuditEntry, 'outcome' | 'status' | 'reason'>): AuditEntry => ({
      at: clock.now().toJSDate().toISOString(),
      subject: by,
      role: 'library',
      systemId: null,
      action: 'patient.export',
      patientKey: patientKeys.keyFor(cpr),
      resource: null,
      ip: '',
      requestId: correlationId ?? randomUUID(),
      ...outcome,
    });
    let document: PatientExportDocument;
    try {
      document = patientExportDto(cpr, await exporter.exportPatientData(cpr));
    } catch (error) {
      const { status, code } = codeAndStatusOf(error);
      void audit.record(entry({ outcome: 'error', status, reason: code })).catch(() => undefined);
      throw error;
    }
    try {
      await audit.record(entry({ outcome: 'allowed', status: 200, reason: null }));
    } catch (error) {
      throw Object.assign(new UnavailableError('audit_unavailable', 'the export could not be recorded in the audit trail, so it is not returned; call again'), { cause: error });
    }
    return document;
  };
  // A uniqueId that is no string reached SQLite's binding (RangeError) on a data directory, and was document_not_found
  // in memory: the same ValidationError on both.
  const checkedUniqueId = async (uniqueId: unknown): Promise<void> => {
    if (typeof uniqueId !== 'string') throw new ValidationError('invalid_request', 'uniqueId: must be a string (a document uniqueId)', [{ path: 'uniqueId', message: 'must be a string' }]);
  };
  const withCurrent = async (result: SubmitResult): Promise<SubmitResult & RepeatedResult> => ({ ...result, ...(await xds.repeatedResult(result)) });
  // A call on one document of an erased patient says patient_erased, as the README promises for their reads: the
  // erasure removed the registry row, and the call said document_not_found.
  const ofDocument = <R>(uniqueId: string, call: () => Promise<R>): Promise<R> =>
    checkedUniqueId(uniqueId).then(call).catch(async (error: unknown) => {
      if (error instanceof NotFoundError && error.code === 'document_not_found' && (await xds.isOfErasedPatient(uniqueId))) {
        throw new NotFoundError('patient_erased', 'the patient was erased: their data no longer exists');
      }
      throw error;
    });
  // Only the documented methods, each named here with the options it takes: the services' other methods are the
  // adapters' (provideAndRegisterBuilt trusts its caller to have validated the reading; one unchecked time stored
  // through it broke every later registry query, for every patient), and an option the library does not list
  // (`replaces`, `summary`) is refused, as is free text with a CPR number in it (library-options.ts).
  return {
    telemed: Object.freeze({
      processAndStore: life.wrap((teleObs: TeleObservation, ...more: unknown[]) => {
        // The seed's one-argument call: options given to it were dropped without a word (an observationId too, so a
        // repeat stored the reading twice). Refused, with where they go.
        if (more.some((m) => m !== undefined)) {
          throw new ValidationError('invalid_request', 'processAndStore takes the observation only: for an observationId or other options use record(observation, options)', [{ path: 'options', message: 'not taken here: use record' }]);
        }
        return telemed.processAndStore(teleObs);
      }),
      getObservationsFor: life.wrap((patientId: Cpr, interval: TimeInterval) => telemed.getObservationsFor(patientId, interval)),
      record: life.wrap((observation: TeleObservation, options?: RecordOptions) => telemed.record(observation, checkedOptions(RECORD_OPTIONS, options, 'options'))),
      correct: life.wrap((uniqueId: string, corrected: TeleObservation, options?: CorrectionOptions) =>
        ofDocument(uniqueId, () => telemed.correct(uniqueId, corrected, checkedOptions(CORRECTION_OPTIONS, options, 'options')))),
      patientOf: life.wrap((uniqueId: string) => ofDocument(uniqueId, () => telemed.patientOf(uniqueId))),
    }),
    xds: Object.freeze({
      // A repeat names the current document of a reading corrected since, as record and correct do (repeatedResult).
      provideAndRegisterDocument: life.wrap((metadata: DocumentMetadata, document: string, options?: Readonly<{ observationId?: string; correlationId?: string }>) =>
        xds.provideAndRegisterDocument(metadata, document, checkedOptions(SUBMIT_OPTIONS, options, 'options')).then(withCurrent)),
      retrieveDocumentSet: life.wrap((patientId: Cpr, start: DateTime, end: DateTime) => xds.retrieveDocumentSet(patientId, start, end)),
      retrieveDocument: life.wrap((uniqueId: string) => ofDocument(uniqueId, () => xds.retrieveDocument(uniqueId))),
      correctDocument: life.wrap((uniqueId: string, metadata: DocumentMetadata, newDocument: string, options?: CorrectionOptions) =>
        ofDocument(uniqueId, () => xds.correctDocument(uniqueId, metadata, newDocument, checkedOptions(CORRECTION_OPTIONS, options, 'options')).then(withCurrent))),
    }),
    rebuildRegistry: life.wrap(() => projector.rebuild()),
    // The number checked as POST /erasures checks it: a misspelt one was recorded as an erasure of nobody (with
    // `ifUnknown: 'erase'`, for good) while the patient's data stayed, and a number given as a number put its digits
    // in a TypeError's message.
    erasePatient: life.wrap(async (patientId: Cpr, erasureOptions: ErasureOptions) =>
      logged(erasure.erase(parseCpr(patientId, 'patientId'), checkedOptions(ERASURE_OPTIONS, erasureOptions, 'options')))),
    eraseByKey: life.wrap(async (patientKey: string, erasureOptions: Omit<ErasureOptions, 'ifUnknown'>) => {
      const key = checkedOptions(PATIENT_KEY, patientKey, 'patientKey');
      return logged(erasure.eraseKey(key, { ...checkedOptions(ERASURE_BY_KEY_OPTIONS, erasureOptions, 'options'), ifUnknown: 'erase' }));
    }),
    eraseConsultationContent: life.wrap(async (consultationId: string, erasureOptions: Omit<ErasureOptions, 'ifUnknown'>) => {
      if (typeof consultationId !== 'string' || !CONSULTATION_ID_PATTERN.test(consultationId)) {
        throw new ValidationError('invalid_request', 'consultationId: a UUID', [{ path: 'consultationId', message: 'a UUID' }]);
      }
      const result = await container
        .get<ConsultationContentErasure>(TOKENS.ConsultationErasure)
        .erase(consultationId, checkedOptions(ERASURE_BY_KEY_OPTIONS, erasureOptions, 'options'))
        .catch((error: unknown) => {
          // Recorded but not finished: its line is written now, not left to a retry that may never come.
          if (error instanceof ContentErasureIncompleteError) logConsultationErasure(logger, error.erasure);
          throw error;
        });
      logConsultationErasure(logger, result);
      return result;
    }),
    listErasures: life.wrap((listOptions?: Readonly<{ after?: bigint; limit?: number }>) => {
      const { after, limit } = checkedOptions(LIST_ERASURES_OPTIONS, listOptions, 'options');
      return erasure.recorded(after ?? 0n, limit ?? MAX_ERASURES_PAGE);
    }),
    exportPatient: life.wrap(exportPatient),
    close: () =>
      life.close(async () => {
        await projector.stop();
        await erasedKeys?.stop();
        await audit.close(); // the entries of the last calls (a failed export's is not waited for)
        await store.close();
        await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
        lock?.release();
      }),
  };
};

/**
 * An open that failed on the machine or the network, said as the hub says it (main.ts) and named as the library's
 * caller knows the setting: a data directory that cannot be created or written is a ConfigError naming `dataDir`, a
 * PostgreSQL host without an address one naming `settings.RTS_POSTGRES_URL`, a database that cannot be reached now
 * UnavailableError `storage_unavailable`. They were the raw EROFS, ENOENT or ENOTFOUND of Node. Anything else as it is.
 */
const openProblem = (error: unknown, config: Config): unknown => {
  if (error instanceof ConfigError) return error;
  const named = (problem: string) => Object.assign(new ConfigError([problem.replace(/^RTS_DATA_DIR:/, 'dataDir:').replace(/^RTS_POSTGRES_URL:/, 'settings.RTS_POSTGRES_URL:')]), { cause: error });
  if (error instanceof RtsError) {
    // The pool says a host without an address storage_unavailable (it may be an outage while running); at open it is
    // the setting to fix, as main.ts says it.
    const store = error.code === STORAGE_UNAVAILABLE ? storeStartProblem(error, config) : null;
    return store instanceof ConfigError ? named(store.problems.join('; ')) : error;
  }
  const setting = startupSettingProblem(error, config);
  if (setting !== null) return named(setting);
  const store = storeStartProblem(error, config);
  if (store instanceof ConfigError) return named(store.problems.join('; '));
  if (store instanceof TransientStartError) return Object.assign(new UnavailableError(STORAGE_UNAVAILABLE, store.message.replace(/^RTS_POSTGRES_URL:/, 'settings.RTS_POSTGRES_URL:').replace(/The hub can start once it answers$/, 'open again once it answers')), { cause: error });
  return error;
};

/**
 * Open until close(): calls made before close() finish first (close waits for them), calls after it throw
 * UnavailableError code 'closed' (an RtsError, like every other refusal), not whatever the closed store would throw.
 */
class Lifecycle {
  private closing: Promise<void> | null = null;
  private readonly inFlight = new Set<Promise<unknown>>();

  /** `fn` through the lifecycle; it is async, so a refusal (or a synchronous throw) is a rejected promise. */
  wrap<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
    return (...args: A): Promise<R> => {
      if (this.closing) return Promise.reject(new UnavailableError('closed', 'this TeleMed instance was closed: open another'));
      let result: Promise<R>;
      try {
        result = fn(...args);
      } catch (error) {
        return Promise.reject(error);
      }
      const settled = result.then(
        () => undefined,
        () => undefined,
      );
      this.inFlight.add(settled);
      void settled.finally(() => this.inFlight.delete(settled));
      return result;
    };
  }

  close(release: () => Promise<void>): Promise<void> {
    this.closing ??= (async () => {
      while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
      await release();
    })();
    return this.closing;
  }
}
