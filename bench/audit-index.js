'use strict';
/**
 * The indexes of audit events by patient and by subject (SQLite migrations 3 and 4, events_audit_by_patient and
 * events_audit_by_subject), both sides measured in one process, alternating:
 *
 *   insert  what the indexes cost an append: raw better-sqlite3 inserts of AuditRecorded rows as the audit trail
 *           writes them (chained entries, ~0.5 KB of JSON), synchronous=FULL in WAL, in transactions of --batch rows,
 *           into a file with migrations 1 to --base (default 2: neither index) and one with all of them (both);
 *           rounds alternate which goes first. Figure: time with / time without (median over the rounds).
 *           --base 3: the cost of the index by subject alone, over a file that has the one by patient.
 *   record  the same as the hub pays it: AuditTrail.record into SqliteEventStore, --inflight at a time, into a store
 *           with the indexes and one without those of the migrations after --base; alternating rounds. Figure: time
 *           with / without (median), µs per entry.
 *   search  what they save: a store of --events audit events of --others other patients (and 50 users, the
 *           entries' subjects) over the last --days days, and a probe patient with 20; AuditTrail without the
 *           indexes (the chain walk) and with them (SqliteAuditEventsByField), alternating: a patient's 7-day audit
 *           search (POST /audit/search), the audit part of an export of a hub a year old (windows of 31 days over 366
 *           days, every page, as patient-export.ts reads it), and a user's 7-day search (one of the 50 users, ~1/50
 *           of the events). Figure: median ms of each. Then an investigator's 7-day searches by resource (a
 *           consultation id the probe patient's 20 events name; every fourth event names one of 1,000 others) and by
 *           request id, which have no index: "without" walks the chains in the hub, "with" is the store's scan
 *           (SqliteAuditEventsByField.scan: the field compared in the store, only the matches handed back).
 *
 *   node bench/audit-index.js [--only insert,record,search] [--base 2] [--rounds 7] [--batches 150] [--batch 64] [--events 50000] [--reps 15]
 *
 * With `--store postgres` (URL: RTS_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test) the same on
 * PostgreSQL (migrations 003 and 004), each side in a fresh schema made by PostgresEventStore.open and dropped at the end:
 *   insert  raw `pg` inserts of the same rows, one transaction of --batch rows (INSERT ... SELECT FROM unnest), with
 *           synchronous_commit=on as the store runs, into a schema with the indexes and one where those after
 *           --base were dropped;
 *   record  AuditTrail.record into PostgresEventStore (its advisory append lock, group commit), the same way;
 *   search  the chain walk against PostgresAuditEventsByField.
 */
const { randomUUID, createHash } = require('node:crypto');
const path = require('node:path');
const { dist, parseArgs, nowNs, msSince, median, fmt, fmtInt, machine, pressure, fmtPressure, tempDir, rmrf, BetterSqlite3 } = require('./lib');

const args = parseArgs();
const only = new Set(String(args.only ?? 'insert,record,search').split(','));
const { EVENT_STORE_MIGRATIONS, migrate } = dist('adapters/event-store/sqlite/schema');
const { SqliteEventStore } = dist('adapters/event-store/sqlite/sqlite-event-store');
const { SqliteAuditEventsByField, AUDIT_INDEX_OF_FIELD } = dist('adapters/event-store/sqlite/sqlite-audit-events-by-field');
const { AuditTrail, MAX_AUDIT_RESULTS } = dist('application/audit/audit-trail');
const { chain, genesisHash, AUDIT_EVENT_TYPE, AUDIT_PARTITIONS } = dist('application/audit/audit-chain');
const L = require('./lib');

const POSTGRES = String(args.store ?? 'sqlite') === 'postgres';
/** The "without" side has the migrations up to this one (2: neither audit index, 3: the one by patient only). */
const BASE = Number(args.base ?? 2);
/** The audit indexes the "without" side lacks: migration 3 (003) made the one by patient, 4 (004) the one by subject. */
const DROPPED = [AUDIT_INDEX_OF_FIELD.patientKey, AUDIT_INDEX_OF_FIELD.subject].slice(BASE - 2);
const SIDES = `migrations 1-${BASE} (without ${DROPPED.join(', ')}) / all`;
const PG_URL = String(args.url ?? L.PG_URL);
const pgSchemas = new Set();
/** A PostgresEventStore in a fresh schema (dropped at the end); `withIndex: false` drops the DROPPED indexes. */
const openPgStore = async (what, withIndex) => {
  const { PostgresEventStore } = dist('adapters/event-store/postgres/postgres-event-store');
  const schema = L.pgSchemaName(`audit_${what}`);
  pgSchemas.add(schema);
  const store = await PostgresEventStore.open({ connectionString: PG_URL, schema });
  if (!withIndex) for (const index of DROPPED) await store.query(`DROP INDEX ${store.table(index)}`);
  return { store, schema };
};
const dropPgSchemas = () => Promise.allSettled([...pgSchemas].map((schema) => L.pgDropSchema(PG_URL, schema)));

const keyOf = (i) => `p${createHash('md5').update(`patient-${i}`).digest('hex')}`;
const entryOf = (i, patientKey, atMs) => ({
  at: new Date(atMs).toISOString(),
  subject: `clinician-${i % 50}`,
  role: 'clinician',
  systemId: `system-${i % 5}`,
  action: 'observations.read',
  patientKey,
  resource: null,
  ip: '10.0.0.1',
  requestId: randomUUID(),
  outcome: 'allowed',
  status: 200,
  reason: null,
});

/**
 * The day's 8 audit chains as the trail writes them: each call gives the next chained row (round robin over the
 * chains), with its stream, version, id and JSON, as both insert benches store it.
 */
const chainedRows = () => {
  const heads = Array.from({ length: AUDIT_PARTITIONS }, (_, p) => ({ version: -1, hash: genesisHash(`audit-2026-12-02-${p}`) }));
  let n = 0;
  return () => {
    const p = n % AUDIT_PARTITIONS;
    const head = heads[p];
    const [linked] = chain(head.hash, [entryOf(n, keyOf(n % 5000), Date.now())]);
    n++;
    head.version++;
    head.hash = linked.hash;
    return { stream: `audit-2026-12-02-${p}`, version: head.version, id: randomUUID(), data: JSON.stringify(linked), metadata: JSON.stringify({ correlationId: linked.requestId }) };
  };
};

const insertBench = () => {
  const rounds = Number(args.rounds ?? 7);
  const batches = Number(args.batches ?? 150);
  const batch = Number(args.batch ?? 64);
  const dir = tempDir('audit-index');
  try {
    const open = (name, migrations) => {
      const db = new BetterSqlite3(path.join(dir, name));
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      migrate(db, migrations);
      const insert = db.prepare('INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
      const next = chainedRows();
      // One transaction of `batch` chained audit rows, spread over the day's chains as the trail writes them.
      const write = db.transaction(() => {
        const recordedAt = new Date().toISOString();
        for (let i = 0; i < batch; i++) {
          const row = next();
          insert.run(row.stream, row.version, row.id, AUDIT_EVENT_TYPE, row.data, row.metadata, recordedAt);
        }
      });
      return { db, write: write.immediate };
    };
    const without = open('without.sqlite', EVENT_STORE_MIGRATIONS.slice(0, BASE));
    const withIndex = open('with.sqlite', EVENT_STORE_MIGRATIONS);
    const run = (side) => {
      const t0 = nowNs();
      for (let b = 0; b < batches; b++) side.write();
      return msSince(t0);
    };
    run(without); // warm-up of both files
    run(withIndex);
    const ratios = [];
    for (let r = 0; r < rounds; r++) {
      const [a, b] = r % 2 === 0 ? [without, withIndex] : [withIndex, without];
      const ta = run(a);
      const tb = run(b);
      const tWithout = a === without ? ta : tb;
      const tWith = a === without ? tb : ta;
      ratios.push(tWith / tWithout);
      console.log(`insert round ${r + 1}: ${fmtInt(batches * batch)} rows each, without index ${fmt(tWithout, 0)} ms (${fmt((tWithout / batches), 2)} ms per batch of ${batch}), with ${fmt(tWith, 0)} ms: ratio ${fmt(tWith / tWithout, 3)}`);
    }
    // Without the fsync (synchronous=OFF): the index's CPU alone, the same way.
    for (const side of [without, withIndex]) side.db.pragma('synchronous = OFF');
    const cpuRatios = [];
    for (let r = 0; r < rounds; r++) {
      const [a, b] = r % 2 === 0 ? [without, withIndex] : [withIndex, without];
      const ta = run(a);
      const tb = run(b);
      cpuRatios.push(a === without ? tb / ta : ta / tb);
    }
    const rows = (side) => side.db.prepare('SELECT count(*) FROM events').pluck().get();
    console.log(`insert (${SIDES}): median ratio with/without, synchronous=FULL: ${fmt(median(ratios), 3)} (${ratios.map((x) => fmt(x, 3)).join(', ')}); synchronous=OFF (no fsync): ${fmt(median(cpuRatios), 3)} (${cpuRatios.map((x) => fmt(x, 3)).join(', ')}); rows at the end ${fmtInt(rows(without))} / ${fmtInt(rows(withIndex))}`);
    without.db.close();
    withIndex.db.close();
    return { ratioFull: median(ratios), ratiosFull: ratios, ratioNoSync: median(cpuRatios), ratiosNoSync: cpuRatios };
  } finally {
    rmrf(dir);
  }
};

/** insertBench on PostgreSQL: one client per side, a transaction of `batch` chained rows, synchronous_commit=on. */
const insertBenchPostgres = async () => {
  const rounds = Number(args.rounds ?? 7);
  const batches = Number(args.batches ?? 150);
  const batch = Number(args.batch ?? 64);
  const sides = [];
  try {
    for (const withIndex of [false, true]) {
      const { store, schema } = await openPgStore(withIndex ? 'insert_with' : 'insert_without', withIndex);
      await store.close();
      const client = new (L.pg().Client)({ connectionString: PG_URL, application_name: 'rts-bench-audit-index' });
      await client.connect();
      await client.query('SET synchronous_commit = on');
      const next = chainedRows();
      const table = `"${schema}".events`;
      const write = async () => {
        const cols = { stream: [], version: [], id: [], data: [], metadata: [] };
        for (let i = 0; i < batch; i++) {
          const row = next();
          for (const key of Object.keys(cols)) cols[key].push(key === 'version' ? String(row.version) : row[key]);
        }
        await client.query('BEGIN');
        await client.query(
          `INSERT INTO ${table} (stream_name, stream_version, event_id, event_type, data, metadata)
           SELECT s, v, i, '${AUDIT_EVENT_TYPE}', d::jsonb, m::jsonb FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS t(s, v, i, d, m)`,
          [cols.stream, cols.version, cols.id, cols.data, cols.metadata],
        );
        await client.query('COMMIT');
      };
      sides.push({ withIndex, client, write });
    }
    const [without, withIndex] = sides;
    const run = async (side) => {
      const t0 = nowNs();
      for (let b = 0; b < batches; b++) await side.write();
      return msSince(t0);
    };
    await run(without);
    await run(withIndex);
    const ratios = [];
    for (let r = 0; r < rounds; r++) {
      const [a, b] = r % 2 === 0 ? [without, withIndex] : [withIndex, without];
      const ta = await run(a);
      const tb = await run(b);
      const tWithout = a === without ? ta : tb;
      const tWith = a === without ? tb : ta;
      ratios.push(tWith / tWithout);
      console.log(`insert (postgres) round ${r + 1}: ${fmtInt(batches * batch)} rows each, without index ${fmt(tWithout, 0)} ms (${fmt(tWithout / batches, 2)} ms per batch of ${batch}), with ${fmt(tWith, 0)} ms: ratio ${fmt(tWith / tWithout, 3)}`);
    }
    console.log(`insert (postgres, ${SIDES}): median ratio with/without, synchronous_commit=on: ${fmt(median(ratios), 3)} (${ratios.map((x) => fmt(x, 3)).join(', ')})`);
    return { ratio: median(ratios), ratios };
  } finally {
    for (const side of sides) await side.client.end().catch(() => undefined);
  }
};

/**
 * The same cost as the hub pays it: AuditTrail.record into SqliteEventStore (hashing, JSON, the trail's batches, the
 * store's group commit), --inflight entries at a time, into a store with the index and one whose index was dropped.
 */
const recordBench = async () => {
  const rounds = Number(args.rounds ?? 7);
  const perRound = Number(args['record-n'] ?? 6_000);
  const inflight = Number(args.inflight ?? 64);
  const dir = tempDir('audit-record');
  let withIndex;
  let without;
  if (POSTGRES) {
    withIndex = (await openPgStore('record_with', true)).store;
    without = (await openPgStore('record_without', false)).store;
  } else {
    withIndex = SqliteEventStore.open({ file: path.join(dir, 'with.sqlite') });
    without = SqliteEventStore.open({ file: path.join(dir, 'without.sqlite') });
    // A store of a build before: the indexes not there (a bench may write through the connection; the hub never does).
    for (const index of DROPPED) without.database.exec(`DROP INDEX ${index}`);
  }
  try {
    let n = 0;
    const run = async (store) => {
      const trail = new AuditTrail({ store });
      const t0 = nowNs();
      for (let done = 0; done < perRound; done += inflight) {
        await Promise.all(Array.from({ length: inflight }, () => trail.record(entryOf(n, keyOf(n++ % 5000), Date.now()))));
      }
      await trail.close();
      return msSince(t0);
    };
    await run(without);
    await run(withIndex);
    const ratios = [];
    const perEntry = [];
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [without, withIndex] : [withIndex, without];
      const t = new Map();
      for (const store of order) t.set(store, await run(store));
      ratios.push(t.get(withIndex) / t.get(without));
      perEntry.push([(t.get(without) * 1000) / perRound, (t.get(withIndex) * 1000) / perRound]);
    }
    console.log(`record${POSTGRES ? ' (postgres)' : ''} (${SIDES}): AuditTrail.record, ${inflight} in flight, ${fmtInt(perRound)} per round: median ratio with/without ${fmt(median(ratios), 3)} (${ratios.map((x) => fmt(x, 3)).join(', ')}); µs per entry without/with: ${perEntry.map(([a, b]) => `${fmt(a, 0)}/${fmt(b, 0)}`).join(', ')}`);
    return { ratio: median(ratios), ratios, perEntry };
  } finally {
    await withIndex.close();
    await without.close();
    rmrf(dir);
  }
};

/** The consultation the search's probe events are about (the resource search finds the 20 of the probe patient). */
const PROBE_RESOURCE = '6f1c0d7e-3b1a-4c59-9a0e-2d4b8f6a1c35';
/** Every fourth event of the search's store is about a resource: one of 1,000 consultations (~12 events each). */
const withResource = (entry) => {
  const n = Number.parseInt(createHash('md5').update(entry.requestId).digest('hex').slice(0, 8), 16);
  return n % 4 === 0 ? { ...entry, resource: `00000000-0000-4000-8000-${String(n % 1000).padStart(12, '0')}` } : entry;
};

const searchBench = async () => {
  const events = Number(args.events ?? 50_000);
  const others = Number(args.others ?? 5_000);
  const days = Number(args.days ?? 10);
  const reps = Number(args.reps ?? 15);
  const dir = tempDir('audit-search');
  const store = POSTGRES ? (await openPgStore('search', true)).store : SqliteEventStore.open({ file: path.join(dir, 'events.sqlite') });
  try {
    const now = Date.now();
    const writer = new AuditTrail({ store });
    const t0 = nowNs();
    for (let done = 0; done < events; ) {
      const n = Math.min(2_000, events - done);
      // Oldest first, spread evenly over the days (each day's chains hold events / days / 8 events).
      await Promise.all(Array.from({ length: n }, (_, j) => writer.record(withResource(entryOf(done + j, keyOf(1 + ((done + j) % others)), now - days * 86_400_000 + ((done + j) * days * 86_400_000) / events)))));
      done += n;
    }
    const probe = keyOf(0);
    for (let i = 0; i < 20; i++) await writer.record({ ...entryOf(events + i, probe, now - days * 86_400_000 + (i * days * 86_400_000) / 20 + 1), resource: PROBE_RESOURCE, requestId: `probe-${i}` });
    await writer.close();
    const chain = (await store.readStream(`audit-${new Date(now - 86_400_000).toISOString().slice(0, 10)}-0`)).events.length;
    console.log(`search: ${fmtInt(events)} audit events of ${fmtInt(others)} patients over ${days} days written in ${fmt(msSince(t0) / 1000, 1)} s (a day's chain ~${fmtInt(chain)} events); the probe patient has 20`);

    const chains = new AuditTrail({ store });
    const { PostgresAuditEventsByField } = POSTGRES ? dist('adapters/event-store/postgres/postgres-audit-events-by-field') : {};
    const indexed = new AuditTrail({ store, eventsByField: POSTGRES ? new PostgresAuditEventsByField(store) : new SqliteAuditEventsByField(store) });
    const search7 = (trail) => trail.byPatient(probe, { from: new Date(now - 7 * 86_400_000), to: null, now: new Date(now) });
    // A user's search: entryOf's subjects are clinician-0..49, each in every chain of every day.
    const user7 = (trail) => trail.bySubject('clinician-7', { from: new Date(now - 7 * 86_400_000), to: null, now: new Date(now) });
    // An investigator's searches: no index of resources or request ids. "Without" walks the chains in the hub (every
    // event read and parsed), "with" has the store compare the field while it reads the chains (scan), no index.
    const resource7 = (trail) => trail.byResource(PROBE_RESOURCE, { from: new Date(now - 7 * 86_400_000), to: null, now: new Date(now) });
    const request7 = (trail) => trail.byRequestId('probe-19', { from: new Date(now - 7 * 86_400_000), to: null, now: new Date(now) });
    const exportWalk = async (trail) => {
      // As patient-export.ts: from a day before the first event (here: a hub a year old) to now, windows of 31 days.
      const end = now + 1;
      const start = Math.floor((now - 365 * 86_400_000) / 86_400_000) * 86_400_000 - 86_400_000;
      let count = 0;
      for (let from = start; from < end; from += 31 * 86_400_000) {
        const to = new Date(Math.min(from + 31 * 86_400_000, end));
        let after;
        for (;;) {
          const page = await trail.byPatient(probe, { from: new Date(from), to, now: new Date(end), limit: 1000, ...(after ? { after } : {}) });
          count += page.items.length;
          if (!page.truncated || page.next === null) break;
          after = page.next;
        }
      }
      return count;
    };
    const time = async (fn) => {
      const t = nowNs();
      const result = await fn();
      return { ms: msSince(t), result };
    };
    const figures = {};
    for (const [name, fn] of [['audit search, 7 days', search7], ['export audit walk, 366 days', exportWalk], ['user audit search, 7 days', user7], ['resource audit search, 7 days (chain walk / store scan)', resource7], ['request id audit search, 7 days (chain walk / store scan)', request7]]) {
      const before = [];
      const after = [];
      let found = 0;
      for (const trail of [chains, indexed, chains, indexed]) await fn(trail); // warm-up, not timed
      for (let r = 0; r < reps; r++) {
        const order = r % 2 === 0 ? [[chains, before], [indexed, after]] : [[indexed, after], [chains, before]];
        for (const [trail, into] of order) {
          const { ms, result } = await time(() => fn(trail));
          found = typeof result === 'number' ? result : result.items.length;
          if (!(name.startsWith('export') ? found === 20 : found > 0)) throw new Error(`${name}: found ${found}`);
          into.push(ms);
        }
      }
      figures[name] = { withoutIndexMs: median(before), withIndexMs: median(after) };
      console.log(`${name}${POSTGRES ? ' (postgres)' : ''}: found ${found}${found === MAX_AUDIT_RESULTS ? ' (a first page)' : ''}; without the index median ${fmt(median(before), 2)} ms (${fmt(Math.min(...before), 2)}-${fmt(Math.max(...before), 2)}), with it ${fmt(median(after), 2)} ms (${fmt(Math.min(...after), 2)}-${fmt(Math.max(...after), 2)}), ${reps} reps each, alternating`);
    }
    return figures;
  } finally {
    await store.close();
    rmrf(dir);
  }
};

(async () => {
  console.log(JSON.stringify(machine()));
  console.log(fmtPressure(pressure()));
  try {
    if (only.has('insert')) POSTGRES ? await insertBenchPostgres() : insertBench();
    if (only.has('record')) await recordBench();
    if (only.has('search')) await searchBench();
  } finally {
    await dropPgSchemas();
  }
  console.log(fmtPressure(pressure()));
})().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
