'use strict';
/**
 * InMemoryRegistry (the registry of the library and of the EventStoreDB profile without PostgreSQL, rebuilt from $all
 * at start) against the class it replaced on 2026-12-06 (below, as it was at 1c562f6: every row in one map, copied
 * whole per apply, every row filtered and sorted per query), in one process, alternating which goes first per round:
 *
 *   apply   --events DocumentSubmitted events (with a summary, as the hub's own uploads have: no HL7 parse) of
 *           --patients patients, their readings one a day each at a random second, uniqueIds 2.25.<UUID> as the hub
 *           makes them, applied in batches of --batch (as the projector's pages): total ms.
 *   query   then --queries findCurrent of one week (a random patient, a random week within their readings),
 *           latency of each: p50 and p99 (µs). Every run must find the same rows in the same order (checked).
 *
 *   node bench/in-memory-registry.js [--events 200000] [--patients 2000] [--batch 64] [--queries 1000] [--rounds 3]
 *
 * Needs `npm run build` first. Figures: medians over the rounds.
 */
const { createHash, randomUUID } = require('node:crypto');
const L = require('./lib');

const args = L.parseArgs();
const EVENTS = Number(args.events ?? 200_000);
const PATIENTS = Number(args.patients ?? 2000);
const BATCH = Number(args.batch ?? 64);
const QUERIES = Number(args.queries ?? 1000);
const ROUNDS = Number(args.rounds ?? 3);
const START = Date.UTC(2025, 0, 1) / 1000;
const DAY = 86_400;
const WEEK = 7 * DAY;

const { InMemoryRegistry } = L.dist('adapters/registry/in-memory-registry');
const { evolveRegistry } = L.dist('application/projections/registry-projection');
const { isDocumentEvent } = L.dist('domain/documents/document-entry');
const { uuidToOid } = L.dist('application/ids');

/** The class as it was at 1c562f6 (src/adapters/registry/in-memory-registry.ts), compiled by hand. */
class OldInMemoryRegistry {
  rows = new Map();
  position = 0n;
  erased = new Set();
  async checkpoint() {
    return this.position;
  }
  async apply(events, checkpoint) {
    const next = new Map(this.rows);
    for (const e of events) {
      if (!isDocumentEvent(e)) continue;
      const event = { type: e.type, data: e.data };
      if (event.type === 'DocumentSubmitted' && this.erased.has(event.data.patientKey)) continue;
      for (const row of evolveRegistry((id) => next.get(id) ?? null, event)) next.set(row.uniqueId, row);
    }
    this.rows = next;
    this.position = checkpoint;
  }
  async findCurrent(patientKey, fromEpoch, toEpoch, limit) {
    return [...this.rows.values()]
      .filter((r) => r.patientKey === patientKey && r.status === 'Approved' && r.serviceStartEpoch >= fromEpoch && r.serviceStartEpoch < toEpoch)
      .sort((a, b) => a.serviceStartEpoch - b.serviceStartEpoch || a.uniqueId.localeCompare(b.uniqueId))
      .slice(0, limit);
  }
}

const rand = L.rng(20261206);
const patientKeys = Array.from({ length: PATIENTS }, (_, i) => `p${String(i).padStart(32, '0')}`);
const perPatient = Math.ceil(EVENTS / PATIENTS);
const events = [];
for (let i = 0; i < EVENTS; i++) {
  // Round-robin over the patients, day by day: every batch touches up to --batch patients, as a live hub's would.
  const patientKey = patientKeys[i % PATIENTS];
  const day = Math.floor(i / PATIENTS);
  const epoch = START + day * DAY + Math.floor(rand() * DAY);
  const at = L.isoSeconds(epoch);
  const uniqueId = uuidToOid(randomUUID());
  events.push({
    id: randomUUID(),
    type: 'DocumentSubmitted',
    data: {
      uniqueId, patientKey, repositoryUniqueId: '2.25.1', observationId: null, creationTime: at, serviceStartTime: at, serviceStopTime: at,
      mimeType: 'text/xml', hash: 'a'.repeat(64), size: 1000, replaces: null, summary: { systolic: 120, diastolic: 80 }, content: '',
    },
    metadata: {},
    streamName: `document-${uniqueId}`,
    streamVersion: 0n,
    globalPosition: BigInt(i + 1),
    recordedAt: at,
  });
}
const queries = Array.from({ length: QUERIES }, () => {
  const from = START + Math.floor(rand() * Math.max(1, perPatient - 7)) * DAY + Math.floor(rand() * DAY);
  return { patientKey: patientKeys[Math.floor(rand() * PATIENTS)], from, to: from + WEEK };
});

const run = async (Registry) => {
  const registry = new Registry();
  const t0 = L.nowNs();
  for (let i = 0; i < events.length; i += BATCH) {
    const batch = events.slice(i, i + BATCH);
    await registry.apply(batch, batch.at(-1).globalPosition);
  }
  const applyMs = L.msSince(t0);
  const latencies = [];
  let rows = 0;
  const found = createHash('sha256');
  for (const q of queries) {
    const t = L.nowNs();
    const result = await registry.findCurrent(q.patientKey, q.from, q.to, 101);
    latencies.push(L.msSince(t) * 1000);
    rows += result.length;
    for (const r of result) found.update(`${r.uniqueId}\n`);
  }
  const p = L.percentiles(latencies, [50, 99]);
  return { applyMs, p50: p.p50, p99: p.p99, rowsPerQuery: rows / QUERIES, found: found.digest('hex') };
};

(async () => {
  console.log(JSON.stringify({ machine: L.machine(), pressure: L.fmtPressure(L.pressure()), events: EVENTS, patients: PATIENTS, batch: BATCH, queries: QUERIES, rounds: ROUNDS }));
  const sides = { old: OldInMemoryRegistry, new: InMemoryRegistry };
  const results = { old: [], new: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['old', 'new'] : ['new', 'old'];
    for (const side of order) {
      global.gc?.();
      const r = await run(sides[side]);
      results[side].push(r);
      if (r.found !== results.old.concat(results.new)[0].found) throw new Error(`${side} found other rows, or in another order, than the first run`);
      console.log(`round ${round + 1} ${side}: apply ${L.fmt(r.applyMs, 0)} ms, findCurrent p50 ${L.fmt(r.p50, 1)} µs p99 ${L.fmt(r.p99, 1)} µs (${L.fmt(r.rowsPerQuery, 1)} rows per query)`);
    }
  }
  const med = (side, key) => L.median(results[side].map((r) => r[key]));
  for (const side of ['old', 'new']) {
    console.log(`median ${side}: apply ${L.fmt(med(side, 'applyMs'), 0)} ms, findCurrent p50 ${L.fmt(med(side, 'p50'), 1)} µs p99 ${L.fmt(med(side, 'p99'), 1)} µs`);
  }
  console.log(`old / new: apply ${L.fmt(med('old', 'applyMs') / med('new', 'applyMs'), 0)}x, p50 ${L.fmt(med('old', 'p50') / med('new', 'p50'), 0)}x, p99 ${L.fmt(med('old', 'p99') / med('new', 'p99'), 0)}x`);
  console.log(`pressure at the end: ${L.fmtPressure(L.pressure())}`);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
