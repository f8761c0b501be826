import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import { EventStoreDocumentRepository } from '../application/event-store-document-repository';
import type { EventStore } from '../application/ports/event-store';
import type { RegistryReadModel } from '../application/ports/registry-read-model';
import { Projector } from '../application/projector';
import { TeleMedService } from '../application/telemed';
import { XdsBackend } from '../application/xds-backend';
import { InMemoryEventStore } from '../adapters/event-store/memory/in-memory-event-store';
import { InMemoryRegistry } from '../adapters/registry/in-memory-registry';
import { HmacPatientKeys } from '../adapters/system/hmac-patient-keys';
import { RandomIds, SystemClock } from '../adapters/system/system-clock';
import { loadConfig, type Config } from './config';
import { TOKENS, openContainer } from './container';

/** What a backend team gets when it embeds the core without HTTP. */
export type EmbeddedTeleMed = Readonly<{
  /** The seed's TeleMed interface: processAndStore, getObservationsFor (plus record/correct). */
  telemed: TeleMedService;
  /** The seed's XDSBackend: provideAndRegisterDocument, retrieveDocumentSet, correctDocument. */
  xds: XdsBackend;
  /** Rebuild the registry projection from the events. */
  rebuildRegistry(): Promise<void>;
  close(): Promise<void>;
}>;

export type OpenOptions =
  /**
   * The server's stores: SQLite under `dataDir` by default; `settings` are RTS_* variables as the server reads
   * them, e.g. { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: '...' } (the environment is not read).
   */
  | Readonly<{ dataDir: string; settings?: Partial<Record<keyof Config, string>>; logger?: Logger }>
  /** Everything in memory, gone at close: for tests of code that embeds TeleMed. */
  | Readonly<{ inMemory: true; pseudonymSecret?: Buffer }>;

/**
 * Open the TeleMed core in-process.
 *
 *   const rts = await openTeleMed({ dataDir: './data' });
 *   const uniqueId = await rts.telemed.processAndStore(createTeleObservation({...}, DateTime.utc()));
 *   const week = await rts.telemed.getObservationsFor(patientId, lastDays(7, DateTime.utc()));
 *   await rts.close();
 */
export const openTeleMed = async (options: OpenOptions): Promise<EmbeddedTeleMed> => {
  if ('inMemory' in options) {
    const store: EventStore = new InMemoryEventStore();
    const registry: RegistryReadModel = new InMemoryRegistry();
    const projector = new Projector(store, registry);
    const repositoryUniqueId = loadConfig({}).RTS_REPOSITORY_UNIQUE_ID;
    const xds = new XdsBackend({
      store,
      registry,
      projector,
      repositories: [new EventStoreDocumentRepository(repositoryUniqueId, store)],
      repositoryUniqueId,
      patientKeys: new HmacPatientKeys(options.pseudonymSecret ?? randomBytes(32)),
      clock: new SystemClock(),
      ids: new RandomIds(),
    });
    return { telemed: new TeleMedService(xds), xds, rebuildRegistry: () => projector.rebuild(), close: () => store.close() };
  }
  const config = loadConfig({ ...options.settings, RTS_DATA_DIR: options.dataDir });
  const container = await openContainer(config, options.logger ?? pino({ level: 'silent' }));
  const projector = container.get<Projector>(TOKENS.Projector);
  const store = container.get<EventStore>(TOKENS.EventStore);
  return {
    telemed: container.get<TeleMedService>(TOKENS.TeleMed),
    xds: container.get<XdsBackend>(TOKENS.Xds),
    rebuildRegistry: () => projector.rebuild(),
    close: async () => {
      await projector.stop();
      await store.close();
    },
  };
};
