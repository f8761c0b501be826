import { randomBytes } from 'node:crypto';
import { DateTime } from 'luxon';
import { uuidV5 } from '../../src/application/ids';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { dropSchema } from '../support/postgres-schema';

/**
 * Two hub processes on one PostgreSQL store, each running the Deadlines over its own read model, their polls at the
 * same moments: every offer expires once, every resend is recorded once, and the resends stop at the policy's limit.
 */
jest.setTimeout(120_000);
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `rv3_two_hub_timers_${process.pid}_${randomBytes(3).toString('hex')}`;
let now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
const logger = { warn: () => undefined, error: () => undefined };
const profile = { name: 'E', title: 'Dr', specialties: ['Cardiology'], location: { city: 'C', hospital: 'H' }, languages: ['zh'], availability: 'available' as const };
const up = (systemId: string, type: string, payload: unknown, key: string) =>
  ({ id: uuidV5(`two-hubs/${systemId}/${key}`), type, version: 1, systemId, correlationId: `corr-${key}`, time: '2024-05-01T10:00:00Z', payload }) as unknown as UplinkEnvelope;
const idOf = (i: number) => `33333333-2222-4333-8444-${String(i).padStart(12, '0')}`;
const stores: PostgresEventStore[] = [];

afterAll(async () => {
  for (const s of stores) await s.close();
  await dropSchema(connectionString, schema);
});

const hub = async (keys: InMemoryKeyStore, n: number) => {
  const store = await PostgresEventStore.open({ connectionString, schema });
  stores.push(store);
  let k = 0;
  const ids = { uuid: () => uuidV5(`two-hubs/${n}/${k++}`) };
  const directory = createDirectoryModule({ store, clock, ids, logger });
  const module = createConsultationModule({ store, clock, ids, logger, directory, protection: new PatientCipher({ keys }), policy: { defaultDeadlineSeconds: 3600, reportResend: { intervalSeconds: 600, maxAttempts: 3 } } });
  return { store, directory, module };
};

beforeAll(async () => {
  const { directory } = await hub(new InMemoryKeyStore(), 0);
  for (const s of ['xian', 'chengdu', 'beijing']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }, `join-${s}`));
  }
  for (const [s, e] of [['chengdu', 'li'], ['beijing', 'wang']] as const) await directory.uplink.handleUplink(up(s, 'expert.registered', { localExpertId: e, profile }, `reg-${e}`));
});

it('two hubs firing the same timers record each expiry and each resend once, and stop at the limit', async () => {
  const keys = new InMemoryKeyStore();
  const a = await hub(keys, 1);
  const b = await hub(keys, 2);
  const N = 20;
  for (let i = 0; i < N; i++) {
    await a.module.service.request({ consultationId: idOf(i), applicantSystemId: 'xian', applicantClinician: 'dr', candidates: ['chengdu:li', 'beijing:wang'], clinicalQuestion: 'q', summary: '' });
  }
  // Half are accepted and reported; the others run out twice (expired, then unassigned).
  for (let i = 0; i < N / 2; i++) {
    await b.module.service.accept(idOf(i), { expertId: 'chengdu:li', bySystemId: 'chengdu' });
    await b.module.service.issueReport(idOf(i), { expertId: 'chengdu:li', bySystemId: 'chengdu', diagnosis: 'd', recommendations: 'r' });
  }
  for (let step = 0; step < 12; step++) {
    now = now.plus({ minutes: 31 });
    await Promise.all([a.module.deadlines.runOnce(), b.module.deadlines.runOnce(), a.module.deadlines.runOnce(), b.module.deadlines.runOnce()]);
  }
  const all = await a.store.readAll({ after: 0n, maxCount: 10_000 });
  for (let i = 0; i < N; i++) {
    const types = all.filter((e) => e.streamName === `consultation-${idOf(i)}`).map((e) => e.type);
    if (i < N / 2) {
      expect(types).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationAccepted', 'ReportIssued', 'ReportResent', 'ReportResent', 'ReportResent']);
    } else {
      expect(types).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationExpired', 'ConsultationOffered', 'ConsultationExpired', 'ConsultationUnassigned']);
    }
  }
});

it('an accept sent in time racing the other hub expiring the offer: one of the two, and the expert is told which', async () => {
  const keys = new InMemoryKeyStore();
  const a = await hub(keys, 3);
  const b = await hub(keys, 4);
  const N = 30;
  const base = 100;
  const start = now;
  for (let i = 0; i < N; i++) {
    await a.module.service.request({ consultationId: idOf(base + i), applicantSystemId: 'xian', applicantClinician: 'dr', candidates: ['chengdu:li', 'beijing:wang'], clinicalQuestion: 'q', summary: '' });
  }
  await b.module.projector.catchUp();
  now = now.plus({ minutes: 61 });
  const sentAt = start.plus({ minutes: 59 }).toISO()!;
  const accepts = Promise.allSettled(Array.from({ length: N }, (_, i) => a.module.service.accept(idOf(base + i), { expertId: 'chengdu:li', bySystemId: 'chengdu', sentAt })));
  await b.module.deadlines.runOnce();
  const results = await accepts;
  const all = await a.store.readAll({ after: 0n, maxCount: 10_000 });
  for (let i = 0; i < N; i++) {
    const types = all.filter((e) => e.streamName === `consultation-${idOf(base + i)}`).map((e) => e.type);
    const r = results[i]!;
    if (r.status === 'fulfilled') expect(types).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationAccepted']);
    else {
      expect(r.reason).toMatchObject({ code: 'offer_expired' });
      expect(types).toEqual(['ConsultationRequested', 'ConsultationOffered', 'ConsultationExpired', 'ConsultationOffered']);
    }
  }
});
