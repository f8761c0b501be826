import 'reflect-metadata';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Container } from 'inversify';
import pino, { type Logger } from 'pino';
import { EventStoreDocumentRepository } from '../application/event-store-document-repository';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';
import type { IdGenerator } from '../application/ports/id-generator';
import type { PatientKeys } from '../application/ports/patient-keys';
import type { RegistryReadModel } from '../application/ports/registry-read-model';
import { Projector } from '../application/projector';
import { TeleMedService } from '../application/telemed';
import { XdsBackend } from '../application/xds-backend';
import { SqliteEventStore } from '../adapters/event-store/sqlite/sqlite-event-store';
import { SqliteRegistry } from '../adapters/registry/sqlite-registry';
import { HmacPatientKeys } from '../adapters/system/hmac-patient-keys';
import { RandomIds, SystemClock } from '../adapters/system/system-clock';
import type { Config } from './config';
import { pseudonymSecret } from './secret';

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
} as const;

export const createLogger = (config: Pick<Config, 'RTS_LOG_LEVEL'>): Logger =>
  pino({ level: config.RTS_LOG_LEVEL, base: { service: 'telemed-rts' }, timestamp: pino.stdTimeFunctions.isoTime });

/** The composition root: every binding of the embedded profile, each a singleton. */
export const buildContainer = (config: Config, logger: Logger = createLogger(config)): Container => {
  const c = new Container({ defaultScope: 'Singleton' });
  c.bind<Config>(TOKENS.Config).toConstantValue(config);
  c.bind<Logger>(TOKENS.Logger).toConstantValue(logger);
  c.bind<Clock>(TOKENS.Clock).toConstantValue(new SystemClock());
  c.bind<IdGenerator>(TOKENS.Ids).toConstantValue(new RandomIds());
  c.bind<PatientKeys>(TOKENS.PatientKeys).toDynamicValue(() => new HmacPatientKeys(pseudonymSecret(config.RTS_PSEUDONYM_SECRET, config.RTS_DATA_DIR)));
  c.bind<SqliteEventStore>(SqliteEventStore).toDynamicValue(() => {
    mkdirSync(config.RTS_DATA_DIR, { recursive: true });
    return SqliteEventStore.open({ file: join(config.RTS_DATA_DIR, 'telemed.sqlite') });
  });
  c.bind<EventStore>(TOKENS.EventStore).toDynamicValue((ctx) => ctx.container.get(SqliteEventStore));
  c.bind<RegistryReadModel>(TOKENS.Registry).toDynamicValue((ctx) => new SqliteRegistry(ctx.container.get(SqliteEventStore)));
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
    });
  });
  c.bind<TeleMedService>(TOKENS.TeleMed).toDynamicValue((ctx) => new TeleMedService(ctx.container.get(TOKENS.Xds)));
  return c;
};
