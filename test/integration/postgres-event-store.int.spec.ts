import { randomBytes, randomUUID } from 'node:crypto';
import { Client, Pool } from 'pg';
import { loadMigrations, migrate } from '../../src/adapters/event-store/postgres/migrate';
import { APPEND_LOCK_CLASS, PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import type { AppendResult, NewEvent, RecordedEvent } from '../../src/application/ports/event-store';

/**
 * PostgreSQL-specific behaviour the contract suite cannot see: migrations, the commit-order guarantee of global
 * positions under concurrent writers (the reason for the append lock), durability settings, transactions for
 * projections. Each test works in its own fresh schema, dropped afterwards.
 */
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

const schemas: string[] = [];
const stores: PostgresEventStore[] = [];
let admin: Client;

beforeAll(async () => {
  admin = new Client({ connectionString });
  await admin.connect();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

function freshSchema(): string {
  const schema = `rts_int_${process.pid}_${randomBytes(4).toString('hex')}`;
  schemas.push(schema);
  return schema;
}

async function open(schema: string, options: { connectionString?: string; maxConnections?: number } = {}): Promise<PostgresEventStore> {
  const store = await PostgresEventStore.open({ connectionString: options.connectionString ?? connectionString, schema, ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}) });
  stores.push(store);
  return store;
}

function events(count: number, tag = 'Happened'): NewEvent[] {
  return Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: tag, data: { i } }));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Makes every insert into the schema's events table linger before its transaction can commit. */
async function slowInserts(schema: string, condition: string, seconds: string): Promise<void> {
  await admin.query(`CREATE FUNCTION "${schema}".linger() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF ${condition} THEN PERFORM pg_sleep(${seconds}); END IF; RETURN NULL; END $$`);
  await admin.query(`CREATE TRIGGER linger AFTER INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".linger()`);
}

describe('migrations', () => {
  it('are recorded once and re-opening applies nothing', async () => {
    const schema = freshSchema();
    const first = await open(schema);
    await first.appendToStream('s-1', events(1));
    await first.close();

    const again = await open(schema);
    const { rows } = await admin.query(`SELECT name, checksum FROM "${schema}".schema_migrations ORDER BY name`);
    expect(rows.map((r: { name: string }) => r.name)).toEqual(loadMigrations().map((m) => m.name));
    expect((await again.readStream('s-1')).currentVersion).toBe(0n); // data kept

    const pool = new Pool({ connectionString, max: 1 });
    try {
      expect(await migrate(pool, schema)).toEqual([]);
    } finally {
      await pool.end();
    }
  });

  it('can be run by several processes starting together (advisory lock, no race on CREATE)', async () => {
    const schema = freshSchema();
    const opened = await Promise.all(Array.from({ length: 5 }, () => open(schema)));
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".schema_migrations`);
    expect(rows[0].n).toBe(loadMigrations().length);
    await opened[0]!.appendToStream('s', events(1));
    expect(await opened[4]!.headPosition()).toBeGreaterThan(0n);
  });

  it('build the type index concurrently on a table with rows while other processes open the schema: no deadlock, the index valid and used', async () => {
    // The schema as a hub of the previous version left it: migration 001 only, with 300,000 events.
    const schema = freshSchema();
    const first = new Pool({ connectionString, max: 1 });
    try {
      expect(await migrate(first, schema, loadMigrations().slice(0, 1))).toEqual(['001_events']);
    } finally {
      await first.end();
    }
    await admin.query(`INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data, metadata)
      SELECT 'bulk-' || g, 0, 'bulk-' || g, 'Bulk', '{}'::jsonb, '{}'::jsonb FROM generate_series(1, 300000) g`);
    // Another process's transaction that reads while the index builds (the build waits for it; it must not wait for the build).
    const [migrated, ...others] = await Promise.all([
      (async () => {
        const pool = new Pool({ connectionString, max: 1 });
        try {
          return await migrate(pool, schema);
        } finally {
          await pool.end();
        }
      })(),
      ...Array.from({ length: 3 }, () => open(schema)),
    ]);
    // One of the four ran 002 to 004 (not necessarily the bare migrate()); every one of them ended up with them recorded.
    const { rows } = await admin.query(`SELECT name FROM "${schema}".schema_migrations ORDER BY name`);
    expect(rows.map((r: { name: string }) => r.name)).toEqual(['001_events', '002_events_by_type', '003_events_audit_by_patient', '004_events_audit_by_subject']);
    expect(migrated.every((name) => ['002_events_by_type', '003_events_audit_by_patient', '004_events_audit_by_subject'].includes(name))).toBe(true);
    const index = await admin.query(
      `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'events_by_type'`,
      [schema],
    );
    expect(index.rows).toEqual([{ indisvalid: true }]);
    await others[0]!.appendToStream('after', events(1, 'Rare'));
    expect((await others[1]!.readAll({ after: 0n, maxCount: 10, types: new Set(['Rare']) })).map((e) => e.type)).toEqual(['Rare']);
  }, 60000);

  it('drop an index a failed concurrent build left invalid, and build it again', async () => {
    const schema = freshSchema();
    const pool = new Pool({ connectionString, max: 1 });
    try {
      await migrate(pool, schema, loadMigrations().slice(0, 1));
      // What a cut-off CREATE INDEX CONCURRENTLY leaves: the index exists, marked invalid (IF NOT EXISTS would keep it).
      await admin.query(`CREATE INDEX events_by_type ON "${schema}".events (event_type, global_position)`);
      await admin.query(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = '"${schema}".events_by_type'::regclass`);
      expect(await migrate(pool, schema)).toEqual(['002_events_by_type', '003_events_audit_by_patient', '004_events_audit_by_subject']);
    } finally {
      await pool.end();
    }
    const index = await admin.query(
      `SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'events_by_type'`,
      [schema],
    );
    expect(index.rows).toEqual([{ indisvalid: true }]);
  });

  it('refuse to run when an applied migration was edited afterwards', async () => {
    const schema = freshSchema();
    await open(schema);
    const edited = loadMigrations().map((m) => ({ ...m, checksum: 'edited' }));
    const pool = new Pool({ connectionString, max: 1 });
    try {
      await expect(migrate(pool, schema, edited)).rejects.toThrow(/was changed after it was applied/);
    } finally {
      await pool.end();
    }
  });
});

describe('global position in commit order', () => {
  it('without the append lock a plain bigserial reader would skip a late commit (why the lock exists)', async () => {
    // Plain SQL on the same table, bypassing the adapter: tx A draws the lower position but commits last.
    const schema = freshSchema();
    await open(schema);
    const a = new Client({ connectionString });
    const b = new Client({ connectionString });
    await Promise.all([a.connect(), b.connect()]);
    try {
      const insert = `INSERT INTO "${schema}".events (stream_name, stream_version, event_id, event_type, data)
                      VALUES ($1, 0, $2, 'T', '{}') RETURNING global_position::text AS p`;
      await a.query('BEGIN');
      const pA = BigInt((await a.query(insert, ['a', randomUUID()])).rows[0].p);
      const pB = BigInt((await b.query(insert, ['b', randomUUID()])).rows[0].p); // autocommit
      const visible = await admin.query(`SELECT global_position::text AS p FROM "${schema}".events WHERE global_position > 0 ORDER BY 1`);
      expect(pA).toBeLessThan(pB);
      expect(visible.rows.map((r: { p: string }) => BigInt(r.p))).toEqual([pB]); // a reader would checkpoint at pB...
      await a.query('COMMIT'); // ...and never read pA
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
  });

  it('a late-committing append holds back later appends, so a following reader never skips it', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    const other = await open(schema); // B comes from another store, i.e. another connection (a second hub process)
    const reader = await open(schema);
    await store.appendToStream('warm-up', events(1));
    const checkpoint = await reader.headPosition();
    await slowInserts(schema, `NEW.stream_name = 'slow'`, '1.0');

    // tx A: inserts (draws its position) and then lingers 1 s before it can commit.
    const completed: string[] = [];
    const appendA = store.appendToStream('slow', events(1, 'A')).then((r) => (completed.push('A'), r));
    await waitUntil(async () => (await lingering(schema)) > 0);

    // tx B: starts later, on another connection. Without the lock it would insert and commit at once, above A's
    // position; with it, B cannot draw a position until A has committed.
    const appendB = other.appendToStream('fast', events(1, 'B')).then((r) => (completed.push('B'), r));

    // The reader follows from its checkpoint while A is open, advancing over whatever it sees.
    let position = checkpoint;
    const seen: RecordedEvent[] = [];
    const follow = async () => {
      for (const e of await reader.readAll({ after: position, maxCount: 100 })) {
        seen.push(e);
        position = e.globalPosition;
      }
    };
    while (completed.length === 0) {
      await follow();
      // While A lingers nothing is visible (B waits for the lock); once A commits the reader may see it before
      // the appender's promise settles. Never B without A before it.
      expect(seen.map((e) => e.type)).toEqual(['A', 'B'].slice(0, seen.length));
      await sleep(50);
    }
    const [resultA, resultB] = await Promise.all([appendA, appendB]);
    await follow();

    expect(seen.map((e) => e.type)).toEqual(['A', 'B']); // the reader skipped nothing
    // That B waited for A's commit is what the reader shows above (never B without A before it, while A lingered), not
    // the order the two callers heard of it: two connections' answers in one event loop, and in CI's test:later B's
    // came first once (2026-12-06).
    expect(completed.sort()).toEqual(['A', 'B']);
    expect(resultA.lastGlobalPosition).toBeLessThan(resultB.lastGlobalPosition);
    expect(seen.map((e) => e.globalPosition)).toEqual([resultA.lastGlobalPosition, resultB.lastGlobalPosition]);
  });

  it('many concurrent writers, one reader following from a checkpoint: every event once, in increasing order', async () => {
    const schema = freshSchema();
    // Three stores (three hub processes, as far as PostgreSQL can tell), each group-committing its writers' appends.
    const writerStores = [await open(schema, { maxConnections: 4 }), await open(schema, { maxConnections: 4 }), await open(schema, { maxConnections: 4 })];
    const reader = await open(schema, { maxConnections: 2 });
    // Random pauses between insert and commit widen the window in which commit order and insert order differ.
    await slowInserts(schema, 'random() < 0.5', 'random() * 0.01');

    const writers = 12;
    const appendsPerWriter = 15;
    const written = new Set<string>();
    let writing = true;
    const writing$ = Promise.all(
      Array.from({ length: writers }, async (_, w) => {
        for (let i = 0; i < appendsPerWriter; i++) {
          const batch = events(1 + ((w + i) % 3));
          await writerStores[w % writerStores.length]!.appendToStream(`writer-${w}-${i % 4}`, batch);
          for (const e of batch) written.add(e.id);
        }
      }),
    ).finally(() => {
      writing = false;
    });

    const seen: RecordedEvent[] = [];
    let checkpoint = 0n;
    for (;;) {
      const finished = !writing; // read once more after the writers are done
      const page = await reader.readAll({ after: checkpoint, maxCount: 7 });
      for (const e of page) {
        expect(e.globalPosition).toBeGreaterThan(checkpoint);
        checkpoint = e.globalPosition;
        seen.push(e);
      }
      if (page.length === 0) {
        if (finished) break;
        await reader.waitForAppend(checkpoint, 20);
      }
    }
    await writing$;

    expect(seen.length).toBe(written.size);
    expect(new Set(seen.map((e) => e.id))).toEqual(written);
    // Nothing was committed below the reader's checkpoint behind its back: a fresh full read is identical.
    const full = await reader.readAll({ after: 0n, maxCount: 10_000 });
    expect(full.map((e) => e.id)).toEqual(seen.map((e) => e.id));
  });
});

describe('group commit', () => {
  it('gathers the appends made together into one transaction, each caller settled with its own result', async () => {
    const store = await open(freshSchema());
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => store.appendToStream(`g-${i}`, events(1 + (i % 3)), { expectedVersion: 'no_stream' })));
    expect(store.stats()).toEqual({ appends: 40, batches: 1, largestBatch: 40 });
    expect(results.map((r) => r.nextExpectedVersion)).toEqual(Array.from({ length: 40 }, (_, i) => BigInt(i % 3)));
    const positions = results.map((r) => r.lastGlobalPosition);
    expect([...positions].sort((a, b) => (a < b ? -1 : 1))).toEqual(positions); // in the order of the calls
    const all = await store.readAll({ after: 0n, maxCount: 1_000 });
    expect(all).toHaveLength(79); // 14 appends of 1 event, 13 of 2, 13 of 3
    expect(all.filter((e) => e.streamName === 'g-5').map((e) => e.streamVersion)).toEqual([0n, 1n, 2n]);
    // While a flush runs, the next appends gather for the one after it.
    const more = Array.from({ length: 30 }, (_, i) => store.appendToStream(`h-${i}`, events(1)));
    await sleep(0);
    more.push(...Array.from({ length: 30 }, (_, i) => store.appendToStream(`k-${i}`, events(1))));
    await Promise.all(more);
    expect(store.stats().batches).toBeLessThanOrEqual(3);
  });

  it('checks each append against the stream as the earlier appends of its batch leave it', async () => {
    const store = await open(freshSchema());
    const [a, b, c, d] = await Promise.allSettled([
      store.appendToStream('s', events(1, 'A'), { expectedVersion: 'no_stream' }),
      store.appendToStream('s', events(1, 'B'), { expectedVersion: 'no_stream' }),
      store.appendToStream('s', events(1, 'C'), { expectedVersion: 0n }),
      store.appendToStream('s', events(2, 'D')),
    ]);
    expect(store.stats().batches).toBe(1);
    expect(a).toMatchObject({ status: 'fulfilled', value: { nextExpectedVersion: 0n } });
    expect(b).toMatchObject({ status: 'rejected', reason: { name: 'ExpectedVersionConflictError' } });
    expect(c).toMatchObject({ status: 'fulfilled', value: { nextExpectedVersion: 1n } });
    expect(d).toMatchObject({ status: 'fulfilled', value: { nextExpectedVersion: 3n } });
    const { events: stored, currentVersion } = await store.readStream('s');
    expect(stored.map((e) => e.type)).toEqual(['A', 'C', 'D', 'D']);
    expect(currentVersion).toBe(3n);
  });

  it('a repeat of an append made together with it is stored once, and both callers get the same positions', async () => {
    const store = await open(freshSchema());
    const same = events(2);
    const [first, , repeat] = await Promise.all([store.appendToStream('r', same), store.appendToStream('other', events(1)), store.appendToStream('r', same)]);
    // The repeat waited for the next transaction (it must see the first as stored); the other append did not.
    expect(store.stats()).toMatchObject({ batches: 2, largestBatch: 2 });
    expect(first.idempotent).toBe(false);
    expect(repeat).toEqual({ ...first, idempotent: true });
    expect((await store.readStream('r')).events.map((e) => e.id)).toEqual(same.map((e) => e.id));
  });

  it('an append PostgreSQL refuses fails alone: the others of its batch are stored', async () => {
    const store = await open(freshSchema());
    const [good1, bad, good2] = await Promise.allSettled([
      store.appendToStream('ok-1', events(1)),
      store.appendToStream('bad', [{ id: randomUUID(), type: 'T', data: { text: 'a\u0000b' } }]), // jsonb holds no NUL
      store.appendToStream('ok-2', events(1)),
    ]);
    expect(good1.status).toBe('fulfilled');
    expect(good2.status).toBe('fulfilled');
    expect(bad).toMatchObject({ status: 'rejected', reason: { code: '22P05' } });
    expect((await store.readAll({ after: 0n, maxCount: 10 })).map((e) => e.streamName)).toEqual(['ok-1', 'ok-2']);
  });

  it('a batch whose connection dies before its COMMIT is written again append by append, each once', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    // Slow while the table `slow` has a row: emptying it needs no lock on the events table.
    await admin.query(`CREATE TABLE "${schema}".slow (x int); INSERT INTO "${schema}".slow VALUES (1)`);
    await slowInserts(schema, `NEW.stream_name LIKE 'kill-%' AND EXISTS (SELECT 1 FROM "${schema}".slow)`, '1.0');
    const appends = Array.from({ length: 5 }, (_, i) => store.appendToStream(`kill-${i}`, events(1), { expectedVersion: 'no_stream' }));
    await waitUntil(async () => (await lingering(schema)) > 0);
    // The server ends the batch's session while its INSERT lingers (as a crash or a failover would).
    await admin.query(`DELETE FROM "${schema}".slow`);
    const { rows } = await admin.query(`SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE query LIKE $1 AND wait_event = 'PgSleep'`, [`%INSERT INTO "${schema}"."events"%`]);
    expect(rows).toEqual([{ ok: true }]);
    const results = await Promise.all(appends);
    expect(results.map((r) => r.nextExpectedVersion)).toEqual([0n, 0n, 0n, 0n, 0n]);
    const stored = await store.readAll({ after: 0n, maxCount: 100 });
    expect(stored.map((e) => e.streamName).sort()).toEqual(['kill-0', 'kill-1', 'kill-2', 'kill-3', 'kill-4']);
    expect(store.stats()).toMatchObject({ batches: 5 }); // the failed batch is not counted; its five appends went alone
  });

  it('close() writes the appends already made before it ends, and refuses new ones', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    const pending = Array.from({ length: 5 }, (_, i) => store.appendToStream(`c-${i}`, events(1)));
    const closed = store.close();
    await expect(store.appendToStream('late', events(1))).rejects.toThrow('event store is closed');
    await closed;
    expect((await Promise.all(pending)).every((r) => r.idempotent === false)).toBe(true);
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".events`);
    expect(rows[0].n).toBe(5);
  });
});

describe('durability and transactions', () => {
  it('appends with synchronous_commit=on even when the connection defaults to off', async () => {
    const schema = freshSchema();
    const lax = `${connectionString}${connectionString.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c synchronous_commit=off')}`;
    const store = await open(schema, { connectionString: lax });
    // The session default really is off, so the test would notice if the append stopped forcing it on.
    expect(await store.withTransaction(async (c) => (await c.query('SHOW synchronous_commit')).rows[0].synchronous_commit)).toBe('off');

    await admin.query(`CREATE TABLE "${schema}".seen_setting (value text)`);
    await admin.query(`CREATE FUNCTION "${schema}".record_setting() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN INSERT INTO "${schema}".seen_setting VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$`);
    await admin.query(`CREATE TRIGGER record_setting AFTER INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".record_setting()`);

    await store.appendToStream('s', events(2));
    const { rows } = await admin.query(`SELECT value FROM "${schema}".seen_setting`);
    expect(rows.map((r: { value: string }) => r.value)).toEqual(['on', 'on']);
  });

  it.each(['repeatable read', 'serializable'])(
    'appends read what the previous holder of the append lock committed, under a default_transaction_isolation of %s',
    async (isolation) => {
      const schema = freshSchema();
      const strict = `${connectionString}${connectionString.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c default_transaction_isolation=${isolation.replace(' ', '\\ ')}`)}`;
      const a = await open(schema, { connectionString: strict });
      const b = await open(schema, { connectionString: strict }); // another hub process on the same schema
      expect((await a.query<{ transaction_isolation: string }>('SHOW transaction_isolation')).rows[0]!.transaction_isolation).toBe(isolation);
      // A's INSERT waits (holding the append lock) for an advisory lock the test holds, until B waits for the append lock.
      const gate = 0x7e57;
      await admin.query(`CREATE FUNCTION "${schema}".gate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_advisory_xact_lock(${gate}); RETURN NULL; END $$`);
      await admin.query(`CREATE TRIGGER gate AFTER INSERT ON "${schema}".events FOR EACH ROW EXECUTE FUNCTION "${schema}".gate()`);
      // pg_locks shows a one-bigint advisory key as (classid high, objid low, objsubid 1), a two-int key as (classid, objid, 2).
      const waitingFor = async (key: 'gate' | 'append') =>
        (await admin.query(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND ${key === 'gate' ? 'objsubid = 1 AND objid = $1::bigint::oid' : 'objsubid = 2 AND classid = $1::bigint::oid'}`, [key === 'gate' ? gate : APPEND_LOCK_CLASS])).rows[0].n > 0;
      const race = async (appendA: () => Promise<AppendResult>, appendB: () => Promise<AppendResult>) => {
        await admin.query('SELECT pg_advisory_lock($1)', [gate]);
        try {
          const resultA = appendA();
          await waitUntil(() => waitingFor('gate'));
          const resultB = appendB().then((value) => ({ value }), (reason: unknown) => ({ reason }));
          await waitUntil(() => waitingFor('append')); // B has begun: a snapshot taken now misses A
          await admin.query('SELECT pg_advisory_unlock($1)', [gate]);
          return { a: await resultA, b: await resultB };
        } finally {
          await admin.query('SELECT pg_advisory_unlock_all()');
        }
      };
      // The same upload retried through another hub at the same moment: stored once, the repeat told so.
      const same: NewEvent = { id: randomUUID(), type: 'Uploaded', data: {} };
      const repeat = await race(() => a.appendToStream('retried', [same]), () => b.appendToStream('retried', [same]));
      expect(repeat.b).toEqual({ value: { ...repeat.a, idempotent: true } });
      // With no expected version, an append right after another hub's to the same stream just follows it.
      const follow = await race(() => a.appendToStream('shared', events(1, 'A')), () => b.appendToStream('shared', events(1, 'B')));
      expect(follow.b).toEqual({ value: { nextExpectedVersion: 1n, lastGlobalPosition: expect.any(BigInt), idempotent: false } });
      expect((await a.readStream('shared')).events.map((e) => e.type)).toEqual(['A', 'B']);
    },
  );

  it("an append waiting for another hub's append lock is not cut by a lock_timeout on the role or database", async () => {
    const schema = freshSchema();
    const bounded = `${connectionString}${connectionString.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c lock_timeout=100ms')}`;
    const a = await open(schema, { connectionString: bounded });
    const b = await open(schema, { connectionString: bounded }); // another hub process on the same schema
    const gate = 0x7e59;
    await admin.query(`CREATE FUNCTION "${schema}".gate() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN SET LOCAL lock_timeout = 0; PERFORM pg_advisory_xact_lock(${gate}); RETURN NULL; END $$`);
    await admin.query(`CREATE TRIGGER gate AFTER INSERT ON "${schema}".events FOR EACH ROW WHEN (NEW.event_type = 'A') EXECUTE FUNCTION "${schema}".gate()`);
    await admin.query('SELECT pg_advisory_lock($1)', [gate]);
    try {
      const appendA = a.appendToStream('a', events(1, 'A')); // holds the append lock while it waits at the gate
      await waitUntil(async () => (await admin.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1 AND objid = $1`, [gate])).rowCount === 1);
      let settled = false;
      const appendB = b.appendToStream('b', events(1, 'B')).then((value) => ({ value }), (reason: unknown) => ({ reason })).finally(() => (settled = true));
      // B waits for the append lock, by the server's clock, well past the role's lock_timeout (or has failed already).
      await waitUntil(async () => settled || (await admin.query(
        `SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND now() - query_start > interval '500 ms' AND query LIKE '%pg_advisory_xact_lock%'`)).rowCount === 1);
      await admin.query('SELECT pg_advisory_unlock($1)', [gate]);
      const resultA = await appendA;
      expect(await appendB).toEqual({ value: { nextExpectedVersion: 0n, lastGlobalPosition: resultA.lastGlobalPosition + 1n, idempotent: false } });
    } finally {
      await admin.query('SELECT pg_advisory_unlock_all()');
    }
  });

  it('withTransaction commits the callback’s writes together, and rolls all back when it throws', async () => {
    const schema = freshSchema();
    const store = await open(schema);
    const table = store.table('checkpoints');
    await store.withTransaction((c) => c.query(`CREATE TABLE ${table} (name text PRIMARY KEY, position bigint NOT NULL)`));

    await store.withTransaction(async (c) => {
      await c.query(`INSERT INTO ${table} VALUES ('p', 1)`);
      await c.query(`UPDATE ${table} SET position = 2 WHERE name = 'p'`);
    });
    await expect(
      store.withTransaction(async (c) => {
        await c.query(`UPDATE ${table} SET position = 3 WHERE name = 'p'`);
        throw new Error('projection failed');
      }),
    ).rejects.toThrow('projection failed');
    const { rows } = await admin.query(`SELECT position::int AS p FROM ${table}`);
    expect(rows).toEqual([{ p: 2 }]);
  });

  it('waitForAppend is woken by an append from another process (NOTIFY), and by close()', async () => {
    const schema = freshSchema();
    const waiter = await open(schema);
    const writer = await open(schema);
    const head = await waiter.headPosition();
    const started = Date.now();
    const woken = waiter.waitForAppend(head, 10_000);
    await sleep(100);
    await writer.appendToStream('s', events(1));
    await woken;
    expect(Date.now() - started).toBeLessThan(2_000);

    const closing = waiter.waitForAppend(1n << 40n, 10_000);
    const closedAt = Date.now();
    await waiter.close();
    await closing;
    expect(Date.now() - closedAt).toBeLessThan(1_000);
  });
});

/** Number of sessions sleeping in the linger trigger (an append whose insert is done but not yet committed). */
async function lingering(schema: string): Promise<number> {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE $1 AND wait_event = 'PgSleep'`,
    [`%INSERT INTO "${schema}"."events"%`],
  );
  return rows[0].n;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}
