'use strict';
/**
 * Query benchmark: TeleMedService.getObservationsFor(patient, one week) on 1,000,000 stored observations,
 * against the registry's own findCurrent SELECT run directly on better-sqlite3, interleaved query by query.
 *
 *   node bench/query.js [--patients 1000] [--readings 1000] [--queries 5000] [--warmup 500] [--rebuild]
 *
 * Dataset (cached under bench/.data/query-<patients>x<readings>/, rebuilt with --rebuild or when its parameters
 * change): `patients` patients x `readings` readings each, spread evenly over the 730 days
 * [2024-11-22T00:00Z, 2026-11-22T00:00Z): reading j of a patient lies at a uniformly random instant of the j-th
 * of `readings` equal slots (~17.5 h each), so one week of one patient holds ~9.6 readings. The rows are what
 * the hub writes for each observation (the DocumentSubmitted event with its HL7 content, in its own stream, and
 * the registry_entries row), bulk-inserted with better-sqlite3 into the tables the adapters create; the
 * projection checkpoint is set to the head, so the projector has nothing to catch up.
 * Needs `npm run build` first.
 */
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const PATIENTS = Number(args.patients ?? 1000);
const READINGS = Number(args.readings ?? 1000);
const QUERIES = Number(args.queries ?? 5000);
const WARMUP = Number(args.warmup ?? 500);
const SEED = 20261123;
const START = Date.UTC(2024, 10, 22) / 1000; // 2024-11-22T00:00:00Z
const SPAN = 730 * 86400;
const WEEK = 7 * 86400;
const DATA_DIR = path.join(__dirname, '.data', `query-${PATIENTS}x${READINGS}`);
const FILE = path.join(DATA_DIR, 'telemed.sqlite');
const META = path.join(DATA_DIR, 'meta.json');
const DATASET_VERSION = 1;

const { loadConfig } = L.dist('bootstrap/config');
const { buildContainer, TOKENS } = L.dist('bootstrap/container');
const { SqliteEventStore } = L.dist('adapters/event-store/sqlite/sqlite-event-store');
const { timeInterval } = L.dist('domain/monitoring/time-interval');
const { DateTime } = L;

const config = loadConfig({ RTS_DATA_DIR: DATA_DIR, RTS_LOG_LEVEL: 'warn', RTS_PSEUDONYM_SECRET: L.SECRET_HEX });
const log = (...a) => console.log(...a);

// ---------- the dataset ----------

const wantedMeta = { version: DATASET_VERSION, patients: PATIENTS, readings: READINGS, seed: SEED, start: START, span: SPAN, secret: L.SECRET_HEX, repository: config.RTS_REPOSITORY_UNIQUE_ID };

const datasetReady = () => {
  try {
    const meta = JSON.parse(fs.readFileSync(META, 'utf8'));
    return Object.entries(wantedMeta).every(([k, v]) => meta[k] === v) && fs.existsSync(FILE);
  } catch {
    return false;
  }
};

const buildDataset = () => {
  L.rmrf(DATA_DIR);
  fs.mkdirSync(DATA_DIR, { recursive: true });
  const t0 = L.nowNs();
  L.createSchema(FILE); // the adapters create their own tables, index and checkpoint table
  const db = new L.BetterSqlite3(FILE);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF'); // bench setup only: the hub itself runs with FULL
  db.pragma('cache_size = -524288'); // 512 MiB for the load
  const insertEvent = db.prepare(L.INSERT_EVENT_SQL);
  const insertRegistry = db.prepare(L.INSERT_REGISTRY_SQL);
  const makeRow = L.rowFactory({ repositoryUniqueId: config.RTS_REPOSITORY_UNIQUE_ID });
  const fastDocument = L.fastDocumentFactory();
  const rand = L.rng(SEED);
  const slot = SPAN / READINGS;
  const cprs = Array.from({ length: PATIENTS }, (_, p) => L.cprOf(p));
  const observation = (j, p) => {
    const measuredEpoch = Math.floor(START + (j + rand()) * slot);
    return { patientId: cprs[p], ...L.reading(rand), measuredAt: L.isoSeconds(measuredEpoch), measuredEpoch };
  };
  // The fast HL7 document must be byte-for-byte the one buildDocument makes.
  const probe = L.rng(1);
  L.checkFastDocument(fastDocument, Array.from({ length: 2000 }, () => observation(Math.floor(probe() * READINGS), Math.floor(probe() * PATIENTS))));

  const total = PATIENTS * READINGS;
  const TX = 50_000;
  let done = 0;
  // Global order roughly by time, as a live hub would receive them: slot j of every patient, then slot j+1.
  const insertSlots = db.transaction((fromJ, toJ) => {
    for (let j = fromJ; j < toJ; j++) {
      for (let p = 0; p < PATIENTS; p++) {
        const obs = observation(j, p);
        const creation = obs.measuredEpoch + 30;
        const { event: e, registry } = makeRow(obs, L.isoSeconds(creation), fastDocument(obs));
        insertEvent.run(e.stream_name, e.stream_version, e.event_id, e.type, e.data, e.metadata, new Date(creation * 1000 + 5).toISOString());
        insertRegistry.run(registry);
      }
    }
  });
  const slotsPerTx = Math.max(1, Math.floor(TX / PATIENTS));
  for (let j = 0; j < READINGS; j += slotsPerTx) {
    const to = Math.min(READINGS, j + slotsPerTx);
    insertSlots(j, to);
    done += (to - j) * PATIENTS;
    process.stdout.write(`\r  loading ${L.fmtInt(done)} / ${L.fmtInt(total)} (${L.fmt(L.msSince(t0) / 1000, 0)} s)`);
  }
  const head = db.prepare('SELECT MAX(global_position) FROM events').pluck().get();
  db.prepare('INSERT INTO projection_checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position').run('registry', head);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const seconds = L.msSince(t0) / 1000;
  fs.writeFileSync(META, JSON.stringify({ ...wantedMeta, rows: total, head, builtAt: new Date().toISOString(), loadSeconds: +seconds.toFixed(1) }, null, 2));
  log(`\n  loaded ${L.fmtInt(total)} observations in ${L.fmt(seconds, 1)} s; file ${L.fmt(fs.statSync(FILE).size / 2 ** 20, 0)} MiB`);
};

// ---------- the queries ----------

const queryMix = (n, seed) => {
  const rand = L.rng(seed);
  return Array.from({ length: n }, () => {
    const p = Math.floor(rand() * PATIENTS);
    const from = START + Math.floor(rand() * (SPAN - WEEK));
    return { p, from, to: from + WEEK };
  });
};

const main = async () => {
  const machine = L.machine();
  log(`query bench  patients=${PATIENTS} readings=${READINGS} (${L.fmtInt(PATIENTS * READINGS)} observations) queries=${QUERIES} warmup=${WARMUP}`);
  log(`machine: ${JSON.stringify(machine)}`);
  log(`machine now: ${L.fmtPressure(L.pressure())}`);
  if (args.rebuild || !datasetReady()) {
    log(`building the dataset in ${path.relative(process.cwd(), DATA_DIR)} ...`);
    buildDataset();
  } else {
    log(`using the cached dataset in ${path.relative(process.cwd(), DATA_DIR)} (--rebuild to rebuild)`);
  }

  // The subject: the real container on that data dir (the projector is not started: findEntries catches up itself).
  const c = buildContainer(config);
  const store = c.get(SqliteEventStore);
  const telemed = c.get(TOKENS.TeleMed);
  const keys = c.get(TOKENS.PatientKeys);
  const registry = c.get(TOKENS.Registry);
  const projector = c.get(TOKENS.Projector);
  const db = store.database;
  const rows = db.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get();
  const checkpoint = await registry.checkpoint();
  const head = await store.headPosition();
  if (rows !== PATIENTS * READINGS || checkpoint !== head) throw new Error(`dataset: ${rows} rows, checkpoint ${checkpoint}, head ${head}`);

  // The baseline: the registry's findCurrent SELECT, same text, prepared on the same connection (same page cache).
  const direct = db.prepare(
    `SELECT * FROM registry_entries WHERE patient_key = ? AND status = 'Approved' AND service_start_epoch >= ? AND service_start_epoch < ?
         ORDER BY service_start_epoch, unique_id LIMIT ?`,
  );
  log(`plan: ${db.prepare(`EXPLAIN QUERY PLAN ${direct.source}`).all('p', 0, 1, 1).map((r) => r.detail).join('; ')}`);
  const cprs = Array.from({ length: PATIENTS }, (_, p) => L.cprOf(p));
  const pkeys = cprs.map((cpr) => keys.keyFor(cpr));
  const prepare = (q) => ({ ...q, cpr: cprs[q.p], key: pkeys[q.p], interval: timeInterval(DateTime.fromSeconds(q.from, { zone: 'utc' }), DateTime.fromSeconds(q.to, { zone: 'utc' })) });

  const viaService = async (q) => {
    const t0 = L.nowNs();
    const result = await telemed.getObservationsFor(q.cpr, q.interval);
    return { ms: L.msSince(t0), count: result.length };
  };
  const viaSelect = (q) => {
    const t0 = L.nowNs();
    const result = direct.all(q.key, q.from, q.to, 10_001);
    return { ms: L.msSince(t0), count: result.length };
  };

  const run = async (mix) => {
    const service = new Float64Array(mix.length);
    const select = new Float64Array(mix.length);
    const counts = [];
    for (let i = 0; i < mix.length; i++) {
      const q = mix[i];
      let s, d;
      // Interleaved, alternating which goes first, so neither always finds the other's pages freshly cached.
      if (i % 2 === 0) {
        s = await viaService(q);
        d = viaSelect(q);
      } else {
        d = viaSelect(q);
        s = await viaService(q);
      }
      if (s.count !== d.count) throw new Error(`query ${i}: service returned ${s.count} rows, the SELECT ${d.count}`);
      service[i] = s.ms;
      select[i] = d.ms;
      counts.push(s.count);
    }
    return { service, select, counts };
  };

  await run(queryMix(WARMUP, 1).map(prepare));
  const mix = queryMix(QUERIES, 2).map(prepare);
  const t0 = L.nowNs();
  const { service, select, counts } = await run(mix);
  const wallMs = L.msSince(t0);
  const sv = L.percentiles(service, [50, 90, 99]);
  const se = L.percentiles(select, [50, 90, 99]);
  const rc = L.percentiles(counts, [50, 99]);
  log(`\n${QUERIES} one-week queries over random patients/weeks (${L.fmt(wallMs / 1000, 1)} s), rows per answer: median ${rc.p50}, mean ${L.fmt(rc.mean, 1)}, p99 ${rc.p99}`);
  const us = (x) => L.fmt(x * 1000, 1).padStart(8);
  log('                              |   p50 us |   p90 us |   p99 us |  mean us');
  log(`getObservationsFor (service) | ${us(sv.p50)} | ${us(sv.p90)} | ${us(sv.p99)} | ${us(sv.mean)}`);
  log(`findCurrent SELECT (direct)  | ${us(se.p50)} | ${us(se.p90)} | ${us(se.p99)} | ${us(se.mean)}`);
  log(`ratio service/direct         | ${L.fmt(sv.p50 / se.p50).padStart(8)} | ${L.fmt(sv.p90 / se.p90).padStart(8)} | ${L.fmt(sv.p99 / se.p99).padStart(8)} | ${L.fmt(sv.mean / se.mean).padStart(8)}`);
  // Paired view: each query's service time against its own direct SELECT, which the same moment's noise hit too.
  const perQueryRatio = L.percentiles(Array.from(service, (v, i) => v / select[i]), [50, 90, 99]);
  const overheadUs = L.percentiles(Array.from(service, (v, i) => (v - select[i]) * 1000), [50, 90, 99]);
  log(`paired per query: service/direct ratio p50 ${L.fmt(perQueryRatio.p50)} p90 ${L.fmt(perQueryRatio.p90)} p99 ${L.fmt(perQueryRatio.p99)}; ` +
    `added time p50 ${L.fmt(overheadUs.p50, 1)} us p90 ${L.fmt(overheadUs.p90, 1)} us p99 ${L.fmt(overheadUs.p99, 1)} us`);
  log(`aim: service p99 within 2x the direct SELECT's p99 -> ${sv.p99 / se.p99 <= 2 ? 'met' : 'MISSED'} (${L.fmt(sv.p99 / se.p99)}x)`);

  // Where the service's time goes: its steps timed one by one on another interleaved mix.
  const parts = { 'keyFor (HMAC)': [], 'projector.catchUp': [], 'registry.findCurrent (SELECT + toView)': [], 'direct SELECT': [] };
  const directStep = (q) => {
    const t = L.nowNs();
    direct.all(q.key, q.from, q.to, 10_001);
    parts['direct SELECT'].push(L.msSince(t));
  };
  let k = 0;
  for (const q of queryMix(Math.min(QUERIES, 2000), 3).map(prepare)) {
    if (k++ % 2 === 1) directStep(q); // alternate: before the service's steps, or after them
    let t = L.nowNs();
    const key = keys.keyFor(q.cpr);
    parts['keyFor (HMAC)'].push(L.msSince(t));
    t = L.nowNs();
    await projector.catchUp();
    parts['projector.catchUp'].push(L.msSince(t));
    t = L.nowNs();
    await registry.findCurrent(key, Math.floor(q.interval.from.toSeconds()), Math.floor(q.interval.to.toSeconds()), 10_001);
    parts['registry.findCurrent (SELECT + toView)'].push(L.msSince(t));
    if (k % 2 === 1) directStep(q);
  }
  log('\nsteps of getObservationsFor, timed separately (p50 / p99 us):');
  const breakdown = {};
  for (const [k, v] of Object.entries(parts)) {
    const p = L.percentiles(v, [50, 99]);
    breakdown[k] = { p50us: +(p.p50 * 1000).toFixed(1), p99us: +(p.p99 * 1000).toFixed(1) };
    log(`  ${k.padEnd(40)} ${us(p.p50)} / ${us(p.p99)}`);
  }

  log(`machine at the end: ${L.fmtPressure(L.pressure())}`);
  await store.close();
  const out = args.json ? path.resolve(String(args.json)) : path.join(__dirname, 'results', `query-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const summary = {
    service: { p50us: sv.p50 * 1000, p90us: sv.p90 * 1000, p99us: sv.p99 * 1000, meanUs: sv.mean * 1000 },
    direct: { p50us: se.p50 * 1000, p90us: se.p90 * 1000, p99us: se.p99 * 1000, meanUs: se.mean * 1000 },
    ratio: { p50: sv.p50 / se.p50, p90: sv.p90 / se.p90, p99: sv.p99 / se.p99, mean: sv.mean / se.mean },
    rowsPerAnswer: { p50: rc.p50, mean: rc.mean, p99: rc.p99 },
    pairedRatio: { p50: perQueryRatio.p50, p90: perQueryRatio.p90, p99: perQueryRatio.p99 },
    pairedAddedUs: { p50: overheadUs.p50, p90: overheadUs.p90, p99: overheadUs.p99 },
  };
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine, params: { PATIENTS, READINGS, QUERIES, WARMUP }, summary, breakdown }, null, 2));
  log(`results: ${path.relative(process.cwd(), out)}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
