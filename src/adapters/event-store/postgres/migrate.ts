import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Pool, PoolClient } from 'pg';
import { SCHEMA_MIGRATIONS } from './schema-migrations';
import { isQueryTimeout, LONG_WORK, NO_SERVER_BOUNDS, quoteIdent } from './sql';

/**
 * Schema migrations for the PostgreSQL event store, kept in the repo as TypeScript strings (schema-migrations.ts,
 * so the tsc build carries them into dist/), applied in order, each recorded in `schema_migrations` of the store's
 * schema with a checksum.
 *
 * Two processes starting together must not race (both seeing migration 001 missing and both running it), so a
 * run holds an advisory lock keyed by the schema name: the second process waits, then finds everything recorded
 * and does nothing. Migrations run in one transaction (DDL is transactional in PostgreSQL, so a failing one leaves
 * nothing half-applied), up to one marked `-- rts:no-transaction` on its first line: that one runs alone, outside
 * any transaction, for what PostgreSQL refuses inside one: CREATE INDEX CONCURRENTLY, which builds an index on a
 * large events table without blocking appends meanwhile. Such a migration holds one statement. A concurrent build
 * that failed or was cut off leaves an INVALID index behind, which IF NOT EXISTS would keep: the schema's invalid
 * indexes are dropped before it runs.
 *
 * The lock is a session lock taken by polling pg_try_advisory_lock, never by waiting in a statement: a concurrent
 * index build waits for every transaction that holds a snapshot, and a process blocked in pg_advisory_lock holds
 * one while it waits for the lock the builder holds, which deadlocks.
 */

/** Advisory lock class for migrations (two-key form: class, hashtext(schema)). Distinct from the append lock. */
export const MIGRATION_LOCK_CLASS = 0x52545301; // 'RTS' 01

/** `transaction: false`: the migration runs alone, outside a transaction (see above). */
export type Migration = Readonly<{ name: string; sql: string; checksum: string; transaction: boolean }>;

const checksumOf = (sql: string): string => createHash('sha256').update(sql).digest('hex');
const NO_TRANSACTION = /^--\s*rts:no-transaction\b/;
const migration = (name: string, sql: string): Migration => ({ name, sql, checksum: checksumOf(sql), transaction: !NO_TRANSACTION.test(sql) });

/**
 * The store's migrations: the embedded list by default; from a directory of NNN_name.sql files (applied in
 * file-name order) when `dir` is given, e.g. for a deployment that keeps extra migrations beside the program.
 */
export function loadMigrations(dir?: string): Migration[] {
  if (dir === undefined) return SCHEMA_MIGRATIONS.map(({ name, sql }) => migration(name, sql));
  return readdirSync(dir)
    .filter((file) => /^\d+_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => migration(file.replace(/\.sql$/, ''), readFileSync(path.join(dir, file), 'utf8')));
}

/**
 * What a start is about to apply, told before it applies it (`from` null: a new schema): on a large events table
 * an index migration takes a while, which was silence at start.
 */
export type PendingMigrations = Readonly<{ from: string | null; to: string; migrations: readonly string[] }>;

/**
 * Applies the migrations not yet recorded; returns the names it applied (empty when the schema was current).
 * `onPending` hears of them first, once, under the lock (not called when there are none).
 */
export async function migrate(pool: Pool, schema: string, migrations: readonly Migration[] = loadMigrations(), onPending?: (pending: PendingMigrations) => void): Promise<string[]> {
  const client = await pool.connect();
  let failed = true;
  try {
    await pollForLock(async () => (await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, hashtext($2)) AS ok', [MIGRATION_LOCK_CLASS, schema])).rows[0]!.ok, `the migrations of schema ${schema}`);
    const applied: string[] = [];
    for (;;) {
      const alone = await applyInTransaction(client, schema, migrations, applied, applied.length === 0 ? onPending : undefined);
      if (alone === undefined) break;
      await applyOutsideTransaction(client, schema, alone);
      applied.push(alone.name);
    }
    await client.query('SELECT pg_advisory_unlock($1::int, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
    failed = false;
    return applied;
  } finally {
    // After a failure the connection is dropped, not pooled: its session lock (if taken) goes with it.
    client.release(failed);
  }
}

/**
 * Takes a lock with `tryLock`, again every `intervalMs` until it is free: waiting without a statement in progress
 * (see the header). Throws after `timeoutMs`.
 */
export async function pollForLock(tryLock: () => Promise<boolean>, what: string, timeoutMs = 30 * 60_000, intervalMs = 50): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await tryLock())) {
    if (performance.now() > deadline) throw new Error(`${what}: lock not free within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** The pending migrations in one transaction, up to the first that must run alone, which it returns. */
async function applyInTransaction(
  client: PoolClient,
  schema: string,
  migrations: readonly Migration[],
  applied: string[],
  onPending?: (pending: PendingMigrations) => void,
): Promise<Migration | undefined> {
  try {
    await client.query('BEGIN');
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    // SET LOCAL: the search path reverts at commit, so the pooled connection goes back clean.
    await client.query(`SET LOCAL search_path TO ${quoteIdent(schema)}`);
    await client.query(NO_SERVER_BOUNDS.local);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name       text        PRIMARY KEY,
      checksum   text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ name: string; checksum: string }>('SELECT name, checksum FROM schema_migrations');
    const recorded = new Map(rows.map((row) => [row.name, row.checksum]));
    const pending = migrations.filter((m) => !recorded.has(m.name)).map((m) => m.name);
    if (pending.length > 0) onPending?.({ from: [...recorded.keys()].sort().at(-1) ?? null, to: pending.at(-1)!, migrations: pending });
    let alone: Migration | undefined;
    for (const m of migrations) {
      const checksum = recorded.get(m.name);
      if (checksum !== undefined) {
        if (checksum !== m.checksum) throw new Error(`migration ${m.name} was changed after it was applied to schema ${schema}; add a new migration instead`);
        continue;
      }
      if (!m.transaction) {
        alone = m;
        break;
      }
      await client.query({ text: m.sql, ...LONG_WORK }); // a large events table takes long: not cut
      await client.query('INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)', [m.name, m.checksum]);
      applied.push(m.name);
    }
    await client.query('COMMIT');
    return alone;
  } catch (error) {
    // After a statement timeout the connection is dropped (migrate releases it as failed), which rolls back.
    if (!isQueryTimeout(error)) await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** One migration outside any transaction (CREATE INDEX CONCURRENTLY), after dropping what a failed build left. */
async function applyOutsideTransaction(client: PoolClient, schema: string, m: Migration): Promise<void> {
  await client.query(`SET search_path TO ${quoteIdent(schema)}`);
  await client.query(NO_SERVER_BOUNDS.session); // reset below; a failure drops the connection (migrate)
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND NOT i.indisvalid`,
    [schema],
  );
  for (const { name } of rows) await client.query({ text: `DROP INDEX CONCURRENTLY IF EXISTS ${quoteIdent(name)}`, ...LONG_WORK });
  await client.query({ text: m.sql, ...LONG_WORK }); // a large events table takes long: not cut
  await client.query('INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)', [m.name, m.checksum]);
  await client.query('RESET search_path');
  await client.query(NO_SERVER_BOUNDS.reset);
}
