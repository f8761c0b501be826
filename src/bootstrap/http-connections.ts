import { ConfigError, type Config } from './config';

/** Descriptors kept for everything but HTTP connections: the store's files, a PostgreSQL pool, the broker, logs. */
export const RESERVED_FILE_DESCRIPTORS = 128;
/** The cap when RTS_HTTP_MAX_CONNECTIONS is not set (and the descriptor limit leaves room for it). */
export const DEFAULT_MAX_HTTP_CONNECTIONS = 1024;
/** The fewest connections the default may be lowered to by the descriptor limit; below, the start is refused. */
export const MIN_DEFAULT_HTTP_CONNECTIONS = 16;

/**
 * The most HTTP connections the hub holds open at once (RTS_HTTP_MAX_CONNECTIONS); one more is closed as it is
 * accepted (adapters/http/connection-limit.ts). Without a cap a client that opens connections and keeps them (a
 * slowloris, a proxy or client that leaks sockets) took every descriptor the process had, and then the store's
 * files, the database and the broker failed too (EMFILE), not only HTTP.
 *
 * Default 1024, or the process's descriptor limit less RESERVED_FILE_DESCRIPTORS when that is lower, but not below
 * MIN_DEFAULT_HTTP_CONNECTIONS (a ConfigError, exit 78: raise the limit). A setting the
 * limit cannot hold with that reserve stops the start (a ConfigError, exit 78): the cap would never be reached,
 * descriptors would run out first. `fileLimit` null (not known): the setting or the default as it is.
 */
export const maxHttpConnections = (config: Pick<Config, 'RTS_HTTP_MAX_CONNECTIONS'>, fileLimit: number | null): number => {
  const room = fileLimit === null ? Infinity : fileLimit - RESERVED_FILE_DESCRIPTORS;
  const configured = config.RTS_HTTP_MAX_CONNECTIONS;
  if (configured === undefined) {
    // A limit of 64 gave a cap of 1: the hub started, and one client sending its headers slowly took it out for
    // every other (/health included).
    if (room < MIN_DEFAULT_HTTP_CONNECTIONS) {
      throw new ConfigError([
        `the open-file limit of ${fileLimit} descriptors leaves room for ${Math.max(0, room)} HTTP connections beside the ${RESERVED_FILE_DESCRIPTORS} kept for the store, the database, the broker and logs (at least ${MIN_DEFAULT_HTTP_CONNECTIONS} by default): raise it to ${RESERVED_FILE_DESCRIPTORS + DEFAULT_MAX_HTTP_CONNECTIONS} or more (systemd LimitNOFILE=, ulimit -n)${room >= 1 ? `, or set RTS_HTTP_MAX_CONNECTIONS to at most ${room} to say so few are meant` : ''}`,
      ]);
    }
    return Math.min(DEFAULT_MAX_HTTP_CONNECTIONS, room);
  }
  if (configured > room) {
    throw new ConfigError([
      `RTS_HTTP_MAX_CONNECTIONS: more connections than this process may open files for (its limit is ${fileLimit} descriptors, ${RESERVED_FILE_DESCRIPTORS} of them kept for the store, the database, the broker and logs): ${room >= 1 ? `give at most ${room}, or raise the limit` : `raise the limit to at least ${RESERVED_FILE_DESCRIPTORS + configured}`} (systemd LimitNOFILE=, ulimit -n)`,
    ]);
  }
  return configured;
};
