// The cap on open HTTP connections (RTS_HTTP_MAX_CONNECTIONS, bootstrap/http-connections.ts), on the Node server
// fastify listens with. fastify 5 has no option for it; Node's `server.maxConnections` does it: a connection
// accepted over the cap is closed at once, before a byte is read or written, and the server emits 'drop'.
//
// Closed, not answered 503: an answer would mean reading the request (a slow one holds the descriptor the cap is
// there to save), and a client that is still writing its body when the answer and the close come gets EPIPE or
// ECONNRESET anyway. A client sees the connection closed without an answer, as by a proxy at its own limit, and
// connects again later; the connections already open are served as before.
//
//   rts_http_connections_open           gauge: connections open now
//   rts_http_connections_max            gauge: the cap
//   rts_http_connections_refused_total  counter: connections closed because the cap was reached
//
// The log: one warning when refusals begin, then one line per 10 s while they go on (the count in that time), and
// one when 10 s passed without any. Never one per connection (a flood would fill the log), and no client address
// (there are many, and one may be a patient's).
import type { Server } from 'node:net';
import type { MetricsRegistry } from '../metrics/registry';

export type ConnectionLimitLogger = Readonly<{ warn(obj: object, msg: string): void; info(obj: object, msg: string): void }>;

export type ConnectionLimitOptions = Readonly<{
  /** The cap; undefined: none (Node's default), the connections are still counted. */
  max?: number;
  logger: ConnectionLimitLogger;
  metrics?: MetricsRegistry;
  /** The interval of the log lines while refusals go on (default 10 s). */
  logEveryMs?: number;
}>;

export type ConnectionCounts = Readonly<{ open: number; refused: number }>;

export const limitConnections = (server: Server, options: ConnectionLimitOptions): { counts(): ConnectionCounts } => {
  const { max, logger } = options;
  const logEveryMs = options.logEveryMs ?? 10_000;
  if (max !== undefined) server.maxConnections = max;
  const openGauge = options.metrics?.gauge('rts_http_connections_open', 'HTTP connections open now');
  const refusedCounter = options.metrics?.counter('rts_http_connections_refused_total', 'HTTP connections closed as they were accepted because RTS_HTTP_MAX_CONNECTIONS were open');
  if (max !== undefined) options.metrics?.gauge('rts_http_connections_max', 'The cap on open HTTP connections (RTS_HTTP_MAX_CONNECTIONS)').set({}, max);
  refusedCounter?.inc({}, 0);

  let open = 0;
  let refused = 0;
  /** While refusing: the first and the latest refusal, refusals since the last line, and the timer of the next line. */
  let refusing: { since: number; lastAt: number; notLogged: number; timer: NodeJS.Timeout } | null = null;
  const show = () => openGauge?.set({}, open);
  show();

  server.on('connection', (socket) => {
    open++;
    show();
    socket.once('close', () => {
      open--;
      show();
    });
  });

  const summarize = (): void => {
    if (refusing === null) return;
    if (refusing.notLogged > 0) {
      logger.warn({ limit: max, open, refused: refusing.notLogged, refusedTotal: refused }, `HTTP connections still refused: ${refusing.notLogged} in the last ${Math.round(logEveryMs / 1000)} s`);
      refusing.notLogged = 0;
      return;
    }
    clearInterval(refusing.timer);
    logger.info({ limit: max, open, refusedForMs: Math.round(refusing.lastAt - refusing.since), refusedTotal: refused }, `HTTP connections: none refused for ${Math.round(logEveryMs / 1000)} s`);
    refusing = null;
  };

  server.on('drop', () => {
    refused++;
    refusedCounter?.inc();
    if (refusing !== null) {
      refusing.notLogged++;
      refusing.lastAt = performance.now();
      return;
    }
    logger.warn(
      { limit: max, open, refusedTotal: refused },
      'HTTP connections refused: RTS_HTTP_MAX_CONNECTIONS are open, so new ones are closed as they are accepted (a client or proxy that keeps too many open, or more load than the cap allows)',
    );
    const timer = setInterval(summarize, logEveryMs);
    timer.unref();
    refusing = { since: performance.now(), lastAt: performance.now(), notLogged: 0, timer };
  });
  server.on('close', () => {
    if (refusing !== null) clearInterval(refusing.timer);
    refusing = null;
  });

  return { counts: () => ({ open, refused }) };
};
