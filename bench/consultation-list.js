'use strict';
/**
 * GET /consultations?limit=500 on the embedded hub (startHub, SQLite, access control on): one page of 500
 * consultations of one patient, the page's audit entries (one per consultation under its patient's key) included.
 * Baseline in the same run: the same route for a page of one (limit=1), scaled: what grows with the page.
 *
 *   node bench/consultation-list.js [--n 500] [--rounds 15]
 * Needs `npm run build` first.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const N = Number(args.n ?? 500);
const ROUNDS = Number(args.rounds ?? 15);
const { DateTime } = L;
const pino = require('pino');
const { SqliteEventStore } = L.dist('adapters/event-store/sqlite/sqlite-event-store');
const { DATA_FILES } = L.dist('adapters/system/data-dir');
const { uuidV5 } = L.dist('application/ids');
const { loadConfig } = L.dist('bootstrap/config');
const { createDirectoryModule } = L.dist('bootstrap/directory-module');
const { startHub } = L.dist('bootstrap/main');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rts-bench-list-'));
  const store = SqliteEventStore.open({ file: path.join(dir, DATA_FILES.events) });
  let n = 0;
  const directory = createDirectoryModule({ store, clock: { now: () => DateTime.utc() }, ids: { uuid: () => uuidV5(`bench-list/${n++}`) }, logger: { warn() {}, error() {} } });
  const up = (systemId, type, payload, key) => ({ id: uuidV5(`bench-list/${key}`), type, version: 1, systemId, correlationId: `c-${key}`, time: new Date().toISOString(), payload });
  for (const s of ['aarhus', 'aalborg']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['da'], availability: 'available' };
  await directory.uplink.handleUplink(up('aalborg', 'expert.registered', { localExpertId: 'berg', profile }, 'berg'));
  await directory.stop();
  await store.close();
  const hub = await startHub(loadConfig({ RTS_DATA_DIR: dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on', RTS_RATE_LIMIT_PER_SECOND: '100000', RTS_RATE_LIMIT_BURST: '100000' }), pino({ level: 'silent' }));
  const call = async (method, p, token, body) => {
    const res = await fetch(`${hub.url}${p}`, { method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: await res.json() };
  };
  const login = async (claims) => (await call('POST', '/auth/dev-login', null, claims)).body.token;
  try {
    const patient = await login({ role: 'patient', patient: '251248-1234' });
    const aarhus = await login({ role: 'system', systemId: 'aarhus' });
    const measuredAt = DateTime.utc().minus({ hours: 2 }).startOf('second').toISO({ suppressMilliseconds: true });
    const document = (await call('POST', '/observations', patient, { patientId: '251248-1234', systolic: 150, diastolic: 90, measuredAt, observationId: 'o-1' })).body.uniqueId;
    for (let i = 0; i < N; i++) {
      const r = await call('POST', '/consultations', aarhus, { applicantSystemId: 'aarhus', applicantClinician: 'dr-a', candidates: ['aalborg:berg'], clinicalQuestion: 'Q', summary: 'S', attachments: [document] });
      if (r.status !== 201) throw new Error(`request ${i}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    const route = [];
    const one = [];
    // One after the other, not interleaved: a page's audit entries are stored after its answer, and would be
    // counted against the next request.
    for (let round = 0; round < ROUNDS; round++) {
      const t = performance.now();
      await call('GET', '/consultations?system=aarhus&role=applicant&limit=1', aarhus);
      one.push(performance.now() - t);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const t = performance.now();
      const page = await call('GET', `/consultations?system=aarhus&role=applicant&limit=${N}`, aarhus);
      route.push(performance.now() - t);
      if (page.body.items.length !== N) throw new Error(`page of ${page.body.items.length}`);
    }
    console.log(JSON.stringify({ n: N, rounds: ROUNDS, pageMedianMs: Math.round(median(route) * 10) / 10, pageOfOneMedianMs: Math.round(median(one) * 10) / 10, load: os.loadavg()[0] }));
  } finally {
    await hub.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
