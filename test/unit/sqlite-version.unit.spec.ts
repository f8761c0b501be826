import BetterSqlite3 from 'better-sqlite3';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The SQLite that better-sqlite3 carries (compiled in, not the system's). SQLite 3.7.0-3.51.2 have the "WAL-reset
 * bug" (https://www.sqlite.org/wal.html#walresetbug): in WAL mode, two connections to one file that checkpoint and
 * commit at the same moment can leave a WAL-index header that makes a later checkpoint skip frames, i.e. a corrupt
 * database. The hub writes each file through one connection (hub.lock keeps a second hub or library out), so its own
 * setups do not meet the trigger; a backend team embedding the store next to its own connections could. 3.51.3 fixed
 * it. This fails when a dependency update (or an override) brings an SQLite before that back.
 */
const MIN_SQLITE = [3, 51, 3] as const;

const linkedVersion = (): string => {
  const db = new BetterSqlite3(':memory:');
  try {
    return db.prepare('SELECT sqlite_version()').pluck().get() as string;
  } finally {
    db.close();
  }
};

const atLeast = (version: string, min: readonly number[]): boolean => {
  const parts = version.split('.').map(Number);
  for (let i = 0; i < min.length; i++) {
    const part = parts[i] ?? 0;
    if (part !== min[i]) return part > min[i]!;
  }
  return true;
};

describe('the SQLite inside better-sqlite3', () => {
  it('has the fix of the WAL-reset bug (3.51.3 or later)', () => {
    const version = linkedVersion();
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect({ version, fixed: atLeast(version, MIN_SQLITE) }).toEqual({ version, fixed: true });
  });

  it('compares versions part by part (so 3.9.x is not taken for later than 3.51.3)', () => {
    expect(['3.51.3', '3.51.10', '3.52.0', '3.53.2', '4.0.0'].map((v) => atLeast(v, MIN_SQLITE))).toEqual([true, true, true, true, true]);
    expect(['3.51.2', '3.50.4', '3.9.9', '2.99.99'].map((v) => atLeast(v, MIN_SQLITE))).toEqual([false, false, false, false]);
  });

  it('is the version the README names', () => {
    const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
    expect(readme).toContain(`which carries SQLite (${linkedVersion()})`);
  });
});
