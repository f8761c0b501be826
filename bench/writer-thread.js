#!/usr/bin/env node
// What a writer thread would give the embedded store: a measurement of a design the hub does not have yet.
//
// better-sqlite3 is synchronous, so the hub's main thread waits through every group commit's COMMIT (its fsync):
// no upload is built, sealed or parsed meanwhile. A writer thread (worker_threads) with a connection of its own
// would let the main thread build the next batch while the last one commits. This bench measures that on the
// upload's work without the hub (the "direct" reference of ingest.js), each round in one process, three ways:
//
//   raw        the rows built before the clock starts; inserted and committed on this thread (ingest.js's baseline)
//   direct     built (HL7, HMAC, seal, JSON, ids) and inserted on this thread, batch by batch (ingest.js's reference)
//   pipelined  built on this thread, inserted and committed by a writer thread: each batch is posted as soon as
//              it is built, at most `--inflight` batches (default 2) posted and not yet committed
//
// Same file PRAGMAs (WAL, synchronous=FULL), same rows (event + registry row; no key or audit rows in any of the
// three), same batch size. Figures: obs/s, ratio to raw, CPU of the main thread per observation.
//
//   node bench/writer-thread.js [--n 10000] [--batch 64] [--rounds 3] [--inflight 2]
'use strict';
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');

const PRAGMAS = ['busy_timeout = 5000', 'journal_mode = WAL', 'synchronous = FULL', 'foreign_keys = ON', 'temp_store = MEMORY'];

/** One transaction: each observation's event row and registry row (the same on either thread). */
const commitBatch = (db, statements, rows, recordedAt) => {
  db.exec('BEGIN IMMEDIATE');
  for (const { event: e, registry } of rows) {
    statements.insertEvent.run(e.stream_name, e.stream_version, e.event_id, e.type, e.data, e.metadata, recordedAt);
    statements.insertRegistry.run(registry);
  }
  db.exec('COMMIT');
};

/** The observations 0..n-1 as batches of `size` rows, each built by rowAt when its batch is reached. */
function* batchesOf(n, size, rowAt) {
  for (let start = 0; start < n; start += size) {
    const rows = [];
    for (let i = start; i < Math.min(n, start + size); i++) rows.push(rowAt(i));
    yield rows;
  }
}

if (!isMainThread) {
  // The writer: one connection, one transaction per posted batch, an answer after its COMMIT.
  const BetterSqlite3 = require('better-sqlite3');
  const db = new BetterSqlite3(workerData.file);
  for (const p of PRAGMAS) db.pragma(p);
  const statements = { insertEvent: db.prepare(workerData.insertEventSql), insertRegistry: db.prepare(workerData.insertRegistrySql) };
  parentPort.on('message', (message) => {
    if (message === 'close') {
      db.close();
      parentPort.close();
      return;
    }
    commitBatch(db, statements, message.rows, message.recordedAt);
    parentPort.postMessage(message.rows.length);
  });
  return;
}

const L = require('./lib');

const args = L.parseArgs();
const N = Number(args.n ?? 10000);
const BATCH = Number(args.batch ?? 64);
const ROUNDS = Number(args.rounds ?? 3);
const INFLIGHT = Math.max(1, Number(args.inflight ?? 2));
const REPOSITORY = '1.3.6.1.4.1.21367.2010.1.2.1125';

const makeInputs = (n, seed) => {
  const rand = L.rng(seed);
  const end = Math.floor(Date.now() / 1000) - 3600;
  return Array.from({ length: n }, () => {
    const measuredEpoch = end - Math.floor(rand() * 2 * 365 * 86400);
    return { patientId: L.cprOf(Math.floor(rand() * 1000)), ...L.reading(rand), measuredAt: L.isoSeconds(measuredEpoch), measuredEpoch };
  });
};

const freshFile = (label) => {
  const dir = L.tempDir(`writer-${label}`);
  const file = path.join(dir, `${label}.sqlite`);
  return { dir, file, ready: L.createSchema(file) };
};

const openDb = (file) => {
  const db = new L.BetterSqlite3(file);
  for (const p of PRAGMAS) db.pragma(p);
  return db;
};

/** raw and direct: rows from `rowAt`, inserted and committed on this thread. */
const runHere = async (label, n, rowAt) => {
  const { dir, file, ready } = freshFile(label);
  await ready;
  try {
    const db = openDb(file);
    const statements = { insertEvent: db.prepare(L.INSERT_EVENT_SQL), insertRegistry: db.prepare(L.INSERT_REGISTRY_SQL) };
    const cpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    for (const rows of batchesOf(n, BATCH, rowAt)) commitBatch(db, statements, rows, new Date().toISOString());
    const ms = L.msSince(t0);
    const cu = process.cpuUsage(cpu0);
    db.close();
    return { label, ms, obsPerSec: n / (ms / 1000), mainCpuUs: (1000 * (cu.user + cu.system)) / 1000 / n };
  } finally {
    L.rmrf(dir);
  }
};

/** pipelined: rows built here, a writer thread inserts and commits. Main-thread CPU from the thread's own clock. */
const runPipelined = async (n, rowAt) => {
  const { dir, file, ready } = freshFile('pipelined');
  await ready;
  const worker = new Worker(__filename, { workerData: { file, insertEventSql: L.INSERT_EVENT_SQL, insertRegistrySql: L.INSERT_REGISTRY_SQL } });
  try {
    let committed = 0;
    let inflight = 0;
    let wake;
    worker.on('message', (count) => {
      committed += count;
      inflight--;
      wake?.();
    });
    const errored = new Promise((_, reject) => worker.once('error', reject));
    const waitFor = (test) =>
      Promise.race([
        errored,
        new Promise((resolve) => {
          const check = () => (test() ? ((wake = undefined), resolve()) : (wake = check));
          check();
        }),
      ]);
    const cpu0 = process.cpuUsage();
    const t0 = L.nowNs();
    for (const rows of batchesOf(n, BATCH, rowAt)) {
      if (inflight >= INFLIGHT) await waitFor(() => inflight < INFLIGHT);
      inflight++;
      worker.postMessage({ rows, recordedAt: new Date().toISOString() });
    }
    await waitFor(() => committed === n);
    const ms = L.msSince(t0);
    // process.cpuUsage() counts every thread; the main thread's own share is this minus the writer's, which
    // is not exposed, so the figure printed is the process's: main + writer.
    const cu = process.cpuUsage(cpu0);
    return { label: 'pipelined', ms, obsPerSec: n / (ms / 1000), processCpuUs: (cu.user + cu.system) / n };
  } finally {
    worker.postMessage('close');
    await new Promise((resolve) => worker.once('exit', resolve));
    L.rmrf(dir);
  }
};

const main = async () => {
  console.log(`writer-thread bench  n=${N} batch=${BATCH} rounds=${ROUNDS} inflight=${INFLIGHT}`);
  console.log(`machine: ${JSON.stringify(L.machine())}`);
  const results = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const inputs = makeInputs(N, 1000 + round);
    const creationTime = L.isoSeconds(Math.floor(Date.now() / 1000));
    const make = () => L.sealedRowFactory({ repositoryUniqueId: REPOSITORY, cacheKeys: false });
    const prebuilt = make();
    const rows = inputs.map((o) => prebuilt(o, creationTime));
    console.log(`[round ${round}] machine: ${L.fmtPressure(L.pressure())}`);
    // Alternate the order so that neither way always runs on a warmer (or fuller) disk.
    const order = round % 2 === 1 ? ['raw', 'direct', 'pipelined'] : ['pipelined', 'direct', 'raw'];
    const r = {};
    for (const way of order) {
      if (way === 'raw') r.raw = await runHere('raw', N, (i) => rows[i]);
      if (way === 'direct') {
        const build = make();
        r.direct = await runHere('direct', N, (i) => build(inputs[i], creationTime));
      }
      if (way === 'pipelined') {
        const build = make();
        r.pipelined = await runPipelined(N, (i) => build(inputs[i], creationTime));
      }
    }
    results.push(r);
    console.log(
      `[round ${round}] raw ${L.fmtInt(r.raw.obsPerSec)} obs/s; direct ${L.fmtInt(r.direct.obsPerSec)} obs/s (${L.fmt(r.direct.obsPerSec / r.raw.obsPerSec, 3)} of raw, ` +
        `CPU ${L.fmt(r.direct.mainCpuUs, 0)} us/obs); pipelined ${L.fmtInt(r.pipelined.obsPerSec)} obs/s (${L.fmt(r.pipelined.obsPerSec / r.raw.obsPerSec, 3)} of raw, ` +
        `CPU of both threads ${L.fmt(r.pipelined.processCpuUs, 0)} us/obs)`,
    );
  }
  const med = (f) => L.median(results.map(f));
  console.log(
    `median over ${ROUNDS} rounds: direct/raw ${L.fmt(med((r) => r.direct.obsPerSec / r.raw.obsPerSec), 3)}, ` +
      `pipelined/raw ${L.fmt(med((r) => r.pipelined.obsPerSec / r.raw.obsPerSec), 3)}, pipelined/direct ${L.fmt(med((r) => r.pipelined.obsPerSec / r.direct.obsPerSec), 3)}`,
  );
  const out = path.join(__dirname, 'results', `writer-thread-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: L.machine(), params: { N, BATCH, ROUNDS, INFLIGHT }, rounds: results }, null, 2));
  console.log(`figures: ${path.relative(process.cwd(), out)}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
