import BetterSqlite3 from 'better-sqlite3';
import { EVENT_STORE_MIGRATIONS, migrate, type Migration, type PendingMigrations } from '../../src/adapters/event-store/sqlite/schema';
import { truncateWal } from '../../src/adapters/event-store/sqlite/wal-checkpoint';

/**
 * migrate()'s report of what it is about to apply (logged at start: an index migration on a large store takes
 * seconds) and truncateWal's restoring of the busy timeout: mutation testing found neither pinned.
 */
describe('migrate: what it tells before applying', () => {
  const table = (version: number): Migration => ({ version, description: `table t${version}`, sql: `CREATE TABLE t${version} (x INTEGER) STRICT` });

  it('a new database: from 0 to the highest version, every migration by number and description, once', () => {
    const db = new BetterSqlite3(':memory:');
    try {
      const told: PendingMigrations[] = [];
      migrate(db, undefined, (p) => told.push(p));
      expect(told).toEqual([
        { from: 0, to: EVENT_STORE_MIGRATIONS.length, migrations: EVENT_STORE_MIGRATIONS.map((m) => `${m.version} ${m.description}`) },
      ]);
      migrate(db, undefined, (p) => told.push(p));
      expect(told).toHaveLength(1); // nothing pending: not called
    } finally {
      db.close();
    }
  });

  it('a database part way: from the highest applied to the highest pending, only the pending ones', () => {
    const db = new BetterSqlite3(':memory:');
    try {
      migrate(db, [table(1), table(2)]);
      const told: PendingMigrations[] = [];
      migrate(db, [table(1), table(2), table(3), table(5)], (p) => told.push(p));
      expect(told).toEqual([{ from: 2, to: 5, migrations: ['3 table t3', '5 table t5'] }]);
      expect(db.prepare('SELECT version FROM event_store_migrations ORDER BY version').pluck().all()).toEqual([1, 2, 3, 5]);
    } finally {
      db.close();
    }
  });
});

describe('truncateWal', () => {
  it('restores the connection busy timeout it had, whatever it waited for the checkpoint', () => {
    const db = new BetterSqlite3(':memory:');
    try {
      db.pragma('busy_timeout = 4321');
      expect(truncateWal(db, 10)).toBe(true);
      expect(db.pragma('busy_timeout', { simple: true })).toBe(4321);
    } finally {
      db.close();
    }
  });
});
