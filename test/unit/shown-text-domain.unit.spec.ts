// The texts people read must show something (shown-text.unit.spec.ts holds the edge to it) also for code that calls the
// directory and consultation services itself, past the HTTP and AMQP schemas: the domain refuses a blank text with the
// codes it already gives a text of white space or a control character, naming the field. What was stored before the
// rule is still read as stored.
import { DateTime } from 'luxon';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import { uuidV5 } from '../../src/application/ids';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { PatientCipher } from '../../src/adapters/crypto/patient-cipher';
import { InMemoryKeyStore } from '../../src/adapters/crypto/key-stores';
import { createConsultationModule } from '../../src/bootstrap/consultation-module';
import { createDirectoryModule } from '../../src/bootstrap/directory-module';
import { consultationDecider, type ConsultationEvent } from '../../src/domain/consultation/consultation';
import { connectedSystemDecider } from '../../src/domain/directory/connected-system';

const now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });
const clock = { now: () => now };
let n = 0;
const ids = { uuid: () => uuidV5(`shown-domain/${n++}`) };
const logger = { warn: () => undefined, error: () => undefined };
const profile = { name: 'Li Wei', title: 'Dr', specialties: ['Cardiology'], location: { city: 'Chengdu', hospital: 'West China' }, languages: ['zh'], availability: 'available' as const };
let sent = 0;
const up = (systemId: string, type: string, payload: unknown): UplinkEnvelope =>
  ({ id: uuidV5(`shown-domain/up/${sent++}`), type, version: 1, systemId, correlationId: `corr-${sent}`, time: '2024-05-01T10:00:00Z', payload }) as UplinkEnvelope;

// As in shown-text.unit.spec.ts: each shows nothing, and trim() leaves something of each.
const BLANKS = ['\u200B', '\u200C\u200D', '\u2060', '\uFEFF\u200B', '\u00AD', '\u200E\u200F\u061C', '\u2066\u2069', '\u3164', '\u3000\u00A0\u200B', '\u{E0020}', '\u034F\uFE0F'];
const INVISIBLE = /^must show a visible character: it holds only white space, format or other invisible characters/;
const ID = '11111111-2222-4333-8444-555555555555';
const request = { consultationId: ID, applicantSystemId: 'xian', applicantClinician: 'dr-chen', candidates: ['chengdu:li'], clinicalQuestion: 'Chest pain?', summary: 'Male, 58', attachments: [] };

const setup = async () => {
  const store = new InMemoryEventStore();
  const directory = createDirectoryModule({ store, clock, ids, logger });
  for (const s of ['xian', 'chengdu']) {
    await directory.service.registerSystem({ systemId: s, name: s, area: s });
    await directory.uplink.handleUplink(up(s, 'system.join.requested', { expectedBatches: 0, expectedExperts: 0 }));
  }
  await directory.uplink.handleUplink(up('chengdu', 'expert.registered', { localExpertId: 'li', profile }));
  const protection = new PatientCipher({ keys: new InMemoryKeyStore() });
  const consultations = createConsultationModule({ store, clock, ids, logger, directory, protection, policy: { defaultDeadlineSeconds: 3600, reportResend: { intervalSeconds: 600, maxAttempts: 3 } } });
  return { store, directory, service: consultations.service };
};

/** A refusal with `code`, naming `path` with the blank text's message (a bidi isolate is a control character too). */
const refusedAs = (code: string, path: string) => ({ code, details: expect.arrayContaining([{ path, message: expect.stringMatching(INVISIBLE) }]) });

describe('the domain refuses a blank text people read, whoever calls it', () => {
  it.each(BLANKS.map((b) => [JSON.stringify(b), b]))('directory: a system name or area, an expert profile of %s', async (_, blank) => {
    const { directory } = await setup();
    await expect(directory.service.registerSystem({ systemId: 'beijing', name: blank, area: 'Beijing' })).rejects.toMatchObject(refusedAs('invalid_system', 'name'));
    await expect(directory.service.registerSystem({ systemId: 'beijing', name: 'Beijing', area: ` ${blank}` })).rejects.toMatchObject(refusedAs('invalid_system', 'area'));
    const profiles: Array<[Record<string, unknown>, string]> = [
      [{ ...profile, name: blank }, 'profile.name'],
      [{ ...profile, title: blank }, 'profile.title'],
      [{ ...profile, specialties: ['Cardiology', blank] }, 'profile.specialties.1'],
      [{ ...profile, location: { city: blank, hospital: 'H' } }, 'profile.location.city'],
      [{ ...profile, location: { city: 'C', hospital: blank } }, 'profile.location.hospital'],
    ];
    for (const [p, path] of profiles) {
      await expect(directory.uplink.handleUplink(up('chengdu', 'expert.registered', { localExpertId: 'wang', profile: p }))).rejects.toMatchObject(refusedAs('invalid_expert_profile', path));
    }
  });

  it.each(BLANKS.map((b) => [JSON.stringify(b), b]))('consultations: a clinician, question, summary, reason, diagnosis or recommendations of %s', async (_, blank) => {
    const { service } = await setup();
    for (const [field, value] of [['applicantClinician', blank], ['clinicalQuestion', `${blank}\n`], ['summary', blank]] as const) {
      await expect(service.request({ ...request, [field]: value })).rejects.toMatchObject(refusedAs('invalid_consultation', field));
    }
    await service.request(request);
    await expect(service.decline(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu', reason: blank })).rejects.toMatchObject(refusedAs('invalid_consultation', 'reason'));
    await service.accept(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu' });
    await expect(service.issueReport(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu', diagnosis: blank, recommendations: 'rest' })).rejects.toMatchObject(refusedAs('invalid_report', 'diagnosis'));
    await expect(service.issueReport(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu', diagnosis: 'angina', recommendations: blank })).rejects.toMatchObject(refusedAs('invalid_report', 'recommendations'));
    await expect(service.cancel(ID, { bySystemId: 'xian', reason: blank })).rejects.toMatchObject(refusedAs('invalid_consultation', 'reason'));
    // Nothing was recorded of them: the consultation is still accepted, without a report.
    expect(await service.get(ID)).toMatchObject({ status: 'accepted' });
  });

  it('takes visible text with such characters in it, a prepended concatenation mark alone, and an empty text that says there is none', async () => {
    const { directory, service } = await setup();
    await expect(directory.service.registerSystem({ systemId: 'beijing', name: '\u200FBei\u00ADjing', area: '\u0600' })).resolves.toMatchObject({ created: true });
    await expect(directory.uplink.handleUplink(up('chengdu', 'expert.registered', { localExpertId: 'wang', profile: { ...profile, name: 'Dr 👨\u200D⚕️', title: '', location: { city: 'C', hospital: '' } } }))).resolves.not.toThrow();
    await service.request({ ...request, applicantClinician: '李\u200B伟', summary: '  ' });
    await service.accept(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu' });
    await service.issueReport(ID, { expertId: 'chengdu:li', bySystemId: 'chengdu', diagnosis: '\u06DD', recommendations: '' });
    expect(await service.get(ID)).toMatchObject({ status: 'reported', applicantClinician: '李\u200B伟', summary: '' });
  });

  it('replays what was stored before the rule as stored, and goes on from it', () => {
    const system = connectedSystemDecider.evolve(connectedSystemDecider.initialState(), { type: 'SystemRegistered', data: { systemId: 'beijing', name: '\u200B', area: '\u3164', downlinkQueue: 'rts.downlink.beijing', registeredAt: '2024-05-01T10:00:00.000Z' } });
    expect(system).toMatchObject({ status: 'registered', name: '\u200B', area: '\u3164' });
    // It joins as any other (sending such a name again is new input, refused as over HTTP).
    const join = connectedSystemDecider.decide({ type: 'StartJoin', systemId: 'beijing', expectedBatches: 0, expectedExperts: 0, requestId: 'r', correlationId: 'c', now: '2024-05-01T11:00:00.000Z' }, system);
    expect(join.map((e) => e.type)).toEqual(['SystemJoinStarted', 'SystemJoined']);
    expect(join[1]).toMatchObject({ data: { name: '\u200B', area: '\u3164' } });
    // A consultation requested with a blank clinician, question and summary is offered and cancelled as any other.
    const stored: ConsultationEvent[] = [
      {
        type: 'ConsultationRequested',
        data: { consultationId: ID, applicantSystemId: 'xian', applicantClinician: '\u200B', candidates: ['chengdu:li'], clinicalQuestion: '\u2060', summary: '\u00AD', attachments: [], deadlineSeconds: 3600, reportResend: { intervalSeconds: 600, maxAttempts: 3 }, correlationId: 'c', requestedAt: '2024-05-01T10:00:00.000Z' },
      },
      { type: 'ConsultationOffered', data: { consultationId: ID, expertId: 'chengdu:li', offerIndex: 0, offeredAt: '2024-05-01T10:00:00.000Z', expiresAt: '2024-05-01T11:00:00.000Z' } },
    ];
    const state = stored.reduce(consultationDecider.evolve, consultationDecider.initialState());
    expect(state).toMatchObject({ status: 'offered' });
    const cancelled = consultationDecider.decide({ type: 'CancelConsultation', consultationId: ID, bySystemId: 'xian', reason: 'duplicate', now: '2024-05-01T10:30:00.000Z' }, state);
    expect(cancelled.map((e) => e.type)).toContain('ConsultationCancelled');
  });
});
