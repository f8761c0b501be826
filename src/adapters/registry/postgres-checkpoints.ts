import type { CheckpointStore } from '../../application/ports/downlink-outbox';
import { createInSchema, type PgTransactor } from './postgres-registry';

/**
 * The downlink publishers' checkpoints in PostgreSQL (table `subscription_checkpoints` of the hub's schema, as
 * SqliteDirectory keeps them in the embedded store's file): a restart, or another hub process taking over the
 * publishing, goes on from where the last publisher got to instead of sending the whole downlink history again.
 *
 * A position only ever grows (GREATEST): a publisher that lost its lease may still finish the event in hand and
 * store its position after the new holder stored a higher one; that must not move the checkpoint back. Kept apart
 * from the registry's `projection_checkpoints`, which a registry rebuild clears: these are not rebuildable (they
 * say what has left for the broker).
 */
export const SUBSCRIPTION_CHECKPOINTS_SQL = `
CREATE TABLE IF NOT EXISTS subscription_checkpoints (
  name     text   PRIMARY KEY,
  position bigint NOT NULL CHECK (position >= 0)
);
`;

export class PostgresCheckpointStore implements CheckpointStore {
  private constructor(private readonly db: PgTransactor) {}

  /**
   * Creates the table if missing (idempotent; safe when several processes open together, like the registry's).
   * `onNoneKept` hears when it was missing from a schema a hub had projected events into (its registry checkpoint):
   * a build before the evening of 2026-12-01 kept the checkpoints in memory, so the publishers send the whole
   * downlink history again from the first event, which the operator should hear of before the queues fill.
   */
  static async open(db: PgTransactor, onNoneKept?: () => void): Promise<PostgresCheckpointStore> {
    const table = db.table('subscription_checkpoints');
    const { rows } = await db.query<{ existed: boolean }>('SELECT to_regclass($1) IS NOT NULL AS existed', [table]);
    await createInSchema(db, 'the checkpoint table', SUBSCRIPTION_CHECKPOINTS_SQL);
    if (onNoneKept && rows[0]?.existed === false && (await PostgresCheckpointStore.projectedBefore(db))) onNoneKept();
    return new PostgresCheckpointStore(db);
  }

  /** Whether the registry's checkpoint table (made by PostgresRegistry.open, when there is one) has moved. */
  private static async projectedBefore(db: PgTransactor): Promise<boolean> {
    const table = db.table('projection_checkpoints');
    const { rows } = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [table]);
    if (rows[0]?.present !== true) return false;
    const moved = await db.query<{ projected: boolean }>(`SELECT EXISTS (SELECT 1 FROM ${table} WHERE position > 0) AS projected`);
    return moved.rows[0]?.projected === true;
  }

  async get(name: string): Promise<bigint> {
    const { rows } = await this.db.query<{ position: string }>(`SELECT position::text AS position FROM ${this.db.table('subscription_checkpoints')} WHERE name = $1`, [name]);
    return rows[0] ? BigInt(rows[0].position) : 0n;
  }

  async set(name: string, position: bigint): Promise<void> {
    const table = this.db.table('subscription_checkpoints');
    await this.db.query(
      `INSERT INTO ${table} (name, position) VALUES ($1, $2::bigint)
       ON CONFLICT (name) DO UPDATE SET position = GREATEST(${table}.position, excluded.position)`,
      [name, position.toString()],
    );
  }
}
