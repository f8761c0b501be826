'use strict';
/**
 * Ingest benchmark on PostgreSQL: how fast the hub stores observations with RTS_EVENT_STORE=postgres, against raw
 * `pg` inserts of the same rows with the same durability (synchronous_commit=on) and the same transactions.
 *
 *   node bench/ingest-postgres.js [--n 2000] [--n-serial 1000] [--concurrency 1,16,64] [--http-concurrency 16]
 *                                 [--http-n 1500] [--rounds 3] [--baselines lock,nolock,notify]
 *                                 [--only inproc,http] [--url postgres://...] [--json FILE]
 *
 * Each round runs, in this order, each subject followed by its own baselines (so they see the same machine):
 *   in-process c : TeleMedService.record through openContainer (PostgresEventStore + PostgresRegistry in a fresh
 *                  schema), c calls in flight, the registry projector running as startHub runs it
 *   HTTP c       : POST /observations to `node dist/bootstrap/main.js` (RTS_EVENT_STORE=postgres) in a child
 *                  process, c requests in flight
 * and after each subject the raw baselines, in a fresh schema whose tables the adapters create:
 *   lock   : min(c, 10) connections (the adapter's pool size), the event rows in transactions of as many rows as
 *            the subject's append transactions held on average (counted afterwards: distinct xmin of its event
 *            rows; 1 before the store group-committed), BEGIN; pg_advisory_xact_lock(the adapter's lock);
 *            INSERT … unnest; COMMIT — the adapter's serialization — and the registry rows from one more connection
 *            in transactions of the projection batch the subject achieved (measured: registry.apply calls). Same
 *            transaction count as the hub.
 *   nolock : the same without the advisory lock (concurrent commits share WAL flushes: group commit).
 *   notify : nolock with the adapter's pg_notify in the INSERT (NOTIFY takes a database-wide lock at commit).
 * The rows (JSON, HL7 content, ids) are built beforehand with the project's own functions: only the database
 * work is timed. Every schema is dropped at the end of its step. Needs `npm run build` first (uses dist/).
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const L = require('./lib');

const args = L.parseArgs();
const URL = String(args.url ?? L.PG_URL);
const N = Number(args.n ?? 2000);
const N_SERIAL = Number(args['n-serial'] ?? Math.min(N, 1000)); // observations when c = 1 (one at a time is slow)
const CS = String(args.concurrency ?? '1,16,64').split(',').filter(Boolean).map(Number);
const HTTP_C = String(args['http-concurrency'] ?? '16').split(',').filter(Boolean).map(Number);
const HTTP_N = Number(args['http-n'] ?? Math.min(N, 1500));
const ROUNDS = Number(args.rounds ?? 3);
const BASELINES = String(args.baselines ?? 'lock,nolock,notify').split(',').filter(Boolean);
const ONLY = args.only ? new Set(String(args.only).split(',')) : null;
const WARMUP = Number(args.warmup ?? 300);
const runs = (what) => ONLY === null || ONLY.has(what);

const { loadConfig } = L.dist('bootstrap/config');
const { openContainer, createLogger, TOKENS } = L.dist('bootstrap/container');
const { PostgresEventStore, APPEND_LOCK_CLASS } = L.dist('adapters/event-store/postgres/postgres-event-store');
const { PostgresRegistry, REGISTRY_LOCK_CLASS } = L.dist('adapters/registry/postgres-registry');
const { createTeleObservation } = L.dist('domain/monitoring/tele-observation');
const { PostgresKeyStore } = L.dist('adapters/crypto/key-stores');
const { PatientCipher } = L.dist('adapters/crypto/patient-cipher');

/** The adapter's pool size: PostgresEventStore.open without maxConnections gets pg's default, 10. */
const POOL_MAX = 10;
const REPOSITORY = loadConfig({}).RTS_REPOSITORY_UNIQUE_ID;
const log = (...a) => console.log(...a);
const q = (ident) => `"${ident.replace(/"/g, '""')}"`;

/** Schemas created and not yet dropped: dropped on SIGINT/SIGTERM too, so an interrupted run leaves nothing. */
const liveSchemas = new Set();
const newSchema = (what) => {
  const schema = L.pgSchemaName(what);
  liveSchemas.add(schema);
  return schema;
};
const dropSchema = async (schema) => {
  await L.pgDropSchema(URL, schema).catch((e) => log(`could not drop schema ${schema}: ${e.message}`));
  liveSchemas.delete(schema);
};
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    log(`${signal}: dropping ${liveSchemas.size} schema(s)`);
    Promise.allSettled([...liveSchemas].map((schema) => L.pgDropSchema(URL, schema))).finally(() => process.exit(130));
  });
}

// ---------- the observations: 1,000 patients, times spread over the two years before now ----------

const makeInputs = (n, seed) => {
  const rand = L.rng(seed);
  const end = Math.floor(Date.now() / 1000) - 3600;
  const span = 2 * 365 * 86400;
  return Array.from({ length: n }, () => {
    const measuredEpoch = end - Math.floor(rand() * span);
    return { patientId: L.cprOf(Math.floor(rand() * 1000)), ...L.reading(rand), measuredAt: L.isoSeconds(measuredEpoch), measuredEpoch };
  });
};

const pgSettings = (schema, dir) => ({
  RTS_EVENT_STORE: 'postgres',
  RTS_POSTGRES_URL: URL,
  RTS_POSTGRES_SCHEMA: schema,
  RTS_DATA_DIR: dir,
  RTS_LOG_LEVEL: 'warn',
  RTS_PSEUDONYM_SECRET: L.SECRET_HEX,
});

// ---------- where an append's time goes: timers on the adapter pool's connections ----------

/**
 * Wraps `query` of every connection the pool hands out (pool 'acquire' event) with a timer, classified by
 * statement, and measures how long each append holds the advisory lock (lock granted -> COMMIT returned).
 * Sums over concurrent connections overlap, so only the lock-held total compares with wall time (the lock
 * is held by one append at a time).
 */
const instrumentPool = (pool) => {
  const ms = {};
  const count = {};
  const add = (k, v) => {
    ms[k] = (ms[k] ?? 0) + v;
    count[k] = (count[k] ?? 0) + 1;
  };
  const s = { lockHeldMs: 0, lockHolds: 0, maxConnections: 0, maxWaiting: 0 };
  const classify = (sql, values, st) => {
    if (sql.startsWith('BEGIN; SET LOCAL synchronous_commit')) return (st.tx = 'append'), 'append: BEGIN + SET LOCAL';
    if (sql.includes('pg_advisory_xact_lock')) {
      const cls = Array.isArray(values) ? Number(values[0]) : NaN;
      if (cls === APPEND_LOCK_CLASS) return 'append: wait for + take advisory lock';
      if (cls === REGISTRY_LOCK_CLASS) return (st.tx = 'projection'), 'projection: advisory lock';
      return 'other: advisory lock';
    }
    if (sql === 'BEGIN') return (st.tx = 'read'), 'BEGIN (projection / read tx)';
    if (sql === 'COMMIT' || sql === 'ROLLBACK') {
      const k = `${st.tx ?? 'other'}: ${sql}`;
      return k;
    }
    if (st.tx === 'append') {
      if (sql.includes('SELECT event_id')) return 'append: idempotency SELECT';
      if (sql.includes('max(stream_version)')) return 'append: head SELECT';
      if (sql.includes('WITH inserted')) return 'append: INSERT + pg_notify';
    }
    if (sql.includes('registry_entries') && sql.trimStart().startsWith('INSERT')) return 'projection: INSERT registry rows';
    if (sql.includes('projection_checkpoints') && sql.trimStart().startsWith('INSERT')) return 'projection: checkpoint upsert';
    if (sql.includes('registry_entries') && sql.includes('ANY(')) return 'projection: SELECT current rows';
    if (sql.includes('SELECT position')) return 'checkpoint SELECT';
    if (sql.includes('WHERE global_position >')) return 'readAll (projector)';
    if (sql.includes('max(global_position)')) return 'headPosition';
    if (sql.includes('WITH head AS')) return 'readStream';
    return 'other';
  };
  const onAcquire = (client) => {
    s.maxConnections = Math.max(s.maxConnections, pool.totalCount);
    s.maxWaiting = Math.max(s.maxWaiting, pool.waitingCount);
    if (client.__rtsBench) return;
    client.__rtsBench = true;
    const st = { tx: null, lockAt: null };
    const orig = client.query;
    client.query = function (text, values, cb) {
      if (!s.active) return orig.apply(this, arguments);
      const sql = typeof text === 'string' ? text : (text && text.text) || '';
      const key = classify(sql, values, st);
      const t0 = L.nowNs();
      const done = () => {
        add(key, L.msSince(t0));
        if (key === 'append: wait for + take advisory lock') st.lockAt = L.nowNs();
        if (key === 'append: COMMIT' || key === 'append: ROLLBACK' || key.endsWith(': COMMIT') || key.endsWith(': ROLLBACK')) {
          if (st.lockAt !== null) {
            s.lockHeldMs += L.msSince(st.lockAt);
            s.lockHolds++;
            st.lockAt = null;
          }
          st.tx = null;
        }
      };
      const a = Array.from(arguments);
      const cbIndex = a.findIndex((x) => typeof x === 'function');
      if (cbIndex >= 0) {
        const cbOrig = a[cbIndex];
        a[cbIndex] = function (...r) {
          done();
          return cbOrig.apply(this, r);
        };
        return orig.apply(this, a);
      }
      const p = orig.apply(this, a);
      if (p && typeof p.then === 'function') {
        return p.then(
          (r) => (done(), r),
          (e) => {
            done();
            throw e;
          },
        );
      }
      return p;
    };
  };
  pool.on('acquire', onAcquire);
  s.active = true;
  return { ms, count, s, stop: () => (s.active = false) };
};

// ---------- subject 1: in-process ----------

const runInProcess = async (inputs, concurrency, { sampleRow = false } = {}) => {
  const schema = newSchema(`inproc_c${concurrency}`);
  const dir = L.tempDir('pg-inproc');
  let store = null;
  let projector = null;
  try {
    const config = loadConfig(pgSettings(schema, dir));
    const c = await openContainer(config, createLogger(config));
    store = c.get(TOKENS.EventStore);
    const registry = c.get(TOKENS.Registry);
    projector = c.get(TOKENS.Projector);
    const telemed = c.get(TOKENS.TeleMed);
    const clock = c.get(TOKENS.Clock);
    if (!(store instanceof PostgresEventStore) || !store.pool) throw new Error('expected a PostgresEventStore with its pool');
    // Appends the hub makes (appendToStream) and its projection batches (registry.apply); its append transactions
    // are counted from the rows afterwards.
    const tx = { appends: 0, idempotent: 0, applies: 0, appliedEvents: 0 };
    const append = store.appendToStream.bind(store);
    store.appendToStream = async (...a) => {
      const r = await append(...a);
      if (r.idempotent) tx.idempotent++;
      else tx.appends++;
      return r;
    };
    const apply = registry.apply.bind(registry);
    registry.apply = async (events, checkpoint) => {
      await apply(events, checkpoint);
      tx.applies++;
      tx.appliedEvents += events.length;
    };
    const ins = instrumentPool(store.pool);
    projector.start(); // as startHub does: the registry projection runs alongside the appends
    // The library entry point takes a validated TeleObservation: validation is done before the clock starts.
    const now = clock.now();
    const observations = inputs.map(({ measuredEpoch: _epoch, ...i }) => createTeleObservation(i, now));
    const latencies = new Float64Array(observations.length);
    const wal0 = await L.pgStatWal(URL);
    let next = 0;
    const worker = async () => {
      for (;;) {
        const i = next++;
        if (i >= observations.length) return;
        const t0 = L.nowNs();
        await telemed.record(observations[i]);
        latencies[i] = L.msSince(t0);
      }
    };
    const cpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    await Promise.all(Array.from({ length: concurrency }, worker));
    const ackMs = L.msSince(t0);
    await projector.catchUp();
    const projectedMs = L.msSince(t0);
    const cu = process.cpuUsage(cpu0);
    ins.stop();
    // The uploads' events only: openContainer also appends the pseudonym secret's fingerprint (pseudonym-check.ts).
    const uploads = `${store.table('events')} WHERE event_type = 'DocumentSubmitted'`;
    const counts = (await store.pool.query(`SELECT (SELECT count(*) FROM ${uploads})::int AS events, (SELECT count(*) FROM ${store.table('registry_entries')})::int AS registry, (SELECT count(DISTINCT xmin::text) FROM ${uploads})::int AS transactions`)).rows[0];
    const sample = sampleRow ? (await store.pool.query(`SELECT data::text AS data, metadata::text AS metadata FROM ${uploads} LIMIT 1`)).rows[0] : null;
    await projector.stop();
    projector = null;
    await store.close();
    store = null;
    await L.sleep(300); // the backends report their WAL and table counters at exit
    const wal = L.pgWalDelta(wal0, await L.pgStatWal(URL));
    const tables = await L.pgTableStats(URL, schema);
    if (counts.events !== observations.length || counts.registry !== observations.length) {
      throw new Error(`in-process: ${counts.events} events / ${counts.registry} registry rows for ${observations.length} observations`);
    }
    return {
      n: observations.length,
      concurrency,
      ackMs,
      projectedMs,
      latency: L.percentiles(latencies),
      // Append transactions: the distinct inserting transaction ids of the event rows (the store group-commits
      // the appends in flight since 2026-11-30; before, one transaction per append).
      appends: tx.appends,
      appendTx: counts.transactions,
      eventBatch: counts.events / counts.transactions,
      idempotent: tx.idempotent,
      projectionTx: tx.applies,
      projectionBatch: tx.appliedEvents / Math.max(1, tx.applies),
      checkpointWrites: tables.projection_checkpoints ? tables.projection_checkpoints.ins + tables.projection_checkpoints.upd : NaN,
      wal,
      cpuMs: (cu.user + cu.system) / 1000,
      pool: { maxConnections: ins.s.maxConnections, maxWaiting: ins.s.maxWaiting },
      lockHeldMs: ins.s.lockHeldMs,
      lockHolds: ins.s.lockHolds,
      queryMs: ins.ms,
      queryCount: ins.count,
      sample,
    };
  } finally {
    if (projector) await projector.stop().catch(() => undefined);
    if (store) await store.close().catch(() => undefined);
    await dropSchema(schema);
    L.rmrf(dir);
  }
};

// ---------- subject 2: HTTP to the hub in a child process ----------

const startChild = async (dir, schema, appName) => {
  const port = await L.freePort();
  const child = spawn(process.execPath, [path.join(L.DIST, 'bootstrap/main.js')], {
    // Access control on (the default); the development login on, for the patients' tokens (off by default with
    // PostgreSQL); rate limits out of the way of a load test.
    env: { ...process.env, ...pgSettings(schema, dir), RTS_HTTP_PORT: String(port), RTS_HTTP_HOST: '127.0.0.1', PGAPPNAME: appName, RTS_AUTH_DEV_LOGIN: 'on', RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '1000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await Promise.race([L.waitForHttp(port), exited.then((e) => Promise.reject(new Error(`hub exited early: ${JSON.stringify(e)}`)))]);
  return { port, pid: child.pid, stop: async () => (child.kill('SIGTERM'), exited) };
};

const runHttp = async (inputs, concurrency) => {
  const schema = newSchema(`http_c${concurrency}`);
  const appName = `rts-bench-hub-${process.pid}`;
  const dir = L.tempDir(`pg-http${concurrency}`);
  let child = null;
  const sampler = new (L.pg().Client)({ connectionString: URL, application_name: 'rts-bench-admin' });
  await sampler.connect();
  try {
    child = await startChild(dir, schema, appName);
    const body = (o) => JSON.stringify({ patientId: o.patientId, systolic: o.systolic, diastolic: o.diastolic, measuredAt: o.measuredAt });
    // Access control is on, as `npm start` runs it (since issue 6): each patient uploads with their own token.
    const tokens = await L.patientTokens(child.port, inputs.map((o) => o.patientId));
    const post = (o) => ({ method: 'POST', path: '/observations', body: body(o), headers: { authorization: tokens.get(o.patientId) } });
    const warm = await L.runLoad({ port: child.port, concurrency, total: WARMUP, makeRequest: (i) => post(inputs[i % inputs.length]), expectStatus: 201 });
    if (warm.firstError) throw new Error(`warm-up: ${warm.firstError}`);
    // The hub's connections to the server while loaded (PGAPPNAME of the child): pool + LISTEN connection.
    let maxConnections = 0;
    let sampling = true;
    const sampling$ = (async () => {
      while (sampling) {
        maxConnections = Math.max(maxConnections, await L.pgConnectionsOf(sampler, appName).catch(() => 0));
        await L.sleep(100);
      }
    })();
    const wal0 = await L.pgStatWal(URL);
    const hubCpu0 = L.procCpuMs(child.pid);
    const clientCpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    const load = await L.runLoad({ port: child.port, concurrency, total: inputs.length, makeRequest: (i) => post(inputs[i]), expectStatus: 201 });
    const ackMs = L.msSince(t0);
    const hubCpuMs = L.procCpuMs(child.pid) - hubCpu0;
    const cu = process.cpuUsage(clientCpu0);
    sampling = false;
    await sampling$;
    if (load.firstError) throw new Error(`load: ${load.firstError}`);
    // A query makes the hub catch its projection up (read-your-writes): answered once every row is projected.
    const qr = await L.request(new http.Agent(), { port: child.port, method: 'GET', path: `/patients/${inputs[0].patientId}/observations`, headers: { authorization: tokens.get(inputs[0].patientId) } });
    const projectedMs = L.msSince(t0);
    if (qr.status !== 200) throw new Error(`query after load: HTTP ${qr.status} ${qr.body.slice(0, 200)}`);
    const exit = await child.stop();
    child = null;
    await L.sleep(300);
    const wal = L.pgWalDelta(wal0, await L.pgStatWal(URL));
    const counts = (await sampler.query(`SELECT (SELECT count(*) FROM ${q(schema)}.events WHERE event_type = 'DocumentSubmitted')::int AS events, (SELECT count(*) FROM ${q(schema)}.registry_entries)::int AS registry, (SELECT count(DISTINCT xmin::text) FROM ${q(schema)}.events)::int AS transactions, (SELECT count(*) FROM ${q(schema)}.events)::int AS allEvents`)).rows[0];
    const tables = await L.pgTableStats(URL, schema);
    const total = inputs.length + WARMUP;
    if (counts.events !== total || counts.registry !== total) throw new Error(`HTTP: ${counts.events} events / ${counts.registry} registry rows for ${total} requests`);
    // One checkpoint write per projection transaction (warm-up included): the average projection batch.
    const checkpointWrites = tables.projection_checkpoints ? tables.projection_checkpoints.ins + tables.projection_checkpoints.upd : NaN;
    return {
      n: inputs.length,
      concurrency,
      ackMs,
      projectedMs,
      latency: L.percentiles(load.latencies),
      statuses: load.statuses,
      // Distinct inserting transactions of the event rows (documents and their audit events); warm-up included.
      appendTx: counts.transactions,
      eventBatch: counts.allevents / counts.transactions,
      projectionTx: checkpointWrites,
      projectionBatch: total / checkpointWrites,
      wal,
      hubCpuMs,
      clientCpuMs: (cu.user + cu.system) / 1000,
      pool: { maxConnections },
      childExit: exit,
    };
  } finally {
    if (child) await child.stop().catch(() => undefined);
    await sampler.end().catch(() => undefined);
    await dropSchema(schema);
    L.rmrf(dir);
  }
};

// ---------- the baselines: raw pg ----------

/**
 * The same event rows and registry rows into a fresh schema (tables created by PostgresEventStore.open and
 * PostgresRegistry.open), synchronous_commit=on on every connection:
 *   `connections` appenders, each observation's event row in its own transaction (BEGIN; [the adapter's advisory
 *   lock;] INSERT [+ pg_notify]; COMMIT), and one registry writer that inserts the registry rows of committed
 *   events in transactions of `registryBatch` rows (one INSERT ... SELECT FROM unnest(...)), as the projector does.
 * Timed: until every event and registry row is committed. Latency: per event transaction (lock wait included).
 */
const runBaseline = async (rows, { connections, lock, notify, registryBatch, eventBatch = 1, keysBefore = [] }) => {
  const schema = newSchema(`base_${lock ? 'lock' : notify ? 'notify' : 'nolock'}`);
  const store = await PostgresEventStore.open({ connectionString: URL, schema });
  try {
    await PostgresRegistry.open(store, new PatientCipher({ keys: await PostgresKeyStore.open(store) }));
  } finally {
    await store.close();
  }
  const pool = new (L.pg().Pool)({ connectionString: URL, max: connections + 1, application_name: 'rts-bench-baseline' });
  pool.on('error', () => undefined);
  const clients = [];
  try {
    for (let i = 0; i < connections + 1; i++) {
      const client = await pool.connect();
      await client.query('SET synchronous_commit = on');
      clients.push(client);
    }
    const [registryClient, ...appendClients] = clients;
    const events = `${q(schema)}.events`;
    const registry = `${q(schema)}.registry_entries`;
    const channel = `rts_events_${schema}`.slice(0, 63);
    // The event rows of one transaction in one statement, as the store's batch INSERT (unnest of arrays).
    const insertRows = `INSERT INTO ${events} (stream_name, stream_version, event_id, event_type, data, metadata)
         SELECT n.s, n.v::bigint, n.id, n.t, n.d::jsonb, n.m::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS n(s, v, id, t, d, m)`;
    const insertEventSql = notify ? `WITH i AS (${insertRows} RETURNING global_position) SELECT pg_notify($7, max(global_position)::text) FROM i` : insertRows;
    // eventBatch counts event rows; an HTTP row brings two (the document's and its audit event).
    const perTx = Math.max(1, Math.round(eventBatch / (rows[0]?.audit ? 2 : 1)));
    const insertKeySql = `INSERT INTO ${q(schema)}.patient_keys (patient_key, data_key) VALUES ($1, $2) ON CONFLICT (patient_key) DO NOTHING`;
    const keyed = new Set(keysBefore);
    let keyTx = 0;
    const insertRegistrySql = `INSERT INTO ${registry} SELECT * FROM unnest(${L.PG_REGISTRY_TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})`;
    const batch = Math.max(1, Math.round(registryBatch));
    const latencies = new Float64Array(rows.length);
    const committed = [];
    let next = 0;
    let appendsDone = false;
    let wake = null;
    const signal = () => {
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    let eventTx = 0;
    let registryTx = 0;
    const appender = async (client) => {
      for (;;) {
        if (next >= rows.length) return;
        const idx = [];
        while (idx.length < perTx && next < rows.length) idx.push(next++);
        // An upload's audit event (HTTP rows carry one) goes with it, in the same transaction.
        const es = idx.flatMap((i) => (rows[i].audit ? [rows[i].event, rows[i].audit] : [rows[i].event]));
        const t0 = L.nowNs();
        // A new patient's data key first, in a transaction of its own, as PostgresKeyStore.createIfAbsent stores it
        // before the first event sealed with it.
        for (const i of idx) {
          const { registry: r, dataKey } = rows[i];
          if (dataKey === undefined || keyed.has(r[1])) continue;
          keyed.add(r[1]);
          await client.query({ name: 'insert-key', text: insertKeySql, values: [r[1], dataKey] });
          keyTx++;
        }
        await client.query('BEGIN');
        if (lock) await client.query('SELECT pg_advisory_xact_lock($1::int, hashtext($2))', [APPEND_LOCK_CLASS, schema]);
        const values = [es.map((e) => e.stream_name), es.map((e) => String(e.stream_version)), es.map((e) => e.event_id), es.map((e) => e.type), es.map((e) => e.data), es.map((e) => e.metadata)];
        if (notify) values.push(channel);
        await client.query({ name: 'insert-events', text: insertEventSql, values });
        await client.query('COMMIT');
        const ms = L.msSince(t0);
        for (const i of idx) latencies[i] = ms;
        eventTx++;
        committed.push(...idx);
        signal();
      }
    };
    const registryWriter = async () => {
      let written = 0;
      for (;;) {
        const ready = committed.length - written;
        if (ready >= batch || (appendsDone && ready > 0)) {
          const idx = committed.slice(written, written + batch);
          written += idx.length;
          const columns = L.PG_REGISTRY_TYPES.map((_, c) => idx.map((i) => rows[i].registry[c]));
          await registryClient.query('BEGIN');
          await registryClient.query({ name: 'insert-registry', text: insertRegistrySql, values: columns });
          await registryClient.query('COMMIT');
          registryTx++;
          continue;
        }
        if (appendsDone) return;
        await new Promise((r) => (wake = r));
      }
    };
    const wal0 = await L.pgStatWal(URL);
    const cpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    const writer = registryWriter();
    await Promise.all(appendClients.map(appender));
    appendsDone = true;
    signal();
    await writer;
    const ms = L.msSince(t0);
    const cu = process.cpuUsage(cpu0);
    const counts = (await registryClient.query(`SELECT (SELECT count(*) FROM ${events})::int AS events, (SELECT count(*) FROM ${registry})::int AS registry, (SELECT count(*) FROM ${q(schema)}.patient_keys)::int AS keys`)).rows[0];
    if (counts.keys !== keyTx) throw new Error(`baseline: ${counts.keys} key rows for ${keyTx} key transactions`);
    const expectedEvents = rows.length + rows.filter((r) => r.audit).length;
    if (counts.events !== expectedEvents || counts.registry !== rows.length) throw new Error(`baseline: ${counts.events} events / ${counts.registry} registry rows for ${rows.length}`);
    clients.splice(0).forEach((c) => c.release());
    await pool.end();
    await L.sleep(300);
    const wal = L.pgWalDelta(wal0, await L.pgStatWal(URL));
    return { n: rows.length, connections, lock, notify, registryBatch: batch, eventBatch: perTx, eventTx, keyTx, registryTx, ms, obsPerSec: rows.length / (ms / 1000), latency: L.percentiles(latencies), wal, cpuMs: (cu.user + cu.system) / 1000 };
  } finally {
    clients.forEach((c) => c.release());
    await pool.end().catch(() => undefined);
    await dropSchema(schema);
  }
};

const BASELINE_KINDS = {
  lock: { lock: true, notify: false },
  nolock: { lock: false, notify: false },
  notify: { lock: false, notify: true },
};

const runBaselines = async (rows, subject, tag, { keysBefore = [] } = {}) => {
  const connections = Math.min(subject.concurrency, POOL_MAX);
  const out = {};
  for (const kind of BASELINES) {
    // With one connection the three are the same serial commits; run the lock one only (plus nolock for reference).
    if (connections === 1 && kind === 'notify') continue;
    const b = await runBaseline(rows, { connections, registryBatch: subject.projectionBatch, eventBatch: subject.eventBatch, keysBefore, ...BASELINE_KINDS[kind] });
    out[kind] = b;
    log(
      `${tag}   baseline ${kind.padEnd(6)} (${connections} conn + 1, ${b.eventBatch} events per tx, registry batch ${b.registryBatch}): ${L.fmtInt(b.obsPerSec)} obs/s, ` +
        `tx p50 ${L.fmt(b.latency.p50)} ms p99 ${L.fmt(b.latency.p99)} ms, ${b.eventTx} + ${b.keyTx} key + ${b.registryTx} tx, WAL syncs ${b.wal.syncs} (${L.fmt(b.wal.syncs / b.n, 2)}/obs)`,
    );
  }
  return out;
};

const subjectObsPerSec = (s) => s.n / (s.ackMs / 1000);

const logRatios = (tag, s, bs) => {
  const acked = subjectObsPerSec(s);
  const parts = Object.entries(bs).map(([k, b]) => `vs ${k} ${L.fmt(acked / b.obsPerSec, 3)}`);
  if (bs.lock && bs.nolock) parts.push(`(lock cost: nolock/lock ${L.fmt(bs.nolock.obsPerSec / bs.lock.obsPerSec, 2)}x)`);
  log(`${tag}   ratio acked ${parts.join(', ')}`);
};

const breakdownLine = (s) => {
  const keys = Object.keys(s.queryMs).sort((a, b) => s.queryMs[b] - s.queryMs[a]);
  return keys.map((k) => `${k} ${L.fmt(s.queryMs[k] / s.queryCount[k], 2)} ms x${s.queryCount[k]}`).join('; ');
};

// ---------- main ----------

const main = async () => {
  const machine = L.machine();
  const server = await L.pgServer(URL);
  const started = Date.now();
  log(`ingest-postgres bench  n=${N} (c=1: ${N_SERIAL}) in-process concurrency=${CS.join(',')} http concurrency=${HTTP_C.join(',')} http n=${HTTP_N} rounds=${ROUNDS} baselines=${BASELINES.join(',')}`);
  log(`machine: ${JSON.stringify(machine)}`);
  log(`postgres: ${JSON.stringify(server)}`);
  log(`machine now: ${L.fmtPressure(L.pressure())}`);
  const inputs = makeInputs(Math.max(N, N_SERIAL, HTTP_N), 42);
  const makeRow = L.pgRowFactory({ repositoryUniqueId: REPOSITORY });
  const creationTime = L.isoSeconds(Math.floor(Date.now() / 1000));
  const rows = inputs.map((o) => makeRow(o, creationTime));
  // Over HTTP each upload also stores its audit event (since issue 6): those rows go with the HTTP baseline's.
  const makeAuditRow = L.auditRowFactory();
  const auditAt = new Date().toISOString();
  const httpRows = inputs.slice(0, HTTP_N).map((o) => {
    const row = makeRow(o, creationTime, { correlationId: randomUUID() });
    return { ...row, audit: makeAuditRow(row.registry[1], auditAt) };
  });
  log(`event data JSON: ${L.fmt(rows.reduce((a, r) => a + r.event.data.length, 0) / rows.length, 0)} bytes on average`);

  // Warm-up (JIT, the server's caches), not reported; also checks that the baseline's rows look like the hub's.
  if (runs('inproc')) {
    const w = await runInProcess(makeInputs(WARMUP, 7), 16, { sampleRow: true });
    const keys = (json) => Object.keys(JSON.parse(json)).sort().join(',');
    const hub = { data: keys(w.sample.data), metadata: keys(w.sample.metadata) };
    const ours = { data: keys(rows[0].event.data), metadata: keys(rows[0].event.metadata) };
    if (hub.data !== ours.data || hub.metadata !== ours.metadata) throw new Error(`baseline rows differ from the hub's: ${JSON.stringify({ hub, ours })}`);
    log(`baseline event rows have the hub's keys (data: ${hub.data}; metadata: ${hub.metadata})`);
  }
  await runBaseline(rows.slice(0, WARMUP), { connections: POOL_MAX, lock: true, notify: false, registryBatch: 10 });

  const results = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const r = { round, pressure: L.pressure(), pairs: [] };
    log(`\n[round ${round}] machine: ${L.fmtPressure(r.pressure)}`);
    if (runs('inproc')) {
      for (const c of CS) {
        const n = c === 1 ? N_SERIAL : N;
        const tag = `[round ${round}] in-process c=${c}`;
        const s = await runInProcess(inputs.slice(0, n), c);
        log(
          `${tag}: ${L.fmtInt(subjectObsPerSec(s))} obs/s acked, ${L.fmtInt(s.n / (s.projectedMs / 1000))} incl. projection; latency p50 ${L.fmt(s.latency.p50)} ms p99 ${L.fmt(s.latency.p99)} ms; ` +
            `${s.appendTx} append tx (${L.fmt(s.eventBatch, 1)} events each) + ${s.projectionTx} projection tx (batch ${L.fmt(s.projectionBatch, 1)}; checkpoint writes ${s.checkpointWrites}); pool max ${s.pool.maxConnections} conn, ${s.pool.maxWaiting} waiting`,
        );
        log(
          `${tag}   WAL syncs ${s.wal.syncs} (${L.fmt(s.wal.syncs / s.n, 2)}/obs); append lock held ${L.fmt(s.lockHeldMs, 0)} ms of ${L.fmt(s.ackMs, 0)} ms wall (${L.fmt((100 * s.lockHeldMs) / s.ackMs, 0)}%), ` +
            `${L.fmt(s.lockHeldMs / Math.max(1, s.lockHolds), 2)} ms per append transaction; CPU ${L.fmt((1000 * s.cpuMs) / s.n, 0)} us/obs (${L.fmt(s.cpuMs / s.projectedMs, 2)} cores)`,
        );
        log(`${tag}   per statement (mean ms x count): ${breakdownLine(s)}`);
        const bs = await runBaselines(rows.slice(0, n), s, tag);
        logRatios(tag, s, bs);
        r.pairs.push({ name: `in-process c=${c}`, subject: s, baselines: bs });
      }
    }
    if (runs('http')) {
      for (const hc of HTTP_C) {
        const tag = `[round ${round}] HTTP c=${hc}`;
        const s = await runHttp(inputs.slice(0, HTTP_N), hc);
        log(
          `${tag}: ${L.fmtInt(subjectObsPerSec(s))} obs/s acked, ${L.fmtInt(s.n / (s.projectedMs / 1000))} incl. projection; latency p50 ${L.fmt(s.latency.p50)} ms p99 ${L.fmt(s.latency.p99)} ms; ` +
            `${s.appendTx} append tx (${L.fmt(s.eventBatch, 1)} events each), projection batch ~${L.fmt(s.projectionBatch, 1)} (${s.projectionTx} checkpoint writes; both with the warm-up); hub connections max ${s.pool.maxConnections}`,
        );
        log(
          `${tag}   WAL syncs ${s.wal.syncs} (${L.fmt(s.wal.syncs / s.n, 2)}/obs); CPU hub ${L.fmt((1000 * s.hubCpuMs) / s.n, 0)} us/obs (${L.fmt(s.hubCpuMs / s.ackMs, 2)} cores), ` +
            `load generator ${L.fmt((1000 * s.clientCpuMs) / s.n, 0)} us/req`,
        );
        // The warm-up stored its patients' keys already: the baseline leaves those out.
        const bs = await runBaselines(httpRows, s, tag, { keysBefore: httpRows.slice(0, WARMUP).map((r) => r.registry[1]) });
        logRatios(tag, s, bs);
        r.pairs.push({ name: `HTTP c=${hc}`, subject: s, baselines: bs });
      }
    }
    r.pressureEnd = L.pressure();
    results.push(r);
  }

  // Summary: medians over rounds of each subject, its baselines and its per-round ratios.
  log(`\nsummary (median over ${ROUNDS} rounds; ratio = subject obs/s acked / baseline obs/s in the same round)`);
  log('subject          | obs/s acked | +proj  | p50 ms | p99 ms | proj batch | WAL syncs/obs | lock held % | base lock | base nolock | base notify | ratio lock | ratio nolock | nolock/lock');
  const names = results[0].pairs.map((p) => p.name);
  const summary = names.map((name) => {
    const ps = results.map((r) => r.pairs.find((p) => p.name === name));
    const m = (f) => L.median(ps.map(f).filter((x) => Number.isFinite(x)));
    const base = (k) => (p) => (p.baselines[k] ? p.baselines[k].obsPerSec : NaN);
    const row = {
      name,
      n: ps[0].subject.n,
      ackedObsPerSec: m((p) => subjectObsPerSec(p.subject)),
      projectedObsPerSec: m((p) => p.subject.n / (p.subject.projectedMs / 1000)),
      p50: m((p) => p.subject.latency.p50),
      p99: m((p) => p.subject.latency.p99),
      projectionBatch: m((p) => p.subject.projectionBatch),
      walSyncsPerObs: m((p) => p.subject.wal.syncs / p.subject.n),
      lockHeldShare: m((p) => (p.subject.lockHeldMs === undefined ? NaN : p.subject.lockHeldMs / p.subject.ackMs)),
      baseline: Object.fromEntries(BASELINES.map((k) => [k, { obsPerSec: m(base(k)), p50: m((p) => p.baselines[k]?.latency.p50), p99: m((p) => p.baselines[k]?.latency.p99), walSyncsPerObs: m((p) => (p.baselines[k] ? p.baselines[k].wal.syncs / p.baselines[k].n : NaN)) }])),
      ratioLock: m((p) => subjectObsPerSec(p.subject) / base('lock')(p)),
      ratioNolock: m((p) => subjectObsPerSec(p.subject) / base('nolock')(p)),
      ratiosLock: ps.map((p) => subjectObsPerSec(p.subject) / base('lock')(p)),
      lockCost: m((p) => base('nolock')(p) / base('lock')(p)),
    };
    const b = (k) => L.fmtInt(row.baseline[k]?.obsPerSec ?? NaN);
    log(
      `${name.padEnd(16)} | ${L.fmtInt(row.ackedObsPerSec).padStart(11)} | ${L.fmtInt(row.projectedObsPerSec).padStart(6)} | ${L.fmt(row.p50).padStart(6)} | ${L.fmt(row.p99).padStart(6)} | ` +
        `${L.fmt(row.projectionBatch, 1).padStart(10)} | ${L.fmt(row.walSyncsPerObs, 2).padStart(13)} | ${L.fmt(100 * row.lockHeldShare, 0).padStart(11)} | ${b('lock').padStart(9)} | ${b('nolock').padStart(11)} | ${b('notify').padStart(11)} | ` +
        `${L.fmt(row.ratioLock, 3).padStart(10)} | ${L.fmt(row.ratioNolock, 3).padStart(12)} | ${L.fmt(row.lockCost, 2).padStart(11)}`,
    );
    return row;
  });
  log(`machine at the end: ${L.fmtPressure(L.pressure())}; run took ${L.fmt((Date.now() - started) / 1000, 0)} s`);

  const out = args.json ? path.resolve(String(args.json)) : path.join(__dirname, 'results', `ingest-postgres-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const strip = (x) => JSON.parse(JSON.stringify(x, (k, v) => (k === 'latencies' || k === 'sample' ? undefined : v)));
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, server, params: { URL: URL.replace(/:[^:@/]*@/, ':***@'), N, N_SERIAL, CS, HTTP_C, HTTP_N, ROUNDS, BASELINES, WARMUP, POOL_MAX }, results: strip(results), summary }, null, 2));
  log(`results: ${path.relative(process.cwd(), out)}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
