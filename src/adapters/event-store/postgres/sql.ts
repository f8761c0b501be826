import { Pool, type ClientConfig, type PoolClient, type PoolConfig } from 'pg';
import { UnavailableError } from '../../../domain/shared/errors';
import { STORAGE_UNAVAILABLE } from '../sqlite/storage-failure';
import { isPgUnavailable, pgUnavailableReason } from './pg-unavailable';

export { isPgUnavailable, pgUnavailableReason };

/** Quotes an SQL identifier (schema, table, channel) for PostgreSQL: wraps in double quotes, doubles inner ones. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.length > 63 || name.includes('\0')) {
    throw new Error(`invalid PostgreSQL identifier of length ${name.length}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * How long the hub waits for PostgreSQL. Without bounds, a database that accepts TCP but never answers (a hung
 * server, a firewall dropping packets after the handshake, a stuck PgBouncer) held the start, every request and
 * GET /health until the kernel gave up on the socket (~15 min).
 *
 * - connectTimeoutMs: TCP, TLS, authentication, up to the server's ReadyForQuery; also how long a caller waits
 *   for a free pooled connection.
 * - queryTimeoutMs: a statement that has not answered by then fails its caller ('Query read timeout') and its
 *   connection is dropped. Client-side on purpose: a server-side statement_timeout cannot fire when the server (or
 *   the path to it) is what hangs. It bounds the statements of requests and of the projections; the statements
 *   that may rightly run long on a large store are exempt (LONG_WORK: migrations, VACUUM after an erasure).
 * - TCP keepalive: an idle connection (LISTEN, the pool's idle ones) to a host that is gone is noticed.
 * - idle_in_transaction_session_timeout (server side, the hub's own sessions only): a session whose hub went
 *   silent mid-transaction (a proxy that stopped forwarding) gives up its locks, the append lock among them,
 *   instead of blocking every other hub's appends. The hub never idles in a transaction on purpose.
 */
export type PostgresTimeouts = Readonly<{ connectTimeoutMs?: number; queryTimeoutMs?: number }>;

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;
const IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;
/**
 * A per-statement timeout for the work that may rightly take long (node-postgres takes 0 as "the default", not
 * "none"): the largest delay setTimeout takes, ~24.8 days. Such a statement is bounded by TCP keepalive only.
 */
export const LONG_WORK = { query_timeout: 2_147_483_647 } as const;

/**
 * The server's bounds off for the long work too: a statement_timeout or lock_timeout the DBA set on the role or the
 * database (common for application roles) cancelled a migration's index build on a large events table at every
 * start, and a VACUUM or a registry reset, however the hub's own bound exempts them. LOCAL: in a transaction,
 * reverting at its end; SESSION and its RESET around work outside one (CREATE INDEX CONCURRENTLY, VACUUM).
 */
export const NO_SERVER_BOUNDS = {
  local: 'SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0',
  session: 'SET statement_timeout = 0; SET lock_timeout = 0',
  reset: 'RESET statement_timeout; RESET lock_timeout',
} as const;

/** The settings of every connection the adapters open: the connection string and the bounds above. */
export function connectionConfig(connectionString: string, timeouts: PostgresTimeouts = {}): ClientConfig {
  return {
    connectionString,
    connectionTimeoutMillis: timeouts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    query_timeout: timeouts.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_TIMEOUT_MS,
  };
}

/** node-postgres's error for a statement that did not answer within query_timeout (maybe wrapped as `cause`). */
export function isQueryTimeout(error: unknown): boolean {
  const cause = (error as { cause?: unknown } | null)?.cause;
  return (error as { message?: unknown } | null)?.message === QUERY_TIMEOUT_MESSAGE || (cause !== undefined && cause !== error && isQueryTimeout(cause));
}
const QUERY_TIMEOUT_MESSAGE = 'Query read timeout';


/**
 * A pool whose connections never crash the process. node-postgres emits 'error' on a client whose server session
 * ends (a restart, a failover, pg_terminate_backend); the pool listens only while a client is idle, and an 'error'
 * with no listener on a checked-out client is an uncaught exception. The query in flight on it rejects anyway,
 * which is where the error is handled; the pool drops the broken client.
 */
export function createPool(config: PoolConfig): Pool {
  const pool = new Pool(config);
  pool.on('error', () => undefined); // an idle client died; the pool replaces it
  pool.on('connect', (client) => {
    client.on('error', () => undefined); // a checked-out one: its query rejects
    failInPortTerms(client, 'query');
  });
  failInPortTerms(pool, 'query');
  failInPortTerms(pool, 'connect');
  return pool;
}

/**
 * What a caller of any PostgreSQL adapter gets when the database cannot be reached or cannot serve now: an
 * UnavailableError 'storage_unavailable' (the pg error kept as `cause`), as the SQLite store throws when its disk is
 * full. So a library user handles one error for both stores, HTTP answers it 503 and AMQP retries it. Other errors
 * (a refused statement, a unique violation the adapters turn into the port's own errors) pass unchanged.
 */
export function asPgUnavailable(error: unknown): unknown {
  if (!isPgUnavailable(error)) return error;
  const reason = pgUnavailableReason(error);
  const failure = new UnavailableError(
    STORAGE_UNAVAILABLE,
    `the hub cannot reach its database now${reason !== undefined ? ` (${reason})` : ''}; try again later (a write this interrupted may or may not be stored: writes are idempotent by their ids, so sending it again stores it once)`,
  );
  (failure as { cause?: unknown }).cause = error;
  return failure;
}

/**
 * `target[method]` rejects with asPgUnavailable's error. Only the promise form is changed: node-postgres calls its
 * own callback forms inside (Pool.query checks out a client and queries it with a callback), and those see the
 * driver's errors as before.
 */
function failInPortTerms<T extends object>(target: T, method: 'query' | 'connect'): void {
  const original = (target as Record<string, unknown>)[method] as (...args: unknown[]) => unknown;
  (target as Record<string, unknown>)[method] = (...args: unknown[]): unknown => {
    const result = original.apply(target, args);
    return result instanceof Promise ? result.catch((error: unknown) => Promise.reject(asPgUnavailable(error))) : result;
  };
}


/** SQLSTATE of a unique constraint violation. */
export const UNIQUE_VIOLATION = '23505';

export function isPgError(error: unknown): error is Error & { code: string; constraint?: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/**
 * BEGIN of every transaction the adapters run: READ COMMITTED whatever default_transaction_isolation the role or
 * database has. Their transactions take an advisory lock and then read what the previous holder committed (the
 * registry's checkpoint and rows, the append's heads); under REPEATABLE READ the lock's own statement takes the
 * snapshot, before it waits, and what they read was stale: the second of two hubs applying the same page failed
 * with 40001 every time, and the append took a retry for a conflict.
 */
export const BEGIN = 'BEGIN ISOLATION LEVEL READ COMMITTED';

/** Runs `work` in one transaction on a pooled connection: COMMIT when it resolves, ROLLBACK when it throws. */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(BEGIN);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    broken = await rollback(client, error);
    throw error;
  } finally {
    // A connection whose ROLLBACK failed is not given back to the pool.
    client.release(broken);
  }
}

/**
 * ROLLBACK after `error`; returns the error to release the connection with (so the pool drops it), or undefined
 * when it may be reused. After a statement timeout the connection is dropped at once, without a ROLLBACK: the
 * statement may still be running (or the server gone), and a ROLLBACK would only queue behind it for another
 * timeout. Closing the session rolls the transaction back on the server.
 */
export async function rollback(client: PoolClient, error: unknown): Promise<Error | undefined> {
  if (isQueryTimeout(error)) return error instanceof Error ? error : new Error(QUERY_TIMEOUT_MESSAGE);
  try {
    await client.query('ROLLBACK');
    return undefined;
  } catch (rollbackError) {
    return rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
  }
}

/**
 * VACUUM one table (`qualified`: schema-qualified and quoted), on a connection of its own: PostgreSQL refuses
 * VACUUM inside a transaction block. Erasure uses it so the dead row versions of deleted personal data (and of
 * a patient's deleted data key) are pruned from the table and its indexes at once instead of at autovacuum's next
 * pass. It does not erase them: VACUUM marks their space free without zeroing it, so their bytes stay in the
 * table's files until the space is reused (and in the WAL, WAL archives and base backups): what must not be read
 * after an erasure is sealed under the patient's data key (PostgresRegistry). A row version still visible to a
 * transaction older than the deletion stays until a later vacuum: keep transactions short.
 */
export async function vacuumTable(pool: Pool, qualified: string): Promise<void> {
  const client = await pool.connect();
  let failed: Error | undefined;
  try {
    // LONG_WORK: a large table takes long, and an erasure that stopped halfway would be retried anyway.
    await client.query(NO_SERVER_BOUNDS.session);
    await client.query({ text: `VACUUM ${qualified}`, ...LONG_WORK });
    await client.query(NO_SERVER_BOUNDS.reset);
  } catch (error) {
    failed = error instanceof Error ? error : new Error(String(error)); // not pooled: its settings may be unbounded
    throw error;
  } finally {
    client.release(failed);
  }
}
