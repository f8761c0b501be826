import { rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Container } from 'inversify';
import type { Logger } from 'pino';
import { buildHttpServer, type HttpDependencies, type HttpServer } from '../../src/adapters/http/server';
import type { Clock } from '../../src/application/ports/clock';
import type { EventStore } from '../../src/application/ports/event-store';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { TOKENS } from '../../src/bootstrap/container';

/**
 * The HTTP API's fastify instance over a real container (for inject()): its TeleMed and XDS, `clock` (the container's
 * by default), the store's head as the health answer.
 */
export const httpAppOver = (container: Container, logger: Logger, options: Readonly<{ bodyLimitBytes: number; clock?: Clock }>): FastifyInstance => {
  const store = container.get<EventStore>(TOKENS.EventStore);
  // buildHttpServer returns the fastify instance, or (newer) { app, close }: take the instance either way.
  const built: unknown = buildHttpServer({
    telemed: container.get<TeleMedService>(TOKENS.TeleMed),
    xds: container.get<XdsBackend>(TOKENS.Xds),
    clock: options.clock ?? container.get<Clock>(TOKENS.Clock),
    logger,
    bodyLimitBytes: options.bodyLimitBytes,
    health: async () => ({ head: String(await store.headPosition()) }),
  });
  return (typeof (built as FastifyInstance).inject === 'function' ? built : (built as { app: FastifyInstance }).app) as FastifyInstance;
};

/**
 * The HTTP server (buildHttpServer's { app, close }) over a real container, for tests on a listening socket: its
 * TeleMed, XDS and clock, the store's head as the health answer, and the test's own further settings.
 */
export const httpServerOver = (container: Container, logger: Logger, extra: Partial<HttpDependencies> = {}): HttpServer => {
  const store = container.get<EventStore>(TOKENS.EventStore);
  return buildHttpServer({
    telemed: container.get<TeleMedService>(TOKENS.TeleMed),
    xds: container.get<XdsBackend>(TOKENS.Xds),
    clock: container.get<Clock>(TOKENS.Clock),
    logger,
    health: async () => ({ head: String(await store.headPosition()) }),
    ...extra,
  });
};

/** Listens on 127.0.0.1 at a free port; the port. */
export const listenOnLoopback = async (http: HttpServer): Promise<number> => {
  await http.app.listen({ port: 0, host: '127.0.0.1' });
  return (http.app.server.address() as AddressInfo).port;
};

/** The raw-socket tests' end: the server (whatever it still holds), the store, the data directory. */
export const closeServerAndStore = async (http: HttpServer, store: EventStore, dataDir: string): Promise<void> => {
  await http.app.close().catch(() => undefined);
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
};
