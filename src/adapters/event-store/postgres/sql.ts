import { Pool, type PoolClient, type PoolConfig } from 'pg';
import { UnavailableError } from '../../../domain/shared/errors';
import { STORAGE_UNAVAILABLE } from '../sqlite/storage-failure';

/** Quotes an SQL identifier (schema, table, channel) for PostgreSQL: wraps in double quotes, doubles inner ones. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.length > 63 || name.includes('\0')) {
    throw new Error(`invalid PostgreSQL identifier of length ${name.length}`);
  }
  return `"${name.replace(/"/g, '""')}"`;
}

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
  const code = (error as { code?: unknown }).code;
  const failure = new UnavailableError(
    STORAGE_UNAVAILABLE,
    `the hub cannot reach its database now${typeof code === 'string' ? ` (${code})` : ''}; whether the last write was stored is unknown: send it again later (writes are idempotent by their ids)`,
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

/**
 * Whether `error` says the database cannot be reached or cannot serve now, rather than that the statement was
 * wrong: the connection refused, lost or timed out (a restart, a failover, pg_terminate_backend), SQLSTATE class
 * 08 (connection exception), 53 (insufficient resources: disk full, out of memory, too many connections) or 57P0x
 * (shutting down, cannot connect now). The same request can succeed later; the edge answers 503 and retries.
 */
export function isPgUnavailable(error: unknown): boolean {
  // Not `instanceof Error`: a socket error comes from Node's own realm, which a test sandbox's Error is not.
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && (/^(08|53)[0-9A-Z]{3}$/.test(code) || /^57P0[1-4]$/.test(code) || NETWORK_CODES.has(code))) return true;
  return code === undefined && typeof message === 'string' && /^(Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect)/.test(message);
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/** SQLSTATE of a unique constraint violation. */
export const UNIQUE_VIOLATION = '23505';

export function isPgError(error: unknown): error is Error & { code: string; constraint?: string } {
  return error instanceof Error && typeof (error as { code?: unknown }).code === 'string';
}

/** Runs `work` in one transaction on a pooled connection: COMMIT when it resolves, ROLLBACK when it throws. */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw error;
  } finally {
    // A connection whose ROLLBACK failed is not given back to the pool.
    client.release(broken);
  }
}

/**
 * VACUUM one table (`qualified`: schema-qualified and quoted), on a connection of its own: PostgreSQL refuses
 * VACUUM inside a transaction block. Erasure uses it so the dead row versions of deleted personal data (and of
 * a patient's deleted data key) leave the table's pages instead of waiting for autovacuum. A row version still
 * visible to a transaction older than the deletion stays until a later vacuum: keep transactions short.
 */
export async function vacuumTable(pool: Pool, qualified: string): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query(`VACUUM ${qualified}`);
  } finally {
    client.release();
  }
}
