import 'reflect-metadata';
import { existsSync, statSync } from 'node:fs';
import BetterSqlite3 from 'better-sqlite3';
import { namedOpenFailure } from '../adapters/event-store/sqlite/storage-failure';
import { isSealed } from '../application/ports/patient-data-protection';
import { surviveLogWriteErrors } from './exit-after-log';
import { hubLogDestination, reportDroppedLogLines, reportTerminalFallback } from './log-stream';
import { consultationDataKey } from '../application/consultation/sealed-consultations';
import { join } from 'node:path';
import { Container } from 'inversify';
import pino, { type DestinationStream, type Logger } from 'pino';
import { EventStoreDocumentRepository } from '../application/event-store-document-repository';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';
import type { AuditEventsByField } from '../application/ports/audit-events-by-field';
import type { CheckpointStore } from '../application/ports/downlink-outbox';
import { SoleProcessLease, type PublishingLease } from '../application/ports/publishing-lease';
import type { IdGenerator } from '../application/ports/id-generator';
import type { PatientDataProtection, PatientKeyStore } from '../application/ports/patient-data-protection';
import type { PatientKeys } from '../application/ports/patient-keys';
import { ConsultationContentErasure } from '../application/consultation/consultation-erasure';
import { PatientErasure } from '../application/patient-erasure';
import { checkStoreFormat, StoreFormatTooNewError, THIS_BUILD_STORE_FORMAT } from '../application/store-format';
import { checkPseudonymSecret, PSEUDONYM_CHECK_STREAM, PseudonymSecretMismatchError, recordedPseudonymFingerprint } from '../application/pseudonym-check';
import { documentStreamName } from '../domain/documents/document-entry';
import { OpeningRegistry, openDocument, openRegistryEventsCached, REGISTRY_EVENT_TYPES, type ForgettingRegistry } from '../application/sealed-documents';
import { PostgresKeyStore, SqliteKeyStore } from '../adapters/crypto/key-stores';
import { PatientCipher } from '../adapters/crypto/patient-cipher';
import type { RegistryReadModel } from '../application/ports/registry-read-model';
import { Projector } from '../application/projector';
import { TeleMedService } from '../application/telemed';
import { XdsBackend } from '../application/xds-backend';
import type { PostgresEventStore } from '../adapters/event-store/postgres/postgres-event-store';
import type { PostgresTimeouts } from '../adapters/event-store/postgres/sql';
import { SqliteEventStore } from '../adapters/event-store/sqlite/sqlite-event-store';
import { SqliteAuditEventsByField } from '../adapters/event-store/sqlite/sqlite-audit-events-by-field';
import { InMemoryRegistry } from '../adapters/registry/in-memory-registry';
import { inlineRegistryProjection, SqliteRegistry } from '../adapters/registry/sqlite-registry';
import { DATA_FILES } from '../adapters/system/data-dir';
import { HmacPatientKeys } from '../adapters/system/hmac-patient-keys';
import { RandomIds, SystemClock } from '../adapters/system/system-clock';
import { ConfigError, type Config } from './config';
import { pseudonymSecret } from './secret';
import { makeDirectory } from '../adapters/system/make-directory';

/** Injection tokens. Only bootstrap (and adapters) know inversify; the core gets plain constructor arguments. */
export const TOKENS = {
  Config: Symbol.for('Config'),
  Logger: Symbol.for('Logger'),
  Clock: Symbol.for('Clock'),
  Ids: Symbol.for('Ids'),
  EventStore: Symbol.for('EventStore'),
  Registry: Symbol.for('Registry'),
  Projector: Symbol.for('Projector'),
  PatientKeys: Symbol.for('PatientKeys'),
  Xds: Symbol.for('Xds'),
  TeleMed: Symbol.for('TeleMed'),
  PatientKeyStore: Symbol.for('PatientKeyStore'),
  PatientDataProtection: Symbol.for('PatientDataProtection'),
  PatientErasure: Symbol.for('PatientErasure'),
  ConsultationErasure: Symbol.for('ConsultationErasure'),
  /** Bound only where the store brings a durable one (PostgreSQL); SQLite's is the directory read model's file. */
  DownlinkCheckpoints: Symbol.for('DownlinkCheckpoints'),
  PublishingLease: Symbol.for('PublishingLease'),
  /** Bound only where the store has indexes of audit events by patient and subject (SQLite, PostgreSQL): see auditEventsByField. */
  AuditEventsByField: Symbol.for('AuditEventsByField'),
} as const;

/** The hub's logger: JSON lines on standard output, at most LOG_BUFFER_MAX_BYTES waiting for the reader (log-stream.ts). */
export const createLogger = (config: Pick<Config, 'RTS_LOG_LEVEL'>, destination: DestinationStream = hubLogDestination()): Logger => {
  const logger = pino({ level: config.RTS_LOG_LEVEL, base: { service: 'telemed-rts' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  surviveLogWriteErrors(logger);
  reportDroppedLogLines(logger);
  reportTerminalFallback(logger);
  return logger;
};

/**
 * An event store opened ahead of the container (PostgreSQL and EventStoreDB open asynchronously), with its registry,
 * and, where there is a PostgreSQL schema, the downlink publishers' checkpoints and the publishing lease (a factory:
 * the lease opens a connection of its own, wanted only by a hub with a broker).
 */
export type OpenedStore = Readonly<{
  store: EventStore;
  registry: RegistryReadModel;
  registryKind: 'sqlite' | 'postgres' | 'memory';
  keys?: PatientKeyStore;
  /**
   * The hub's PatientDataProtection over `keys`, when the registry needed it to open (PostgresRegistry seals its
   * rows' personal values): the container binds this one, so documents and rows share its keys and erasures. A
   * caller that puts other `keys` in must put a protection over them in too, and the registry opened with it.
   */
  protection?: PatientDataProtection;
  checkpoints?: CheckpointStore;
  publishingLease?: () => PublishingLease;
}>;

/** Delegates to `store`; close() closes it, then `also` (e.g. the registry's own PostgreSQL pool). */
const closingAlso = (store: EventStore, also: () => Promise<void>): EventStore => ({
  appendToStream: store.appendToStream.bind(store),
  readStream: store.readStream.bind(store),
  aggregateStream: store.aggregateStream.bind(store),
  readAll: store.readAll.bind(store),
  waitForAppend: store.waitForAppend.bind(store),
  headPosition: store.headPosition.bind(store),
  close: async () => {
    try {
      await store.close();
    } finally {
      await also();
    }
  },
});

/**
 * Opens the event store RTS_EVENT_STORE names, and the registry read model that goes with it:
 *   postgres      PostgresEventStore in RTS_POSTGRES_SCHEMA; PostgresRegistry in the same schema, its rows and
 *                 checkpoint written in one transaction of the store (shared by all hubs on that database); the
 *                 downlink checkpoints (PostgresCheckpointStore) and the publishing lease (an advisory lock) there too.
 *   eventstoredb  EventStoreDbEventStore; PostgresRegistry, the downlink checkpoints and the publishing lease in
 *                 RTS_POSTGRES_SCHEMA when RTS_POSTGRES_URL is given, else an InMemoryRegistry that the projector
 *                 rebuilds from $all at every start, in-memory checkpoints and no shared lease (every process
 *                 publishes, and re-sends the downlink history at its start).
 *   sqlite        nothing to open ahead: buildContainer opens the file lazily (see there).
 * Connection strings are never logged.
 */
const postgresTimeouts = (config: Config): PostgresTimeouts => ({ connectTimeoutMs: config.RTS_POSTGRES_CONNECT_TIMEOUT_MS, queryTimeoutMs: config.RTS_POSTGRES_QUERY_TIMEOUT_MS });

/**
 * The PostgreSQL and EventStoreDB adapters are loaded when a store of theirs is opened, not with this module: the
 * embedded default never loads node-postgres, gRPC or the EventStoreDB client, which were ~0.2 s of every start
 * (a CPU profile of `npm start` to its first /health answer) and memory held for nothing.
 */
const postgresAdapters = async () => {
  const [{ PostgresEventStore }, { PostgresPublishingLease }, { PostgresCheckpointStore }, { PostgresDatabase, PostgresRegistry }] = await Promise.all([
    import('../adapters/event-store/postgres/postgres-event-store'),
    import('../adapters/event-store/postgres/publishing-lease'),
    import('../adapters/registry/postgres-checkpoints'),
    import('../adapters/registry/postgres-registry'),
  ]);
  const lease = (connectionString: string, schema: string) => (): PublishingLease => new PostgresPublishingLease({ connection: { connectionString }, schema });
  return { PostgresEventStore, PostgresCheckpointStore, PostgresDatabase, PostgresRegistry, lease };
};

/**
 * Whether a store opened ahead is PostgreSQL's (its audit events have indexes by field: see buildContainer). The
 * module is required here, synchronously, only for a store that has PostgreSQL's serverTimeMillis: never on the
 * embedded default or the library's in-memory store.
 */
export const isPostgresEventStore = (store: EventStore): store is PostgresEventStore => {
  // A store without PostgreSQL's own method is not one: the library's in-memory store loads no driver either.
  if (typeof (store as Partial<PostgresEventStore>).serverTimeMillis !== 'function') return false;
  const loaded = require('../adapters/event-store/postgres/postgres-event-store') as typeof import('../adapters/event-store/postgres/postgres-event-store');
  return store instanceof loaded.PostgresEventStore;
};

export const openStore = async (config: Config, logger?: Logger): Promise<OpenedStore | undefined> => {
  switch (config.RTS_EVENT_STORE) {
    case 'sqlite':
      return undefined;
    case 'postgres': {
      const { PostgresEventStore, PostgresCheckpointStore, PostgresRegistry, lease } = await postgresAdapters();
      const connectionString = required(config.RTS_POSTGRES_URL, 'RTS_POSTGRES_URL');
      const store = await PostgresEventStore.open({ connectionString, schema: config.RTS_POSTGRES_SCHEMA, timeouts: postgresTimeouts(config), onMigrations: logMigrations(logger) });
      try {
        const keys = await PostgresKeyStore.open(store);
        const protection = patientCipher(config, keys);
        const registry = await PostgresRegistry.open(store, protection, logResealed(logger));
        const checkpoints = await PostgresCheckpointStore.open(store, logNoCheckpointsKept(logger));
        logger?.info({ store: 'postgres', schema: config.RTS_POSTGRES_SCHEMA, registry: 'postgres' }, 'event store opened');
        return { store, registry, registryKind: 'postgres', keys, protection, checkpoints, publishingLease: lease(connectionString, store.schema) };
      } catch (error) {
        await store.close().catch(() => undefined);
        throw error;
      }
    }
    case 'eventstoredb': {
      const { EventStoreDbEventStore } = await import('../adapters/event-store/esdb/eventstoredb-event-store');
      const esdb = await EventStoreDbEventStore.open({ connectionString: required(config.RTS_EVENTSTORE_CONNECTION_STRING, 'RTS_EVENTSTORE_CONNECTION_STRING') });
      if (config.RTS_POSTGRES_URL === undefined) {
        logger?.info({ store: 'eventstoredb', registry: 'memory' }, 'event store opened; the registry is rebuilt in memory from $all');
        return { store: esdb, registry: new InMemoryRegistry(), registryKind: 'memory' };
      }
      const { PostgresCheckpointStore, PostgresDatabase, PostgresRegistry, lease } = await postgresAdapters();
      const db = PostgresDatabase.open({ connectionString: config.RTS_POSTGRES_URL, schema: config.RTS_POSTGRES_SCHEMA, timeouts: postgresTimeouts(config) });
      try {
        const keys = await PostgresKeyStore.open(db);
        const protection = patientCipher(config, keys);
        const registry = await PostgresRegistry.open(db, protection, logResealed(logger));
        const checkpoints = await PostgresCheckpointStore.open(db, logNoCheckpointsKept(logger));
        logger?.info({ store: 'eventstoredb', registry: 'postgres', schema: config.RTS_POSTGRES_SCHEMA }, 'event store opened');
        return { store: closingAlso(esdb, () => db.close()), registry, registryKind: 'postgres', keys, protection, checkpoints, publishingLease: lease(config.RTS_POSTGRES_URL, db.schema) };
      } catch (error) {
        await db.close().catch(() => undefined);
        await esdb.close().catch(() => undefined);
        throw error;
      }
    }
    default:
      throw new Error(`unknown RTS_EVENT_STORE`);
  }
};

const patientCipher = (config: Config, keys: PatientKeyStore): PatientDataProtection => new PatientCipher({ keys, maxCached: config.RTS_PATIENT_KEY_CACHE_SIZE });

/**
 * One line before the store's schema migrations run (from what the store had to what this build needs): on a
 * store of a million events an index migration took ~5 s, in silence, at the first start of a new build.
 */
const logMigrations =
  (logger: Logger | undefined) =>
  (pending: Readonly<{ from: string | number | null; to: string | number; migrations: readonly string[] }>): void => {
    const fresh = pending.from === null || pending.from === 0;
    logger?.info(
      { from: pending.from, to: pending.to, migrations: pending.migrations },
      fresh ? 'event store schema: creating it' : 'event store schema: migrating it for this build (on a large store this takes a while; the hub starts when it is done)',
    );
  };

/** Registry rows an older build wrote in clear, sealed at this start: what is left to do is the operator's. */
const logResealed = (logger: Logger | undefined) => (rows: number): void =>
  logger?.warn(
    { rows },
    'registry: rows an older build wrote in clear are sealed now; their clear versions stay in the table\'s free space until VACUUM FULL registry_entries, and in WAL and backups (README "What an erasure leaves")',
  );

/** A schema whose older build kept the downlink checkpoints in memory: the history goes out once more. */
const logNoCheckpointsKept = (logger: Logger | undefined) => (): void =>
  logger?.warn(
    'downlink checkpoints: the build before kept none in this database (they were in memory), so the publishers send the whole downlink history once more, from the first event (same message ids: receivers dedupe); from now on they are kept here',
  );

const required = (value: string | undefined, name: string): string => {
  if (value === undefined) throw new Error(`${name}: required when RTS_EVENT_STORE is set to its store`); // loadConfig checks this first
  return value;
};

/**
 * The composition root: every binding, each a singleton. With the embedded SQLite store everything is built
 * synchronously (the file is opened on first use); PostgreSQL and EventStoreDB are opened first, by openStore(),
 * and passed in as `opened`. openContainer() does both.
 */
export const buildContainer = (config: Config, logger: Logger = createLogger(config), opened?: OpenedStore): Container => {
  const c = new Container({ defaultScope: 'Singleton' });
  c.bind<Config>(TOKENS.Config).toConstantValue(config);
  c.bind<Logger>(TOKENS.Logger).toConstantValue(logger);
  c.bind<Clock>(TOKENS.Clock).toConstantValue(new SystemClock());
  c.bind<IdGenerator>(TOKENS.Ids).toConstantValue(new RandomIds());
  c.bind<PatientKeys>(TOKENS.PatientKeys).toDynamicValue(() => new HmacPatientKeys(pseudonymSecret(config.RTS_PSEUDONYM_SECRET, config.RTS_DATA_DIR)));
  // The patients' data keys: PostgreSQL's table when the store opened one, else a SQLite file of their own.
  c.bind<PatientKeyStore>(TOKENS.PatientKeyStore).toDynamicValue(() => {
    if (opened?.keys) return opened.keys;
    makeDirectory(config.RTS_DATA_DIR);
    return new SqliteKeyStore(join(config.RTS_DATA_DIR, DATA_FILES.patientKeys));
  });
  c.bind<PatientDataProtection>(TOKENS.PatientDataProtection).toDynamicValue(
    (ctx) => opened?.protection ?? patientCipher(config, ctx.container.get<PatientKeyStore>(TOKENS.PatientKeyStore)),
  );
  // Documents are opened before the registry projection sees them; PatientErased removes a patient's rows.
  const opening = (registry: RegistryReadModel, ctx: { container: { get<T>(id: symbol): T } }): RegistryReadModel =>
    new OpeningRegistry(registry as ForgettingRegistry, ctx.container.get<PatientDataProtection>(TOKENS.PatientDataProtection));
  if (opened) {
    c.bind<EventStore>(TOKENS.EventStore).toConstantValue(opened.store);
    c.bind<RegistryReadModel>(TOKENS.Registry).toDynamicValue((ctx) => opening(opened.registry, ctx));
    // EventStoreDB has no such indexes: its audit searches by patient or user read the chains.
    const postgres = opened.store;
    if (isPostgresEventStore(postgres)) {
      const { PostgresAuditEventsByField } = require('../adapters/event-store/postgres/postgres-audit-events-by-field') as typeof import('../adapters/event-store/postgres/postgres-audit-events-by-field');
      c.bind<AuditEventsByField>(TOKENS.AuditEventsByField).toDynamicValue(() => new PostgresAuditEventsByField(postgres));
    }
  } else if (config.RTS_EVENT_STORE === 'sqlite') {
    c.bind<SqliteEventStore>(SqliteEventStore).toDynamicValue(() => {
      makeDirectory(config.RTS_DATA_DIR);
      const keys = join(config.RTS_DATA_DIR, DATA_FILES.patientKeys);
      return SqliteEventStore.open({ file: join(config.RTS_DATA_DIR, DATA_FILES.events), onMigrations: logMigrations(logger), alsoInPlace: [keys, `${keys}-wal`] });
    });
    c.bind<EventStore>(TOKENS.EventStore).toDynamicValue((ctx) => ctx.container.get(SqliteEventStore));
    c.bind<AuditEventsByField>(TOKENS.AuditEventsByField).toDynamicValue((ctx) => new SqliteAuditEventsByField(ctx.container.get(SqliteEventStore)));
    c.bind<SqliteRegistry>(SqliteRegistry).toDynamicValue((ctx) => new SqliteRegistry(ctx.container.get(SqliteEventStore)));
    c.bind<RegistryReadModel>(TOKENS.Registry).toDynamicValue((ctx) => {
      const store = ctx.container.get(SqliteEventStore);
      const registry = ctx.container.get(SqliteRegistry);
      if (registry.keyedHashesReplaced > 0) {
        logger.warn(
          { rows: registry.keyedHashesReplaced },
          "registry: rows an older build wrote with the document's plain SHA-256 hold its keyed digest now (with the reading beside it, the plain hash gave the CPR number back); copies and backups of the events file made before still hold them",
        );
      }
      const protection = ctx.container.get<PatientDataProtection>(TOKENS.PatientDataProtection);
      // Rows written in the upload's own transaction; the projector only catches up what this leaves to it.
      store.addInlineProjection(
        inlineRegistryProjection(
          registry,
          REGISTRY_EVENT_TYPES,
          (events) => openRegistryEventsCached(protection, events),
          (err) => logger.warn({ err }, 'registry: inline projection failed; the projector catches it up'),
        ),
      );
      return opening(registry, ctx);
    });
  } else {
    throw new Error(`RTS_EVENT_STORE=${config.RTS_EVENT_STORE} is opened asynchronously: use openContainer(), or pass openStore()'s result`);
  }
  // Who publishes the downlink (hub-messaging.ts): on PostgreSQL one process at a time; on SQLite the only one.
  if (opened?.checkpoints) c.bind<CheckpointStore>(TOKENS.DownlinkCheckpoints).toConstantValue(opened.checkpoints);
  c.bind<PublishingLease>(TOKENS.PublishingLease).toDynamicValue(() => opened?.publishingLease?.() ?? new SoleProcessLease());
  c.bind<Projector>(TOKENS.Projector).toDynamicValue(
    (ctx) => new Projector(ctx.container.get<EventStore>(TOKENS.EventStore), ctx.container.get<RegistryReadModel>(TOKENS.Registry), logger),
  );
  c.bind<XdsBackend>(TOKENS.Xds).toDynamicValue((ctx) => {
    const store = ctx.container.get<EventStore>(TOKENS.EventStore);
    return new XdsBackend({
      store,
      registry: ctx.container.get(TOKENS.Registry),
      projector: ctx.container.get(TOKENS.Projector),
      repositories: [new EventStoreDocumentRepository(config.RTS_REPOSITORY_UNIQUE_ID, store)],
      repositoryUniqueId: config.RTS_REPOSITORY_UNIQUE_ID,
      patientKeys: ctx.container.get(TOKENS.PatientKeys),
      clock: ctx.container.get(TOKENS.Clock),
      ids: ctx.container.get(TOKENS.Ids),
      protection: ctx.container.get(TOKENS.PatientDataProtection),
    });
  });
  c.bind<TeleMedService>(TOKENS.TeleMed).toDynamicValue((ctx) => new TeleMedService(ctx.container.get(TOKENS.Xds)));
  // Forgetting a patient: used by POST /erasures and the deprecated DELETE /patients/{id} (security-module.ts) and by the library's erasePatient.
  c.bind<PatientErasure>(TOKENS.PatientErasure).toDynamicValue(
    (ctx) =>
      new PatientErasure({
        store: ctx.container.get(TOKENS.EventStore),
        protection: ctx.container.get(TOKENS.PatientDataProtection),
        patientKeys: ctx.container.get(TOKENS.PatientKeys),
        registry: ctx.container.get<RegistryReadModel>(TOKENS.Registry),
        projectors: [ctx.container.get<Projector>(TOKENS.Projector)],
        clock: ctx.container.get(TOKENS.Clock),
        consultations: ctx.container.get<ConsultationContentErasure>(TOKENS.ConsultationErasure),
      }),
  );
  // Erasing consultations' texts (their keys): with a patient (above), or one by id (the library, DELETE /consultations/{id}/content).
  c.bind<ConsultationContentErasure>(TOKENS.ConsultationErasure).toDynamicValue(
    (ctx) =>
      new ConsultationContentErasure({
        store: ctx.container.get(TOKENS.EventStore),
        protection: ctx.container.get(TOKENS.PatientDataProtection),
        clock: ctx.container.get(TOKENS.Clock),
      }),
  );
  return c;
};

/**
 * The store's indexes of audit events by patient and by subject, when it has them (SQLite, PostgreSQL), for the
 * AuditTrail's byPatient and bySubject: a patient's audit search and export, and a user's audit search, then read
 * that patient's or user's own audit events, not whole chains. Its scan serves byResource and byRequestId (no index:
 * the store compares the field as it reads the chains and hands back the matches only).
 */
export const auditEventsByField = (c: Container): AuditEventsByField | undefined =>
  c.isBound(TOKENS.AuditEventsByField) ? c.get<AuditEventsByField>(TOKENS.AuditEventsByField) : undefined;

/** Refuses a store a newer build marked as not for this one (store-format.ts); records this build's format. */
const checkStoreFormatOf = async (store: EventStore, at: string, logger: Logger): Promise<void> => {
  const { outcome, recorded } = await checkStoreFormat(store, at);
  const mine = THIS_BUILD_STORE_FORMAT;
  if (outcome === 'upgraded' || (outcome === 'recorded' && (await store.readAll({ after: 0n, maxCount: 2 })).length > 1)) {
    // Not for a new store: its only event is the marker just recorded.
    logger.info({ from: recorded?.format ?? 0, to: mine.format, readableFrom: mine.readableFrom }, 'store format: upgraded to this build\'s (builds of an older format must not be started on this store again; README "Upgrading and rolling back")');
  } else if (outcome === 'newer') {
    logger.warn({ store: recorded?.format, build: mine.format }, 'store format: this store was written by a newer build, which allows this one to open it; stop every hub process of the newer build first (no mixed fleet)');
  }
};

/** The store was written with a pseudonym secret, and this process has none yet. */
class MissingSecret extends Error {}

/** How many of the newest documents and of the newest consultations checkKeysBesideEvents looks at for their keys (an index seek each, newest first). */
const NEWEST_LOOK = 64;

/**
 * The embedded key store (`patient-keys.sqlite`) and the events it opens must be the same data directory's, of the
 * same time. A key file empty, missing, older than the events (last week's backup beside today's events) or another
 * directory's let the hub start healthy: the documents whose keys it lacked answered 500, and the next upload made
 * their patient a new key, so putting the right file back later lost that upload. An events file new (empty) beside
 * a key file holding keys started a hub with no data at all. Both stop the start, naming the file. The key file is
 * only read (the events file has been opened and migrated by then; a missing one is refused before: openContainer).
 */
const checkKeysBesideEvents = async (config: Config, store: EventStore): Promise<void> => {
  if (!(store instanceof SqliteEventStore)) return;
  const keysFile = join(config.RTS_DATA_DIR, DATA_FILES.patientKeys);
  // The newest documents and consultations, sealed ones (builds before sealing stored some in clear, with no key):
  // each one's key, the patient's or the consultation's own.
  const newest = (type: string): Record<string, unknown>[] =>
    (store.database.prepare(`SELECT data FROM events INDEXED BY events_by_type WHERE type = ? ORDER BY global_position DESC LIMIT ${NEWEST_LOOK}`).pluck().all(type) as string[]).map(
      (data) => JSON.parse(data) as Record<string, unknown>,
    );
  const wanted = [
    ...newest('DocumentSubmitted')
      .filter((d) => isSealed(d['content']) && typeof d['patientKey'] === 'string')
      .map((d) => String(d['patientKey'])),
    ...newest('ConsultationRequested')
      .filter((d) => (isSealed(d['clinicalQuestion']) || isSealed(d['summary'])) && typeof d['consultationId'] === 'string')
      .map((d) => consultationDataKey(String(d['consultationId']))),
  ];
  const keys = keyRowsIn(keysFile, wanted);
  if (keys.lacking > 0) {
    const state = !existsSync(keysFile) ? 'is missing' : keys.count === 0 ? 'holds no keys' : "lacks the keys of the newest documents or consultations (an older copy, or another data directory's)";
    throw new ConfigError([
      `${DATA_FILES.patientKeys} in the data directory (RTS_DATA_DIR, the library's dataDir): ${state}, but the event store holds data sealed with them: those documents would be unreadable, and new uploads would make their patients new keys. Put back the file that belongs with these events, from the backup that has them (rts restore: the stores and the secrets together)`,
    ]);
  }
  if (keys.count > 0 && (await store.headPosition()) === 0n) throw eventsMissing();
};

const eventsMissing = (): ConfigError =>
  new ConfigError([
    `${DATA_FILES.events} in the data directory (RTS_DATA_DIR, the library's dataDir): holds no events, but ${DATA_FILES.patientKeys} beside it holds patients' keys: the events file was lost or replaced. Put it back from the backup (rts restore: the stores and the secrets together), or, to start again with no data, remove the whole data directory`,
  ]);

/**
 * The key store's rows (tombstones of erased patients too), and how many of `wanted` have none, read only: no rows
 * for no file, an empty one, or one without the table yet. A file that cannot be read (not a database, locked, no
 * permission) is said as what it is, naming it.
 */
const keyRowsIn = (file: string, wanted: readonly string[]): { count: number; lacking: number } => {
  if (!existsSync(file) || statSync(file).size === 0) return { count: 0, lacking: new Set(wanted).size };
  let db: InstanceType<typeof BetterSqlite3> | undefined;
  try {
    db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'patient_keys'").get() === undefined) return { count: 0, lacking: new Set(wanted).size };
    const count = Number(db.prepare('SELECT count(*) FROM patient_keys').pluck().get());
    const one = db.prepare('SELECT 1 FROM patient_keys WHERE patient_key = ?');
    return { count, lacking: [...new Set(wanted)].filter((k) => one.get(k) === undefined).length };
  } catch (error) {
    throw namedOpenFailure(file, error);
  } finally {
    db?.close();
  }
};

/**
 * SQLite: registry rows still holding a document's plain SHA-256 once the registry opened (replaceClearHashes took
 * the keyed digest of every event that holds one) are documents whose events hold the plain hash too, stored by
 * builds before the keyed digest. Beside the row's time and values in clear, that hash gave the CPR number back to
 * anyone with a copy of telemed.sqlite; the row gets the keyed digest of the document instead (the events keep
 * theirs: events are not rewritten). Nothing is opened when no row needs it. Never fails the start: a row that
 * cannot be mended now is mended at a later start.
 */
const keyPlainRegistryHashes = async (c: Container, logger: Logger): Promise<void> => {
  try {
    const started = performance.now();
    const { mended, left } = await c.get(SqliteRegistry).keyPlainHashes(
      async (uniqueId, patientKey) => {
        try {
          // The document from its own event, not through the registry and projector (a catch-up per row: ~0.35 ms each,
          // 70 s at 200,000 rows).
          const protection = c.get<PatientDataProtection>(TOKENS.PatientDataProtection);
          const { events } = await c.get<EventStore>(TOKENS.EventStore).readStream(documentStreamName(uniqueId), { maxCount: 1 });
          const opened = events[0]?.type === 'DocumentSubmitted' ? await openDocument(protection, events[0].data) : null;
          return opened === null ? null : await protection.digest(patientKey, opened.content, `document/${uniqueId}`);
        } catch {
          return null; // erased meanwhile, or its content not readable now
        }
      },
      {
        onRowsFound: (rows) =>
          logger.warn({ rows }, "registry: rows hold a document's plain SHA-256 (stored by an older build); giving them the keyed digest before the hub serves (about 1 ms per 10 rows)"),
      },
    );
    if (mended > 0 || left > 0) {
      logger.warn(
        { rows: mended, left, ms: Math.round(performance.now() - started) },
        "registry: rows of documents an older build stored with the plain SHA-256 hold the document's keyed digest now (with the reading beside it, the plain hash gave the CPR number back; their events keep it); copies and backups of the events file made before still hold them",
      );
    }
  } catch (err) {
    logger.warn({ err }, 'registry: rows holding a plain document hash could not be mended now; the next start tries again');
  }
};

/**
 * Opens the configured event store (and its registry), builds the container around it, and checks that this
 * process's pseudonym secret is the store's (pseudonym-check.ts): a ConfigError naming RTS_PSEUDONYM_SECRET if
 * not, with the stores closed again.
 */
export const openContainer = async (config: Config, logger: Logger = createLogger(config)): Promise<Container> => {
  // No events file beside a key file holding keys: refused before the store is opened (which would create it).
  if (config.RTS_EVENT_STORE === 'sqlite' && !existsSync(join(config.RTS_DATA_DIR, DATA_FILES.events)) && keyRowsIn(join(config.RTS_DATA_DIR, DATA_FILES.patientKeys), []).count > 0) {
    throw eventsMissing();
  }
  const opened = await openStore(config, logger);
  const c = buildContainer(config, logger, opened);
  const secretFile = join(config.RTS_DATA_DIR, DATA_FILES.pseudonymSecret);
  try {
    // The embedded key store and the events it opens, one without the other or not of the same time (the key file
    // read only; before the store format is recorded in a new store).
    if (!opened?.keys && config.RTS_EVENT_STORE === 'sqlite') await checkKeysBesideEvents(config, c.get<EventStore>(TOKENS.EventStore));
    // A build that may not open this store must not record, or write, anything in it.
    await checkStoreFormatOf(c.get<EventStore>(TOKENS.EventStore), c.get<Clock>(TOKENS.Clock).now().toISO()!, logger);
    // No secret here but a store written with one (a restore without it, a new hub without the setting): say
    // so before a new secret is generated into the data directory.
    if (!config.RTS_PSEUDONYM_SECRET && !existsSync(secretFile) && (await recordedPseudonymFingerprint(c.get<EventStore>(TOKENS.EventStore))) !== null) {
      throw new MissingSecret();
    }
    const at = c.get<Clock>(TOKENS.Clock).now().toISO()!;
    if ((await checkPseudonymSecret(c.get<EventStore>(TOKENS.EventStore), c.get<PatientKeys>(TOKENS.PatientKeys).fingerprint(), at)) === 'recorded') {
      logger.info({ stream: PSEUDONYM_CHECK_STREAM }, 'pseudonym secret: fingerprint recorded in the store (hub processes on this store must share the secret)');
    }
    if (!opened && config.RTS_EVENT_STORE === 'sqlite') await keyPlainRegistryHashes(c, logger);
  } catch (error) {
    // The event store, and PostgreSQL's key store if openStore opened one (SQLite's is not made yet: nothing
    // has asked for it, and asking would create its file).
    await c.get<EventStore>(TOKENS.EventStore).close();
    await opened?.keys?.close();
    if (error instanceof MissingSecret) {
      throw new ConfigError([
        `RTS_PSEUDONYM_SECRET: not set, and there is no ${secretFile}, but this store's patients are keyed with a pseudonym secret. ` +
          'Set RTS_PSEUDONYM_SECRET to it, or put its file back (a backup keeps it; see "Backup and restore").',
      ]);
    }
    if (error instanceof StoreFormatTooNewError) {
      const where = config.RTS_EVENT_STORE === 'sqlite' ? `RTS_DATA_DIR (${config.RTS_DATA_DIR})` : config.RTS_EVENT_STORE === 'postgres' ? 'RTS_POSTGRES_URL' : 'RTS_EVENTSTORE_CONNECTION_STRING';
      throw new ConfigError([
        `${where}: ${error.message}. Start the newer build on it again; to roll back to this build, restore the backup taken before the upgrade ` +
          '(rts restore; pg_restore for PostgreSQL) into a data directory or database of its own. See README "Upgrading and rolling back".',
      ]);
    }
    if (!(error instanceof PseudonymSecretMismatchError)) throw error;
    const mine = config.RTS_PSEUDONYM_SECRET ? 'the RTS_PSEUDONYM_SECRET given' : `the one in ${secretFile}`;
    throw new ConfigError([
      `RTS_PSEUDONYM_SECRET: this store's patients are keyed with another pseudonym secret than ${mine} (the store records its fingerprint). ` +
        'Give every hub process on this store the same RTS_PSEUDONYM_SECRET: with another, each patient would get a second key and their data would split in two.',
    ]);
  }
  return c;
};
