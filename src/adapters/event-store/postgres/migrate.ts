import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Pool } from 'pg';
import { SCHEMA_MIGRATIONS } from './schema-migrations';
import { quoteIdent } from './sql';

/**
 * Schema migrations for the PostgreSQL event store, kept in the repo as TypeScript strings (schema-migrations.ts,
 * so the tsc build carries them into dist/), applied in order, each recorded in `schema_migrations` of the store's
 * schema with a checksum.
 *
 * Two processes starting together must not race (both seeing migration 001 missing and both running it), so the
 * whole run happens in one transaction holding a transaction-scoped advisory lock keyed by the schema name: the
 * second process waits, then finds everything recorded and does nothing. DDL is transactional in PostgreSQL, so a
 * failing migration leaves nothing half-applied.
 */

/** Advisory lock class for migrations (two-key form: class, hashtext(schema)). Distinct from the append lock. */
export const MIGRATION_LOCK_CLASS = 0x52545301; // 'RTS' 01

export type Migration = Readonly<{ name: string; sql: string; checksum: string }>;

const checksumOf = (sql: string): string => createHash('sha256').update(sql).digest('hex');

/**
 * The store's migrations: the embedded list by default; from a directory of NNN_name.sql files (applied in
 * file-name order) when `dir` is given, e.g. for a deployment that keeps extra migrations beside the program.
 */
export function loadMigrations(dir?: string): Migration[] {
  if (dir === undefined) return SCHEMA_MIGRATIONS.map(({ name, sql }) => ({ name, sql, checksum: checksumOf(sql) }));
  return readdirSync(dir)
    .filter((file) => /^\d+_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const sql = readFileSync(path.join(dir, file), 'utf8');
      return { name: file.replace(/\.sql$/, ''), sql, checksum: checksumOf(sql) };
    });
}

/** Applies the migrations not yet recorded; returns the names it applied (empty when the schema was current). */
export async function migrate(pool: Pool, schema: string, migrations: readonly Migration[] = loadMigrations()): Promise<string[]> {
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [MIGRATION_LOCK_CLASS, schema]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
    // SET LOCAL: the search path reverts at commit, so the pooled connection goes back clean.
    await client.query(`SET LOCAL search_path TO ${quoteIdent(schema)}`);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name       text        PRIMARY KEY,
      checksum   text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await client.query<{ name: string; checksum: string }>('SELECT name, checksum FROM schema_migrations');
    const recorded = new Map(rows.map((row) => [row.name, row.checksum]));
    for (const migration of migrations) {
      const checksum = recorded.get(migration.name);
      if (checksum !== undefined) {
        if (checksum !== migration.checksum) {
          throw new Error(`migration ${migration.name} was changed after it was applied to schema ${schema}; add a new migration instead`);
        }
        continue;
      }
      await client.query(migration.sql);
      await client.query('INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)', [migration.name, migration.checksum]);
      applied.push(migration.name);
    }
    await client.query('COMMIT');
    return applied;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
