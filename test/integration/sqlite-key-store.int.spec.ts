import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteKeyStore } from '../../src/adapters/crypto/key-stores';

/**
 * The embedded key store on a real file: WAL (one fsync per commit of new keys), and an erasure that leaves the
 * key in neither the file nor its WAL, or says it could not.
 */
let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-keys-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const bytesOnDisk = (file: string): Buffer[] => [file, `${file}-wal`, `${file}-journal`].filter(existsSync).map((f) => readFileSync(f));

async function storeWithKeys(file: string, count: number): Promise<{ store: SqliteKeyStore; keys: Map<string, Buffer> }> {
  const store = new SqliteKeyStore(file);
  const keys = new Map<string, Buffer>();
  for (let i = 0; i < count; i++) keys.set(`p${randomBytes(16).toString('hex')}`, randomBytes(32));
  await Promise.all([...keys].map(([patient, key]) => store.createIfAbsent(patient, key)));
  return { store, keys };
}

describe('SqliteKeyStore', () => {
  it('keeps keys durably in WAL mode, owner-only: another connection reads them, and the file says wal', async () => {
    const file = join(dir, 'patient-keys.sqlite');
    const { store, keys } = await storeWithKeys(file, 5);
    const other = new Database(file, { readonly: true });
    try {
      expect(other.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(other.prepare('SELECT COUNT(*) FROM patient_keys WHERE data_key IS NOT NULL').pluck().get()).toBe(5);
    } finally {
      other.close();
    }
    const [patient, key] = [...keys][0]!;
    expect(await store.get(patient)).toEqual(key);
    // Readable by the hub's user only: the file, and the WAL and index SQLite made next to it.
    for (const f of [file, `${file}-wal`, `${file}-shm`]) expect(statSync(f).mode & 0o777).toBe(0o600);
    await store.close();
  });

  it('erases a key out of the file and the WAL before erase() returns; the others stay', async () => {
    const file = join(dir, 'patient-keys.sqlite');
    const { store, keys } = await storeWithKeys(file, 20);
    const [[victim, victimKey], [kept, keptKey]] = [...keys] as [[string, Buffer], [string, Buffer]];
    expect(bytesOnDisk(file).some((b) => b.includes(victimKey))).toBe(true); // the scan sees it while it exists

    await store.erase(victim, '2026-11-30T00:00:00.000Z');
    for (const bytes of bytesOnDisk(file)) expect(bytes.includes(victimKey)).toBe(false);
    expect(statSync(`${file}-wal`).size).toBe(0);
    expect(await store.get(victim)).toBe('erased');
    expect(await store.get(kept)).toEqual(keptKey);
    expect({ victim: await store.erasedAt(victim), kept: await store.erasedAt(kept) }).toEqual({ victim: '2026-11-30T00:00:00.000Z', kept: null });
    await store.erase(victim, '2026-12-01T00:00:00.000Z'); // a repeat keeps the first time
    expect(await store.erasedAt(victim)).toBe('2026-11-30T00:00:00.000Z');
    expect(bytesOnDisk(file).some((b) => b.includes(keptKey))).toBe(true);
    await store.close();
  });

  it('says the erasure is not done while another connection holds the WAL, and completes when retried', async () => {
    const file = join(dir, 'patient-keys.sqlite');
    const { store, keys } = await storeWithKeys(file, 3);
    const [victim, victimKey] = [...keys][0]!;
    const reader = new Database(file, { readonly: true });
    reader.exec('BEGIN');
    reader.prepare('SELECT COUNT(*) FROM patient_keys').pluck().get(); // a snapshot from before the erasure
    try {
      const started = Date.now();
      await expect(store.erase(victim, '2026-11-30T00:00:00.000Z')).rejects.toMatchObject({ kind: 'unavailable', code: 'erasure_incomplete', message: expect.stringMatching(/retry the erasure/) });
      expect(Date.now() - started).toBeLessThan(4000); // gives up after a short wait, not the 5 s busy timeout
      expect(await store.get(victim)).toBe('erased'); // the key is already unusable
    } finally {
      reader.exec('COMMIT');
      reader.close();
    }
    await store.erase(victim, '2026-11-30T00:00:01.000Z');
    for (const bytes of bytesOnDisk(file)) expect(bytes.includes(victimKey)).toBe(false);
    await store.close();
  });

  it('says storage_unavailable when another connection holds the write lock past the busy timeout, and erases when retried', async () => {
    const file = join(dir, 'patient-keys.sqlite');
    const { store, keys } = await storeWithKeys(file, 2);
    const [victim, victimKey] = [...keys][0]!;
    const writer = new Database(file);
    writer.exec('BEGIN IMMEDIATE'); // the write lock, as another process's long transaction holds it
    try {
      await expect(store.erase(victim, '2026-11-30T00:00:00.000Z')).rejects.toMatchObject({ kind: 'unavailable', code: 'storage_unavailable', cause: expect.objectContaining({ code: 'SQLITE_BUSY' }) });
    } finally {
      writer.exec('ROLLBACK');
      writer.close();
    }
    await store.erase(victim, '2026-11-30T00:00:01.000Z');
    expect(await store.get(victim)).toBe('erased');
    for (const bytes of bytesOnDisk(file)) expect(bytes.includes(victimKey)).toBe(false);
    await store.close();
  });
});
