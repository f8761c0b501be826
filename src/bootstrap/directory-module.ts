import type { Clock } from '../application/ports/clock';
import type { CheckpointStore, DownlinkOutbox } from '../application/ports/downlink-outbox';
import type { EventStore } from '../application/ports/event-store';
import type { IdGenerator } from '../application/ports/id-generator';
import type { DirectoryReadModel } from '../application/directory/directory-read-model';
import { DirectoryProjector, type DirectoryLogger } from '../application/directory/directory-projector';
import { DirectoryService } from '../application/directory/directory-service';
import { DownlinkPublisher } from '../application/directory/downlink-publisher';
import { UplinkHandler } from '../application/directory/uplink-handler';
import { SqliteEventStore } from '../adapters/event-store/sqlite/sqlite-event-store';
import { InMemoryCheckpointStore } from '../adapters/messaging/memory/in-memory-downlink';
import { InMemoryDirectory } from '../adapters/registry/in-memory-directory';
import { SqliteDirectory } from '../adapters/registry/sqlite-directory';

/**
 * Composition of the directory context, for the container to call (no inversify here: plain construction).
 *
 *   const directory = createDirectoryModule({ store, clock, ids, logger });
 *   registerDirectoryRoutes(app, { directory: directory.service });      // HTTP (adapters/http/directory-routes)
 *   await directory.uplink.handleUplink(envelope);                       // part B: the uplink consumer
 *   const publisher = directory.downlinkPublisher(amqpOutbox);            // part B: the AMQP outbox
 *   directory.start(); publisher.start(); ... await publisher.stop(); await directory.stop();
 *
 * Read model: on a SqliteEventStore, SqliteDirectory in the same file (durable, and the durable CheckpointStore
 * of the downlink publisher); on any other store, InMemoryDirectory rebuilt from the events at start. The
 * checkpoint store: `checkpoints` when passed (main.ts passes PostgresCheckpointStore on PostgreSQL, and on
 * EventStoreDB with RTS_POSTGRES_URL), else SqliteDirectory's, else an in-memory one, with which every restart
 * re-sends the whole downlink history (receivers dedupe by id): only for tests and EventStoreDB alone.
 */
export type DirectoryModuleDependencies = Readonly<{
  store: EventStore;
  clock: Clock;
  ids: IdGenerator;
  logger: DirectoryLogger;
  /** Overrides the read model chosen from the store. */
  readModel?: DirectoryReadModel;
  /** Overrides where the downlink publisher keeps its checkpoint. */
  checkpoints?: CheckpointStore;
  /** Downlink queue names are `${prefix}${systemId}`; default 'rts.downlink.'. */
  downlinkQueuePrefix?: string;
  snapshotBatchSize?: number;
}>;

export type DirectoryModule = Readonly<{
  readModel: DirectoryReadModel;
  projector: DirectoryProjector;
  service: DirectoryService;
  uplink: UplinkHandler;
  checkpoints: CheckpointStore;
  /** A publisher over the given outbox (one per hub process; hub-messaging.ts runs it only while the process holds the publishing lease). */
  downlinkPublisher(outbox: DownlinkOutbox): DownlinkPublisher;
  /** Start following the store with the projection. */
  start(): void;
  stop(): Promise<void>;
}>;

export const createDirectoryModule = (deps: DirectoryModuleDependencies): DirectoryModule => {
  const sqlite = deps.store instanceof SqliteEventStore ? new SqliteDirectory(deps.store) : null;
  const readModel = deps.readModel ?? sqlite ?? new InMemoryDirectory();
  const checkpoints = deps.checkpoints ?? sqlite ?? new InMemoryCheckpointStore();
  const projector = new DirectoryProjector(deps.store, readModel, deps.logger);
  const service = new DirectoryService({ store: deps.store, directory: readModel, projector, clock: deps.clock, ids: deps.ids, downlinkQueuePrefix: deps.downlinkQueuePrefix });
  const uplink = new UplinkHandler({ store: deps.store, clock: deps.clock, logger: deps.logger });
  return {
    readModel,
    projector,
    service,
    uplink,
    checkpoints,
    downlinkPublisher: (outbox) =>
      new DownlinkPublisher({ store: deps.store, directory: readModel, projector, outbox, checkpoints, snapshotBatchSize: deps.snapshotBatchSize, logger: deps.logger }),
    start: () => projector.start(),
    stop: () => projector.stop(),
  };
};
