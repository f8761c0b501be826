#!/usr/bin/env node
'use strict';
/**
 * Where the hub's main thread spends its CPU per upload over HTTP (POST /observations, access control on, a bearer
 * token per patient): the same load against three hubs, in turns each round,
 *
 *   http      the HTTP layer alone: hooks (tokens, rate limit, rules, audit entry), body parsing, the route, the
 *             answer; the upload and the audit append answer at once (bench/http-parts-stub.js, `both`)
 *   +document that and the upload stored (the document, its commit); the audit append still answers at once (`audit`)
 *   whole     the hub as it runs: the audit event too, appended and committed before the 201
 *
 * The differences are what the document and the audit event cost the main thread at the batches this concurrency
 * gives (the audit event is a second group commit per upload: see bench/README.md). Medians over rounds of the
 * hub's main-thread CPU per upload (/proc: utime + stime), its whole CPU, and uploads per second.
 *
 *   npm run build && node bench/http-parts.js [--n 10000] [--concurrency 32] [--rounds 3]
 */
const { spawn } = require('node:child_process');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const N = Number(args.n ?? 10_000);
const C = Number(args.concurrency ?? 32);
const ROUNDS = Number(args.rounds ?? 3);
const WARMUP = 2000;
const SUBJECTS = [
  ['http', 'both'],
  ['+document', 'audit'],
  ['whole', null],
];

const startHub = async (stub) => {
  const dir = L.tempDir('http-parts');
  const port = await L.freePort();
  const preload = stub ? ['--require', path.join(__dirname, 'http-parts-stub.js')] : [];
  const child = spawn(process.execPath, [...preload, path.join(L.DIST, 'bootstrap/main.js')], {
    env: {
      ...process.env,
      ...(stub ? { HTTP_PARTS_STUB: stub, HTTP_PARTS_DIST: L.DIST } : {}),
      RTS_DATA_DIR: dir,
      RTS_HTTP_PORT: String(port),
      RTS_HTTP_HOST: '127.0.0.1',
      RTS_LOG_LEVEL: 'warn',
      RTS_PSEUDONYM_SECRET: L.SECRET_HEX,
      RTS_RATE_LIMIT_PER_SECOND: '100000',
      RTS_RATE_LIMIT_BURST: '1000000',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await Promise.race([L.waitForHttp(port), exited.then(() => Promise.reject(new Error('hub exited early')))]);
  return { port, pid: child.pid, file: path.join(dir, 'telemed.sqlite'), stop: async () => (child.kill('SIGTERM'), await exited, L.rmrf(dir)) };
};

const run = async (stub, inputs) => {
  const hub = await startHub(stub);
  try {
    const tokens = await L.patientTokens(hub.port, inputs.map((o) => o.patientId));
    const post = (o) => ({ method: 'POST', path: '/observations', body: JSON.stringify({ patientId: o.patientId, systolic: o.systolic, diastolic: o.diastolic, measuredAt: o.measuredAt }), headers: { authorization: tokens.get(o.patientId) } });
    const warm = await L.runLoadRaw({ port: hub.port, concurrency: C, total: WARMUP, makeRequest: (i) => post(inputs[(i * 7) % inputs.length]), expectStatus: 201 });
    if (warm.firstError) throw new Error(`warm-up: ${warm.firstError}`);
    const at0 = positionOf(hub.file);
    const main0 = L.procCpuMs(hub.pid, { mainThread: true });
    const all0 = L.procCpuMs(hub.pid);
    const t0 = L.nowNs();
    const load = await L.runLoadRaw({ port: hub.port, concurrency: C, total: inputs.length, makeRequest: (i) => post(inputs[i]), expectStatus: 201 });
    const wallMs = L.msSince(t0);
    if (load.firstError) throw new Error(`load: ${load.firstError}`);
    const stored = commitsOf(hub.file, at0);
    return {
      ...stored,
      mainUs: ((L.procCpuMs(hub.pid, { mainThread: true }) - main0) * 1000) / inputs.length,
      allUs: ((L.procCpuMs(hub.pid) - all0) * 1000) / inputs.length,
      perSecond: inputs.length / (wallMs / 1000),
    };
  } finally {
    await hub.stop();
  }
};

/** The store's head (0 without a store file). */
const positionOf = (file) => {
  const db = new L.BetterSqlite3(file, { readonly: true });
  try {
    return db.prepare('SELECT COALESCE(MAX(global_position), 0) FROM events').pluck().get();
  } finally {
    db.close();
  }
};

/**
 * The commits after `after` (every append of one group-commit batch has the same recorded_at: distinct values count
 * the batches, a lower bound) and the documents among the events.
 */
const commitsOf = (file, after) => {
  const db = new L.BetterSqlite3(file, { readonly: true });
  try {
    return db.prepare(`SELECT COUNT(DISTINCT recorded_at) AS commits, COUNT(*) AS events, SUM(type = 'DocumentSubmitted') AS documents FROM events WHERE global_position > ?`).get(after);
  } finally {
    db.close();
  }
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const main = async () => {
  const m = L.machine();
  console.log(`http-parts  n=${N} concurrency=${C} rounds=${ROUNDS}  dist=${path.relative(L.ROOT, L.DIST) || '.'}`);
  console.log(`machine: ${JSON.stringify(m)}`);
  console.log(`machine now: ${L.fmtPressure(L.pressure())}`);
  const rand = L.rng(20261206);
  const end = Math.floor(Date.now() / 1000) - 3600;
  const inputs = Array.from({ length: N }, () => ({ patientId: L.cprOf(Math.floor(rand() * 1000)), ...L.reading(rand), measuredAt: L.isoSeconds(end - Math.floor(rand() * 2 * 365 * 86400)) }));
  const results = new Map(SUBJECTS.map(([name]) => [name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [name, stub] of SUBJECTS) {
      const r = await run(stub, inputs);
      results.get(name).push(r);
      const batches = r.commits > 0 ? `, ${r.commits} commits: ${L.fmt(r.documents / r.commits, 1)} documents and ${L.fmt((r.events - r.documents) / r.commits, 1)} other events a commit` : ', nothing stored';
      console.log(`[round ${round}] ${name.padEnd(9)}: main thread ${L.fmt(r.mainUs, 1)} us/upload, hub ${L.fmt(r.allUs, 1)} us/upload, ${L.fmtInt(r.perSecond)} uploads/s${batches}`);
    }
  }
  console.log('\nmedian over rounds: main thread us/upload (hub us/upload, uploads/s)');
  let before = 0;
  for (const [name] of SUBJECTS) {
    const rs = results.get(name);
    const main = median(rs.map((r) => r.mainUs));
    console.log(`${name.padEnd(9)}  ${L.fmt(main, 1).padStart(7)}  (${L.fmt(median(rs.map((r) => r.allUs)), 1)}, ${L.fmtInt(median(rs.map((r) => r.perSecond)))})${before ? `   part: +${L.fmt(main - before, 1)}` : ''}`);
    before = main;
  }
  console.log(`machine at the end: ${L.fmtPressure(L.pressure())}`);
};

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
