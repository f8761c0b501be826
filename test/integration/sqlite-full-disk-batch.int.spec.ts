import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import type { NewEvent } from '../../src/application/ports/event-store';
import { tmpfsUnavailable } from '../support/tmpfs';

/**
 * Group commit on a real disk that fills (a tmpfs this test mounts; root only). SQLite writes a transaction's pages to
 * the WAL at COMMIT, so there, not at the INSERT of the rows that did not fit, is where a full disk shows:
 * max_page_count (sqlite-event-store.int.spec.ts) fails the INSERT instead.
 */
const cannot = tmpfsUnavailable();
if (cannot) console.warn(`sqlite full-disk group commit test skipped: ${cannot}`);
const describeFull = cannot ? describe.skip : describe;

describeFull(`SQLite group commit on a full disk${cannot ? ` (skipped: ${cannot})` : ''}`, () => {
  const mountPoint = mkdtempSync(join(tmpdir(), 'rts-batch-full-'));
  const filler = join(mountPoint, 'filler');
  let store: SqliteEventStore | undefined;
  beforeAll(() => execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' }));
  afterAll(async () => {
    await store?.close().catch(() => undefined);
    try {
      execFileSync('umount', [mountPoint], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mountPoint], { stdio: 'pipe' });
    } finally {
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });

  /** Fills the file system, then frees `room` bytes of it. */
  const leaveRoom = (room: number) => {
    const fd = openSync(filler, 'w');
    try {
      for (;;) writeSync(fd, Buffer.alloc(4096, 1));
    } catch (error) {
      if ((error as { code?: string }).code !== 'ENOSPC') throw error;
    } finally {
      closeSync(fd);
    }
    execFileSync('truncate', ['-s', `-${room}`, filler]);
  };
  const one = (data: Record<string, unknown>): NewEvent[] => [{ id: randomUUID(), type: 'Happened', data }];

  it('an append that does not fit at COMMIT fails alone: the small appends batched with it are written, in order', async () => {
    store = SqliteEventStore.open({ file: join(mountPoint, 'store.db') });
    await store.appendToStream('before', one({ i: 0 }));
    leaveRoom(64 * 1024);
    const big = 'x'.repeat(200_000);
    const [small1, tooBig, small2] = await Promise.allSettled([
      store.appendToStream('small-1', one({ i: 1 }), { expectedVersion: 'no_stream' }),
      store.appendToStream('too-big', one({ big }), { expectedVersion: 'no_stream' }),
      store.appendToStream('small-2', one({ i: 2 }), { expectedVersion: 'no_stream' }),
    ]);
    expect(tooBig.status === 'rejected' && tooBig.reason).toMatchObject({ code: 'storage_unavailable' });
    expect(small1.status).toBe('fulfilled');
    expect(small2.status).toBe('fulfilled');
    const all = await store.readAll({ after: 0n, maxCount: 10 });
    expect(all.map((e) => e.streamName)).toEqual(['before', 'small-1', 'small-2']);
  });
});
