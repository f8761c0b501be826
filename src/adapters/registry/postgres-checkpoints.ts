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

  /** Creates the table if missing (idempotent; safe when several processes open together, like the registry's). */
  static async open(db: PgTransactor): Promise<PostgresCheckpointStore> {
    await createInSchema(db, 'the checkpoint table', SUBSCRIPTION_CHECKPOINTS_SQL);
    return new PostgresCheckpointStore(db);
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
