'use strict';
/**
 * Ingest benchmark: how fast the hub stores observations, against raw better-sqlite3 inserts of the same rows.
 *
 *   node bench/ingest.js [--n 20000] [--concurrency 64] [--http-concurrency 32,64] [--http-n 10000] [--rounds 2]
 *                        [--only inproc,http] [--seed DIR] [--child-cpu-prof DIR] [--child-node-args="--flag ..."]
 *                        [--json FILE]
 *
 * Each round runs, in this order, each subject followed by its own baseline (so the two see the same machine):
 *   baseline(64)
 *   in-process : TeleMedService.record, `concurrency` calls in flight, registry projector running   -> baseline(its batch)
 *   HTTP c     : POST /observations to the hub in a child process, c requests in flight              -> baseline(its batch)
 * The baseline inserts the same event rows and registry rows with raw better-sqlite3, same PRAGMAs, one
 * BEGIN IMMEDIATE..COMMIT per batch of the size the subject achieved, and the key rows of new patients in the key
 * file, one commit per batch that has any, and for the HTTP subject each upload's audit event row (see
 * runInserts). Needs `npm run build` first.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const N = Number(args.n ?? 20_000);
const C = Number(args.concurrency ?? 64);
const HTTP_C = String(args['http-concurrency'] ?? '32,64').split(',').filter(Boolean).map(Number);
const HTTP_N = Number(args['http-n'] ?? Math.min(N, 10_000));
const ROUNDS = Number(args.rounds ?? 2);
const ONLY = args.only ? new Set(String(args.only).split(',')) : null;
const WARMUP = Number(args.warmup ?? 1000);
// The HTTP load generator: 'raw' (bare keep-alive sockets, L.runLoadRaw; from 2026-12-03, thirty-fourth session) or
// 'node-http' (node:http's Agent, L.runLoad; every run before). The same requests; the raw one spends ~50 µs of CPU
// per request where node:http spent ~110-170, on the cores the hub runs on.
const CLIENT = String(args.client ?? 'raw');
if (CLIENT !== 'raw' && CLIENT !== 'node-http') {
  console.error(`ingest.js: --client must be raw or node-http, not ${CLIENT}`);
  process.exit(2);
}
const runLoad = CLIENT === 'raw' ? L.runLoadRaw : L.runLoad;
const runs = (what) => ONLY === null || ONLY.has(what);
// --seed DIR: every subject and baseline starts from a copy of DIR/telemed.sqlite instead of an empty file (e.g.
// bench/.data/query-1000x1000, the query bench's 1,000,000 observations): ingest into a store that has been
// running for a while. Without it, every run starts from an empty file. The seed is first brought to where a hub
// that had been running would have it (see warmSeed), so no subject pays for a projection's first catch-up.
let SEED = args.seed ? path.resolve(String(args.seed)) : null;
/** What the seed holds (read once in main): left out of each run's counts. */
let SEEDED = { rows: 0, head: 0 };
const seedInto = (file) => fs.copyFileSync(path.join(SEED, 'telemed.sqlite'), file);

const { loadConfig } = L.dist('bootstrap/config');
const { buildContainer, TOKENS } = L.dist('bootstrap/container');
const { SqliteEventStore } = L.dist('adapters/event-store/sqlite/sqlite-event-store');
const { createTeleObservation } = L.dist('domain/monitoring/tele-observation');
const { WAL_SIZE_LIMIT_BYTES } = L.dist('adapters/event-store/sqlite/wal-checkpoint');

const REPOSITORY = loadConfig({}).RTS_REPOSITORY_UNIQUE_ID;
const log = (...a) => console.log(...a);

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

// ---------- subject 1: in-process ----------

const runInProcess = async (inputs, concurrency) => {
  const dir = L.tempDir('inproc');
  try {
    if (SEED) seedInto(path.join(dir, 'telemed.sqlite'));
    const config = loadConfig({ RTS_DATA_DIR: dir, RTS_LOG_LEVEL: 'warn', RTS_PSEUDONYM_SECRET: L.SECRET_HEX });
    const c = buildContainer(config);
    const store = c.get(SqliteEventStore);
    // Count the registry's write transactions, so append batches can be told from projection commits in stats().
    let exclusive = 0;
    const runExclusive = store.runExclusive.bind(store);
    store.runExclusive = (fn) => {
      exclusive++;
      return runExclusive(fn);
    };
    const breakdown = instrument(store);
    const projector = c.get(TOKENS.Projector);
    const telemed = c.get(TOKENS.TeleMed);
    const clock = c.get(TOKENS.Clock);
    projector.start(); // as startHub does: the registry projection runs alongside the appends
    // The library entry point takes a validated TeleObservation: validation is done before the clock starts.
    const now = clock.now();
    const observations = inputs.map(({ measuredEpoch: _epoch, ...i }) => createTeleObservation(i, now));
    const latencies = new Float64Array(observations.length);
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
    breakdown.stop();
    const stats = store.stats();
    const registryRows = store.database.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get() - SEEDED.rows;
    // Cross-check of the HTTP run's batch estimate (distinct recorded_at) against the exact stats() here.
    const batchesByRecordedAt = store.database.prepare('SELECT COUNT(DISTINCT recorded_at) FROM events WHERE global_position > ?').pluck().get(SEEDED.head);
    const eventDataBytes = store.database.prepare(`SELECT AVG(LENGTH(data)) FROM events WHERE type = 'DocumentSubmitted' AND global_position > ?`).pluck().get(SEEDED.head);
    await projector.stop();
    await store.close();
    if (registryRows !== observations.length) throw new Error(`in-process: ${registryRows} registry rows for ${observations.length} observations`);
    const appendCommits = stats.commits - exclusive;
    return {
      n: observations.length,
      ackMs,
      projectedMs,
      latency: L.percentiles(latencies),
      commits: stats.commits,
      appendCommits,
      projectionCommits: exclusive,
      avgBatch: stats.appends / appendCommits,
      largestBatch: stats.largestBatch,
      breakdownMs: breakdown.totals,
      avgBatchByRecordedAt: observations.length / batchesByRecordedAt,
      eventDataBytes,
      inlineApplied: stats.inlineApplied ?? 0,
      inlineDeclined: stats.inlineDeclined ?? 0,
      cpuMs: (cu.user + cu.system) / 1000,
    };
  } finally {
    L.rmrf(dir);
  }
};

/**
 * Simple timers around the synchronous sections of the in-process path (bench-only wrappers on this run's
 * instances and on two module exports the compiled code calls through `exports.`): where the wall time goes.
 * A few hrtime calls per observation; the wrappers are removed by stop().
 */
const instrument = (store) => {
  const totals = { appendBatch: 0, 'appendBatch.COMMIT': 0, projectionTx: 0, 'projectionTx.COMMIT': 0, 'projectionTx.evolve(HL7 parse)': 0, readAll: 0, readStream: 0, buildDocument: 0 };
  let active = null;
  const undo = [];
  const wrap = (obj, name, key, { setActive = false } = {}) => {
    const orig = obj[name];
    const own = Object.prototype.hasOwnProperty.call(obj, name);
    obj[name] = function (...a) {
      const prev = active;
      if (setActive) active = key;
      const t0 = L.nowNs();
      try {
        return orig.apply(this, a);
      } finally {
        totals[key] += L.msSince(t0);
        active = prev;
      }
    };
    undo.push(() => (own ? (obj[name] = orig) : delete obj[name]));
  };
  wrap(store, 'runBatch', 'appendBatch', { setActive: true });
  wrap(store, 'runExclusiveJob', 'projectionTx', { setActive: true });
  wrap(store, 'readAll', 'readAll'); // async, but its work is synchronous: the call's duration is the work
  wrap(store, 'readStream', 'readStream');
  const db = store.database;
  const exec = db.exec;
  db.exec = function (sql) {
    if (sql !== 'COMMIT' || active === null) return exec.call(this, sql);
    const t0 = L.nowNs();
    try {
      return exec.call(this, sql);
    } finally {
      totals[`${active}.COMMIT`] += L.msSince(t0);
    }
  };
  undo.push(() => delete db.exec);
  wrap(L.dist('application/projections/registry-projection'), 'evolveRegistryEntry', 'projectionTx.evolve(HL7 parse)');
  wrap(L.dist('application/telemed'), 'buildDocument', 'buildDocument');
  return { totals, stop: () => undo.forEach((f) => f()) };
};

// ---------- subject 2: HTTP to the hub in a child process ----------

const startChild = async (dir, cpuProfDir) => {
  const port = await L.freePort();
  const nodeArgs = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  // Extra flags for the hub's node (e.g. GC settings to compare), space-separated.
  if (args['child-node-args']) nodeArgs.push(...String(args['child-node-args']).split(/\s+/).filter(Boolean));
  const child = spawn(process.execPath, [...nodeArgs, path.join(L.DIST, 'bootstrap/main.js')], {
    env: { ...process.env, RTS_DATA_DIR: dir, RTS_HTTP_PORT: String(port), RTS_HTTP_HOST: '127.0.0.1', RTS_LOG_LEVEL: 'warn', RTS_PSEUDONYM_SECRET: L.SECRET_HEX, RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '1000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await Promise.race([L.waitForHttp(port), exited.then((e) => Promise.reject(new Error(`hub exited early: ${JSON.stringify(e)}`)))]);
  return { port, pid: child.pid, stop: async () => (child.kill('SIGTERM'), exited) };
};

const seededOf = (file) => {
  const db = new L.BetterSqlite3(file, { readonly: true });
  try {
    return {
      rows: db.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get(),
      head: db.prepare('SELECT COALESCE(MAX(global_position), 0) FROM events').pluck().get(),
    };
  } finally {
    db.close();
  }
};

/** Whether every projection the hub keeps in the file has its checkpoint at the head (false for a file no hub ran on). */
const projectionsAtHead = (file) => {
  const db = new L.BetterSqlite3(file, { readonly: true });
  try {
    const head = db.prepare('SELECT COALESCE(MAX(global_position), 0) FROM events').pluck().get();
    const tables = new Set(db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all());
    if (!tables.has('projection_checkpoints')) return false;
    const at = new Map(db.prepare('SELECT name, position FROM projection_checkpoints').all().map((r) => [r.name, r.position]));
    return ['registry', 'directory', 'consultations'].every((name) => at.get(name) === head);
  } finally {
    db.close();
  }
};

/**
 * A seed as a hub that has been running leaves it: a dataset written without the hub (the query bench's) has only
 * the registry's checkpoint, and a hub started on it would spend its first ~30 s reading every event into the
 * directory and consultation projections, during the measured uploads. So the hub runs once on a copy
 * (`<seed>-hub`, kept for the next runs) until those checkpoints reach the head.
 */
const warmSeed = async (seed) => {
  if (projectionsAtHead(path.join(seed, 'telemed.sqlite'))) return seed;
  const warm = `${seed}-hub`;
  const warmFile = path.join(warm, 'telemed.sqlite');
  if (fs.existsSync(warmFile) && fs.statSync(warmFile).mtimeMs >= fs.statSync(path.join(seed, 'telemed.sqlite')).mtimeMs && projectionsAtHead(warmFile)) return warm;
  log(`the seed's projections are behind its head: running the hub once on a copy (${path.relative(L.ROOT, warm)}) to catch them up ...`);
  L.rmrf(warm);
  fs.mkdirSync(warm, { recursive: true });
  fs.copyFileSync(path.join(seed, 'telemed.sqlite'), warmFile);
  const t0 = L.nowNs();
  const child = await startChild(warm);
  try {
    while (!projectionsAtHead(warmFile)) await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    await child.stop();
  }
  log(`  caught up in ${L.fmt(L.msSince(t0) / 1000, 1)} s`);
  return warm;
};

const runHttp = async (inputs, concurrency) => {
  const dir = L.tempDir(`http${concurrency}`);
  try {
    if (SEED) seedInto(path.join(dir, 'telemed.sqlite'));
    const child = await startChild(dir, args['child-cpu-prof'] ? path.resolve(String(args['child-cpu-prof'])) : undefined);
    const body = (o) => JSON.stringify({ patientId: o.patientId, systolic: o.systolic, diastolic: o.diastolic, measuredAt: o.measuredAt });
    // Access control is on, as `npm start` runs it: each patient uploads with their own token (JWT verified per
    // request), fetched from the development login before the clock starts.
    const tokens = await L.patientTokens(child.port, inputs.map((o) => o.patientId));
    const post = (o) => ({ method: 'POST', path: '/observations', body: body(o), headers: { authorization: tokens.get(o.patientId) } });
    // Warm-up (JIT, connections): not measured, and its rows are left out of the batch estimate below.
    const warm = await runLoad({ port: child.port, concurrency, total: WARMUP, makeRequest: (i) => post(inputs[i % inputs.length]), expectStatus: 201 });
    if (warm.firstError) throw new Error(`warm-up: ${warm.firstError}`);
    // Where the measured part starts in the store (audit events of the warm-up also take positions).
    const startDb = new L.BetterSqlite3(path.join(dir, 'telemed.sqlite'), { readonly: true });
    const startPosition = startDb.prepare('SELECT COALESCE(MAX(global_position), 0) FROM events').pluck().get();
    startDb.close();
    const hubCpu0 = L.procCpuMs(child.pid);
    const hubMain0 = L.procCpuMs(child.pid, { mainThread: true });
    const clientCpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    const load = await runLoad({ port: child.port, concurrency, total: inputs.length, makeRequest: (i) => post(inputs[i]), expectStatus: 201 });
    const ackMs = L.msSince(t0);
    const hubCpuMs = L.procCpuMs(child.pid) - hubCpu0;
    const hubMainMs = L.procCpuMs(child.pid, { mainThread: true }) - hubMain0;
    const cu = process.cpuUsage(clientCpu0);
    const clientCpuMs = (cu.user + cu.system) / 1000;
    if (load.firstError) throw new Error(`load: ${load.firstError}`);
    // A query makes the hub catch its projection up (read-your-writes): answered once every row is projected.
    const agent = new (require('node:http').Agent)();
    const q = await L.request(agent, { port: child.port, method: 'GET', path: `/patients/${inputs[0].patientId}/observations`, headers: { authorization: tokens.get(inputs[0].patientId) } });
    const projectedMs = L.msSince(t0);
    if (q.status !== 200) throw new Error(`query after load: HTTP ${q.status} ${q.body.slice(0, 200)}`);
    const exit = await child.stop();
    // Every append of one group-commit batch has the same recorded_at (taken once per batch, ms resolution):
    // distinct values give the number of batches (a lower bound, if two batches ever fell in the same ms).
    const db = new L.BetterSqlite3(path.join(dir, 'telemed.sqlite'), { readonly: true });
    const { events, batches, dataBytes, metadataBytes } = db
      .prepare(`SELECT COUNT(*) AS events, COUNT(DISTINCT recorded_at) AS batches, AVG(LENGTH(data)) AS dataBytes, AVG(LENGTH(metadata)) AS metadataBytes FROM events WHERE global_position > ? AND type = 'DocumentSubmitted'`)
      .get(startPosition);
    // All appends of the run, documents and audit events: their distinct recorded_at are the store's commits.
    const all = db
      .prepare(`SELECT COUNT(*) AS events, COUNT(DISTINCT recorded_at) AS commits, COUNT(DISTINCT CASE WHEN type = 'DocumentSubmitted' THEN NULL ELSE recorded_at END) AS otherCommits FROM events WHERE global_position > ?`)
      .get(startPosition);
    const registryRows = db.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get() - SEEDED.rows;
    db.close();
    if (events !== inputs.length || registryRows !== inputs.length + WARMUP) {
      throw new Error(`HTTP: ${events} events / ${registryRows} registry rows for ${inputs.length} (+${WARMUP} warm-up) requests`);
    }
    return {
      n: inputs.length,
      concurrency,
      ackMs,
      projectedMs,
      latency: L.percentiles(load.latencies),
      statuses: load.statuses,
      avgBatch: events / batches,
      batches,
      eventDataBytes: dataBytes,
      eventMetadataBytes: metadataBytes,
      allEvents: all.events,
      allCommits: all.commits,
      otherCommits: all.otherCommits,
      authorizationLength: tokens.get(inputs[0].patientId).length,
      hubCpuMs,
      hubMainMs,
      clientCpuMs,
      childExit: exit,
    };
  } finally {
    L.rmrf(dir);
  }
};

/**
 * The HTTP floor: bench/http-floor-server.js (the project's fastify with a route that only parses the body and
 * answers) in a child process, loaded exactly like the hub (same bodies, an Authorization header of the same
 * length, warm-up, concurrency). Its CPU per request is what HTTP costs a thread here before any of the hub's work.
 */
const runHttpFloor = async (inputs, concurrency, authorizationLength) => {
  const port = await L.freePort();
  const child = spawn(process.execPath, [path.join(__dirname, 'http-floor-server.js')], { env: { ...process.env, RTS_HTTP_PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await Promise.race([L.waitForHttp(port), exited.then((e) => Promise.reject(new Error(`floor server exited early: ${JSON.stringify(e)}`)))]);
    const bearer = `Bearer ${'x'.repeat(authorizationLength - 'Bearer '.length)}`; // as long as the hub's header
    const post = (o) => ({ method: 'POST', path: '/observations', body: JSON.stringify({ patientId: o.patientId, systolic: o.systolic, diastolic: o.diastolic, measuredAt: o.measuredAt }), headers: { authorization: bearer } });
    const warm = await runLoad({ port, concurrency, total: WARMUP, makeRequest: (i) => post(inputs[i % inputs.length]), expectStatus: 201 });
    if (warm.firstError) throw new Error(`floor warm-up: ${warm.firstError}`);
    const cpu0 = L.procCpuMs(child.pid);
    const main0 = L.procCpuMs(child.pid, { mainThread: true });
    const t0 = L.nowNs();
    const load = await runLoad({ port, concurrency, total: inputs.length, makeRequest: (i) => post(inputs[i]), expectStatus: 201 });
    const wallMs = L.msSince(t0);
    const cpuMs = L.procCpuMs(child.pid) - cpu0;
    const mainMs = L.procCpuMs(child.pid, { mainThread: true }) - main0;
    if (load.firstError) throw new Error(`floor load: ${load.firstError}`);
    return { reqPerSec: inputs.length / (wallMs / 1000), cpuUsPerReq: (cpuMs * 1000) / inputs.length, mainUsPerReq: (mainMs * 1000) / inputs.length, cores: cpuMs / wallMs, mainBusy: mainMs / wallMs };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
};

// ---------- the baseline: raw better-sqlite3 ----------

/**
 * Rows into a fresh file with the store's PRAGMAs, `batch` observations per transaction: the event row (with
 * recorded_at taken once per batch, as the store does) and the registry row, both in the one transaction.
 * `rowAt(i)` gives observation i's rows; the clock runs around all of it.
 *
 * Key rows: a sealed row carries its patient's data key (`dataKey`). The hub stores a patient's key, durably, in
 * its own file before the first event sealed with it; so does this baseline: per batch, one transaction on a key
 * file with the key store's PRAGMAs inserts the keys of the batch's patients not seen before (fewer commits than
 * the hub makes, which groups keys per tick). `keysBefore`: patient keys already stored (the HTTP warm-up's);
 * `keyRows: false` leaves key rows out (the baseline of the figures before 2026-11-30, still printed).
 *
 * Audit rows: a row with `audit` (the HTTP subject's rows) also inserts that audit event row, in the same
 * transaction as the observation's own rows; `auditRows: false` leaves them out. The hub commits an upload's audit
 * event in a later batch than its document, so this is the cheaper way for the baseline, never the dearer.
 */
const runInserts = (label, n, rowAt, batch, { keyRows = true, keysBefore = [], auditRows = true } = {}) => {
  const dir = L.tempDir(label);
  const file = path.join(dir, `${label}.sqlite`);
  try {
    if (SEED) seedInto(file);
    else L.createSchema(file);
    const db = new L.BetterSqlite3(file);
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('temp_store = MEMORY');
    // The rest of the store's connection settings (configure() in sqlite-event-store.ts): not durability, but what
    // its writes cost (freed cells zeroed in page splits; the WAL cut back to the limit after a checkpoint).
    db.pragma('secure_delete = ON');
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    const keyDb = L.openKeyFile(path.join(dir, `${label}-keys.sqlite`));
    const insertKey = keyDb.prepare(L.INSERT_KEY_SQL);
    const keyed = new Set(keysBefore);
    const insertEvent = db.prepare(L.INSERT_EVENT_SQL);
    const insertRegistry = db.prepare(L.INSERT_REGISTRY_SQL);
    const size = Math.max(1, Math.round(batch));
    let commits = 0;
    let commitMs = 0;
    let keyCommits = 0;
    let keysStored = 0;
    const cpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    for (let start = 0; start < n; start += size) {
      const end = Math.min(n, start + size);
      const rows = [];
      for (let i = start; i < end; i++) rows.push(rowAt(i));
      const recordedAt = new Date().toISOString();
      if (keyRows) {
        let open = false;
        for (const { registry, dataKey } of rows) {
          if (dataKey === undefined || keyed.has(registry[1])) continue;
          keyed.add(registry[1]);
          if (!open) keyDb.exec('BEGIN IMMEDIATE');
          open = true;
          insertKey.run(registry[1], dataKey, recordedAt);
          keysStored++;
        }
        if (open) {
          keyDb.exec('COMMIT');
          keyCommits++;
        }
      }
      db.exec('BEGIN IMMEDIATE');
      for (const { event: e, registry, audit: a } of rows) {
        insertEvent.run(e.stream_name, e.stream_version, e.event_id, e.type, e.data, e.metadata, recordedAt);
        insertRegistry.run(registry);
        if (auditRows && a !== undefined) insertEvent.run(a.stream_name, a.stream_version, a.event_id, a.type, a.data, a.metadata, recordedAt);
      }
      const tc = L.nowNs();
      db.exec('COMMIT');
      commitMs += L.msSince(tc);
      commits++;
    }
    const ms = L.msSince(t0);
    const cu = process.cpuUsage(cpu0);
    db.close();
    keyDb.close();
    return { n, batch: size, commits, commitMs, keyCommits, keysStored, ms, obsPerSec: n / (ms / 1000), cpuMs: (cu.user + cu.system) / 1000 };
  } finally {
    L.rmrf(dir);
  }
};

/**
 * The raw baseline: the same rows, built (JSON, HL7 content, seal, hash, ids) before the clock starts, so only
 * SQLite work is timed.
 */
const runBaseline = (rows, batch, options) => runInserts('baseline', rows.length, (i) => rows[i], batch, options);

/**
 * A reference without the hub: the same work written directly, in one loop, with the clock running. Per
 * observation: the HL7 document and its metadata (buildDocument), the pseudonymous key (HMAC), hash, ids, the
 * sealed payload, the event JSON, then a new patient's key row, the event row and the registry row inserted as in
 * runBaseline, `batch` per transaction. What it leaves out that the hub does: idempotency and version checks, and reading the values back out of the sealed document for the registry. hub / direct is the
 * cost of the hub's structure; direct / raw the cost of the work itself.
 */
const runDirect = (inputs, batch, creationTime) => {
  const make = L.sealedRowFactory({ repositoryUniqueId: REPOSITORY, cacheKeys: false });
  return runInserts('direct', inputs.length, (i) => make(inputs[i], creationTime), batch);
};

// ---------- main ----------

const main = async () => {
  const machine = L.machine();
  log(`ingest bench  n=${N} in-process concurrency=${C} http concurrency=${HTTP_C.join(',')} http n=${HTTP_N} rounds=${ROUNDS} http client=${CLIENT}`);
  log(`machine: ${JSON.stringify(machine)}`);
  if (SEED) {
    SEED = await warmSeed(SEED);
    SEEDED = seededOf(path.join(SEED, 'telemed.sqlite'));
    log(`every subject and baseline starts from a copy of ${path.relative(L.ROOT, SEED) || SEED}/telemed.sqlite (${L.fmtInt(SEEDED.rows)} observations)`);
  }
  log(`machine now: ${L.fmtPressure(L.pressure())}`);
  const inputs = makeInputs(Math.max(N, HTTP_N), 42);
  // The baseline inserts the rows the hub writes: the document sealed under the patient's key (issue 7). The
  // plaintext rows of the first figures (before sealing) are kept as a second reference at batch 64.
  const makeRow = L.sealedRowFactory({ repositoryUniqueId: REPOSITORY });
  const makePlainRow = L.rowFactory({ repositoryUniqueId: REPOSITORY });
  const creationTime = L.isoSeconds(Math.floor(Date.now() / 1000));
  const rowsFor = (n) => inputs.slice(0, n).map((o) => makeRow(o, creationTime));
  const rows = rowsFor(N);
  const plainRows = inputs.slice(0, N).map((o) => makePlainRow(o, creationTime));
  // Over HTTP each upload also stores its audit event: those rows go with the HTTP baseline's rows (a copy, so
  // the in-process baseline's rows stay without them).
  const makeAuditRow = L.auditRowFactory();
  const auditAt = new Date().toISOString();
  // An upload over HTTP also carries its request id as the document event's correlationId (metadata
  // {"correlationId","causationId"}, as the hub writes it; the audit event has the same id): ~54 bytes more per row.
  const httpRows = (HTTP_N === N ? rows : rowsFor(HTTP_N)).map((row) => {
    const audit = makeAuditRow(row.registry[1], auditAt);
    const { correlationId } = JSON.parse(audit.metadata);
    const { causationId } = JSON.parse(row.event.metadata);
    return { ...row, event: { ...row.event, metadata: JSON.stringify({ correlationId, causationId }) }, audit };
  });
  const avgBytes = (rs, field = 'data') => rs.reduce((a, r) => a + r.event[field].length, 0) / rs.length;
  log(`event data JSON: ${L.fmt(avgBytes(rows), 0)} bytes on average, sealed as the hub stores it (plaintext: ${L.fmt(avgBytes(plainRows), 0)} bytes, HL7 content ${JSON.parse(plainRows[0].event.data).content.length} bytes)`);

  // Warm-up of this process (JIT of the core and of better-sqlite3): not reported.
  if (runs('inproc')) await runInProcess(makeInputs(2000, 7), C);
  runBaseline(rows.slice(0, 2000), 64);

  const results = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const r = { round, pairs: [] };
    const b64 = runBaseline(rows, 64);
    r.baseline64 = b64;
    r.baseline64Plain = runBaseline(plainRows, 64);
    r.pressure = L.pressure();
    log(`\n[round ${round}] machine: ${L.fmtPressure(r.pressure)}`);
    log(`[round ${round}] baseline batch=64: ${L.fmtInt(b64.obsPerSec)} obs/s (${L.fmt(b64.ms, 0)} ms, ${b64.commits} commits, CPU ${L.fmt((1000 * b64.cpuMs) / b64.n, 0)} us/obs); plaintext rows: ${L.fmtInt(r.baseline64Plain.obsPerSec)} obs/s`);
    if (runs('inproc')) {
      const s = await runInProcess(inputs.slice(0, N), C);
      const b = runBaseline(rows, s.avgBatch);
      const bNoKeys = runBaseline(rows, s.avgBatch, { keyRows: false });
      const acked = N / (s.ackMs / 1000);
      const projected = N / (s.projectedMs / 1000);
      r.pairs.push({ name: `in-process c=${C}`, subject: s, baseline: b, baselineNoKeys: bNoKeys, ratioAckedNoKeys: acked / bNoKeys.obsPerSec, ackedObsPerSec: acked, projectedObsPerSec: projected, ratioAcked: acked / b.obsPerSec, ratioProjected: projected / b.obsPerSec });
      log(
        `[round ${round}] in-process c=${C}: ${L.fmtInt(acked)} obs/s acked, ${L.fmtInt(projected)} obs/s incl. projection; ` +
          `latency p50 ${L.fmt(s.latency.p50)} ms p99 ${L.fmt(s.latency.p99)} ms; avg batch ${L.fmt(s.avgBatch, 1)} (largest ${s.largestBatch}, ` +
          `${s.appendCommits} append + ${s.projectionCommits} projection commits; estimate from recorded_at ${L.fmt(s.avgBatchByRecordedAt, 1)}); ` +
          `registry rows inline in ${s.inlineApplied} batches, left to the projector in ${s.inlineDeclined}; event data ${L.fmt(s.eventDataBytes, 0)} bytes on average`,
      );
      log(`[round ${round}]   CPU of this process ${L.fmt(s.cpuMs, 0)} ms (${L.fmt((1000 * s.cpuMs) / N, 0)} us/obs, ${L.fmt(s.cpuMs / s.projectedMs, 2)} cores)`);
      log(`[round ${round}]   where the ${L.fmt(s.projectedMs, 0)} ms went (synchronous sections, ms): ${Object.entries(s.breakdownMs).map(([k, v]) => `${k} ${L.fmt(v, 0)}`).join(', ')}`);
      log(`[round ${round}]   baseline batch=${b.batch}: ${L.fmtInt(b.obsPerSec)} obs/s (CPU ${L.fmt((1000 * b.cpuMs) / b.n, 0)} us/obs; ${b.keysStored} key rows in ${b.keyCommits} key-file commits) -> ratio acked ${L.fmt(acked / b.obsPerSec, 3)}, incl. projection ${L.fmt(projected / b.obsPerSec, 3)}`);
      log(`[round ${round}]   baseline batch=${bNoKeys.batch} without the key rows (as before 2026-11-30): ${L.fmtInt(bNoKeys.obsPerSec)} obs/s -> ratio acked ${L.fmt(acked / bNoKeys.obsPerSec, 3)}`);
      // Both sides wait through one COMMIT (its fsync) per batch and do the rest on this thread in between; the
      // ratio is (COMMIT + rest of the baseline) / (COMMIT + rest of the hub) per batch: the faster the disk
      // commits, the more the hub's own work per upload weighs (bench/README, "The in-process ratio and the disk").
      const hubCommitMs = s.breakdownMs['appendBatch.COMMIT'] / s.appendCommits;
      const hubRestUs = (1000 * (s.ackMs - s.breakdownMs['appendBatch.COMMIT'])) / s.n;
      log(
        `[round ${round}]   per batch: COMMIT ${L.fmt(b.commitMs / b.commits, 2)} ms (baseline) / ${L.fmt(hubCommitMs, 2)} ms (hub); the rest per observation ` +
          `${L.fmt((1000 * (b.ms - b.commitMs)) / b.n, 0)} us (baseline) / ${L.fmt(hubRestUs, 0)} us (hub)`,
      );
      const d = runDirect(inputs.slice(0, N), s.avgBatch, creationTime);
      r.pairs[r.pairs.length - 1].direct = d;
      log(`[round ${round}]   reference, the same work without the hub (build, seal, insert) batch=${d.batch}: ${L.fmtInt(d.obsPerSec)} obs/s (CPU ${L.fmt((1000 * d.cpuMs) / d.n, 0)} us/obs) -> hub/direct ${L.fmt(acked / d.obsPerSec, 3)}, direct/raw ${L.fmt(d.obsPerSec / b.obsPerSec, 3)}`);
    }
    if (runs('http')) {
      for (const hc of HTTP_C) {
        const s = await runHttp(inputs.slice(0, HTTP_N), hc);
        // The warm-up's uploads stored keys for their patients before the clock started: not counted here either.
        const keysBefore = httpRows.slice(0, Math.min(WARMUP, HTTP_N)).map((row) => row.registry[1]);
        const b = runBaseline(httpRows, s.avgBatch, { keysBefore });
        const bNoAudit = runBaseline(httpRows, s.avgBatch, { keysBefore, auditRows: false });
        const floor = await runHttpFloor(inputs.slice(0, HTTP_N), hc, s.authorizationLength);
        const acked = HTTP_N / (s.ackMs / 1000);
        const projected = HTTP_N / (s.projectedMs / 1000);
        // One thread that spends the floor's CPU on each request and then the baseline's own time on its rows
        // (the COMMIT runs on that thread, so its fsync wait counts): the most this design can reach.
        const baselineUs = 1e6 / b.obsPerSec;
        const bound = baselineUs / (floor.mainUsPerReq + baselineUs);
        // And the other way round: this hub's CPU per upload (all its threads) plus the load generator's, spread
        // perfectly over the machine's cores, gives the shortest time per upload any arrangement of the same work
        // in threads could reach here; the baseline's time per row over that is the most such a hub could reach.
        const cpuUsPerUpload = (1000 * (s.hubCpuMs + s.clientCpuMs)) / HTTP_N;
        const coresBound = baselineUs / (cpuUsPerUpload / os.cpus().length);
        r.pairs.push({ name: `HTTP c=${hc}`, subject: s, baseline: b, baselineNoAudit: bNoAudit, floor, bound, coresBound, ratioAckedNoAudit: acked / bNoAudit.obsPerSec, ackedObsPerSec: acked, projectedObsPerSec: projected, ratioAcked: acked / b.obsPerSec, ratioProjected: projected / b.obsPerSec });
        log(
          `[round ${round}] HTTP c=${hc}: ${L.fmtInt(acked)} obs/s acked, ${L.fmtInt(projected)} obs/s incl. projection; ` +
            `latency p50 ${L.fmt(s.latency.p50)} ms p99 ${L.fmt(s.latency.p99)} ms; avg batch ~${L.fmt(s.avgBatch, 1)} (${s.batches} batches)` +
            `; all events ${s.allEvents} in ${s.allCommits} commits (${s.otherCommits} holding other events than documents)` +
            `; document event data ${L.fmt(s.eventDataBytes, 0)} + metadata ${L.fmt(s.eventMetadataBytes, 0)} bytes on average (baseline's: ${L.fmt(avgBytes(httpRows), 0)} + ${L.fmt(avgBytes(httpRows, 'metadata'), 0)})`,
        );
        log(
          `[round ${round}]   CPU while loaded: hub ${L.fmt(s.hubCpuMs, 0)} ms (${L.fmt((1000 * s.hubCpuMs) / HTTP_N, 0)} us/obs, ${L.fmt(s.hubCpuMs / s.ackMs, 2)} cores; main thread ${L.fmt((1000 * s.hubMainMs) / HTTP_N, 0)} us/obs, ${L.fmt((100 * s.hubMainMs) / s.ackMs, 0)} % busy), ` +
            `load generator ${L.fmt(s.clientCpuMs, 0)} ms (${L.fmt((1000 * s.clientCpuMs) / HTTP_N, 0)} us/req), wall ${L.fmt(s.ackMs, 0)} ms`,
        );
        log(`[round ${round}]   baseline batch=${b.batch}: ${L.fmtInt(b.obsPerSec)} obs/s (CPU ${L.fmt((1000 * b.cpuMs) / b.n, 0)} us/obs; ${b.keysStored} key rows in ${b.keyCommits} key-file commits; with audit rows) -> ratio acked ${L.fmt(acked / b.obsPerSec, 3)}, incl. projection ${L.fmt(projected / b.obsPerSec, 3)}`);
        log(`[round ${round}]   baseline batch=${bNoAudit.batch} without the audit rows (as before 2026-11-30): ${L.fmtInt(bNoAudit.obsPerSec)} obs/s -> ratio acked ${L.fmt(acked / bNoAudit.obsPerSec, 3)}`);
        log(
          `[round ${round}]   HTTP floor (fastify, a route that only parses and answers) c=${hc}: ${L.fmtInt(floor.reqPerSec)} req/s, CPU ${L.fmt(floor.cpuUsPerReq, 0)} us/req (${L.fmt(floor.cores, 2)} cores), ` +
            `main thread ${L.fmt(floor.mainUsPerReq, 0)} us/req (${L.fmt(100 * floor.mainBusy, 0)} % busy); one thread paying that plus the baseline's ${L.fmt(baselineUs, 0)} us/obs reaches at most ratio ${L.fmt(bound, 3)}`,
        );
        log(
          `[round ${round}]   CPU bound: hub + load generator ${L.fmt(cpuUsPerUpload, 0)} us of CPU per upload on ${os.cpus().length} cores; ` +
            `the same work spread perfectly over them would reach at most ratio ${L.fmt(coresBound, 3)}`,
        );
      }
    }
    results.push(r);
  }

  // Summary: medians over rounds of each subject and of its ratio to its own baseline.
  log('\nsummary (median over rounds; ratio = subject / raw baseline at the subject\'s batch size)');
  log('subject            | obs/s acked | obs/s +proj | p50 ms | p99 ms | batch | baseline obs/s | ratio acked | ratio +proj');
  const names = results[0].pairs.map((p) => p.name);
  const summary = names.map((name) => {
    const ps = results.map((r) => r.pairs.find((p) => p.name === name));
    const m = (f) => L.median(ps.map(f));
    const row = {
      name,
      ackedObsPerSec: m((p) => p.ackedObsPerSec),
      projectedObsPerSec: m((p) => p.projectedObsPerSec),
      p50: m((p) => p.subject.latency.p50),
      p99: m((p) => p.subject.latency.p99),
      batch: m((p) => p.subject.avgBatch),
      baselineObsPerSec: m((p) => p.baseline.obsPerSec),
      ratioAcked: m((p) => p.ratioAcked),
      ratioProjected: m((p) => p.ratioProjected),
    };
    log(
      `${name.padEnd(18)} | ${L.fmtInt(row.ackedObsPerSec).padStart(11)} | ${L.fmtInt(row.projectedObsPerSec).padStart(11)} | ${L.fmt(row.p50).padStart(6)} | ` +
        `${L.fmt(row.p99).padStart(6)} | ${L.fmt(row.batch, 1).padStart(5)} | ${L.fmtInt(row.baselineObsPerSec).padStart(14)} | ${L.fmt(row.ratioAcked, 3).padStart(11)} | ${L.fmt(row.ratioProjected, 3).padStart(11)}`,
    );
    return row;
  });
  log(`baseline batch=64 (median): ${L.fmtInt(L.median(results.map((r) => r.baseline64.obsPerSec)))} obs/s; plaintext rows ${L.fmtInt(L.median(results.map((r) => r.baseline64Plain.obsPerSec)))} obs/s`);
  const inproc = results.map((r) => r.pairs.find((p) => p.ratioAckedNoKeys !== undefined)).filter(Boolean);
  if (inproc.length > 0) {
    log(`in-process against the baseline without key rows (as before 2026-11-30), median: ratio acked ${L.fmt(L.median(inproc.map((p) => p.ratioAckedNoKeys)), 3)}; hub/direct ${L.fmt(L.median(inproc.map((p) => p.ackedObsPerSec / p.direct.obsPerSec)), 3)}`);
  }
  for (const hc of runs('http') ? HTTP_C : []) {
    const ps = results.map((r) => r.pairs.find((p) => p.name === `HTTP c=${hc}`)).filter(Boolean);
    if (ps.length > 0) log(`HTTP c=${hc} against the baseline without audit rows (as before 2026-11-30), median: ratio acked ${L.fmt(L.median(ps.map((p) => p.ratioAckedNoAudit)), 3)}`);
    if (ps.length > 0) {
      log(
        `HTTP c=${hc} floor, median: ${L.fmtInt(L.median(ps.map((p) => p.floor.reqPerSec)))} req/s, main thread ${L.fmt(L.median(ps.map((p) => p.floor.mainUsPerReq)), 0)} us/req; ` +
          `bound on the ratio for one thread (floor + baseline time per row) ${L.fmt(L.median(ps.map((p) => p.bound)), 3)}`,
      );
      log(`HTTP c=${hc} CPU bound, median: the hub's and the load generator's CPU per upload spread perfectly over the cores reaches at most ratio ${L.fmt(L.median(ps.map((p) => p.coresBound)), 3)}`);
    }
  }
  log('aim: ingest >= 0.5x the raw baseline');
  log(`machine at the end: ${L.fmtPressure(L.pressure())}`);

  const out = args.json ? path.resolve(String(args.json)) : path.join(__dirname, 'results', `ingest-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const strip = (x) => JSON.parse(JSON.stringify(x, (k, v) => (k === 'latencies' ? undefined : v)));
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, params: { N, C, HTTP_C, HTTP_N, ROUNDS, WARMUP, CLIENT }, results: strip(results), summary }, null, 2));
  log(`results: ${path.relative(process.cwd(), out)}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
