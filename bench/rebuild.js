'use strict';
/**
 * A registry rebuild, and what it costs the queries meanwhile: on PostgreSQL another hub's on the same schema, on
 * SQLite (one hub per file) the rebuilding hub's own.
 *
 *   node bench/rebuild.js [--store postgres|sqlite] [--n 20000] [--patients 1000] [--readers 4] [--rounds 3]
 *                         [--url postgres://...] [--json FILE]
 *
 * Setup, PostgreSQL (the default): hubs A and B (openContainer, RTS_EVENT_STORE=postgres) on one fresh schema, B on
 * a worker thread of its own (its event loop is not A's); SQLite: hub A alone, in a temp dir, and B is A (its
 * queries run on A's event loop, as its HTTP requests would, each after a turn of the loop). A records N
 * observations of `patients` patients (readings within the last 300 days) and both catch up. Each round then runs,
 * in this order, so all see the same machine:
 *   idle    : B's `getObservationsFor` (a patient, the last 366 days: all their readings) from `readers` loops in
 *             flight, for 3 s; its answers set each patient's count of readings
 *   rebuild : A's `projector.rebuild()` (the registry rebuilt beside the live one and swapped in) while B's
 *             readers run the same queries: the rebuild's events/s, B's latencies, and its **misses** (answers
 *             with fewer readings than the idle answer had: a half-replayed registry would give them)
 *   reset   : the same with the rebuild as it was before 2026-12-05 (fifty-first session) and as it still is with
 *             the registry in memory: the registry emptied and replayed into (A's model without its rebuildBeside)
 * Figures: B's p50 / p99 / max during the rebuild against idle (ratio, same run), and the rebuild's wall time.
 * Needs `npm run build` first (uses dist/). The schema is dropped at the end.
 */
const fs = require('node:fs');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');
const L = require('./lib');

const args = L.parseArgs();
const URL = String(args.url ?? L.PG_URL);
const STORE = String(args.store ?? 'postgres');
if (STORE !== 'postgres' && STORE !== 'sqlite') throw new Error('--store postgres|sqlite');
const N = Number(args.n ?? 20_000);
const PATIENTS = Number(args.patients ?? 1000);
const READERS = Number(args.readers ?? 4);
const ROUNDS = Number(args.rounds ?? 3);
const IDLE_MS = Number(args['idle-ms'] ?? 3000);

const { loadConfig } = L.dist('bootstrap/config');
const { openContainer, createLogger, TOKENS } = L.dist('bootstrap/container');
const { createTeleObservation } = L.dist('domain/monitoring/tele-observation');
const { parseCpr } = L.dist('domain/monitoring/cpr');
const { lastDays } = L.dist('domain/monitoring/time-interval');

const log = (...a) => console.log(...a);

const settings = (schema, dir) => ({
  ...(STORE === 'postgres' ? { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: URL, RTS_POSTGRES_SCHEMA: schema } : { RTS_EVENT_STORE: 'sqlite' }),
  RTS_DATA_DIR: dir,
  RTS_LOG_LEVEL: 'warn',
  RTS_PSEUDONYM_SECRET: L.SECRET_HEX,
});

const hub = async (schema) => {
  const dir = L.tempDir('pg-rebuild');
  const config = loadConfig(settings(schema, dir));
  const c = await openContainer(config, createLogger(config));
  return { c, dir, telemed: c.get(TOKENS.TeleMed), projector: c.get(TOKENS.Projector), store: c.get(TOKENS.EventStore), clock: c.get(TOKENS.Clock) };
};

/** `readers` loops of B's query, each on the next patient, until `done()`; latencies (ms) and misses. */
const readLoops = async (b, patients, expected, done) => {
  const latencies = [];
  const misses = [];
  let next = 0;
  const loop = async () => {
    while (!done()) {
      const i = next++ % patients.length;
      const t0 = L.nowNs();
      let found;
      try {
        found = (await b.telemed.getObservationsFor(patients[i], lastDays(366, b.clock.now()))).length;
      } catch (error) {
        if (error?.name !== 'NotFoundError') throw error;
        found = 0; // unknown_patient: a registry that holds none of the patient's documents (yet)
      }
      latencies.push(L.msSince(t0));
      if (expected && found < expected[i]) misses.push(i);
      await new Promise((resolve) => setImmediate(resolve)); // a turn of the loop, as between requests
    }
  };
  await Promise.all(Array.from({ length: READERS }, loop));
  return { latencies, misses };
};

/** What hub B does when asked (`msg.kind`); what it answers goes to `reply`. */
const hubBHandler = (b, reply) => {
  const patients = Array.from({ length: PATIENTS }, (_, i) => parseCpr(L.cprOf(i)));
  let stop = false;
  return async (msg) => {
    try {
      if (msg.kind === 'catch-up') {
        await b.projector.catchUp();
        reply({ kind: 'caught-up' });
      } else if (msg.kind === 'count') {
        const counts = await Promise.all(patients.map(async (p) => (await b.telemed.getObservationsFor(p, lastDays(366, b.clock.now()))).length));
        reply({ kind: 'counts', counts });
      } else if (msg.kind === 'read') {
        stop = false;
        const until = msg.forMs === undefined ? null : performance.now() + msg.forMs;
        const seen = await readLoops(b, patients, msg.expected ?? null, () => stop || (until !== null && performance.now() > until));
        reply({ kind: 'read', ...seen });
      } else if (msg.kind === 'stop') {
        stop = true;
      } else if (msg.kind === 'close') {
        await b.projector.stop().catch(() => undefined);
        await b.store.close().catch(() => undefined);
        if (b.dir) L.rmrf(b.dir);
        reply({ kind: 'closed' });
      }
    } catch (error) {
      reply({ kind: 'error', message: String(error?.stack ?? error) });
    }
  };
};

/** Hub B, on its worker thread: reads when told to, until told to stop; answers with what it saw. */
const workerMain = async () => {
  const b = await hub(workerData.schema);
  parentPort.on('message', hubBHandler(b, (msg) => parentPort.postMessage(msg)));
  parentPort.postMessage({ kind: 'ready' });
};

/** On SQLite hub B is hub A: its queries, asked as the worker's are. */
const sameHub = (a) => {
  const waiting = [];
  const handle = hubBHandler({ ...a, dir: null }, (msg) => {
    const i = waiting.findIndex((w) => w.kind === msg.kind || msg.kind === 'error');
    if (i >= 0) {
      const [w] = waiting.splice(i, 1);
      if (msg.kind === 'error') w.reject(new Error(msg.message));
      else w.resolve(msg);
    }
  });
  return {
    ask: (msg, answer) => {
      const p = answer ? new Promise((resolve, reject) => waiting.push({ kind: answer, resolve, reject })) : Promise.resolve();
      if (msg.kind !== 'close') void handle(msg);
      else waiting.splice(0).forEach((w) => w.resolve({ kind: 'closed' }));
      return p;
    },
    terminate: async () => undefined,
  };
};

/** Hub B's worker, and a way to ask it something and wait for its answer of `kind`. */
const startHubB = async (schema) => {
  const worker = new Worker(__filename, { workerData: { schema }, argv: process.argv.slice(2) });
  const waiting = [];
  worker.on('message', (msg) => {
    if (msg.kind === 'error') {
      for (const w of waiting.splice(0)) w.reject(new Error(msg.message));
      return;
    }
    const i = waiting.findIndex((w) => w.kind === msg.kind);
    if (i >= 0) waiting.splice(i, 1)[0].resolve(msg);
  });
  worker.on('error', (error) => {
    for (const w of waiting.splice(0)) w.reject(error);
  });
  const next = (kind) => new Promise((resolve, reject) => waiting.push({ kind, resolve, reject }));
  await next('ready');
  return {
    ask: (msg, answer) => {
      const p = answer ? next(answer) : Promise.resolve();
      worker.postMessage(msg);
      return p;
    },
    terminate: () => worker.terminate(),
  };
};

const main = async () => {
  log(`rebuild (${STORE}): ${N} observations of ${PATIENTS} patients, ${READERS} readers on ${STORE === 'postgres' ? 'the other hub' : 'the same hub'}, ${ROUNDS} rounds`);
  log(`machine: ${JSON.stringify(L.machine())}`);
  const schema = L.pgSchemaName('rebuild');
  let a = null;
  let b = null;
  try {
    a = await hub(schema);
    b = STORE === 'postgres' ? await startHubB(schema) : sameHub(a);
    const rand = L.rng(7);
    const now = a.clock.now();
    const nowEpoch = Math.floor(now.toSeconds());
    const observations = Array.from({ length: N }, (_, k) => {
      const epoch = nowEpoch - 60 - Math.floor(rand() * 300 * 86_400);
      return createTeleObservation({ patientId: L.cprOf(k % PATIENTS), ...L.reading(rand), measuredAt: L.isoSeconds(epoch) }, now);
    });
    let next = 0;
    const t0 = L.nowNs();
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        for (let i = next++; i < observations.length; i = next++) await a.telemed.record(observations[i]);
      }),
    );
    await a.projector.catchUp();
    await b.ask({ kind: 'catch-up' }, 'caught-up');
    const head = await a.store.headPosition();
    log(`setup: ${N} uploads in ${L.fmt(L.msSince(t0) / 1000, 1)} s; head ${head}`);

    const model = a.c.get(TOKENS.Registry);
    const beside = model.rebuildBeside;
    if (typeof beside !== 'function') throw new Error('the registry has no rebuildBeside: not this build');
    const stats = (latencies) => {
      const [p50, p99] = Object.values(L.percentiles(latencies, [50, 99]));
      return { queries: latencies.length, p50, p99, max: latencies.reduce((m, x) => Math.max(m, x), 0) };
    };
    const results = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const idle = stats((await b.ask({ kind: 'read', forMs: IDLE_MS }, 'read')).latencies);
      const { counts: expected } = await b.ask({ kind: 'count' }, 'counts');
      const result = { round, events: Number(head), idle };
      for (const how of ['beside', 'reset']) {
        model.rebuildBeside = how === 'beside' ? beside : undefined;
        const during = b.ask({ kind: 'read', expected }, 'read');
        await L.sleep(50); // the readers are running
        const r0 = L.nowNs();
        await a.projector.rebuild();
        const rebuildMs = L.msSince(r0);
        await b.ask({ kind: 'stop' });
        const seen = await during;
        result[how] = { rebuildMs, eventsPerSecond: Number(head) / (rebuildMs / 1000), ...stats(seen.latencies), misses: seen.misses.length };
        model.rebuildBeside = beside;
      }
      results.push(result);
      const line = (how) => {
        const r = result[how];
        return `${how}: ${L.fmt(r.rebuildMs / 1000, 2)} s (${L.fmtInt(r.eventsPerSecond)} events/s), B ${L.fmt(r.p50)} / ${L.fmt(r.p99)} / ${L.fmt(r.max)} ms (${r.queries} queries, p99 ratio ${L.fmt(r.p99 / idle.p99)}), misses ${r.misses}`;
      };
      log(`[round ${round}] ${head} events; hub B's query p50 / p99 / max idle ${L.fmt(idle.p50)} / ${L.fmt(idle.p99)} / ${L.fmt(idle.max)} ms (${idle.queries} queries); ${line('beside')}; ${line('reset')}`);
    }
    const med = (f) => L.median(results.map(f));
    for (const how of ['beside', 'reset']) {
      log(
        `summary ${how} (median over rounds): rebuild ${L.fmtInt(med((r) => r[how].eventsPerSecond))} events/s; hub B's query p50 ratio ${L.fmt(med((r) => r[how].p50 / r.idle.p50))}, ` +
          `p99 ratio ${L.fmt(med((r) => r[how].p99 / r.idle.p99))} (during the rebuild / idle); misses ${results.reduce((s, r) => s + r[how].misses, 0)} in all`,
      );
    }
    const out = args.json ? path.resolve(String(args.json)) : path.join(__dirname, 'results', `rebuild-${STORE}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: L.machine(), params: { N, PATIENTS, READERS, ROUNDS }, results }, null, 2));
    log(`results: ${path.relative(process.cwd(), out)}`);
    if (results.some((r) => r.beside.misses > 0)) process.exitCode = 1;
  } finally {
    if (b) {
      await b.ask({ kind: 'close' }, 'closed').catch(() => undefined);
      await b.terminate();
    }
    if (a) {
      await a.projector.stop().catch(() => undefined);
      await a.store.close().catch(() => undefined);
      L.rmrf(a.dir);
    }
    if (STORE === 'postgres') await L.pgDropSchema(URL, schema);
  }
};

(isMainThread ? main : workerMain)().catch((error) => {
  console.error(error);
  process.exit(1);
});
