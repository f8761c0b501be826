'use strict';
/**
 * What the consultation.sent audit entries (12b3ff1) cost the consultation downlink: the publisher goes through N
 * offers (one message each, its case one patient's) on SQLite with an outbox that takes each at once (no broker: only
 * the hub's own work is measured), without an audit trail and with the hub's AuditTrail on the same store, the two
 * interleaved round by round. The publisher records each message's entry before it sends the next: one audit append
 * (and its fsync, shared by the store's group commit) per message, in series.
 *
 *   node bench/consultation-downlink-audit.js [--n 500] [--rounds 5]
 * Needs `npx tsc -b tsconfig.build.json` first.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const N = Number(args.n ?? 500);
const ROUNDS = Number(args.rounds ?? 5);
const { DateTime } = L;
const { SqliteEventStore } = L.dist('adapters/event-store/sqlite/sqlite-event-store');
const { uuidV5 } = L.dist('application/ids');
const { AuditTrail } = L.dist('application/audit/audit-trail');
const { ConsultationDownlinkPublisher } = L.dist('application/consultation/consultation-downlink');
const { PatientCipher } = L.dist('adapters/crypto/patient-cipher');
const { InMemoryKeyStore } = L.dist('adapters/crypto/key-stores');
const { createDirectoryModule } = L.dist('bootstrap/directory-module');
const { createConsultationModule } = L.dist('bootstrap/consultation-module');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const quiet = { warn() {}, error() {}, info() {} };

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rts-bench-downlink-audit-'));
  const store = SqliteEventStore.open({ file: path.join(dir, 'events.sqlite') });
  let n = 0;
  const clock = { now: () => DateTime.utc() };
  const ids = { uuid: () => uuidV5(`bench-downlink-audit/${n++}`) };
  const directory = createDirectoryModule({ store, clock, ids, logger: quiet });
  const up = (systemId, type, payload, key) => ({ id: uuidV5(`bench-downlink-audit/${key}`), type, version: 1, systemId, correlationId: `c-${key}`, time: new Date().toISOString(), payload });
  for (const s of ['aarhus', 'aalborg']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['da'], availability: 'available' };
  await directory.uplink.handleUplink(up('aalborg', 'expert.registered', { localExpertId: 'berg', profile }, 'berg'));
  const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
  const module = createConsultationModule({ store, clock, ids, logger: quiet, directory, protection });
  // A patient's document to attach (its registry entry: what patientKeysOf finds the patient by).
  const uniqueId = '2.25.1';
  await store.appendToStream(`document-${uniqueId}`, [{ id: uuidV5('bench-downlink-audit/doc'), type: 'DocumentSubmitted', data: { uniqueId, patientKey: 'p-bench', hash: 'hmac-sha256:00', size: 1, status: 'Approved', replaces: null, submittedAt: '2024-01-01T00:00:00Z', observationId: 'o-1', measuredAt: '2024-01-01T00:00:00Z' } }]);
  for (let i = 0; i < N; i++) {
    await module.service.request({ applicantSystemId: 'aarhus', applicantClinician: 'dr-a', candidates: ['aalborg:berg'], clinicalQuestion: 'Q', summary: 'S', attachments: [] });
  }
  const audit = new AuditTrail({ store, logger: quiet });
  const timed = { without: [], with: [] };
  let entries = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      for (const kind of round % 2 === 0 ? ['without', 'with'] : ['with', 'without']) {
        let sent = 0;
        const publisher = new ConsultationDownlinkPublisher({
          ...(kind === 'with' ? { audit: { record: (e) => (entries++, audit.record(e)) }, patientKeysOf: () => Promise.resolve(['p-bench']) } : {}),
          store,
          consultations: module.readModel,
          projector: module.projector,
          outbox: { send: async () => void sent++ },
          protection,
          checkpoints: directory.checkpoints,
          queueFor: (s) => `rts.downlink.${s}`,
          name: `bench-${round}-${kind}`,
          logger: quiet,
        });
        const t = performance.now();
        await publisher.catchUp();
        timed[kind].push(performance.now() - t);
        if (sent !== N) throw new Error(`${kind}: sent ${sent} of ${N}`);
      }
    }
    const perMessage = (xs) => Math.round((median(xs) / N) * 1000) / 1000;
    console.log(JSON.stringify({ n: N, rounds: ROUNDS, withoutMedianMs: Math.round(median(timed.without)), withMedianMs: Math.round(median(timed.with)), msPerMessageWithout: perMessage(timed.without), msPerMessageWith: perMessage(timed.with), auditEntries: entries, load: os.loadavg()[0] }));
  } finally {
    await audit.close();
    await module.stop();
    await directory.stop();
    await store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
