#!/usr/bin/env node
// First: a Node.js too old to load the modules below is one line and exit 78 (see the module).
import './node-version-check';
// Then: a stop signal while the modules below load is a clean stop, not Node's exit 143 (see the module).
import { onStopSignal } from './early-signals';
import { exitAfterLog } from './exit-after-log';
import { FORCED_EXIT_MARGIN_MS, stopRunningHub } from './hub-stop';
import { droppedLogLines } from './log-stream';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { silentErasureRecordWarning } from '../adapters/backup/erasure-log-line';
import { SqliteEventStore } from '../adapters/event-store/sqlite/sqlite-event-store';
import { SqliteKeyStore } from '../adapters/crypto/key-stores';
import { registerDeadLetterRoutes } from '../adapters/http/dead-letter-routes';
import { registerConsultationRoutes } from '../adapters/http/consultation-routes';
import { registerPatientExportRoutes } from '../adapters/http/export-routes';
import { registerDirectoryRoutes } from '../adapters/http/directory-routes';
import { registerKeyRoutes } from '../adapters/http/key-routes';
import { registerMetricsRoutes } from '../adapters/http/metrics-routes';
import { MetricsRegistry } from '../adapters/metrics/registry';
import { registerProcessMetrics } from '../adapters/metrics/process-metrics';
import { DATA_FILES } from '../adapters/system/data-dir';
import { FILES_MOVED_CODE } from '../adapters/system/files-in-place';
import { openFileLimit } from '../adapters/system/open-file-limit';
import { buildHttpServer } from '../adapters/http/server';
import type { UplinkLike } from '../adapters/messaging/amqp-uplink-consumer';
import type { IdGenerator } from '../application/ports/id-generator';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';
import type { Projector } from '../application/projector';
import type { TeleMedService } from '../application/telemed';
import type { XdsBackend } from '../application/xds-backend';
import { isPgUnavailable, pgUnavailableReason } from '../adapters/event-store/postgres/pg-unavailable';
import { requireLoopbackListen } from './loopback-listen';
import { ConfigError, DEFAULT_DOWNLINK_QUEUE_PREFIX, loadConfig, messageSecurity, messagingConfig, postgresAddress, type Config } from './config';
import { TOKENS, auditEventsByField, createLogger, isPostgresEventStore, openContainer } from './container';
import { countLegacyConsultations } from '../application/consultation/legacy-consultations';
import { createConsultationModule } from './consultation-module';
import { createDirectoryModule } from './directory-module';
import { checkMessageSecurityOfStore, createMessageSecurity, MESSAGE_SECURITY_OFF_WARNING } from './message-security';
import { startHubMessaging } from './hub-messaging';
import { checkClockAgainstNewestEvent, checkClockAgainstStore } from './clock-check';
import { lockEmbeddedStore } from './embedded-store-lock';
import { refuseBrokerOnRestoredDataDir } from './restored-data-dir';
import { completeErasuresOfKeyStore } from './erasures-at-start';
import { DEFAULT_MAX_HTTP_CONNECTIONS, maxHttpConnections } from './http-connections';
import { caughtUpConsultations, checkTokenVerificationOfStore, createSecurityModule } from './security-module';
import type { PatientDataProtection, PatientKeyStore } from '../application/ports/patient-data-protection';
import type { PatientErasure } from '../application/patient-erasure';
import { PatientExport } from '../application/patient-export';
import { startErasedKeys } from '../application/erased-keys';
import type { ConsultationContentErasure } from '../application/consultation/consultation-erasure';
import type { PatientKeys } from '../application/ports/patient-keys';
import type { CheckpointStore } from '../application/ports/downlink-outbox';
import type { PublishingLease } from '../application/ports/publishing-lease';

export type RunningHub = Readonly<{
  url: string;
  stop(): Promise<void>;
  /** The HTTP routes it serves, as 'METHOD /pattern' (what the OpenAPI document must describe). */
  routes(): readonly string[];
}>;

export type StartHubOptions = Readonly<{
  /** Wraps the directory's uplink handler given to the uplink consumer (tests inject failures). */
  wrapUplink?: (uplink: UplinkLike) => UplinkLike;
}>;

/**
 * Start the hub: store, projections, directory, messaging (when RTS_BROKER_URL is set), HTTP. Resolves once
 * the port is listening and, with a broker, the uplink consumer is attached, or after 5 s without it: a broker
 * that is down does not keep the hub from serving HTTP; messaging attaches when it answers.
 */
export const startHub = async (config: Config, logger: Logger = createLogger(config), options: StartHubOptions = {}): Promise<RunningHub> => {
  // Before anything opens: RTS_AUTH=off (or the development login by default) on an address others reach.
  await requireLoopbackListen(config);
  // Checked before anything opens: a cap the descriptor limit cannot hold is a ConfigError naming it.
  const fileLimit = openFileLimit();
  const maxConnections = maxHttpConnections(config, fileLimit);
  if (config.RTS_HTTP_MAX_CONNECTIONS === undefined && maxConnections < DEFAULT_MAX_HTTP_CONNECTIONS) {
    logger.warn(
      { maxConnections, fileLimit, default: DEFAULT_MAX_HTTP_CONNECTIONS },
      `the open-file limit lowers the cap on HTTP connections below its default of ${DEFAULT_MAX_HTTP_CONNECTIONS}: raise the limit (systemd LimitNOFILE=, ulimit -n) or set RTS_HTTP_MAX_CONNECTIONS to say the lower cap is meant`,
    );
  }
  // One hub process per embedded store (data-dir-lock.ts); held until the hub has stopped.
  const lock = lockEmbeddedStore(config, 'RTS_DATA_DIR');
  try {
    // A restored data directory whose later erasures are not repeated yet: not with a broker (restored-data-dir.ts).
    refuseBrokerOnRestoredDataDir(config);
    const hub = await startUnlockedHub(config, logger, { ...options, maxConnections });
    return { ...hub, stop: () => hub.stop().finally(() => lock?.release()) };
  } catch (error) {
    lock?.release();
    throw error;
  }
};

const startUnlockedHub = async (config: Config, logger: Logger, options: StartHubOptions & { maxConnections: number }): Promise<RunningHub> => {
  const container = await openContainer(config, logger).catch((error: unknown) => {
    throw storeStartProblem(error, config) ?? error;
  });
  const store = container.get<EventStore>(TOKENS.EventStore);
  // Hub processes on a shared store verify tokens alike (security-module.ts): checked before anything runs.
  await checkTokenVerificationOfStore({ config, store, clock: container.get<Clock>(TOKENS.Clock), logger }).catch(async (error: unknown) => {
    await store.close();
    await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
    throw error;
  });
  if (isPostgresEventStore(store)) await checkClockAgainstStore({ serverTimeMillis: () => store.serverTimeMillis(), clock: container.get<Clock>(TOKENS.Clock), logger });
  await checkClockAgainstNewestEvent({ store, clock: container.get<Clock>(TOKENS.Clock), logger }).catch(() => null);
  // Before anything is served: the erasures a restored backup holds the key deletion of and not the event.
  await completeErasuresOfKeyStore(container, logger).catch(async (error: unknown) => {
    await store.close();
    await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
    throw error;
  });
  // Erasures by other hub processes on this store drop the keys cached here as soon as they are recorded (not a
  // TTL later): started at the store's head before anything here caches a key (erased-keys.ts).
  const erasedKeys = await startErasedKeys(store, container.get<PatientDataProtection>(TOKENS.PatientDataProtection), logger).catch(async (error: unknown) => {
    await store.close();
    await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
    throw error;
  });
  const projector = container.get<Projector>(TOKENS.Projector);
  projector.start();
  const messagingSettings = messagingConfig(config);
  // Where the downlink publishers keep their checkpoints: PostgreSQL's table when the store has a schema (shared by
  // the hub processes on it, so a restart or a takeover goes on from there); on SQLite the directory's own file.
  const checkpoints = container.isBound(TOKENS.DownlinkCheckpoints) ? container.get<CheckpointStore>(TOKENS.DownlinkCheckpoints) : undefined;
  if (messagingSettings && config.RTS_EVENT_STORE === 'eventstoredb' && !checkpoints) {
    logger.warn(
      { store: 'eventstoredb' },
      'no RTS_POSTGRES_URL: the downlink checkpoints are kept in memory and every hub process publishes, so each start re-sends the downlink history (receivers dedupe by message id); set RTS_POSTGRES_URL to keep them in PostgreSQL, with one publisher at a time',
    );
  }
  const directory = createDirectoryModule({
    store,
    clock: container.get<Clock>(TOKENS.Clock),
    ids: container.get<IdGenerator>(TOKENS.Ids),
    logger,
    downlinkQueuePrefix: messagingSettings?.downlinkQueuePrefix ?? config.RTS_DOWNLINK_QUEUE_PREFIX ?? DEFAULT_DOWNLINK_QUEUE_PREFIX,
    ...(checkpoints ? { checkpoints } : {}),
  });
  directory.start();
  // Consultations: projection and the Deadlines runner (offer expiry, report resends), once per hub process
  // (timer command ids are deterministic, so several hubs may run them). Message keys and the codec (jose|off).
  const consultations = createConsultationModule({
    store,
    clock: container.get<Clock>(TOKENS.Clock),
    ids: container.get<IdGenerator>(TOKENS.Ids),
    logger,
    directory,
    protection: container.get<PatientDataProtection>(TOKENS.PatientDataProtection),
    ...(checkpoints ? { checkpoints } : {}),
  });
  consultations.start();
  warnOfLegacyConsultations(store, logger);
  /** What runs without the broker and the message keys, stopped in reverse order of start; the stores last. */
  const stopModules = async (): Promise<void> => {
    await consultations.stop();
    await directory.stop();
    await projector.stop();
    await erasedKeys?.stop();
    await store.close();
    await container.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
  };
  const messageKeys = await createMessageSecurity({
    mode: messageSecurity(config),
    ...(config.RTS_HUB_KEYS_FILE ? { hubKeysFile: config.RTS_HUB_KEYS_FILE } : {}),
    acceptNewHubKeys: config.RTS_HUB_KEYS_ACCEPT_NEW === 'on',
    dataDir: config.RTS_DATA_DIR,
    store,
    clock: container.get<Clock>(TOKENS.Clock),
    ids: container.get<IdGenerator>(TOKENS.Ids),
    logger,
    directory,
  }).catch(async (error: unknown) => {
    // Hub keys that do not belong with this store (a ConfigError) or cannot be read: stop what runs, then say so.
    await stopModules();
    throw error;
  });
  messageKeys.start();
  const stopCore = async (): Promise<void> => {
    await messageKeys.stop();
    await stopModules();
  };
  const metrics = new MetricsRegistry();
  // Memory, CPU, open files, event-loop delay; on the embedded profile also the store's files (the WAL's growth).
  const dataFile = (name: string) => join(config.RTS_DATA_DIR, name);
  // A stop (SIGSTOP, a frozen VM) or a long synchronous stretch: one line where it happened, so a gap in the log and
  // the broker disconnect after it have their cause next to them.
  const onBlocked = (blockedMs: number) => logger.warn({ blockedMs }, `the event loop was blocked for ${(blockedMs / 1000).toFixed(1)} s (the process was stopped or frozen, or one task ran that long)`);
  const processMetrics = registerProcessMetrics(metrics, {
    onBlocked,
    logLinesDropped: () => droppedLogLines(logger),
    ...(config.RTS_EVENT_STORE === 'sqlite'
      ? {
          files: {
            events: dataFile(DATA_FILES.events),
            events_wal: dataFile(`${DATA_FILES.events}-wal`),
            patient_keys: dataFile(DATA_FILES.patientKeys),
            patient_keys_wal: dataFile(`${DATA_FILES.patientKeys}-wal`),
          },
        }
      : {}),
  });
  // The embedded store's two files fail apart: the key store's lock can be held by another process (a sqlite3 shell)
  // while the events' is not, and new patients' uploads and erasures then get 503: /health and the gauge say it too.
  const keyStore = container.get<PatientKeyStore>(TOKENS.PatientKeyStore);
  const embeddedKeys = keyStore instanceof SqliteKeyStore ? keyStore : null;
  // Which file, for /health's detail: a lock is looked for on one file (lsof, fuser), and "the store's lock" sent the
  // operator to telemed.sqlite while a shell held patient-keys.sqlite. Files moved names none: it may be either's.
  const namingFile = (failure: Readonly<{ code: string; since: string }> | null, file: string) =>
    failure === null ? null : failure.code === FILES_MOVED_CODE ? failure : { ...failure, file };
  const writeFailure = () =>
    namingFile(store instanceof SqliteEventStore ? store.writeFailure() : null, DATA_FILES.events) ?? namingFile(embeddedKeys?.writeFailure() ?? null, DATA_FILES.patientKeys);
  // A store whose writes failed tries one of its own (nothing while they commit): the disk or the lock may be back
  // though no upload came. Before /health answers and before /metrics renders, so an alert on the gauge clears when
  // the failure does, not at the next health check or upload.
  const probeStoreWrites = async (): Promise<void> => {
    if (store instanceof SqliteEventStore) await store.probeWrites();
    await embeddedKeys?.probeWrites();
  };
  if (store instanceof SqliteEventStore) {
    // Something to alert on besides /health's 503: 1 from the first write that failed for want of storage (disk full,
    // failing, locked) until a write commits again.
    const failing = metrics.gauge('rts_store_writes_failing', 'Whether writes to the embedded store fail now (1: disk full, failing or locked; 0: they commit)');
    metrics.addCollector(() => failing.set({}, writeFailure() === null ? 0 : 1));
  }
  // Access control, rate limits, audit trail and erasure (security-module.ts); clinicians' access follows the
  // consultation read model once the consultation context is composed here (pass it as `consultations`). Made before
  // messaging: the uplink consumer records consultation messages in the same audit trail.
  const security = createSecurityModule({
    config,
    logger,
    store,
    auditEventsByField: auditEventsByField(container),
    clock: container.get<Clock>(TOKENS.Clock),
    patientKeys: container.get<PatientKeys>(TOKENS.PatientKeys),
    xds: container.get<XdsBackend>(TOKENS.Xds),
    erasure: container.get<PatientErasure>(TOKENS.PatientErasure),
    consultations: () => caughtUpConsultations(consultations),
    metrics,
  });
  let messaging;
  try {
    if (messagingSettings) {
      await checkMessageSecurityOfStore({ mode: messageSecurity(config), acceptChange: config.RTS_MESSAGE_SECURITY_CHANGE === 'on', store, clock: container.get<Clock>(TOKENS.Clock), logger });
      if (messageSecurity(config) === 'off') logger.warn(MESSAGE_SECURITY_OFF_WARNING);
    }
    messaging = await startHubMessaging({
      messaging: messagingSettings,
      directory,
      store,
      clock: container.get<Clock>(TOKENS.Clock),
      ids: container.get<IdGenerator>(TOKENS.Ids),
      logger,
      metrics,
      consultations,
      codec: messageKeys.codec,
      protection: container.get<PatientDataProtection>(TOKENS.PatientDataProtection),
      audit: security.audit,
      // One publishing process at a time on a shared PostgreSQL store (an advisory lock); on SQLite, this one.
      publishingLease: container.get<PublishingLease>(TOKENS.PublishingLease),
      // EventStoreDB's positions are offsets in its log: its downlink lag is told in seconds only.
      positionsCountEvents: config.RTS_EVENT_STORE !== 'eventstoredb',
      ...(options.wrapUplink ? { uplink: options.wrapUplink(directory.uplink) } : {}),
    });
  } catch (error) {
    processMetrics.stop();
    await security.close();
    await stopCore();
    throw error;
  }
  const http = buildHttpServer({
    telemed: container.get<TeleMedService>(TOKENS.TeleMed),
    xds: container.get<XdsBackend>(TOKENS.Xds),
    clock: container.get<Clock>(TOKENS.Clock),
    logger,
    bodyLimitBytes: config.RTS_BODY_LIMIT_BYTES,
    healthTimeoutMs: config.RTS_HEALTH_TIMEOUT_MS,
    maxConnections: options.maxConnections,
    metrics,
    beforeRoutes: security.install,
    health: async () => {
      await probeStoreWrites();
      // A PostgreSQL that takes no writes now (a standby, writes frozen) answers reads: asked, as SQLite's failures are kept.
      const refused = isPostgresEventStore(store) ? await store.writesRefused() : null;
      return {
        store: config.RTS_EVENT_STORE,
        head: String(await store.headPosition()),
        // The broker is not part of readiness: uploads and queries need only the store. Told apart for operators.
        ...(messagingSettings
          ? {
              broker: messaging.brokerState(),
              uplink: messaging.brokerState() === 'connected' && messaging.consuming() ? ('consuming' as const) : ('not_consuming' as const),
              // Stalled: events wait, and a publisher's stored checkpoint has stood still a while, whether this process
              // publishes or stands by (at a standby: no process gets that downlink out; every hub says so then).
              downlink: messaging.stalledPublishers().length > 0 ? ('stalled' as const) : messaging.publishing() ? ('publishing' as const) : ('standby' as const),
            }
          : {}),
        ...(writeFailure() ? { writesFailing: writeFailure()! } : {}),
        ...(refused ? { writesFailing: refused } : {}),
      };
    },
  });
  registerDirectoryRoutes(http.app, { directory: directory.service, keys: messageKeys.keys, queueDepth: (systemId) => messaging.downlinkQueueDepth(systemId) });
  registerConsultationRoutes(http.app, { consultations: consultations.service });
  // The patient's right of access: what the hub holds of one patient, read through the ports that read each part.
  const exporter = new PatientExport({
    patientKeys: container.get<PatientKeys>(TOKENS.PatientKeys),
    documents: container.get<XdsBackend>(TOKENS.Xds),
    erasure: container.get<PatientErasure>(TOKENS.PatientErasure),
    consultations: { linked: container.get<ConsultationContentErasure>(TOKENS.ConsultationErasure), get: (id) => consultations.service.get(id) },
    audit: security.audit,
    store,
    clock: container.get<Clock>(TOKENS.Clock),
  });
  registerPatientExportRoutes(http.app, { exporter });
  registerKeyRoutes(http.app, { keys: messageKeys.keys, hubJwks: messageKeys.jwks });
  registerDeadLetterRoutes(http.app, { deadLetters: messaging.deadLetters });
  registerMetricsRoutes(http.app, { metrics, beforeRender: probeStoreWrites });
  /** Everything started above, in reverse: HTTP (in-flight requests get `graceMs`), messaging, audit trail, core. */
  const stopStarted = async (graceMs: number): Promise<void> => {
    await http.close(graceMs).catch(() => undefined);
    await messaging.stop(); // before the audit trail: the consumer's last handlings record their entries there
    await security.close(); // the audit events of the last requests and messages
    await stopCore();
    processMetrics.stop();
  };
  const url = await http.app.listen({ host: config.RTS_HTTP_HOST, port: config.RTS_HTTP_PORT }).catch(async (error: unknown) => {
    // A port in use, an address this machine lacks: stop what this start started before saying so. Left running, the
    // projectors, deadlines and the broker connection (its uplink consumer attached) kept an embedder's process alive
    // and at work on a store whose lock startHub had released, where a retry on another port opened it again.
    await stopStarted(0);
    throw listenProblem(error) ?? error;
  });
  logger.info({ url, store: config.RTS_EVENT_STORE, messaging: messagingSettings !== null, maxConnections: options.maxConnections }, 'telemed-rts listening');

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      // Stop taking connections, let in-flight requests finish (their appends commit); stop the uplink consumer
      // (its handlers finish), the downlink publisher and the broker connection; then close the store.
      await stopStarted(config.RTS_SHUTDOWN_GRACE_MS);
      logger.info('telemed-rts stopped');
    })());
  return { url, stop, routes: http.routes };
};

/** EX_UNAVAILABLE: the start failed on something that may work a moment later (a database that is down, DNS). */
export const EXIT_UNAVAILABLE = 69;

/**
 * A start that failed on something outside the hub that is likely to come back (its database is down or restarting,
 * DNS fails now): said as the setting it concerns, with exit code 69 (not 78: the setting may be right, and a
 * service manager should start the hub again).
 */
export class TransientStartError extends Error {
  readonly exitCode = EXIT_UNAVAILABLE;
  constructor(message: string, options: { cause: unknown }) {
    super(message, options);
    this.name = 'TransientStartError';
  }
}

const errorCode = (error: unknown): string => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
};

/**
 * Opening the store failed: a database that cannot be reached now (TransientStartError) or whose host name does
 * not resolve (a ConfigError), named as RTS_POSTGRES_URL with its host and port, never the user or the password.
 * A database that does not exist, a refused login or a missing privilege is a ConfigError too (exit 78). Null for anything else (a
 * certificate: its own message says more).
 */
export const storeStartProblem = (error: unknown, config: Config): Error | null => {
  if (config.RTS_POSTGRES_URL === undefined) return null;
  const cause = (error as { cause?: unknown } | null)?.cause ?? error;
  const code = errorCode(cause);
  const address = postgresAddress(config.RTS_POSTGRES_URL);
  const hostname = (cause as { hostname?: unknown } | null)?.hostname;
  if ((code === 'ENOTFOUND' || code === 'EAI_AGAIN') && typeof hostname === 'string' && address.startsWith(`${hostname}:`)) {
    if (code === 'ENOTFOUND') return new ConfigError([`RTS_POSTGRES_URL: the database host (${address}) has no address in DNS (ENOTFOUND)`]);
    return new TransientStartError(`RTS_POSTGRES_URL: the database host (${address}) cannot be resolved now (EAI_AGAIN, a temporary DNS failure); the hub can start once it resolves`, { cause: error });
  }
  // The database said no for good: a configuration to fix (78), not a start to repeat. With exit 1 a service
  // manager (Restart=on-failure, RestartPreventExitStatus=78) restarted the hub for ever (a review found it). The
  // server's own words follow (which pg_hba.conf rule, "no encryption": what to fix); they never hold the password.
  const said = typeof (cause as { message?: unknown } | null)?.message === 'string' ? `: ${(cause as { message: string }).message}` : '';
  if (code === '3D000') return new ConfigError([`RTS_POSTGRES_URL: the database named at ${address} does not exist (3D000${said})`]);
  if (code === '28P01' || code === '28000') return new ConfigError([`RTS_POSTGRES_URL: the database at ${address} refused the login (${code}${said})`]);
  // The role may log in but not create the hub's schema or tables (PostgreSQL 15 gives PUBLIC no CREATE on public).
  if (code === '42501') {
    return new ConfigError([
      `RTS_POSTGRES_URL: the role lacks a privilege the hub needs at ${address} (42501${said}): the hub creates and alters its schema and tables, so make the role own them (the database's owner, and the owner of tables another role created: ALTER TABLE ... OWNER TO), or grant it CREATE on the database and on RTS_POSTGRES_SCHEMA (README, "Configuration", postgres)`,
    ]);
  }
  if (code === '25006') {
    // Reached, but it takes no writes (a standby, writes frozen): "is it running?" would send the operator astray.
    return new TransientStartError(`RTS_POSTGRES_URL: the database at ${address} takes no writes now (25006${said}): a standby, or default_transaction_read_only on; the hub can start once it is the primary`, { cause: error });
  }
  if (isPgUnavailable(cause)) {
    // A reason: the code (ECONNREFUSED, 57P03), or 'timed out' for one that accepted the connection and did not
    // answer within RTS_POSTGRES_CONNECT_TIMEOUT_MS (or a statement within RTS_POSTGRES_QUERY_TIMEOUT_MS).
    const reason = pgUnavailableReason(cause);
    return new TransientStartError(
      `RTS_POSTGRES_URL: the database at ${address} cannot be reached now${reason ? ` (${reason})` : ''}: is it running, and are host and port right? The hub can start once it answers`,
      { cause: error },
    );
  }
  return null;
};

/** The HTTP listen failed on a host name: RTS_HTTP_HOST names no address (78), or DNS fails now (transient). */
const listenProblem = (error: unknown): Error | null => {
  const code = errorCode(error);
  if (code === 'ENOTFOUND') return new ConfigError(['RTS_HTTP_HOST: the host name cannot be resolved to an address of this machine']);
  if (code === 'EAI_AGAIN') return new TransientStartError('RTS_HTTP_HOST: the host name cannot be resolved now (EAI_AGAIN, a temporary DNS failure)', { cause: error });
  return null;
};

/**
 * A start that failed on the machine rather than in the code, said as the setting to change (never its value):
 * a port in use, an address this machine does not have, a data directory that cannot be created or written.
 * Null for anything else.
 */
export const startupSettingProblem = (error: unknown, config: Pick<Config, 'RTS_DATA_DIR'>): string | null => {
  const e = error as { code?: unknown; syscall?: unknown; path?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  if (e?.syscall === 'listen' || code === 'EADDRINUSE') {
    if (code === 'EADDRINUSE') return 'RTS_HTTP_PORT: another program listens on this port and address already (or give another RTS_HTTP_HOST)';
    if (code === 'EACCES') return 'RTS_HTTP_PORT: this process may not listen on the port (below 1024 needs privileges)';
    if (code === 'EADDRNOTAVAIL') return 'RTS_HTTP_HOST: this machine has no such address to listen on';
  }
  const inDataDir = typeof e?.path === 'string' && resolve(e.path).startsWith(resolve(config.RTS_DATA_DIR));
  if (inDataDir && ['EACCES', 'EPERM', 'EROFS', 'EEXIST', 'ENOTDIR', 'ENOSPC', 'ENOENT'].includes(code)) {
    return `RTS_DATA_DIR: the data directory cannot be created or written (${code}): give a directory this process may write, or make it so`;
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' || code.startsWith('SQLITE_READONLY_') || code === 'SQLITE_PERM') {
    return `RTS_DATA_DIR: the store in the data directory cannot be opened for writing (${code})`;
  }
  return null;
};

/**
 * Consultations that builds before UUID ids recorded with another id and that are still open (legacy-id.ts): one
 * warning at start, counted in the background (the start does not wait for it), with what to do about them.
 */
const warnOfLegacyConsultations = (store: EventStore, logger: Logger): void => {
  countLegacyConsultations(store).then(
    ({ open, unservable }) => {
      if (open > 0) {
        logger.warn(
          { consultations: open },
          'consultations with a pre-UUID id (recorded by an older build) are still open: they are served as any other (HTTP and messages take their ids); new ones need a UUID. Settle them (accept, report, acknowledge or cancel) through GET /consultations?system=...',
        );
      }
      if (unservable > 0) {
        logger.warn(
          { consultations: unservable },
          'consultations whose id may hold a CPR number (recorded by an older build) are still open and cannot be served: their ids are refused over HTTP and in messages, and their offers run out unseen. Tell the applicant systems to request them again with a UUID (README "Upgrading and rolling back")',
        );
      }
    },
    (error: unknown) => logger.debug({ errType: (error as Error)?.name }, 'legacy consultations: not counted'),
  );
};

const main = async (): Promise<void> => {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`telemed-rts: ${error.message}\n`);
      process.exit(78); // EX_CONFIG; no logger yet, so nothing of pino's for the exit to flush
    }
    throw error;
  }
  const logger = createLogger(config);
  // From here on every exit goes through exitAfterLog (exit-after-log.ts): a bare process.exit with a log line still
  // under way and the log's reader gone hangs for ever in pino's exit flush. A start that fails on something without
  // a name of its own (exit 1) included: it was such a bare exit, and hung so.
  await runHub(config, logger).catch((error: unknown) => {
    process.stderr.write(`telemed-rts: failed to start: ${(error as Error)?.message ?? String(error)}\n`);
    exitAfterLog(logger, 1);
  });
};

/** The hub's run once its logger exists: signals, start, stop. Every exit here is an exitAfterLog. */
const runHub = async (config: Config, logger: Logger): Promise<void> => {
  // The erasure record is written at every level but silent (erasure-log-line.ts): a silent hub says so where it can.
  // Here, in the program only: an embedder's or a test's startHub with a silent logger chose it in code.
  if (logger.level === 'silent') process.stderr.write(silentErasureRecordWarning);
  // Installed before the start: a SIGTERM while the hub waits for its database (up to the connect timeout, or a
  // while longer for another hub's migrations) is a stop, said in one line, exit 0, as the exit codes promise; it
  // was Node's default, 143 and silence. Nothing is served yet, so there is nothing to drain: the store's
  // transactions in flight end with the process (PostgreSQL rolls them back; SQLite's journal does).
  let hub: RunningHub | null = null;
  onStopSignal((signal) => {
    if (hub === null) {
      logger.info({ signal }, 'stopped during start; nothing was served');
      exitAfterLog(logger, 0);
      return;
    }
    stopRunningHub(hub, logger, signal, config.RTS_SHUTDOWN_GRACE_MS + FORCED_EXIT_MARGIN_MS);
  });
  try {
    hub = await startHub(config, logger);
  } catch (error) {
    // A setting that only the store can judge (the pseudonym secret): the same exit as a malformed one.
    if (error instanceof ConfigError) {
      process.stderr.write(`telemed-rts: ${error.message}\n`);
      return exitAfterLog(logger, 78);
    }
    const setting = startupSettingProblem(error, config);
    if (setting !== null) {
      process.stderr.write(`telemed-rts: cannot start:\n  ${setting}\n`);
      return exitAfterLog(logger, 78);
    }
    if (error instanceof TransientStartError) {
      process.stderr.write(`telemed-rts: cannot start now:\n  ${error.message}\n`);
      return exitAfterLog(logger, error.exitCode);
    }
    throw error;
  }
};

if (require.main === module) {
  main().catch((error: unknown) => {
    // Only a failure before the logger exists (loading the settings) comes here: no pino stream, nothing for the
    // exit to flush, so a bare exit cannot hang.
    process.stderr.write(`telemed-rts: failed to start: ${(error as Error)?.message ?? String(error)}\n`);
    process.exit(1);
  });
}
