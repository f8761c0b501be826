/**
 * How a PostgreSQL failure is told apart from a wrong statement, by its code and message only: no import of the
 * driver, so the HTTP edge and the hub's start can tell it without loading node-postgres on the embedded store
 * (where such an error never arises). sql.ts wraps the driver with it (asPgUnavailable) and re-exports it.
 */

/**
 * Why the database is unavailable, for messages: the error code (ECONNREFUSED, 57P01, ...), 'timed out' for
 * node-postgres's timeouts (connect, pool wait, statement), or undefined.
 */
export function pgUnavailableReason(error: unknown): string | undefined {
  const { code, message, errors } = (error ?? {}) as { code?: unknown; message?: unknown; errors?: unknown };
  if (typeof code === 'string') return code;
  // Node's connect to a host of several addresses fails with an AggregateError whose own code is unset (an
  // unroutable host said "cannot be reached now:" and no reason): the first attempt's code.
  if (Array.isArray(errors)) {
    const inner = errors.map((e) => (e as { code?: unknown } | null)?.code).find((c): c is string => typeof c === 'string');
    if (inner !== undefined) return inner;
  }
  if (typeof message === 'string' && TIMEOUT_MESSAGES.test(message)) return 'timed out';
  return undefined;
}
const TIMEOUT_MESSAGES = /^(Connection terminated due to connection timeout|timeout exceeded when trying to connect|Query read timeout|timeout expired)/;

/**
 * Whether `error` says the database cannot be reached or cannot serve now, rather than that the statement was
 * wrong: the connection refused, lost or timed out (a restart, a failover, pg_terminate_backend; a connect, a wait for
 * a pooled connection or a statement past its timeout: see PostgresTimeouts), SQLSTATE class
 * 08 (connection exception), 53 (insufficient resources: disk full, out of memory, too many connections), 57P0x
 * (shutting down, cannot connect now) or 55000 "database ... is not currently accepting connections", 25006 (a
 * read-only transaction: the server is a standby, a primary demoted in a failover, or writes frozen with
 * default_transaction_read_only) and 57014 (a statement cancelled: a statement_timeout the DBA set on the role or
 * database, pg_cancel_backend). The same request can succeed later; the edge answers 503 and retries. Before, the
 * last two were a 500, and over AMQP used up a message's attempts until it was dead-lettered.
 */
export function isPgUnavailable(error: unknown): boolean {
  // Not `instanceof Error`: a socket error comes from Node's own realm, which a test sandbox's Error is not.
  if (typeof error !== 'object' || error === null) return false;
  const { code, message, syscall } = error as { code?: unknown; message?: unknown; syscall?: unknown };
  if (typeof code === 'string' && (/^(08|53)[0-9A-Z]{3}$/.test(code) || /^57P0[1-4]$/.test(code) || NETWORK_CODES.has(code) || NOT_NOW_CODES.has(code))) return true;
  // A database reached by its unix socket (host=/var/run/postgresql) that is stopped: PostgreSQL removes its socket
  // file at shutdown, so the connect fails ENOENT, not ECONNREFUSED. Only a connect's: a file's ENOENT is a fault.
  // One that is hung (a postmaster or PgBouncer that accepts no more): its listen queue fills and a connect to the
  // socket fails EAGAIN at once, where TCP would wait for the connect timeout.
  if ((code === 'ENOENT' || code === 'EAGAIN') && syscall === 'connect') return true;
  // A host name that stops resolving while the hub runs: Docker's DNS answers NXDOMAIN for a stopped compose service,
  // Consul or a headless Kubernetes service for one with no healthy primary (a failover). At start it is a setting to
  // fix (main.ts's storeStartProblem says so first: exit 78); later it is an outage, as EAI_AGAIN is.
  if (code === 'ENOTFOUND' && syscall === 'getaddrinfo') return true;
  // 55000 (object not in prerequisite state) is mostly a statement's fault; at connect it says the database takes no
  // connections now (ALLOW_CONNECTIONS false during maintenance): that one is waited out.
  if (code === '55000' && typeof message === 'string' && /is not currently accepting connections/.test(message)) return true;
  return code === undefined && typeof message === 'string' && (/^(Connection terminated|Client has encountered a connection error)/.test(message) || TIMEOUT_MESSAGES.test(message));
}

/** read_only_sql_transaction, query_canceled (see isPgUnavailable). */
const NOT_NOW_CODES = new Set(['25006', '57014']);
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
