#!/usr/bin/env node
'use strict';
/**
 * `rts backup` on the 1M-observation store (bench/.data/query-1000x1000, made by `node bench/query.js`):
 *
 *   idle      the store with nobody writing: `rts backup` (VACUUM INTO of each database, quick_check, SHA-256,
 *             fsync) against the baseline, a plain copy of the same files (copyFileSync + fsync): what an operator
 *             copying the files by hand pays, and what is not a consistent backup while a hub runs
 *   loaded    a hub (dist/, a child process) on a copy of the store, a closed loop of uploads over HTTP the whole
 *             time, and `rts backup` (its own process) run in the middle: the uploads' rate and p99 before,
 *             during and after it, and how long the backup took under that load
 *
 *   node bench/backup.js [--data DIR] [--rounds 3] [--concurrency 16] [--settle-ms 5000]
 */
const { spawn, execFile } = require('node:child_process');
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const DATA = path.resolve(args.data ?? path.join(__dirname, '.data', 'query-1000x1000'));
const ROUNDS = Number(args.rounds ?? 3);
const CONCURRENCY = Number(args.concurrency ?? 16);
const SETTLE_MS = Number(args['settle-ms'] ?? 5000);
const CLI = path.join(L.DIST, 'adapters', 'cli', 'main.js');
const FILES = ['telemed.sqlite', 'patient-keys.sqlite'];

const rts = (argv) =>
  new Promise((resolve, reject) => {
    const t0 = L.nowNs();
    execFile(process.execPath, [CLI, ...argv], { maxBuffer: 1 << 20 }, (error, stdout, stderr) =>
      error ? reject(new Error(`rts ${argv[0]} failed: ${stderr || error.message}`)) : resolve({ ms: L.msSince(t0), stdout, stderr }),
    );
  });

/** The baseline: the same files copied byte for byte and fsynced (no snapshot, no check, no hash). */
const plainCopy = (from, to) => {
  const t0 = L.nowNs();
  fs.mkdirSync(to, { mode: 0o700 });
  for (const name of FILES) {
    if (!fs.existsSync(path.join(from, name))) continue;
    fs.copyFileSync(path.join(from, name), path.join(to, name));
    const fd = fs.openSync(path.join(to, name), 'r+');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
  }
  return { ms: L.msSince(t0) };
};

const idle = async () => {
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const dir = L.tempDir('backup-idle');
    try {
      // Alternate the order, so neither always runs on a warmer page cache.
      const order = round % 2 === 1 ? ['copy', 'backup'] : ['backup', 'copy'];
      const r = {};
      for (const way of order) {
        if (way === 'copy') r.copy = plainCopy(DATA, path.join(dir, 'copy'));
        else r.backup = await rts(['backup', '--data-dir', DATA, '--to', path.join(dir, 'backup')]);
      }
      runs.push({ copyMs: r.copy.ms, backupMs: r.backup.ms });
      console.log(`[idle ${round}] plain copy ${L.fmtInt(r.copy.ms)} ms, rts backup ${L.fmtInt(r.backup.ms)} ms -> ${L.fmt(r.backup.ms / r.copy.ms)}x`);
    } finally {
      L.rmrf(dir);
    }
  }
  return runs;
};

const startHub = async (dataDir) => {
  const port = await L.freePort();
  const child = spawn(process.execPath, [path.join(L.DIST, 'bootstrap/main.js')], {
    env: { ...process.env, RTS_DATA_DIR: dataDir, RTS_HTTP_PORT: String(port), RTS_HTTP_HOST: '127.0.0.1', RTS_LOG_LEVEL: 'warn', RTS_PSEUDONYM_SECRET: L.SECRET_HEX, RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '1000000' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  await L.waitForHttp(port, 120_000);
  return { port, stop: async () => (child.kill('SIGTERM'), exited) };
};

/** Uploads in a closed loop until stop(); each request's start time and latency. */
const uploadLoop = (port, tokens, patients) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const samples = [];
  const failures = [];
  let stopped = false;
  let n = 0;
  const rand = L.rng(7);
  const worker = async () => {
    while (!stopped) {
      const patientId = patients[n++ % patients.length];
      const body = JSON.stringify({ observationId: randomUUID(), patientId, ...L.reading(rand), measuredAt: new Date(Date.now() - 3_600_000).toISOString() });
      const start = Date.now();
      const t0 = L.nowNs();
      const r = await L.request(agent, { port, method: 'POST', path: '/observations', body, headers: { authorization: tokens.get(patientId) } });
      if (r.status !== 201) failures.push(r.status);
      else samples.push({ start, ms: L.msSince(t0) });
    }
  };
  const running = Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return {
    samples,
    failures,
    stop: async () => {
      stopped = true;
      await running;
      agent.destroy();
    },
  };
};

const windowOf = (samples, from, to) => {
  const inside = samples.filter((s) => s.start >= from && s.start < to);
  const p = L.percentiles(Float64Array.from(inside.map((s) => s.ms)));
  return { uploads: inside.length, perSec: inside.length / ((to - from) / 1000), p50: p.p50, p99: p.p99 };
};

const loaded = async () => {
  const dir = L.tempDir('backup-loaded');
  try {
    const data = path.join(dir, 'data');
    fs.mkdirSync(data, { mode: 0o700 });
    for (const name of FILES) if (fs.existsSync(path.join(DATA, name))) fs.copyFileSync(path.join(DATA, name), path.join(data, name));
    const hub = await startHub(data);
    try {
      const patients = Array.from({ length: 200 }, (_, i) => L.cprOf(i));
      const tokens = await L.patientTokens(hub.port, patients);
      const load = uploadLoop(hub.port, tokens, patients);
      await L.sleep(SETTLE_MS);
      const t1 = Date.now();
      const backup = await rts(['backup', '--data-dir', data, '--to', path.join(dir, 'backup')]);
      const t2 = Date.now();
      await L.sleep(SETTLE_MS);
      const t3 = Date.now();
      await load.stop();
      const before = windowOf(load.samples, t1 - SETTLE_MS + 1000, t1); // the first second is warm-up
      const during = windowOf(load.samples, t1, t2);
      const after = windowOf(load.samples, t2, t3);
      const head = Number(/events up to position (\d+)/.exec(backup.stdout)?.[1]);
      const fmtW = (w) => `${L.fmtInt(w.perSec)} uploads/s (p50 ${L.fmt(w.p50)} ms, p99 ${L.fmt(w.p99)} ms, n=${w.uploads})`;
      console.log(`[loaded] rts backup took ${L.fmtInt(backup.ms)} ms under load (events up to position ${head}); failed uploads: ${load.failures.length}`);
      console.log(`[loaded]   before: ${fmtW(before)}`);
      console.log(`[loaded]   during: ${fmtW(during)}  -> rate ${L.fmt(during.perSec / before.perSec)}x of before`);
      console.log(`[loaded]   after:  ${fmtW(after)}`);
      return { backupMs: backup.ms, head, before, during, after, failures: load.failures.length };
    } finally {
      await hub.stop();
    }
  } finally {
    L.rmrf(dir);
  }
};

const main = async () => {
  if (!fs.existsSync(path.join(DATA, 'telemed.sqlite'))) {
    console.error(`no store at ${DATA}: run node bench/query.js first (it builds the 1M dataset), or give --data DIR`);
    process.exit(2);
  }
  const size = FILES.reduce((sum, name) => sum + (fs.existsSync(path.join(DATA, name)) ? fs.statSync(path.join(DATA, name)).size : 0), 0);
  console.log(`backup bench  data=${DATA} (${L.fmt(size / 2 ** 30)} GiB) rounds=${ROUNDS} concurrency=${CONCURRENCY}`);
  console.log(`machine: ${JSON.stringify(L.machine())}`);
  console.log(`machine now: ${L.fmtPressure(L.pressure())}`);
  const idleRuns = await idle();
  console.log(`idle, median over ${ROUNDS}: plain copy ${L.fmtInt(L.median(idleRuns.map((r) => r.copyMs)))} ms, rts backup ${L.fmtInt(L.median(idleRuns.map((r) => r.backupMs)))} ms, ratio ${L.fmt(L.median(idleRuns.map((r) => r.backupMs / r.copyMs)))}x`);
  const load = await loaded();
  console.log(`machine at the end: ${L.fmtPressure(L.pressure())}`);
  const out = path.join(__dirname, 'results', `backup-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: L.machine(), params: { DATA, ROUNDS, CONCURRENCY, SETTLE_MS }, idle: idleRuns, loaded: load }, null, 2));
  console.log(`results: ${path.relative(process.cwd(), out)}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
