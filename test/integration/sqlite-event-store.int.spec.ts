import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import {
  ExpectedVersionConflictError,
  IdempotencyViolationError,
  type NewEvent,
  type RecordedEvent,
} from '../../src/application/ports/event-store';
import { settled, spawnChild } from '../support/children';

/**
 * SQLite-specific behaviour the contract suite cannot see: pragmas, group commit, the shared-file API for the
 * projection, a second connection and a second process on the same file, and survival of a SIGKILL.
 */
const REPO = join(__dirname, '..', '..');
let dir: string;
const opened: SqliteEventStore[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-es-int-'));
});
afterAll(async () => {
  for (const store of opened) await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function dbFile(): string {
  return join(dir, `${randomUUID()}.db`);
}

function open(file: string, options: { maxBatchSize?: number; recentEvents?: number } = {}): SqliteEventStore {
  const store = SqliteEventStore.open({ file, ...options });
  opened.push(store);
  return store;
}

function events(count: number): NewEvent[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: 'Happened', data: { i } }));
}

async function readEverything(store: SqliteEventStore): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  for (let after = 0n; ; ) {
    const page = await store.readAll({ after, maxCount: 500 });
    if (page.length === 0) return out;
    out.push(...page);
    after = page[page.length - 1]!.globalPosition;
  }
}

describe('SQLite event store: pragmas and schema', () => {
  it('sets WAL, synchronous=FULL, a busy timeout, foreign keys and temp_store=MEMORY', () => {
    const file = dbFile();
    const store = open(file);
    expect(store.database.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.database.pragma('synchronous', { simple: true })).toBe(2); // 2 = FULL
    expect(store.database.pragma('busy_timeout', { simple: true })).toBe(5000);
    expect(store.database.pragma('foreign_keys', { simple: true })).toBe(1);
    // Savepoint journals in memory: not spilled to a temp file holding old page contents (and costing pwrites).
    expect(store.database.pragma('temp_store', { simple: true })).toBe(2); // 2 = MEMORY

    // WAL is a property of the file: any later connection finds it.
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      raw.close();
    }
  });

  it('cuts the WAL back to 16 MiB once a reader that held its checkpoint has gone (it kept its high-water mark)', async () => {
    const file = dbFile();
    const store = open(file);
    expect(store.database.pragma('journal_size_limit', { simple: true })).toBe(16 * 1024 * 1024);
    // A long reader (a backup, say) holds the checkpoint back while ~24 MB are appended.
    const reader = new BetterSqlite3(file, { readonly: true });
    const read = reader.prepare('SELECT COUNT(*) FROM events');
    reader.exec('BEGIN');
    read.get();
    const payload = 'x'.repeat(100_000);
    for (let i = 0; i < 8; i++) await store.appendToStream(`big-${i}`, Array.from({ length: 30 }, () => ({ id: randomUUID(), type: 'Big', data: { payload } })));
    const grown = statSync(`${file}-wal`).size;
    expect(grown).toBeGreaterThan(20 * 1024 * 1024);
    reader.exec('COMMIT');
    reader.close();
    // The next commits checkpoint the WAL whole, start it again from its beginning and cut the file back.
    for (let i = 0; i < 3; i++) await store.appendToStream(`small-${i}`, events(1));
    store.database.pragma('wal_checkpoint(PASSIVE)');
    await store.appendToStream('small-last', events(1));
    expect(statSync(`${file}-wal`).size).toBeLessThanOrEqual(16 * 1024 * 1024);
  });

  it('migrates once: reopening an existing file keeps its events and applies nothing again', async () => {
    const file = dbFile();
    const first = SqliteEventStore.open({ file });
    await first.appendToStream('s-1', events(2));
    await first.close();

    const again = open(file);
    expect((await again.readStream('s-1')).currentVersion).toBe(1n);
    expect(again.database.prepare('SELECT version FROM event_store_migrations').pluck().all()).toEqual([1, 2, 3, 4]);
  });

  it('rejects ids already stored in another stream or in another order (ids are unique store-wide here)', async () => {
    const store = open(dbFile());
    const [a, b] = events(2) as [NewEvent, NewEvent];
    await store.appendToStream('s-a', [a, b]);
    await expect(store.appendToStream('s-other', [a])).rejects.toBeInstanceOf(IdempotencyViolationError);
    await expect(store.appendToStream('s-a', [b, a])).rejects.toBeInstanceOf(IdempotencyViolationError);
    await expect(store.appendToStream('s-a', [])).rejects.toBeInstanceOf(TypeError);
  });
});

describe('SQLite event store: group commit', () => {
  it('flushes 200 concurrent appends in far fewer transactions than appends', async () => {
    const store = open(dbFile());
    const before = store.stats();
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.appendToStream(`gc-${i}`, events(1))));
    const after = store.stats();
    expect(results).toHaveLength(200);
    expect(after.appends - before.appends).toBe(200);
    expect(after.commits - before.commits).toBeLessThanOrEqual(2);
    expect(after.largestBatch).toBeGreaterThanOrEqual(100);
  });

  it('caps a batch at maxBatchSize', async () => {
    const store = open(dbFile(), { maxBatchSize: 50 });
    await Promise.all(Array.from({ length: 260 }, (_, i) => store.appendToStream(`cap-${i}`, events(1))));
    expect(store.stats().commits).toBe(6);
    expect(store.stats().largestBatch).toBe(50);
    expect((await readEverything(store)).length).toBe(260);
  });

  it('fails only the conflicting caller of a batch; the others are committed', async () => {
    const store = open(dbFile());
    await store.appendToStream('existing', events(1));
    const commitsBefore = store.stats().commits;
    const [ok1, conflict, ok2, reused, halfWritten] = await Promise.allSettled([
      store.appendToStream('fresh-1', events(2), { expectedVersion: 'no_stream' }),
      store.appendToStream('existing', events(1), { expectedVersion: 'no_stream' }),
      store.appendToStream('fresh-2', events(1), { expectedVersion: 'no_stream' }),
      store.appendToStream('fresh-3', [{ id: 'dup', type: 'X', data: {} }, { id: 'dup', type: 'X', data: {} }]),
      // fails at its second insert: the first must be rolled back to the savepoint, not committed
      store.appendToStream('fresh-4', [...events(1), { id: randomUUID(), type: 'X', data: { n: 1n } }]),
    ]);
    expect(store.stats().commits - commitsBefore).toBe(1);
    expect(ok1.status).toBe('fulfilled');
    expect(ok2.status).toBe('fulfilled');
    expect(conflict.status === 'rejected' && conflict.reason).toBeInstanceOf(ExpectedVersionConflictError);
    expect(reused.status === 'rejected' && reused.reason).toBeInstanceOf(IdempotencyViolationError);
    expect((await store.readStream('fresh-1')).currentVersion).toBe(1n);
    expect((await store.readStream('fresh-2')).currentVersion).toBe(0n);
    expect((await store.readStream('fresh-3')).currentVersion).toBeNull();
    expect(halfWritten.status === 'rejected' && halfWritten.reason).toBeInstanceOf(TypeError);
    expect((await store.readStream('fresh-4')).currentVersion).toBeNull();
    expect((await store.readStream('existing')).currentVersion).toBe(0n);
  });

  it('an append whose rows do not fit (SQLITE_FULL, the whole transaction rolled back) fails alone: the others of its batch are written', async () => {
    const store = open(dbFile());
    await store.appendToStream('before', events(1));
    // A few pages of room: small appends fit, one of 200 KB does not, and SQLite rolls the whole batch back for it.
    store.database.pragma(`max_page_count = ${(store.database.pragma('page_count', { simple: true }) as number) + 3}`);
    const big = 'x'.repeat(200_000);
    const [small1, tooBig, small2] = await Promise.allSettled([
      store.appendToStream('small-1', events(1), { expectedVersion: 'no_stream' }),
      store.appendToStream('too-big', [{ id: randomUUID(), type: 'Happened', data: { big } }], { expectedVersion: 'no_stream' }),
      store.appendToStream('small-2', events(2), { expectedVersion: 'no_stream' }),
    ]);
    expect(tooBig.status === 'rejected' && tooBig.reason).toMatchObject({ code: 'storage_unavailable' });
    expect(small1.status).toBe('fulfilled');
    expect(small2.status).toBe('fulfilled');
    expect((await readEverything(store)).map((e) => e.streamName)).toEqual(['before', 'small-1', 'small-2', 'small-2']);
  });

  it('settles a caller only after COMMIT: another connection sees the event by then, and not before', async () => {
    const file = dbFile();
    const store = open(file);
    const raw = new BetterSqlite3(file, { readonly: true });
    try {
      const count = () => raw.prepare('SELECT COUNT(*) FROM events').pluck().get() as number;
      const appending = store.appendToStream('visible', events(1));
      expect(count()).toBe(0); // queued, not yet written
      await appending;
      expect(count()).toBe(1);
    } finally {
      raw.close();
    }
  });

  it('close() flushes appends still queued, then refuses new ones', async () => {
    const file = dbFile();
    const store = SqliteEventStore.open({ file });
    const pending = store.appendToStream('late', events(3));
    await store.close();
    await expect(pending).resolves.toMatchObject({ nextExpectedVersion: 2n });
    await expect(store.appendToStream('late', events(1))).rejects.toThrow(/closed/);
    const reopened = open(file);
    expect((await reopened.readStream('late')).currentVersion).toBe(2n);
  });
});

describe('SQLite event store: runExclusive for tables in the same file', () => {
  it('runs in the writer queue after earlier appends, in its own committed transaction', async () => {
    const store = open(dbFile());
    const append = store.appendToStream('rx', events(2));
    const seen = store.runExclusive((db) => {
      db.exec('CREATE TABLE IF NOT EXISTS checkpoint (id INTEGER PRIMARY KEY, position INTEGER NOT NULL)');
      const head = db.prepare('SELECT MAX(global_position) FROM events').pluck().get() as number;
      db.prepare('INSERT OR REPLACE INTO checkpoint (id, position) VALUES (1, ?)').run(head);
      return head;
    });
    await append;
    expect(await seen).toBe(2);
    expect(store.database.prepare('SELECT position FROM checkpoint').pluck().get()).toBe(2);
    expect(store.stats().commits).toBe(2);
  });

  it('commits a relaxed job without its own fsync and restores synchronous=FULL for the appends after it', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      const during = await store.runExclusive((db) => db.pragma('synchronous', { simple: true }), { durability: 'relaxed' });
      expect(during).toBe(1); // NORMAL inside the relaxed transaction
      expect(store.database.pragma('synchronous', { simple: true })).toBe(2); // FULL again
      await expect(store.runExclusive(() => { throw new Error('boom'); }, { durability: 'relaxed' })).rejects.toThrow('boom');
      expect(store.database.pragma('synchronous', { simple: true })).toBe(2); // also after a failure
    } finally {
      await store.close();
    }
  });

  it('runs a job outside any transaction when asked (wal_checkpoint), still after the appends queued before it', async () => {
    const file = dbFile();
    const store = open(file);
    const append = store.appendToStream('cp', events(3));
    const job = store.runExclusive((db) => ({ inTransaction: db.inTransaction, checkpoint: db.pragma('wal_checkpoint(TRUNCATE)') }), { transaction: false });
    await append;
    const { inTransaction, checkpoint } = await job;
    expect(inTransaction).toBe(false);
    expect(checkpoint).toEqual([{ busy: 0, log: 0, checkpointed: 0 }]); // the appends were in the WAL, now in the file
    expect(statSync(`${file}-wal`).size).toBe(0);
    expect((await readEverything(store)).map((e) => e.streamVersion)).toEqual([0n, 1n, 2n]);
    await expect(store.runExclusive(() => { throw new Error('boom'); }, { transaction: false })).rejects.toThrow('boom');
    await store.appendToStream('cp', events(1)); // the writer goes on
  });

  it('rolls back when fn throws and when fn is asynchronous', async () => {
    const store = open(dbFile());
    await store.runExclusive((db) => db.exec('CREATE TABLE t (x INTEGER)'));
    await expect(
      store.runExclusive((db) => {
        db.prepare('INSERT INTO t VALUES (1)').run();
        throw new Error('projection failed');
      }),
    ).rejects.toThrow('projection failed');
    await expect(
      store.runExclusive(async (db) => {
        db.prepare('INSERT INTO t VALUES (2)').run();
      }),
    ).rejects.toThrow(/synchronous/);
    expect(store.database.prepare('SELECT COUNT(*) FROM t').pluck().get()).toBe(0);
    // The writer keeps working afterwards.
    await expect(store.appendToStream('after-failure', events(1))).resolves.toMatchObject({ nextExpectedVersion: 0n });
  });
});

describe('SQLite event store: two connections on one file', () => {
  it('a second store sees the first one’s events through readAll and waitForAppend', async () => {
    const file = dbFile();
    const writer = open(file);
    const reader = open(file);
    const head = await reader.headPosition();
    const started = Date.now();
    const waiting = reader.waitForAppend(head, 5_000);
    setTimeout(() => void writer.appendToStream('shared', events(2)), 20);
    await waiting;
    expect(Date.now() - started).toBeLessThan(1_000); // woken by the poll, not the timeout
    expect((await reader.readAll({ after: head, maxCount: 10 })).map((e) => e.streamName)).toEqual(['shared', 'shared']);
  });

  it('both may write; positions stay unique and expected versions hold across connections', async () => {
    const file = dbFile();
    const a = open(file);
    const b = open(file);
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => a.appendToStream(`a-${i}`, events(2))),
      ...Array.from({ length: 50 }, (_, i) => b.appendToStream(`b-${i}`, events(2))),
    ]);
    await a.appendToStream('both', events(1), { expectedVersion: 'no_stream' });
    await expect(b.appendToStream('both', events(1), { expectedVersion: 'no_stream' })).rejects.toBeInstanceOf(ExpectedVersionConflictError);
    const all = await readEverything(b);
    expect(all).toHaveLength(201);
    expect(new Set(all.map((e) => e.globalPosition)).size).toBe(201);
  });
});

describe('SQLite event store: readAll behind the head (recent events)', () => {
  /** What a reader with no recent events of its own (a fresh connection) reads: the rows as stored. */
  const fromDisk = (file: string) => readEverything(open(file, { recentEvents: 0 }));

  it('answers readers right behind the head from the batches it wrote: the same events as the file, parsed once', async () => {
    const file = dbFile();
    const store = open(file, { recentEvents: 8 });
    await store.appendToStream('before', events(3));
    expect(await store.readAll({ after: 0n, maxCount: 10 })).toHaveLength(3); // a reader: from now on batches are kept
    const head = await store.headPosition();
    await Promise.all([store.appendToStream('s1', events(2)), store.appendToStream('s2', events(1))]);
    const first = await store.readAll({ after: head, maxCount: 10 });
    const second = await store.readAll({ after: head, maxCount: 10 });
    expect(first.map((e) => e.globalPosition)).toEqual([head + 1n, head + 2n, head + 3n]);
    expect(second[0]).toBe(first[0]); // shared, not parsed again
    expect(await store.readAll({ after: head + 1n, maxCount: 1 })).toEqual([first[1]]);
    expect(await readEverything(store)).toEqual(await fromDisk(file));
    // Beyond its bound it trims the oldest, and older positions come from the file as before.
    for (let i = 0; i < 6; i++) await store.appendToStream(`more-${i}`, events(3));
    expect(await readEverything(store)).toEqual(await fromDisk(file));
    expect(await store.readAll({ after: 0n, maxCount: 2 })).toEqual((await fromDisk(file)).slice(0, 2));
  });

  it('keeps nothing while nobody reads events, and starts with the first batch after a read', async () => {
    const store = open(dbFile(), { recentEvents: 8 });
    await store.appendToStream('unread', events(2));
    const a1 = await store.readAll({ after: 0n, maxCount: 1 });
    const a2 = await store.readAll({ after: 0n, maxCount: 1 });
    expect(a2).toEqual(a1);
    expect(a2[0]).not.toBe(a1[0]); // both parsed from the file: the batch was not kept
    await store.appendToStream('read', events(2));
    const head = 2n;
    const b1 = await store.readAll({ after: head, maxCount: 2 });
    const b2 = await store.readAll({ after: head, maxCount: 2 });
    expect(b1.map((e) => e.streamName)).toEqual(['read', 'read']);
    expect(b2[0]).toBe(b1[0]); // kept: a reader had read events
  });

  it('leaves out appends that failed in a batch', async () => {
    const file = dbFile();
    const store = open(file);
    await store.appendToStream('taken', events(1));
    const head = await store.headPosition();
    const results = await Promise.allSettled([
      store.appendToStream('ok-1', events(2)),
      store.appendToStream('taken', events(2), { expectedVersion: 'no_stream' }), // conflicts, two rows undone
      store.appendToStream('taken', events(1), { expectedVersion: 'no_stream' }), // conflicts, one INSERT undone
      store.appendToStream('ok-2', events(1)),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    const read = await store.readAll({ after: head, maxCount: 10 });
    expect(read.map((e) => e.streamName)).toEqual(['ok-1', 'ok-1', 'ok-2']);
    expect(await readEverything(store)).toEqual(await fromDisk(file));
  });

  it('misses nothing another connection wrote between its batches', async () => {
    const file = dbFile();
    const a = open(file);
    const b = open(file);
    await a.appendToStream('a-1', events(2));
    await b.appendToStream('b-1', events(1)); // between a's batches
    await a.appendToStream('a-2', events(2)); // does not continue a's run: a starts a new one
    await b.appendToStream('b-2', events(1));
    await a.appendToStream('a-3', events(1));
    const expected = (await fromDisk(file)).map((e) => e.streamName);
    expect(expected).toEqual(['a-1', 'a-1', 'b-1', 'a-2', 'a-2', 'b-2', 'a-3']);
    for (const reader of [a, b]) {
      expect((await readEverything(reader)).map((e) => e.streamName)).toEqual(expected);
      // Page by page from every position, as a subscriber reads.
      const all = await readEverything(reader);
      for (let i = 0; i < all.length; i++) {
        const page = await reader.readAll({ after: all[i]!.globalPosition, maxCount: 2 });
        expect(page.map((e) => e.globalPosition)).toEqual(all.slice(i + 1, i + 3).map((e) => e.globalPosition));
      }
    }
  });
});

describe('SQLite event store: readAll of some types', () => {
  const typed = (...types: string[]): NewEvent[] => types.map((type, i) => ({ id: randomUUID(), type, data: { i } }));

  it('gives the same events from its recent run, from the file, and across the end of the run', async () => {
    const file = dbFile();
    const a = open(file, { recentEvents: 64 });
    const b = open(file);
    await a.appendToStream('a-0', typed('X', 'Y', 'X')); // before anyone reads: not in a's run
    await a.readAll({ after: 0n, maxCount: 1 }); // a reader: a keeps its next batches
    await a.appendToStream('a-1', typed('Y', 'X', 'Y'));
    await a.appendToStream('a-2', typed('X', 'Z'));
    await b.appendToStream('b-1', typed('X', 'Y', 'X')); // another connection: only in the file
    const everything = await readEverything(open(file, { recentEvents: 0 }));
    const xs = everything.filter((e) => e.type === 'X' || e.type === 'Z');
    expect(xs.map((e) => e.streamName)).toEqual(['a-0', 'a-0', 'a-1', 'a-2', 'a-2', 'b-1', 'b-1']);
    const types = new Set(['X', 'Z']);
    for (const reader of [a, b, open(file, { recentEvents: 0 })]) {
      // From every position (before, inside and after a's run), in pages of 2 and whole.
      for (const after of [0n, ...everything.map((e) => e.globalPosition)]) {
        const expected = xs.filter((e) => e.globalPosition > after);
        expect(await reader.readAll({ after, maxCount: 100, types })).toEqual(expected);
        expect(await reader.readAll({ after, maxCount: 2, types })).toEqual(expected.slice(0, 2));
      }
    }
  });

  it('reads them through the index of types, not by walking every row after the position', async () => {
    const store = open(dbFile());
    const source = (store as unknown as { sql: { readAllOfTypes: { source: string } } }).sql.readAllOfTypes.source;
    const plan = store.database.prepare(`EXPLAIN QUERY PLAN ${source}`).all('["X"]', 0, 10) as { detail: string }[];
    expect(plan.map((p) => p.detail).join(' | ')).toMatch(/USING (COVERING )?INDEX events_by_type/);
  });
});

describe('SQLite event store: durability', () => {
  it('keeps every acknowledged append, exactly once, when the writing process is SIGKILLed', async () => {
    const file = dbFile();
    const child = spawnChild(process.execPath, ['-r', './test/support/ts-register.js', 'test/support/sqlite-append-child.ts', file], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: { id: string; position: bigint; stream: string; version: bigint }[] = [];
    let stderr = '';
    let buffered = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = settled(child).then(({ signal }) => signal); // every acknowledgement it wrote, read
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? ''; // a line cut by the kill is not an acknowledgement
      for (const line of lines) {
        const [tag, id, position, stream, version] = line.split(' ');
        if (tag !== 'ack') continue;
        acked.push({ id: id!, position: BigInt(position!), stream: stream!, version: BigInt(version!) });
        if (acked.length === 600) child.kill('SIGKILL');
      }
    });
    const deadline = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const signal = await exited;
    clearTimeout(deadline);
    expect({ signal, stderr }).toEqual({ signal: 'SIGKILL', stderr: '' });
    expect(acked.length).toBeGreaterThanOrEqual(600);

    const store = open(file);
    const all = await readEverything(store);
    const byId = new Map(all.map((e) => [e.id, e]));
    expect(byId.size).toBe(all.length); // no event twice
    for (const ack of acked) {
      const event = byId.get(ack.id);
      expect(event && [event.globalPosition, event.streamName, event.streamVersion]).toEqual([ack.position, ack.stream, ack.version]);
    }
    // Each stream is gap-free: what was committed but not yet acknowledged can only be at the tails.
    const versions = new Map<string, bigint[]>();
    for (const e of all) versions.set(e.streamName, [...(versions.get(e.streamName) ?? []), e.streamVersion]);
    for (const list of versions.values()) expect(list).toEqual(list.map((_, i) => BigInt(i)));
    // The file is sound after the crash and takes new writes.
    expect(store.database.pragma('integrity_check', { simple: true })).toBe('ok');
    await expect(store.appendToStream('after-crash', events(1))).resolves.toMatchObject({ idempotent: false });
  });
});
