import type { Clock } from '../application/ports/clock';
import type { CheckpointStore } from '../application/ports/downlink-outbox';
import type { EventStore } from '../application/ports/event-store';
import type { IdGenerator } from '../application/ports/id-generator';
import type { PatientDataProtection } from '../application/ports/patient-data-protection';
import type { DocumentEntries } from '../application/ports/document-entries';
import { StoredDocumentEntries } from '../application/stored-document-entries';
import { OpeningConsultations } from '../application/consultation/opening-consultations';
import { Projector, type ProjectorLogger } from '../application/projector';
import { ConsultationDownlinkPublisher, type ConsultationOutbox, type DownlinkAuditTrail } from '../application/consultation/consultation-downlink';
import type { ConsultationView } from '../application/consultation/consultation-projection';
import type { ConsultationReadModel } from '../application/consultation/consultation-read-model';
import { ConsultationService, type ConsultationPolicy } from '../application/consultation/consultation-service';
import { handleConsultationUplink, type ConsultationUplinkResult } from '../application/consultation/consultation-uplink';
import type { ConsultationUplinkEnvelope } from '../application/consultation/consultation-messages';
import { Deadlines } from '../application/consultation/deadlines';
import { RetiredExpertOffers } from '../application/consultation/retired-expert-offers';
import { SqliteEventStore } from '../adapters/event-store/sqlite/sqlite-event-store';
import { InMemoryConsultations } from '../adapters/registry/in-memory-consultations';
import { SqliteConsultations } from '../adapters/registry/sqlite-consultations';
import type { DirectoryModule } from './directory-module';

/**
 * Composition of the consultation context (plain construction, as directory-module.ts).
 *
 *   const consultations = createConsultationModule({ store, clock, ids, logger, directory });   // directory: its module
 *   registerConsultationRoutes(app, { consultations: consultations.service });   // adapters/http/consultation-routes
 *   await consultations.handleUplink(envelope);            // part B: consultation.* messages of the uplink consumer
 *   const publisher = consultations.downlinkPublisher(amqpOutbox);   // part B: the AMQP outbox
 *   consultations.start(); publisher.start(); ... await publisher.stop(); await consultations.stop();
 *
 * start() follows the store with the projection and runs the Deadlines (offer expiry, report resends); several
 * hub processes may run them at once (deterministic timer command ids). Read model: SqliteConsultations in the
 * store's file on SQLite, else InMemoryConsultations rebuilt from the events at start. The downlink checkpoint:
 * `checkpoints` when passed (main.ts passes the PostgreSQL one), else the directory module's (SqliteDirectory on
 * SQLite), under a name of its own, 'consultation-downlink'. Its publisher, like the directory's, runs only in the
 * process that holds the publishing lease (hub-messaging.ts).
 *
 * start() also runs RetiredExpertOffers (an expert retires: the open offers to them are withdrawn and the cases
 * move on), from its own checkpoint in the same store, 'consultation-retired-expert-offers'. Like the Deadlines it
 * runs in every hub process, whether or not this one talks to a broker or publishes: its withdrawals have
 * deterministic command ids and the decider ignores an offer no longer open, so a second process or a replay
 * records nothing more.
 */
export type ConsultationModuleDependencies = Readonly<{
  store: EventStore;
  clock: Clock;
  ids: IdGenerator;
  logger: ProjectorLogger;
  directory: Pick<DirectoryModule, 'readModel' | 'projector' | 'checkpoints' | 'service'>;
  /** Seals the consultations' texts under a key per consultation, and opens them (the container's PatientDataProtection). */
  protection: PatientDataProtection;
  readModel?: ConsultationReadModel;
  /** The registry the attachments are checked against and shown with (default: the documents' streams in `store`). */
  documents?: DocumentEntries;
  checkpoints?: CheckpointStore;
  policy?: ConsultationPolicy;
  /** Deadlines poll interval (default 1000 ms). */
  deadlinesIntervalMs?: number;
}>;

export type ConsultationModule = Readonly<{
  readModel: ConsultationReadModel;
  projector: Projector;
  service: ConsultationService;
  deadlines: Deadlines;
  retiredExpertOffers: RetiredExpertOffers;
  handleUplink(envelope: ConsultationUplinkEnvelope): Promise<ConsultationUplinkResult>;
  /** The consultation's correlation id (null for an unknown one): the uplink's log lines carry it. */
  correlationIdOf(consultationId: string): Promise<string | null>;
  /** Its patients' pseudonymous keys (ConsultationService.patientKeysOf): the uplink's audit entries go under them. */
  patientKeysOf(consultationId: string): Promise<readonly string[]>;
  /**
   * `audit`: each message the publisher sends is recorded there under the case's patients (consultation-downlink.ts);
   * `auditRetryMs`: the pause before an entry that could not be stored is tried again (tests shorten it).
   */
  downlinkPublisher(outbox: ConsultationOutbox, audit?: DownlinkAuditTrail, options?: Readonly<{ auditRetryMs?: number }>): ConsultationDownlinkPublisher;
  start(): void;
  stop(): Promise<void>;
}>;

export const createConsultationModule = (deps: ConsultationModuleDependencies): ConsultationModule => {
  // The projection gets the texts opened (null once erased): rows never hold ciphertext.
  const readModel = new OpeningConsultations(
    deps.readModel ?? (deps.store instanceof SqliteEventStore ? new SqliteConsultations(deps.store) : new InMemoryConsultations()),
    deps.protection,
  );
  const checkpoints = deps.checkpoints ?? deps.directory.checkpoints;
  const projector = new Projector(deps.store, readModel, deps.logger, 1000, 'consultations');
  const service = new ConsultationService({
    store: deps.store,
    consultations: readModel,
    projector,
    directory: deps.directory.readModel,
    directoryProjector: deps.directory.projector,
    clock: deps.clock,
    ids: deps.ids,
    protection: deps.protection,
    documents: deps.documents ?? new StoredDocumentEntries(deps.store),
    policy: deps.policy,
  });
  const deadlines = new Deadlines({ consultations: readModel, projector, service, clock: deps.clock, intervalMs: deps.deadlinesIntervalMs, logger: deps.logger });
  const retiredExpertOffers = new RetiredExpertOffers({
    store: deps.store,
    checkpoints,
    consultations: readModel,
    projector,
    directory: deps.directory.readModel,
    directoryProjector: deps.directory.projector,
    service,
    logger: deps.logger,
  });
  return {
    readModel,
    projector,
    service,
    deadlines,
    retiredExpertOffers,
    handleUplink: (envelope) => handleConsultationUplink(service, envelope),
    correlationIdOf: (consultationId) => service.correlationIdOf(consultationId),
    patientKeysOf: (consultationId) => service.patientKeysOf(consultationId),
    downlinkPublisher: (outbox, audit, options = {}) =>
      new ConsultationDownlinkPublisher({
        ...(audit ? { audit, patientKeysOf: (view: ConsultationView) => service.patientKeysOfView(view), now: () => deps.clock.now().toJSDate().toISOString(), ...options } : {}),
        store: deps.store,
        consultations: readModel,
        projector,
        outbox,
        protection: deps.protection,
        checkpoints,
        queueFor: (systemId) => deps.directory.service.downlinkQueueFor(systemId),
        logger: deps.logger,
      }),
    start: () => {
      projector.start();
      deadlines.start();
      retiredExpertOffers.start();
    },
    stop: async () => {
      await retiredExpertOffers.stop();
      await deadlines.stop();
      await projector.stop();
    },
  };
};
