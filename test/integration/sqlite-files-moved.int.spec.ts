import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, renameSync, copyFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteKeyStore } from '../../src/adapters/crypto/key-stores';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { FILES_MOVED_CODE, FilesInPlace } from '../../src/adapters/system/files-in-place';

/**
 * The embedded stores on real files that leave their place while open: a data directory removed under a running
 * hub, a -wal file deleted, a file replaced. SQLite went on writing into files no path named any more: every
 * upload got 201 and /health said ok, and all of them were gone at the next start. Now the commit is refused.
 */
let root: string;
let dir: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'rts-moved-'));
  dir = join(root, 'data');
  mkdirSync(dir);
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const append = (store: SqliteEventStore, stream: string) => store.appendToStream(stream, [{ id: randomUUID(), type: 'Tested', data: { n: 1 } }]);

describe('a store whose files left their place', () => {
  it('the event store refuses the commit once its directory is removed, and /health (probeWrites) says so without a write', async () => {
    const store = SqliteEventStore.open({ file: join(dir, 'telemed.sqlite') });
    try {
      await append(store, 's-1');
      await store.probeWrites();
      expect(store.writeFailure()).toBeNull();
      rmSync(dir, { recursive: true, force: true });
      // No write yet: the health probe finds it out.
      await store.probeWrites();
      expect(store.writeFailure()).toMatchObject({ code: FILES_MOVED_CODE });
      await expect(append(store, 's-2')).rejects.toMatchObject({ code: 'storage_unavailable', message: expect.stringContaining('telemed.sqlite was removed or replaced') });
      await expect(store.runExclusive((db) => db.exec('CREATE TABLE t (x)'))).rejects.toMatchObject({ code: 'storage_unavailable' });
      // The message names the file, never the directory.
      await expect(append(store, 's-3')).rejects.toMatchObject({ message: expect.not.stringContaining(root) });
      // It stays refused: a probe does not mend it.
      await store.probeWrites();
      expect(store.writeFailure()).toMatchObject({ code: FILES_MOVED_CODE });
    } finally {
      await store.close();
    }
  });

  it('the event store refuses the commit when its -wal file was deleted, and when the file was replaced by a copy', async () => {
    const file = join(dir, 'telemed.sqlite');
    const store = SqliteEventStore.open({ file });
    try {
      await append(store, 's-1');
      unlinkSync(`${file}-wal`);
      await expect(append(store, 's-2')).rejects.toMatchObject({ code: 'storage_unavailable' });
      expect(store.writeFailure()).toMatchObject({ code: FILES_MOVED_CODE });
    } finally {
      await store.close();
    }
    const again = SqliteEventStore.open({ file: join(dir, 'again.sqlite') });
    try {
      await append(again, 's-1');
      copyFileSync(join(dir, 'again.sqlite'), join(dir, 'copy.sqlite'));
      renameSync(join(dir, 'copy.sqlite'), join(dir, 'again.sqlite'));
      await expect(append(again, 's-2')).rejects.toMatchObject({ code: 'storage_unavailable' });
    } finally {
      await again.close();
    }
  });

  it('the key store refuses a new key and an erasure once its directory is removed (a key lost would leave its documents unreadable)', async () => {
    const keys = new SqliteKeyStore(join(dir, 'patient-keys.sqlite'));
    try {
      await keys.createIfAbsent('p-1', randomBytes(32));
      rmSync(dir, { recursive: true, force: true });
      await expect(keys.createIfAbsent('p-2', randomBytes(32))).rejects.toMatchObject({ code: 'storage_unavailable', message: expect.stringContaining('patient-keys.sqlite') });
      await expect(keys.erase('p-1', new Date().toISOString())).rejects.toMatchObject({ code: 'storage_unavailable' });
    } finally {
      await keys.close();
    }
  });

  it('FilesInPlace takes a file that appears later (the -wal before the first write), and sees it go', () => {
    const later = join(dir, 'later');
    const files = new FilesInPlace([later, '', ':memory:']);
    expect(files.moved()).toBeNull();
    copyFileSync(__filename, later);
    expect(files.moved()).toBeNull();
    unlinkSync(later);
    expect(files.moved()).toBe(later);
  });

  it('a damaged file at open names itself (events or keys: they are restored together), SQLite code kept', () => {
    for (const [name, open] of [
      ['telemed.sqlite', (file: string) => SqliteEventStore.open({ file })],
      ['patient-keys.sqlite', (file: string) => new SqliteKeyStore(file)],
    ] as const) {
      const file = join(dir, name);
      writeFileSync(file, randomBytes(8192));
      let error: unknown;
      try {
        open(file);
      } catch (e) {
        error = e;
      }
      expect(error).toMatchObject({ code: 'SQLITE_NOTADB', message: expect.stringMatching(new RegExp(`^${name.replace('.', '\\.')}: file is not a database \\(SQLITE_NOTADB\\): .*restore the data directory from its backup`)) });
      expect((error as Error).message).not.toContain(root);
    }
  });

  it("the event store refuses too when the key store's -wal is deleted (alsoInPlace): the keys that open what it seals", async () => {
    const keysFile = join(dir, 'patient-keys.sqlite');
    const keys = new SqliteKeyStore(keysFile);
    const store = SqliteEventStore.open({ file: join(dir, 'telemed.sqlite'), alsoInPlace: [keysFile, `${keysFile}-wal`] });
    try {
      await keys.createIfAbsent('p-1', randomBytes(32));
      await append(store, 's-1');
      unlinkSync(`${keysFile}-wal`);
      await store.probeWrites();
      expect(store.writeFailure()).toMatchObject({ code: FILES_MOVED_CODE });
      await expect(append(store, 's-2')).rejects.toMatchObject({ code: 'storage_unavailable', message: expect.stringContaining('patient-keys.sqlite-wal') });
    } finally {
      await store.close();
      await keys.close();
    }
  });

  it("a relative path stays the file it named when the process changes its directory (an embedder's chdir)", () => {
    const cwd = process.cwd();
    try {
      process.chdir(dir);
      copyFileSync(__filename, join(dir, 'rel'));
      const files = new FilesInPlace(['./rel']);
      mkdirSync(join(dir, 'elsewhere'));
      process.chdir(join(dir, 'elsewhere'));
      expect(files.moved()).toBeNull();
      unlinkSync(join(dir, 'rel'));
      expect(files.moved()).toBe(join(dir, 'rel'));
    } finally {
      process.chdir(cwd);
    }
  });
});

