'use strict';
/**
 * Shared helpers of the benchmarks: the compiled project (dist/), percentiles, the machine, test data, the rows
 * the hub would write for an observation (for the raw better-sqlite3 baselines), and a keep-alive HTTP load
 * generator. Node built-ins and the project's own dependencies only.
 */
const { execFileSync } = require('node:child_process');
const { createHmac, randomBytes, randomUUID } = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = process.env.RTS_BENCH_DIST ? path.resolve(process.env.RTS_BENCH_DIST) : path.join(ROOT, 'dist');

/** require() a module of the compiled project, e.g. dist('bootstrap/container'). */
const dist = (rel) => {
  const file = path.join(DIST, rel);
  try {
    return require(file);
  } catch (error) {
    if (error && error.code === 'MODULE_NOT_FOUND' && String(error.message).includes(file)) {
      throw new Error(`${file} not found: run \`npm run build\` first (the benchmarks use the compiled code)`);
    }
    throw error;
  }
};

const BetterSqlite3 = require(require.resolve('better-sqlite3', { paths: [ROOT] }));
const { DateTime } = require(require.resolve('luxon', { paths: [ROOT] }));

/** A fixed pseudonym secret, so patient keys are the same in every run (and in the cached query dataset). */
const SECRET_HEX = '7e1c0b5f4a3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f';

// ---------- arguments, timing, statistics ----------

/** --name value / --name=value / --flag. */
const parseArgs = (argv = process.argv.slice(2)) => {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) out[a.slice(2)] = argv[++i];
    else out[a.slice(2)] = true;
  }
  return out;
};

const nowNs = () => process.hrtime.bigint();
const msSince = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;

/** Nearest-rank percentile of an array of numbers (copied and sorted). */
const percentiles = (values, ps = [50, 90, 99]) => {
  const s = Float64Array.from(values).sort();
  const out = {};
  for (const p of ps) out[`p${p}`] = s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  out.n = s.length;
  out.mean = s.length === 0 ? NaN : s.reduce((a, b) => a + b, 0) / s.length;
  return out;
};
/** Median, the mean of the two middle values for an even count (so two rounds give their mean). */
const median = (values) => {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h] : (s[h - 1] + s[h]) / 2;
};

/**
 * CPU time (user + system, ms) a process has used so far, from /proc (Linux); NaN elsewhere. With `mainThread`,
 * only its main thread's (the event loop's; its thread id is the process id), without GC and libuv threads.
 */
const procCpuMs = (pid, { mainThread = false } = {}) => {
  try {
    const stat = fs.readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return NaN;
  }
};

const fmt = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : String(x));

// ---------- the machine ----------

const machine = () => {
  let cpu = 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {}
  let nproc = os.cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  } catch {}
  const db = new BetterSqlite3(':memory:');
  const sqlite = db.prepare('SELECT sqlite_version() AS v').get().v;
  db.close();
  let betterSqlite3 = '?';
  try {
    betterSqlite3 = require(require.resolve('better-sqlite3/package.json', { paths: [ROOT] })).version;
  } catch {}
  return {
    cpu,
    nproc,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    sqlite,
    betterSqlite3,
    kernel: os.release(),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
  };
};

/** Linux pressure stall information: share of the last 10/60 s in which some runnable task waited for a CPU / for IO. */
const pressure = () => {
  const read = (what) => {
    try {
      const m = /some avg10=([\d.]+) avg60=([\d.]+)/.exec(fs.readFileSync(`/proc/pressure/${what}`, 'utf8'));
      return m ? { avg10: Number(m[1]), avg60: Number(m[2]) } : null;
    } catch {
      return null;
    }
  };
  return { loadavg: os.loadavg().map((x) => +x.toFixed(2)), cpuSome: read('cpu'), ioSome: read('io') };
};
const fmtPressure = (p) =>
  `loadavg ${p.loadavg.join(' ')}` + (p.cpuSome ? `, CPU pressure some avg10 ${p.cpuSome.avg10}% avg60 ${p.cpuSome.avg60}%` : '') + (p.ioSome ? `, IO pressure some avg60 ${p.ioSome.avg60}%` : '');

// ---------- test data ----------

/**
 * A valid CPR number (ddmmyy-ssss) for patient i: distinct for i < 336 * 70. Serials start with 1 (born 19yy).
 */
const cprOf = (i) => {
  const dd = 1 + (i % 28);
  const mm = 1 + (Math.floor(i / 28) % 12);
  const yy = 30 + Math.floor(i / 336);
  const serial = 1000 + (i % 9000);
  return `${String(dd).padStart(2, '0')}${String(mm).padStart(2, '0')}${String(yy).padStart(2, '0')}-${serial}`;
};

/** Deterministic PRNG (mulberry32), so data sets and query mixes are the same in every run. */
const rng = (seed) => {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};

/** A plausible reading: systolic 100..169, diastolic 60..99 (always below systolic). */
const reading = (rand) => {
  const systolic = 100 + Math.floor(rand() * 70);
  const diastolic = 60 + Math.floor(rand() * 40);
  return { systolic, diastolic };
};

/** ISO-8601 UTC at second precision from epoch seconds: 2025-05-10T14:50:14Z (the project's toIsoSeconds form). */
const isoSeconds = (epochSeconds) => new Date(epochSeconds * 1000).toISOString().replace('.000Z', 'Z');

// ---------- the rows the hub writes for one observation ----------

/**
 * The event row and registry row the hub writes for one submitted observation (no observationId, no
 * correlationId), built with the project's own functions exactly as XdsBackend.register and the registry
 * projection do. `document` may be given (see fastDocument) to skip the HL7 builder. `storedContent` turns the
 * document into what the event stores (sealedRowFactory seals it); `cacheKeys: false` computes the pseudonymous
 * key (HMAC) for every row, as the hub does, instead of once per patient.
 */
const rowFactory = ({ repositoryUniqueId, secretHex = SECRET_HEX, cacheKeys = true, storedContent = (document) => document, digestOf = null }) => {
  const { buildDocument } = dist('application/telemed');
  const { sha256Hex, uuidToOid, uuidV5 } = dist('application/ids');
  const { HmacPatientKeys } = dist('adapters/system/hmac-patient-keys');
  const { documentStreamName } = dist('domain/documents/document-entry');
  const keys = new HmacPatientKeys(Buffer.from(secretHex, 'hex'));
  const keyCache = new Map();
  const keyFor = (cpr) => {
    if (!cacheKeys) return keys.keyFor(cpr);
    let k = keyCache.get(cpr);
    if (k === undefined) keyCache.set(cpr, (k = keys.keyFor(cpr)));
    return k;
  };
  /** obs: { patientId, systolic, diastolic, measuredAt (ISO seconds), measuredEpoch }; creationTime: ISO seconds. */
  return (obs, creationTime, document) => {
    const teleObs = { patientId: obs.patientId, systolic: { value: obs.systolic, unit: 'mmHg' }, diastolic: { value: obs.diastolic, unit: 'mmHg' }, measuredAt: obs.measuredAt };
    let metadata;
    if (document === undefined) ({ document, metadata } = buildDocument(teleObs));
    const uniqueId = uuidToOid(randomUUID());
    const streamName = documentStreamName(uniqueId);
    const patientKey = keyFor(obs.patientId);
    // The entry's hash: the plain SHA-256, or (digestOf, sealed rows) the keyed digest the hub stores instead.
    const hash = digestOf === null ? sha256Hex(document) : digestOf(document, patientKey, uniqueId);
    const size = Buffer.byteLength(document, 'utf8');
    const entry = {
      uniqueId,
      patientKey,
      repositoryUniqueId,
      observationId: null,
      creationTime,
      serviceStartTime: metadata ? metadata.serviceStartTime : obs.measuredAt,
      serviceStopTime: metadata ? metadata.serviceStopTime : obs.measuredAt,
      mimeType: 'text/xml',
      classCode: '8716-3',
      typeCode: '55284-4',
      formatCode: 'urn:telemed-rts:hl7:bp:1',
      title: 'Home blood pressure measurement',
      languageCode: 'en',
      hash,
      size,
      replaces: null,
    };
    const commandId = `submit/${uniqueId}`;
    return {
      event: {
        stream_name: streamName,
        stream_version: 0,
        event_id: uuidV5(`${commandId}/${streamName}/0`),
        type: 'DocumentSubmitted',
        data: JSON.stringify({ ...entry, content: storedContent(document, entry, obs) }),
        metadata: JSON.stringify({ causationId: commandId }),
      },
      registry: [
        uniqueId, patientKey, repositoryUniqueId, 'Approved', creationTime, entry.serviceStartTime, obs.measuredEpoch,
        'text/xml', hash, size, null, null, null, obs.systolic, obs.diastolic,
      ],
    };
  };
};

/**
 * The HL7 document of buildDocument by string substitution into its output for a reference reading: ~100x
 * faster than the builder, used only to load the 1M query dataset. checkFastDocument compares the two.
 */
const fastDocumentFactory = () => {
  const { buildDocument } = dist('application/telemed');
  const ref = buildDocument({ patientId: '010150-1234', systolic: { value: 123, unit: 'mmHg' }, diastolic: { value: 87, unit: 'mmHg' }, measuredAt: '2025-05-10T14:50:14Z' }).document;
  const parts = ref.split(/20250510145014|010150-1234|123\.0|87\.0/);
  if (parts.length !== 5) throw new Error('fastDocument: the HL7 template changed; update bench/lib.js');
  const hl7Time = (iso) => iso.replace(/[-:TZ]/g, '');
  return (obs) => `${parts[0]}${hl7Time(obs.measuredAt)}${parts[1]}${obs.patientId}${parts[2]}${obs.systolic.toFixed(1)}${parts[3]}${obs.diastolic.toFixed(1)}${parts[4]}`;
};

const checkFastDocument = (fastDocument, samples) => {
  const { buildDocument } = dist('application/telemed');
  for (const obs of samples) {
    const real = buildDocument({ patientId: obs.patientId, systolic: { value: obs.systolic, unit: 'mmHg' }, diastolic: { value: obs.diastolic, unit: 'mmHg' }, measuredAt: obs.measuredAt }).document;
    if (real !== fastDocument(obs)) throw new Error(`fastDocument differs from buildDocument for ${JSON.stringify(obs)}`);
  }
};

const INSERT_EVENT_SQL = `INSERT INTO events (stream_name, stream_version, event_id, type, data, metadata, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?)`;
const INSERT_REGISTRY_SQL = `INSERT INTO registry_entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
/** SqliteKeyStore's insert of a new patient's data key. */
const INSERT_KEY_SQL = `INSERT INTO patient_keys (patient_key, data_key, created_at) VALUES (?, ?, ?) ON CONFLICT (patient_key) DO NOTHING`;

/** Create the event store's and the registry's tables in `file` with the adapters themselves, then close. */
const createSchema = (file) => {
  const { SqliteEventStore } = dist('adapters/event-store/sqlite/sqlite-event-store');
  const { SqliteRegistry } = dist('adapters/registry/sqlite-registry');
  const store = SqliteEventStore.open({ file });
  new SqliteRegistry(store); // creates registry_entries, its index, projection_checkpoints
  return store.close();
};

/**
 * The key store's file (`patient-keys.sqlite`), made by the adapter itself, and a raw connection to it with the
 * adapter's PRAGMAs: WAL, synchronous=FULL, secure_delete, temp_store=MEMORY.
 */
const openKeyFile = (file) => {
  const { SqliteKeyStore } = dist('adapters/crypto/key-stores');
  new SqliteKeyStore(file).close();
  const db = new BetterSqlite3(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('secure_delete = ON');
  db.pragma('busy_timeout = 5000');
  db.pragma('temp_store = MEMORY');
  return db;
};

// ---------- temp dirs, ports, child processes ----------

const tempDir = (prefix) => fs.mkdtempSync(path.join(os.tmpdir(), `rts-bench-${prefix}-`));
const rmrf = (dir) => fs.rmSync(dir, { recursive: true, force: true });

const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------- HTTP ----------

/** One request on the agent; resolves { status, body } when the response has been read. */
const request = (agent, { port, method, path: p, body, headers: extra }) =>
  new Promise((resolve, reject) => {
    const headers = { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }), ...extra };
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });

const waitForHttp = async (port, timeoutMs = 20_000) => {
  const agent = new http.Agent({ keepAlive: false });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const r = await request(agent, { port, method: 'GET', path: '/health' });
      if (r.status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`hub on port ${port} did not answer /health within ${timeoutMs} ms`);
    await sleep(50);
  }
};

/**
 * Fixed-concurrency closed-loop load: `concurrency` workers on one keep-alive agent, each sending the next of
 * `total` requests as soon as its previous one is answered. makeRequest(i) -> { method, path, body }.
 * Returns wall time, per-request latencies (ms) and status counts.
 */
const runLoad = async ({ port, concurrency, total, makeRequest, expectStatus }) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
  const latencies = new Float64Array(total);
  const statuses = {};
  let next = 0;
  let firstError = null;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const req = makeRequest(i);
      const t0 = nowNs();
      const r = await request(agent, { port, ...req });
      latencies[i] = msSince(t0);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (expectStatus && r.status !== expectStatus && firstError === null) firstError = `HTTP ${r.status}: ${r.body.slice(0, 300)}`;
    }
  };
  const t0 = nowNs();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const wallMs = msSince(t0);
  agent.destroy();
  return { wallMs, latencies, statuses, firstError };
};

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * The same closed-loop load as runLoad, on bare keep-alive sockets: `concurrency` connections, each sending its next
 * request (HTTP/1.1, Content-Length, no pipelining) once the previous answer has been read whole. What it saves is
 * the client's own CPU (node:http's ClientRequest and IncomingMessage per request: ~100-170 µs here), which runs on
 * the same two cores as the hub; the requests on the wire are the ones runLoad sends. An answer it cannot read as
 * Content-Length framed (chunked, a closed connection) fails the run: it is not the hub's to be measured so.
 */
const runLoadRaw = ({ port, concurrency, total, makeRequest, expectStatus }) =>
  new Promise((resolve, reject) => {
    const latencies = new Float64Array(total);
    const statuses = {};
    let next = 0;
    let done = 0;
    let firstError = null;
    let failed = false;
    const sockets = [];
    const t0 = nowNs();
    const fail = (e) => {
      if (failed) return;
      failed = true;
      for (const s of sockets) s.destroy();
      reject(e);
    };
    const finish = () => {
      const wallMs = msSince(t0);
      for (const s of sockets) s.destroy();
      resolve({ wallMs, latencies, statuses, firstError });
    };
    const connection = () => {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.setNoDelay(true);
      sockets.push(socket);
      let buffered = Buffer.alloc(0);
      let current = -1;
      let started = 0n;
      const send = () => {
        if (next >= total) return;
        current = next++;
        const { method, path: p, body, headers: extra } = makeRequest(current);
        let head = `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n`;
        if (body !== undefined) head += `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n`;
        for (const [k, v] of Object.entries(extra ?? {})) head += `${k}: ${v}\r\n`;
        started = nowNs();
        socket.write(head + '\r\n' + (body ?? ''));
      };
      socket.on('data', (chunk) => {
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        for (;;) {
          const end = buffered.indexOf(CRLF2);
          if (end < 0) return;
          const head = buffered.toString('latin1', 0, end);
          const status = Number(head.slice(9, 12));
          const length = /\r\ncontent-length: *(\d+)/i.exec(head);
          if (!length) return fail(new Error(`runLoadRaw: an answer without Content-Length (HTTP ${status}): ${head.slice(0, 200)}`));
          const bodyEnd = end + 4 + Number(length[1]);
          if (buffered.length < bodyEnd) return;
          if (current < 0) return fail(new Error('runLoadRaw: an answer to no request'));
          latencies[current] = Number(nowNs() - started) / 1e6;
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (expectStatus && status !== expectStatus && firstError === null) firstError = `HTTP ${status}: ${buffered.toString('utf8', end + 4, bodyEnd).slice(0, 300)}`;
          buffered = buffered.subarray(bodyEnd);
          current = -1;
          if (++done === total) return finish();
          send();
        }
      });
      socket.on('error', fail);
      socket.on('close', () => {
        if (!failed && done < total) fail(new Error(`runLoadRaw: the hub closed a connection after ${done} of ${total} answers`));
      });
      socket.on('connect', send);
    };
    for (let i = 0; i < Math.min(concurrency, total); i++) connection();
    if (total === 0) finish();
  });

/**
 * A bearer token per patient from the hub's development login (access control is on, as `npm start` runs it):
 * fetched before the clock starts. Returns patientId -> 'Bearer <jwt>'.
 */
const patientTokens = async (port, patientIds) => {
  const tokens = new Map();
  const agent = new http.Agent({ keepAlive: true });
  try {
    for (const id of new Set(patientIds)) {
      const r = await request(agent, { port, method: 'POST', path: '/auth/dev-login', body: JSON.stringify({ role: 'patient', patient: id }) });
      if (r.status !== 200) throw new Error(`dev-login: HTTP ${r.status} ${r.body.slice(0, 200)}`);
      tokens.set(id, `Bearer ${JSON.parse(r.body).token}`);
    }
  } finally {
    agent.destroy();
  }
  return tokens;
};

module.exports = {
  patientTokens,
  ROOT,
  DIST,
  dist,
  BetterSqlite3,
  DateTime,
  SECRET_HEX,
  parseArgs,
  nowNs,
  msSince,
  percentiles,
  median,
  procCpuMs,
  pressure,
  fmtPressure,
  fmt,
  fmtInt,
  machine,
  cprOf,
  rng,
  reading,
  isoSeconds,
  rowFactory,
  fastDocumentFactory,
  checkFastDocument,
  INSERT_EVENT_SQL,
  INSERT_REGISTRY_SQL,
  INSERT_KEY_SQL,
  createSchema,
  openKeyFile,
  tempDir,
  rmrf,
  freePort,
  sleep,
  request,
  waitForHttp,
  runLoad,
  runLoadRaw,
};

// ---------- PostgreSQL (bench/ingest-postgres.js) ----------
// Added after the exports above so that nothing existing changes; `pg` is required lazily, so the SQLite
// benchmarks never load it.

/** The benchmark database: RTS_BENCH_POSTGRES_URL, else the local trust-auth server's `test` database. */
const PG_URL = process.env.RTS_BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/test';

let pgModule = null;
/** The project's `pg` (node-postgres). */
const pg = () => (pgModule ??= require(require.resolve('pg', { paths: [ROOT] })));

/** A fresh, unused schema name: bench_<what>_<pid>_<counter>_<random>. */
let pgSchemaCounter = 0;
const pgSchemaName = (what) => `bench_${what.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}_${process.pid}_${++pgSchemaCounter}_${randomUUID().slice(0, 6)}`.slice(0, 63);

/** Runs fn(client) on a short-lived admin connection. */
const withPgClient = async (url, fn) => {
  const client = new (pg().Client)({ connectionString: url, application_name: 'rts-bench-admin' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
};

const pgDropSchema = (url, schema) => withPgClient(url, (c) => c.query(`DROP SCHEMA IF EXISTS "${schema.replace(/"/g, '""')}" CASCADE`));

/**
 * Cluster-wide WAL counters (pg_stat_wal, PostgreSQL 14+): wal_sync = WAL flushes (fdatasync), each of which may
 * cover several commits (group commit). Cluster-wide, so other users of the server add to it. Backends report
 * their counters at most once a second while busy and at exit, so read it after the connections are closed.
 */
const pgStatWal = async (url) =>
  withPgClient(url, async (c) => {
    const { rows } = await c.query('SELECT wal_records::bigint::text AS records, wal_bytes::bigint::text AS bytes, wal_write::text AS writes, wal_sync::text AS syncs FROM pg_stat_wal');
    const r = rows[0] ?? {};
    return { records: Number(r.records), bytes: Number(r.bytes), writes: Number(r.writes), syncs: Number(r.syncs) };
  });
const pgWalDelta = (a, b) => ({ records: b.records - a.records, bytes: b.bytes - a.bytes, writes: b.writes - a.writes, syncs: b.syncs - a.syncs });

/** Rows inserted/updated per table of a schema (pg_stat_user_tables; reported by backends at exit at the latest). */
const pgTableStats = (url, schema) =>
  withPgClient(url, async (c) => {
    const { rows } = await c.query('SELECT relname, n_tup_ins::int AS ins, n_tup_upd::int AS upd FROM pg_stat_user_tables WHERE schemaname = $1', [schema]);
    return Object.fromEntries(rows.map((r) => [r.relname, { ins: r.ins, upd: r.upd }]));
  });

/** Backends of the server whose application_name is `name` (e.g. a hub child started with PGAPPNAME). */
const pgConnectionsOf = async (client, name) =>
  Number((await client.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [name])).rows[0].n);

/** The server and its durability settings, for the report. */
const pgServer = (url) =>
  withPgClient(url, async (c) => {
    const setting = async (name) => (await c.query(`SELECT current_setting($1, true) AS v`, [name])).rows[0].v;
    const out = { version: (await c.query('SHOW server_version')).rows[0].server_version };
    for (const name of ['synchronous_commit', 'fsync', 'wal_sync_method', 'full_page_writes', 'commit_delay', 'commit_siblings', 'wal_level', 'shared_buffers', 'max_connections', 'synchronous_standby_names']) {
      out[name] = await setting(name);
    }
    try {
      out.data_directory = await setting('data_directory');
    } catch {}
    out.pgNode = (() => {
      try {
        return require(require.resolve('pg/package.json', { paths: [ROOT] })).version;
      } catch {
        return '?';
      }
    })();
    return out;
  });

/**
 * The rows the hub writes for one observation in PostgreSQL: rowFactory's, with what the current write path adds
 * to the event's data (`summary`: the values the registry would otherwise parse out of the HL7, put by
 * TeleMedService.record) and, for an HTTP upload, a correlationId (the request id) in the metadata.
 * event: { stream_name, stream_version, event_id, type, data (JSON text), metadata (JSON text) }; registry: the
 * 15 registry_entries columns in table order (the PostgreSQL registry has the same columns as the SQLite one).
 */
const pgRowFactory = ({ repositoryUniqueId, secretHex = SECRET_HEX }) => {
  // The rows the hub writes since issue 7: the document sealed under the patient's data key (sealedRowFactory),
  // with that key in `dataKey` for the key rows.
  const make = sealedRowFactory({ repositoryUniqueId, secretHex });
  return (obs, creationTime, { correlationId } = {}) => {
    const row = make(obs, creationTime);
    if (correlationId !== undefined) {
      const { causationId } = JSON.parse(row.event.metadata);
      row.event.metadata = JSON.stringify({ correlationId, causationId });
    }
    return row;
  };
};

/**
 * The rows the SQLite hub writes since crypto-shredding (issue 7): rowFactory's, with the document's personal
 * data sealed as XdsBackend.register seals it: `content` holds the AES-256-GCM envelope of JSON
 * { content, summary } under the patient's own data key (one random key per patient here), with the associated
 * data `<patientKey>|document/<uniqueId>` as PatientCipher binds it; the event has no `summary` of its own.
 * Sealing is done here, before any clock starts (like building the HL7 and the JSON).
 */
const sealedRowFactory = ({ repositoryUniqueId, secretHex = SECRET_HEX, cacheKeys = true }) => {
  const { sealWith } = dist('adapters/crypto/patient-cipher');
  const { DIGEST_PREFIX } = dist('application/ports/patient-data-protection');
  const dataKeys = new Map();
  const dataKeyOf = (patientKey) => {
    let key = dataKeys.get(patientKey);
    if (key === undefined) dataKeys.set(patientKey, (key = randomBytes(32)));
    return key;
  };
  const storedContent = (content, entry, obs) => {
    const payload = JSON.stringify({ content, summary: { systolic: obs.systolic, diastolic: obs.diastolic } });
    return sealWith(dataKeyOf(entry.patientKey), payload, Buffer.from(`${entry.patientKey}|document/${entry.uniqueId}`, 'utf8'));
  };
  // The hash the hub stores for a sealed document (event data and registry row): PatientCipher.digest, an HMAC under
  // a key derived from the patient's data key, prefixed 'hmac-sha256:' (76 characters, not the plain SHA-256's 64).
  const digestOf = (document, patientKey, uniqueId) => {
    const digestKey = createHmac('sha256', dataKeyOf(patientKey)).update('telemed-rts document digest v1').digest();
    return `${DIGEST_PREFIX}${createHmac('sha256', digestKey).update(`${patientKey}|document/${uniqueId}`, 'utf8').update('\n').update(document, 'utf8').digest('hex')}`;
  };
  const make = rowFactory({ repositoryUniqueId, secretHex, cacheKeys, storedContent, digestOf });
  // The patient's data key goes with each row: the hub stores it (key store) before the patient's first event.
  return (obs, creationTime, document) => {
    const row = make(obs, creationTime, document);
    row.dataKey = dataKeys.get(row.registry[1]);
    return row;
  };
};

/**
 * The audit event the hub appends for each HTTP upload (`AuditRecorded` of an allowed `observations.write`), as
 * the event row it stores: chained per day/partition stream with the project's own audit-chain functions, the
 * event id the audit trail derives, metadata with the request id. `at` is an ISO instant with milliseconds.
 */
const auditRowFactory = () => {
  const { chain, auditStreamOf, genesisHash } = dist('application/audit/audit-chain');
  const { uuidV5 } = dist('application/ids');
  const heads = new Map();
  return (patientKey, at) => {
    const requestId = randomUUID();
    const entry = { at, subject: `patient-${patientKey.slice(1, 13)}`, role: 'patient', systemId: null, action: 'observations.write', patientKey, resource: null, ip: '127.0.0.1', requestId, outcome: 'allowed', status: 201, reason: null };
    const stream = auditStreamOf(entry);
    const head = heads.get(stream) ?? { version: -1, hash: genesisHash(stream) };
    const [linked] = chain(head.hash, [entry]);
    heads.set(stream, { version: head.version + 1, hash: linked.hash });
    return {
      stream_name: stream,
      stream_version: head.version + 1,
      event_id: uuidV5(`audit/${stream}/${linked.hash}`),
      type: 'AuditRecorded',
      data: JSON.stringify(linked),
      metadata: JSON.stringify({ correlationId: requestId }),
    };
  };
};

/** Column types of registry_entries, in table order, for INSERT ... SELECT * FROM unnest($1::text[], ...). */
const PG_REGISTRY_TYPES = ['text', 'text', 'text', 'text', 'text', 'text', 'bigint', 'text', 'text', 'integer', 'text', 'text', 'text', 'double precision', 'double precision'];

Object.assign(module.exports, {
  PG_URL,
  pg,
  pgSchemaName,
  withPgClient,
  pgDropSchema,
  pgStatWal,
  pgWalDelta,
  pgTableStats,
  pgConnectionsOf,
  pgServer,
  pgRowFactory,
  sealedRowFactory,
  auditRowFactory,
  PG_REGISTRY_TYPES,
});
