import { DeciderSpec } from '../support/decider-spec';
import { consultationParties, evolveConsultationView } from '../../src/application/consultation/consultation-projection';
import { consultationReaders } from '../../src/bootstrap/security-module';
import {
  consultationDecider,
  type ConsultationCommand,
  type ConsultationEvent,
} from '../../src/domain/consultation/consultation';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../src/domain/shared/errors';

const id = 'c0ffee00-0000-4000-8000-000000000001';
const t0 = '2024-05-01T10:00:00.000Z';
const t1 = '2024-05-01T10:30:00.000Z';
const tLate = '2024-05-01T11:00:00.000Z'; // the first offer's expiry (deadline 3600 s)
const QUESTION = 'Suspected aortic dissection, 64-year-old, chest pain';
const A = 'chengdu:li';
const B = 'beijing:wang';
const C = 'mianyang:zhao';

const request: ConsultationCommand = {
  type: 'RequestConsultation',
  consultationId: id,
  applicantSystemId: 'xian',
  applicantClinician: 'dr-chen',
  candidates: [A, B, C],
  clinicalQuestion: QUESTION,
  summary: 'CT attached',
  attachments: ['1.2.3.4'],
  deadlineSeconds: 3600,
  reportResend: { intervalSeconds: 600, maxAttempts: 2 },
  correlationId: 'corr-1',
  now: t0,
};
const requested: ConsultationEvent = {
  type: 'ConsultationRequested',
  data: {
    consultationId: id,
    applicantSystemId: 'xian',
    applicantClinician: 'dr-chen',
    candidates: [A, B, C],
    clinicalQuestion: QUESTION,
    summary: 'CT attached',
    attachments: ['1.2.3.4'],
    deadlineSeconds: 3600,
    reportResend: { intervalSeconds: 600, maxAttempts: 2 },
    correlationId: 'corr-1',
    requestedAt: t0,
  },
};
const offered = (expertId: string, offerIndex: number, at = t0, expiresAt = '2024-05-01T11:00:00.000Z'): ConsultationEvent => ({
  type: 'ConsultationOffered',
  data: { consultationId: id, expertId, offerIndex, offeredAt: at, expiresAt },
});
const home = (expertId: string) => expertId.split(':')[0]!;
const accept = (expertId: string, now = t1, by = home(expertId)): ConsultationCommand => ({ type: 'AcceptConsultation', consultationId: id, expertId, bySystemId: by, now });
const decline = (expertId: string, now = t1, by = home(expertId)): ConsultationCommand => ({ type: 'DeclineConsultation', consultationId: id, expertId, bySystemId: by, reason: ' busy ', now });
const report = (expertId: string, diagnosis = 'Type B dissection', now = t1): ConsultationCommand => ({
  type: 'IssueReport',
  consultationId: id,
  expertId,
  bySystemId: home(expertId),
  diagnosis,
  recommendations: 'Transfer',
  now,
});
const ack = (by = 'xian', now = t1): ConsultationCommand => ({ type: 'AcknowledgeReport', consultationId: id, bySystemId: by, now });
const cancel = (by = 'xian', now = t1): ConsultationCommand => ({ type: 'CancelConsultation', consultationId: id, bySystemId: by, reason: 'patient transferred', now });
const expire = (offerIndex: number, now = tLate): ConsultationCommand => ({ type: 'ExpireOffer', consultationId: id, offerIndex, now });
const resend = (attempt: number, now: string): ConsultationCommand => ({ type: 'ResendReport', consultationId: id, attempt, now });

const accepted = (expertId: string, offerIndex: number, at = t1): ConsultationEvent => ({ type: 'ConsultationAccepted', data: { consultationId: id, expertId, offerIndex, acceptedAt: at } });
const declined = (expertId: string, offerIndex: number, at = t1): ConsultationEvent => ({
  type: 'ConsultationDeclined',
  data: { consultationId: id, expertId, offerIndex, reason: 'busy', declinedAt: at },
});
const issued: ConsultationEvent = {
  type: 'ReportIssued',
  data: { consultationId: id, expertId: A, diagnosis: 'Type B dissection', recommendations: 'Transfer', issuedAt: t1, nextResendAt: '2024-05-01T10:40:00.000Z' },
};
const acknowledged: ConsultationEvent = { type: 'ReportAcknowledged', data: { consultationId: id, acknowledgedAt: t1 } };
const cancelled: ConsultationEvent = { type: 'ConsultationCancelled', data: { consultationId: id, reason: 'patient transferred', cancelledAt: t1 } };
const unassigned: ConsultationEvent = { type: 'ConsultationUnassigned', data: { consultationId: id, unassignedAt: t1 } };

const spec = DeciderSpec.for(consultationDecider);
const allDeclined = [requested, offered(A, 0), declined(A, 0), offered(B, 1, t1, '2024-05-01T11:30:00.000Z'), declined(B, 1), offered(C, 2, t1, '2024-05-01T11:30:00.000Z'), declined(C, 2), unassigned];

describe('Consultation decider', () => {
  describe('request', () => {
    it('records the request and offers it to the first candidate in the same decision', () => spec.given([]).when(request).then([requested, offered(A, 0)]));

    it('a repeat of the same request changes nothing; another request under the same id is refused', () => {
      spec.given([requested, offered(A, 0)]).when(request).thenNothing();
      spec.given([requested, offered(A, 0)]).when({ ...request, clinicalQuestion: 'other' } as ConsultationCommand).thenThrows(ConflictError, 'consultation_id_reused');
    });

    it('any other field of the request than the question also makes it another request (consultation_id_reused)', () => {
      for (const other of [
        { summary: 'MRI attached' },
        { applicantClinician: 'dr-liu' },
        { applicantSystemId: 'lanzhou' },
        { candidates: [B, A, C] }, // the same experts, in another order of preference
        { candidates: [A, B] },
        { candidates: [A, B, C, 'x-1:a'] },
        { attachments: ['1.2.3.5'] },
        { attachments: [] },
        { attachments: ['1.2.3.4', '1.2.3.5'] },
        { deadlineSeconds: 7200 },
      ]) {
        spec.given([requested, offered(A, 0)]).when({ ...request, ...other } as ConsultationCommand).thenThrows(ConflictError, 'consultation_id_reused');
      }
    });

    it('another deadline alone is named (deadlineSeconds and the stored value); other content is not; the policy and correlation id are not compared', () => {
      const state = [requested, offered(A, 0)].reduce(consultationDecider.evolve, consultationDecider.initialState());
      const refusal = (command: ConsultationCommand): unknown => {
        try {
          consultationDecider.decide(command, state);
        } catch (error) {
          return error;
        }
        return null;
      };
      const deadline = refusal({ ...request, deadlineSeconds: 7200 } as ConsultationCommand);
      expect(deadline).toMatchObject({ code: 'consultation_id_reused', details: [{ path: 'deadlineSeconds', message: "differs from the stored request's (3600)" }] });
      expect((deadline as Error).message).toMatch(/deadlineSeconds 3600/);
      expect(refusal({ ...request, summary: 'other', deadlineSeconds: 7200 } as ConsultationCommand)).toMatchObject({ code: 'consultation_id_reused', details: [] });
      expect(refusal({ ...request, applicantSystemId: 'lanzhou', deadlineSeconds: 7200 } as ConsultationCommand)).toMatchObject({ details: [] });
      // Not what the applicant sent: the hub's resend policy (changed since), a retry's new correlation id.
      spec.given([requested, offered(A, 0)]).when({ ...request, reportResend: { intervalSeconds: 60, maxAttempts: 9 }, correlationId: 'corr-2' } as ConsultationCommand).thenNothing();
    });

    it('refuses bad requests, naming fields and never the patient text', () => {
      const oid64 = `1.2.${'3'.repeat(60)}`;
      const cases: readonly (readonly [Partial<Record<string, unknown>>, readonly string[]])[] = [
        [{ candidates: [] }, ['candidates']],
        [{ candidates: [A, B, C, 'x-1:a', 'x-2:b', 'x-3:c'] }, ['candidates']], // MAX_CANDIDATES + 1
        [{ candidates: [A, A] }, ['candidates']],
        [{ candidates: ['not an expert id'] }, ['candidates.0']],
        [{ clinicalQuestion: '   ' }, ['clinicalQuestion']],
        [{ applicantClinician: '   ' }, ['applicantClinician']],
        [{ deadlineSeconds: 10 }, ['deadlineSeconds']],
        [{ deadlineSeconds: 59 }, ['deadlineSeconds']], // MIN_DEADLINE_SECONDS - 1
        [{ deadlineSeconds: 30 * 24 * 3600 + 1 }, ['deadlineSeconds']], // MAX_DEADLINE_SECONDS + 1
        [{ reportResend: { intervalSeconds: 600, maxAttempts: 101 } }, ['reportResend']],
        [{ reportResend: { intervalSeconds: 600, maxAttempts: -1 } }, ['reportResend']],
        [{ reportResend: { intervalSeconds: 0, maxAttempts: 2 } }, ['reportResend']],
        [{ attachments: ['not-an-oid'] }, ['attachments']],
        [{ attachments: ['1.02.3'] }, ['attachments']], // an arc with a leading zero is not an OID
        [{ attachments: [`${oid64}3`] }, ['attachments']], // 65 characters
        [{ attachments: Array.from({ length: 51 }, (_, i) => `1.2.${i}`) }, ['attachments']], // MAX_ATTACHMENTS + 1
        [{ consultationId: 'short' }, ['consultationId']],
        // Across areas only: an own expert gave the system's clinicians the attached documents.
        [{ candidates: [A, 'xian:zhou'] }, ['candidates.1']],
        // Passed the HTTP pattern before, and stopped the consultation downlink, whose messages take only UUIDs.
        [{ consultationId: 'case-2026-0001' }, ['consultationId']],
        [{ consultationId: '070789-4821' }, ['consultationId']],
        [{ consultationId: '11111111-2222-0333-8444-555555555555' }, ['consultationId']], // version 0
        [{ consultationId: 'C0FFEE00-0000-4000-C000-000000000001' }, ['consultationId']], // not the RFC variant
      ];
      for (const [bad, paths] of cases) {
        const error = spec.given([]).when({ ...request, ...bad } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation') as ValidationError;
        expect({ bad, paths: error.details.map((d) => d.path) }).toEqual({ bad, paths });
        expect(error.message).not.toContain(QUESTION);
      }
    });

    it('takes a request at each limit', () => {
      const oid64 = `1.2.${'3'.repeat(60)}`;
      expect(oid64).toHaveLength(64);
      for (const good of [
        { consultationId: 'C0FFEE00-0000-4000-B000-000000000001' }, // upper case
        { candidates: [A, B, C, 'x-1:a', 'x-2:b'] }, // MAX_CANDIDATES
        { deadlineSeconds: 60 }, // MIN_DEADLINE_SECONDS
        { deadlineSeconds: 30 * 24 * 3600 }, // MAX_DEADLINE_SECONDS
        { reportResend: { intervalSeconds: 600, maxAttempts: 100 } },
        { reportResend: { intervalSeconds: 600, maxAttempts: 0 } },
        { reportResend: { intervalSeconds: 1, maxAttempts: 2 } },
        { attachments: Array.from({ length: 50 }, (_, i) => `1.2.${i}`) }, // MAX_ATTACHMENTS
        { attachments: [oid64, '1.0.3'] },
      ]) {
        const types = spec
          .given([])
          .when({ ...request, ...good } as ConsultationCommand)
          .events()
          .map((e) => e.type);
        expect({ good, types }).toEqual({ good, types: ['ConsultationRequested', 'ConsultationOffered'] });
      }
    });
  });

  describe('who may read a consultation (consultationReaders)', () => {
    const view = (events: readonly ConsultationEvent[]) => events.reduce(evolveConsultationView, null)!;

    it('the applicant and the system of the expert it is with; not a system whose expert declined or let it expire', () => {
      expect(consultationReaders(view([requested, offered(A, 0)]))).toEqual(['xian', 'chengdu']);
      const moved = [requested, offered(A, 0), declined(A, 0), offered(B, 1, t1, '2024-05-01T11:30:00.000Z')];
      expect(consultationReaders(view(moved))).toEqual(['xian', 'beijing']);
      expect(consultationReaders(view([...moved, accepted(B, 1)]))).toEqual(['xian', 'beijing']);
      expect(consultationReaders(view(allDeclined))).toEqual(['xian']);
    });

    it('not the system whose expert only held the offer when the applicant cancelled; the accepted expert’s system, yes', () => {
      const offeredOnly = view([requested, offered(A, 0), cancelled]);
      expect(consultationReaders(offeredOnly)).toEqual(['xian']);
      // Nor does the case stay with that expert's system: it no longer lists it (role expert).
      expect(offeredOnly.expertSystemId).toBeNull();
      expect(consultationParties(offeredOnly)).toEqual(['xian', 'chengdu']);
      const acceptedFirst = view([requested, offered(A, 0), accepted(A, 0), cancelled]);
      expect(consultationReaders(acceptedFirst)).toEqual(['xian', 'chengdu']);
      expect(acceptedFirst.expertSystemId).toBe('chengdu');
      // A row an older build stored kept the offered expert's system after the cancel: it is no reader either.
      expect(consultationReaders({ ...offeredOnly, expertSystemId: 'chengdu' })).toEqual(['xian']);
    });

    it('takes part (consultationParties): the applicant and every system it was offered to, also after the offer ended; not a later candidate', () => {
      expect(consultationParties(view([requested, offered(A, 0)]))).toEqual(['xian', 'chengdu']);
      const moved = [requested, offered(A, 0), declined(A, 0), offered(B, 1, t1, '2024-05-01T11:30:00.000Z')];
      expect(consultationParties(view(moved))).toEqual(['xian', 'chengdu', 'beijing']);
      expect(consultationParties(view(allDeclined))).toEqual(['xian', 'chengdu', 'beijing', 'mianyang']);
    });
  });

  describe('text limits, counted after Unicode normalisation', () => {
    // U+FB2C grows to three code units under NFC: 100,000 of them passed the message contract and were stored as
    // 300,000, and the hub's own message about them was then too large for the broker.
    const grows = '\uFB2C'.repeat(40_000);

    it('refuses a summary or a report that NFC makes longer than the contract allows', () => {
      expect(grows.length).toBe(40_000);
      expect(grows.normalize('NFC').length).toBe(120_000);
      const error = spec.given([]).when({ ...request, summary: grows } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
      expect((error as ValidationError).details).toEqual([{ path: 'summary', message: expect.stringContaining('100000') }]);
      const long = { ...(report(A) as Extract<ConsultationCommand, { type: 'IssueReport' }>), recommendations: grows };
      spec.given([requested, offered(A, 0), accepted(A, 0)]).when(long).thenThrows(ValidationError, 'invalid_report');
      spec.given([requested, offered(A, 0), accepted(A, 0)]).when({ ...long, recommendations: 'x'.repeat(100_000) }).then([expect.objectContaining({ type: 'ReportIssued' })] as never);
    });

    it('counts code points, as the contract\'s maxLength and zod do: 100,000 emoji are a summary of 100,000', () => {
      const emoji = '\u{1F600}'.repeat(100_000);
      spec.given([]).when({ ...request, summary: emoji } as ConsultationCommand).then([expect.objectContaining({ type: 'ConsultationRequested' }), expect.objectContaining({ type: 'ConsultationOffered' })] as never);
      spec.given([]).when({ ...request, summary: `${emoji}x` } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
    });

    it('refuses control characters but tab, line feed and carriage return (each a 6-byte JSON escape: the report outgrew the broker\'s frame)', () => {
      const bell = '\u0007'.repeat(10);
      for (const field of ['applicantClinician', 'clinicalQuestion', 'summary'] as const) {
        const error = spec.given([]).when({ ...request, [field]: `Blood pressure ${bell}` } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
        expect((error as ValidationError).details).toEqual([{ path: field, message: expect.stringContaining('control character') }]);
      }
      const given = [requested, offered(A, 0), accepted(A, 0)];
      const issue = report(A) as Extract<ConsultationCommand, { type: 'IssueReport' }>;
      const error = spec.given(given).when({ ...issue, recommendations: `rest\u0000${'x'.repeat(10)}` }).thenThrows(ValidationError, 'invalid_report');
      expect((error as ValidationError).details).toEqual([{ path: 'recommendations', message: expect.stringContaining('control character') }]);
      spec.given(given).when({ ...issue, diagnosis: 'line one\r\n\tline two' }).then([expect.objectContaining({ type: 'ReportIssued' })] as never);
    });

    it('refuses a bidirectional override in the clinician\'s name, the one-line text (shown reordered as another name)', () => {
      const error = spec.given([]).when({ ...request, applicantClinician: 'Dr \u202enesnaH' } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
      expect((error as ValidationError).details).toEqual([{ path: 'applicantClinician', message: expect.stringContaining('control character') }]);
      spec.given([]).when({ ...request, applicantClinician: 'د. \u200fمحمد' } as ConsultationCommand).then([expect.objectContaining({ type: 'ConsultationRequested' }), expect.objectContaining({ type: 'ConsultationOffered' })] as never);
    });

    it('cuts a long decline reason at 500 code points, never inside a surrogate pair', () => {
      const events = spec.given([requested, offered(A, 0)]).when({ ...(decline(A) as object), reason: `${'a'.repeat(499)}\u{1F600}tail` } as ConsultationCommand).events();
      const reason = (events[0] as Extract<ConsultationEvent, { type: 'ConsultationDeclined' }>).data.reason;
      expect(reason).toBe(`${'a'.repeat(499)}\u{1F600}`);
    });
  });

  describe('offers', () => {
    it('the offered expert accepts before the deadline', () => spec.given([requested, offered(A, 0)]).when(accept(A)).then([accepted(A, 0)]));

    it('accepting twice changes nothing', () => spec.given([requested, offered(A, 0), accepted(A, 0)]).when(accept(A)).thenNothing());

      it('refuses an accept after the offer expired, even before the timer fired', () => {
      spec.given([requested, offered(A, 0)]).when(accept(A, tLate)).thenThrows(ConflictError, 'offer_expired');
    });

    it('takes an accept the hub handles late while the offer is open, when its sender sent it before the deadline', () => {
      const handledLate = '2024-05-01T11:05:00.000Z';
      const sent = (sentAt: string) => ({ ...(accept(A, handledLate) as object), sentAt }) as ConsultationCommand;
      spec.given([requested, offered(A, 0)]).when(sent('2024-05-01T10:59:59.000Z')).then([accepted(A, 0, handledLate)]);
      spec.given([requested, offered(A, 0)]).when(sent(tLate)).thenThrows(ConflictError, 'offer_expired');
      // Implausible: before the offer was made (beyond the clock tolerance), or not a time at all.
      spec.given([requested, offered(A, 0)]).when(sent('2024-05-01T09:58:59.000Z')).thenThrows(ConflictError, 'offer_expired');
      spec.given([requested, offered(A, 0)]).when(sent('soon')).thenThrows(ConflictError, 'offer_expired');
    });

    it('believes a sentAt up to the clock tolerance (60 s) before the offer was made, not beyond; nor one from the future', () => {
      const handledLate = '2024-05-01T11:05:00.000Z';
      const sent = (sentAt: string) => ({ ...(accept(A, handledLate) as object), sentAt }) as ConsultationCommand;
      spec.given([requested, offered(A, 0)]).when(sent('2024-05-01T09:59:00.000Z')).then([accepted(A, 0, handledLate)]); // exactly the tolerance
      spec.given([requested, offered(A, 0)]).when(sent('2024-05-01T09:58:59.999Z')).thenThrows(ConflictError, 'offer_expired');
      // After the hub's now (beyond the tolerance): not believed. (Such a sentAt is after the deadline as well: an
      // accept is only weighed by its sentAt once the hub's now is past the deadline.)
      spec.given([requested, offered(A, 0)]).when(sent('2024-05-01T11:06:00.001Z')).thenThrows(ConflictError, 'offer_expired');
      // Handled seconds after the deadline, sent a second before it: within the tolerance of the hub's now.
      const justLate = '2024-05-01T11:00:30.000Z';
      spec
        .given([requested, offered(A, 0)])
        .when({ ...(accept(A, justLate) as object), sentAt: '2024-05-01T10:59:59.000Z' } as ConsultationCommand)
        .then([accepted(A, 0, justLate)]);
    });

    it("an accept on an offer that expired says offer_expired, also when the case was unassigned at the same moment", () => {
      const expiredC: ConsultationEvent = { type: 'ConsultationExpired', data: { consultationId: id, expertId: C, offerIndex: 2, expiredAt: '2024-05-01T11:30:00.000Z' } };
      spec.given([...allDeclined.slice(0, 6), expiredC, unassigned]).when(accept(C, '2024-05-01T11:31:00.000Z')).thenThrows(ConflictError, 'offer_expired');
    });

    it('refuses an expert who was not offered the case, and a system speaking for an expert of another system', () => {
      spec.given([requested, offered(A, 0)]).when(accept(B)).thenThrows(ForbiddenError, 'expert_not_offered');
      spec.given([requested, offered(A, 0)]).when(accept(A, t1, 'beijing')).thenThrows(ForbiddenError, 'not_your_consultation');
    });

    it('a decline offers it to the next candidate at once', () =>
      spec.given([requested, offered(A, 0)]).when(decline(A)).then([declined(A, 0), offered(B, 1, t1, '2024-05-01T11:30:00.000Z')]));

    it('an expiry offers it to the next candidate; the last one leaves it unassigned', () => {
      spec
        .given([requested, offered(A, 0)])
        .when(expire(0))
        .then([{ type: 'ConsultationExpired', data: { consultationId: id, expertId: A, offerIndex: 0, expiredAt: tLate } }, offered(B, 1, tLate, '2024-05-01T12:00:00.000Z')]);
      spec
        .given(allDeclined.slice(0, 6))
        .when(expire(2, '2024-05-01T11:30:00.000Z'))
        .then([
          { type: 'ConsultationExpired', data: { consultationId: id, expertId: C, offerIndex: 2, expiredAt: '2024-05-01T11:30:00.000Z' } },
          { type: 'ConsultationUnassigned', data: { consultationId: id, unassignedAt: '2024-05-01T11:30:00.000Z' } },
        ]);
    });

    it('the last decline leaves it unassigned', () => spec.given(allDeclined.slice(0, 6)).when(decline(C)).then([declined(C, 2), unassigned]));

    it('stale, early and repeated timers change nothing', () => {
      spec.given([requested, offered(A, 0)]).when(expire(0, t1)).thenNothing(); // not yet due
      spec.given([requested, offered(A, 0), declined(A, 0), offered(B, 1, t1)]).when(expire(0)).thenNothing(); // answered
      spec.given([requested, offered(A, 0), accepted(A, 0)]).when(expire(0)).thenNothing();
    });

    it('an expert whose offer was declined or expired can no longer accept', () => {
      spec.given([requested, offered(A, 0), declined(A, 0), offered(B, 1, t1)]).when(accept(A)).thenThrows(ConflictError, 'offer_declined');
      const expired: ConsultationEvent = { type: 'ConsultationExpired', data: { consultationId: id, expertId: A, offerIndex: 0, expiredAt: tLate } };
      spec.given([requested, offered(A, 0), expired, offered(B, 1, tLate)]).when(accept(A, tLate)).thenThrows(ConflictError, 'offer_expired');
    });

    it('a repeated decline of an offer already declined records nothing', () => {
      spec.given([requested, offered(A, 0), declined(A, 0), offered(B, 1, t1, '2024-05-01T11:30:00.000Z')]).when(decline(A)).thenNothing();
    });

    it("settling one offer leaves the others as they were: the next expert's accept does not make the declined one's offer accepted", () => {
      const acceptedB = [requested, offered(A, 0), declined(A, 0), offered(B, 1, t1, '2024-05-01T11:30:00.000Z'), accepted(B, 1)];
      spec.given(acceptedB).when(report(A)).thenThrows(ConflictError, 'offer_declined');
      spec.given(acceptedB).when(accept(A)).thenThrows(ConflictError, 'offer_declined');
      spec.given(acceptedB).when(report(B)).then([{ ...issued, data: { ...issued.data, expertId: B } } as ConsultationEvent]);
    });

    it('an accepted expert cannot decline', () => {
      spec.given([requested, offered(A, 0), accepted(A, 0)]).when(decline(A)).thenThrows(ConflictError, 'consultation_already_accepted');
    });
  });

  describe('report', () => {
    const acceptedA = [requested, offered(A, 0), accepted(A, 0)];

    it('the accepted expert reports; resends are scheduled from the policy', () => spec.given(acceptedA).when(report(A)).then([issued]));

    it('the same report again changes nothing; another one is refused', () => {
      spec.given([...acceptedA, issued]).when(report(A)).thenNothing();
      spec.given([...acceptedA, issued]).when(report(A, 'Something else')).thenThrows(ConflictError, 'report_already_issued');
      // The same diagnosis with other recommendations is another report too.
      spec.given([...acceptedA, issued]).when({ ...report(A), recommendations: 'Stay' } as ConsultationCommand).thenThrows(ConflictError, 'report_already_issued');
    });

    it('with maxAttempts 0 the report is never re-sent', () => {
      const noResend = { ...requested, data: { ...requested.data, reportResend: { intervalSeconds: 600, maxAttempts: 0 } } } as ConsultationEvent;
      const given = [noResend, offered(A, 0), accepted(A, 0)];
      const once = { ...issued, data: { ...issued.data, nextResendAt: null } } as ConsultationEvent;
      spec.given(given).when(report(A)).then([once]);
      spec.given([...given, once]).when(resend(1, '2024-05-01T12:00:00.000Z')).thenNothing();
    });

    it('refuses a report before accepting, by an expert not offered, on a declined, unassigned or cancelled consultation', () => {
      spec.given([requested, offered(A, 0)]).when(report(A)).thenThrows(ConflictError, 'consultation_not_accepted');
      spec.given(acceptedA).when(report(B)).thenThrows(ForbiddenError, 'expert_not_offered');
      spec.given([requested, offered(A, 0), declined(A, 0), offered(B, 1, t1)]).when(report(A)).thenThrows(ConflictError, 'offer_declined');
      spec.given(allDeclined).when(report(C)).thenThrows(ConflictError, 'consultation_unassigned');
      spec.given([...acceptedA, cancelled]).when(report(A)).thenThrows(ConflictError, 'consultation_cancelled');
      spec.given(acceptedA).when({ ...report(A), diagnosis: ' ' } as ConsultationCommand).thenThrows(ValidationError, 'invalid_report');
    });

    it('re-sends an unacknowledged report when due, at most maxAttempts times', () => {
      const given = [...acceptedA, issued];
      spec.given(given).when(resend(1, '2024-05-01T10:39:00.000Z')).thenNothing(); // not yet due
      const r1: ConsultationEvent = { type: 'ReportResent', data: { consultationId: id, attempt: 1, resentAt: '2024-05-01T10:40:00.000Z', nextResendAt: '2024-05-01T10:50:00.000Z' } };
      spec.given(given).when(resend(1, '2024-05-01T10:40:00.000Z')).then([r1]);
      spec.given([...given, r1]).when(resend(1, '2024-05-01T10:55:00.000Z')).thenNothing(); // a repeat of attempt 1
      const r2: ConsultationEvent = { type: 'ReportResent', data: { consultationId: id, attempt: 2, resentAt: '2024-05-01T10:55:00.000Z', nextResendAt: null } };
      spec.given([...given, r1]).when(resend(2, '2024-05-01T10:55:00.000Z')).then([r2]);
      spec.given([...given, r1, r2]).when(resend(3, '2024-05-01T12:00:00.000Z')).thenNothing(); // bounded
      spec.given([...given, acknowledged]).when(resend(1, '2024-05-01T12:00:00.000Z')).thenNothing();
    });

    it('the applicant acknowledges once; others may not; not before a report', () => {
      spec.given([...acceptedA, issued]).when(ack()).then([acknowledged]);
      spec.given([...acceptedA, issued, acknowledged]).when(ack()).thenNothing();
      spec.given([...acceptedA, issued]).when(ack('chengdu')).thenThrows(ForbiddenError, 'not_your_consultation');
      spec.given(acceptedA).when(ack()).thenThrows(ConflictError, 'report_not_issued');
    });
  });

  describe('cancel', () => {
    it('the applicant cancels while offered or accepted; a repeat changes nothing', () => {
      spec.given([requested, offered(A, 0)]).when(cancel()).then([cancelled]);
      spec.given([requested, offered(A, 0), accepted(A, 0)]).when(cancel()).then([cancelled]);
      spec.given([requested, offered(A, 0), cancelled]).when(cancel()).thenNothing();
    });

    it('refuses a cancel after the report, by another system, or of an unassigned consultation', () => {
      spec.given([requested, offered(A, 0), accepted(A, 0), issued]).when(cancel()).thenThrows(ConflictError, 'report_already_issued');
      spec.given([requested, offered(A, 0), accepted(A, 0), issued, acknowledged]).when(cancel()).thenThrows(ConflictError, 'report_already_issued');
      spec.given([requested, offered(A, 0)]).when(cancel('chengdu')).thenThrows(ForbiddenError, 'not_your_consultation');
      spec.given(allDeclined).when(cancel()).thenThrows(ConflictError, 'consultation_unassigned');
    });

    it("a repeat of the expert's accept or decline changes nothing once the case was cancelled or went unassigned", () => {
      // A redelivery of the step itself (the hub died between commit and settle; the client resent after a lost
      // outcome): it was taken, and is not refused (dead-lettered, with consultation.refused to its sender).
      spec.given([requested, offered(A, 0), accepted(A, 0), cancelled]).when(accept(A)).thenNothing();
      spec.given(allDeclined).when(decline(C)).thenNothing();
      spec.given([requested, offered(A, 0), declined(A, 0), offered(B, 1, t1), cancelled]).when(decline(A)).thenNothing();
      // Not a repeat: the other step is still refused.
      spec.given([requested, offered(A, 0), accepted(A, 0), cancelled]).when(decline(A)).thenThrows(ConflictError, 'consultation_cancelled');
      spec.given(allDeclined).when(accept(C)).thenThrows(ConflictError, 'consultation_unassigned');
    });

    it('refuses every step on a cancelled consultation', () => {
      spec.given([requested, offered(A, 0), cancelled]).when(accept(A)).thenThrows(ConflictError, 'consultation_cancelled');
      spec.given([requested, offered(A, 0), cancelled]).when(decline(A)).thenThrows(ConflictError, 'consultation_cancelled');
      spec.given([requested, offered(A, 0), cancelled]).when(ack()).thenThrows(ConflictError, 'consultation_cancelled');
      spec.given([requested, offered(A, 0), cancelled]).when(expire(0)).thenNothing();
    });
  });

  it('refuses steps on an unknown consultation', () => {
    for (const c of [accept(A), decline(A), report(A), ack(), cancel()]) spec.given([]).when(c).thenThrows(NotFoundError, 'consultation_not_found');
  });
});

describe('Consultation decider: an open offer withdrawn because its expert retired', () => {
  const withdraw = (expertId: string, offerIndex: number, now = t1, unavailable?: readonly string[]): ConsultationCommand => ({
    type: 'WithdrawOffer',
    consultationId: id,
    expertId,
    offerIndex,
    reason: 'expert_retired',
    now,
    ...(unavailable ? { unavailable } : {}),
  });
  const withdrawn = (expertId: string, offerIndex: number, at = t1): ConsultationEvent => ({
    type: 'ConsultationOfferWithdrawn',
    data: { consultationId: id, expertId, offerIndex, reason: 'expert_retired', withdrawnAt: at },
  });
  const offeredAt = (expertId: string, offerIndex: number) => offered(expertId, offerIndex, t1, '2024-05-01T11:30:00.000Z');

  it('moves the case on at once, as a decline does: the next candidate is offered it', () =>
    spec.given([requested, offered(A, 0)]).when(withdraw(A, 0)).then([withdrawn(A, 0), offeredAt(B, 1)]));

  it('passes by candidates who retired too', () => spec.given([requested, offered(A, 0)]).when(withdraw(A, 0, t1, [A, B])).then([withdrawn(A, 0), offeredAt(C, 2)]));

  it('leaves the case unassigned when the withdrawn offer was to the last candidate', () => {
    const atC = [requested, offered(A, 0), declined(A, 0), offeredAt(B, 1), declined(B, 1), offeredAt(C, 2)];
    spec.given(atC).when(withdraw(C, 2)).then([withdrawn(C, 2), unassigned]);
    spec.given([requested, offered(A, 0)]).when(withdraw(A, 0, t1, [B, C])).then([withdrawn(A, 0), unassigned]);
  });

  it('a repeat, or a stale withdrawal, changes nothing and is never an error', () => {
    const after = [requested, offered(A, 0), withdrawn(A, 0), offeredAt(B, 1)];
    spec.given(after).when(withdraw(A, 0)).thenNothing(); // the repeat
    spec.given([requested, offered(A, 0)]).when(withdraw(A, 1)).thenNothing(); // another offer index
    spec.given([requested, offered(A, 0)]).when(withdraw(B, 0)).thenNothing(); // another expert
    spec.given([requested, offered(A, 0), withdrawn(A, 0), unassigned]).when(withdraw(A, 0)).thenNothing();
    spec.given([]).when(withdraw(A, 0)).thenNothing(); // unknown consultation
  });

  it('an offer already answered (accepted, declined, expired) or a closed case changes nothing', () => {
    spec.given([requested, offered(A, 0), accepted(A, 0)]).when(withdraw(A, 0)).thenNothing();
    spec.given([requested, offered(A, 0), declined(A, 0), offeredAt(B, 1)]).when(withdraw(A, 0)).thenNothing();
    const expired: ConsultationEvent = { type: 'ConsultationExpired', data: { consultationId: id, expertId: A, offerIndex: 0, expiredAt: tLate } };
    spec.given([requested, offered(A, 0), expired, offered(B, 1, tLate)]).when(withdraw(A, 0, tLate)).thenNothing();
    spec.given([requested, offered(A, 0), cancelled]).when(withdraw(A, 0)).thenNothing();
    spec.given(allDeclined).when(withdraw(C, 2)).thenNothing();
  });

  it("the retired expert's later steps on the withdrawn offer are refused with expert_retired", () => {
    const after = [requested, offered(A, 0), withdrawn(A, 0), offeredAt(B, 1)];
    spec.given(after).when(accept(A)).thenThrows(ConflictError, 'expert_retired');
    spec.given(after).when(decline(A)).thenThrows(ConflictError, 'expert_retired');
    spec.given(after).when(report(A)).thenThrows(ConflictError, 'expert_retired');
    spec.given([requested, offered(A, 0), withdrawn(A, 0), unassigned]).when(decline(A)).thenThrows(ConflictError, 'expert_retired');
    // The next candidate goes on as usual.
    spec.given(after).when(accept(B)).then([accepted(B, 1)]);
  });

  it('the read model settles the offer as withdrawn and the case goes to the next expert system, or to nobody', () => {
    const view = [requested, offered(A, 0), withdrawn(A, 0), offeredAt(B, 1)].reduce(evolveConsultationView, null);
    expect(view?.offers[0]).toMatchObject({ outcome: 'withdrawn', reason: 'expert_retired', settledAt: t1 });
    expect(view).toMatchObject({ status: 'offered', expertId: B, expertSystemId: 'beijing', due: { kind: 'offer', offerIndex: 1 } });
    expect(consultationReaders(view!)).toEqual(['xian', 'beijing']);
    const none = [requested, offered(A, 0), withdrawn(A, 0), unassigned].reduce(evolveConsultationView, null);
    expect(none).toMatchObject({ status: 'unassigned', expertSystemId: null, due: null });
    expect(consultationReaders(none!)).toEqual(['xian']);
  });
});

describe('Consultation decider: reasons, field details, erased content and the state it folds to', () => {
  const erase = (now = t1): ConsultationCommand => ({ type: 'EraseConsultationContent', consultationId: id, cause: 'patient_erased', now });
  const erased: ConsultationEvent = { type: 'ConsultationContentErased', data: { consultationId: id, cause: 'patient_erased', erasedAt: t1 } };
  const reasonOf = (events: readonly ConsultationEvent[]): string => (events[0] as Extract<ConsultationEvent, { type: 'ConsultationDeclined' | 'ConsultationCancelled' }>).data.reason;
  const declineWith = (reason: string) => spec.given([requested, offered(A, 0)]).when({ ...(decline(A) as object), reason } as ConsultationCommand).events();

  it('cuts a long reason to exactly 500 code points (the limit counts them, as JSON Schema does), never inside a pair', () => {
    expect(reasonOf(declineWith('x'.repeat(600)))).toBe('x'.repeat(500));
    // 300 emoji are 300 of 500: kept whole (cut at 500 UTF-16 units before, 250 of them).
    expect(reasonOf(declineWith('\u{1F600}'.repeat(300)))).toBe('\u{1F600}'.repeat(300));
    expect(reasonOf(declineWith(`${'x'.repeat(499)}\u{1F600}${'y'.repeat(50)}`))).toBe(`${'x'.repeat(499)}\u{1F600}`);
    for (const pair of ['\u{10000}', '\u{10FFFF}']) expect(reasonOf(declineWith(`${'x'.repeat(500)}${pair}tail`))).toBe('x'.repeat(500));
    expect(reasonOf(spec.given([requested, offered(A, 0)]).when({ ...(cancel() as object), reason: 'z'.repeat(501) } as ConsultationCommand).events())).toBe('z'.repeat(500));
  });

  it('refuses a reason with a control character (NUL, BEL), as the other texts; tab and line breaks are taken', () => {
    for (const reason of ['no\u0000', 'a\u0007b']) {
      const error = spec.given([requested, offered(A, 0)]).when({ ...(decline(A) as object), reason } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
      expect((error as ValidationError).details).toEqual([{ path: 'reason', message: 'holds a control character' }]);
      spec.given([requested, offered(A, 0)]).when({ ...(cancel() as object), reason } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
    }
    expect(reasonOf(declineWith('on leave\r\n\tuntil May'))).toBe('on leave\r\n\tuntil May');
  });

  it('refuses a line break or a C1 control in the clinician\'s name (one line), not in the clinical texts', () => {
    for (const applicantClinician of ['Dr\r\nA', 'Dr\u0085A', 'Dr\u2028A']) {
      const error = spec.given([]).when({ ...request, applicantClinician } as ConsultationCommand).thenThrows(ValidationError, 'invalid_consultation');
      expect((error as ValidationError).details).toEqual([{ path: 'applicantClinician', message: 'holds a control character or a line break' }]);
    }
  });

  it('names the field of a blank or too long clinician, question or diagnosis', () => {
    const refused = (c: object, given: ConsultationEvent[] = []) => (spec.given(given).when(c as ConsultationCommand).thenThrows(ValidationError) as ValidationError).details;
    expect(refused({ ...request, applicantClinician: ' ', clinicalQuestion: '' })).toEqual([
      { path: 'applicantClinician', message: 'must not be blank' },
      { path: 'clinicalQuestion', message: 'must not be blank' },
    ]);
    expect(refused({ ...request, applicantClinician: 'c'.repeat(201), clinicalQuestion: 'q'.repeat(10_001) }).map((d) => d.path)).toEqual(['applicantClinician', 'clinicalQuestion']);
    const acceptedA = [requested, offered(A, 0), accepted(A, 0)];
    expect(refused({ ...report(A), diagnosis: ' ' }, acceptedA)).toEqual([{ path: 'diagnosis', message: 'must not be blank' }]);
    expect(refused({ ...report(A), diagnosis: 'd'.repeat(10_001) }, acceptedA).map((d) => d.path)).toEqual(['diagnosis']);
  });

  it('a request with other attachments, as many as before, is another request', () => {
    const two = { ...request, attachments: ['1.2.3.4', '1.2.3.5'] } as ConsultationCommand;
    const given = spec.given([]).when(two).events();
    spec.given(given).when(two).thenNothing();
    spec.given(given).when({ ...two, attachments: ['1.2.3.4', '1.2.3.6'] } as ConsultationCommand).thenThrows(ConflictError, 'consultation_id_reused');
  });

  it("records the attachments' patients' pseudonymous keys with the request (erasing one of them erases the content)", () => {
    const keys = ['p0123456789abcdef0123456789abcdef'];
    spec.given([]).when({ ...request, patientKeys: keys } as ConsultationCommand).then([{ ...requested, data: { ...requested.data, patientKeys: keys } } as ConsultationEvent, offered(A, 0)]);
  });

  it('erases the content once, saying why and when; a repeat records nothing', () => {
    spec.given([requested, offered(A, 0)]).when(erase()).then([erased]);
    spec.given([requested, offered(A, 0), erased]).when(erase()).thenNothing();
  });

  it('once erased: the request again is consultation_erased, reasons are dropped, the report is no longer re-sent', () => {
    spec.given([requested, offered(A, 0), erased]).when(request).thenThrows(NotFoundError, 'consultation_erased');
    expect(reasonOf(spec.given([requested, offered(A, 0), erased]).when(decline(A)).events())).toBe('');
    expect(reasonOf(spec.given([requested, offered(A, 0), erased]).when(cancel()).events())).toBe('');
    spec.given([requested, offered(A, 0), accepted(A, 0), issued, erased]).when(resend(1, '2024-05-01T10:45:00.000Z')).thenNothing();
  });

  it('a timer for a consultation that has no offer open or no report (unknown, or only accepted) records nothing', () => {
    spec.given([]).when(expire(0)).thenNothing();
    spec.given([]).when(resend(1, '2024-05-01T10:45:00.000Z')).thenNothing();
    spec.given([requested, offered(A, 0), accepted(A, 0)]).when(resend(1, '2024-05-01T10:45:00.000Z')).thenNothing();
  });

  it('folds to the request, its offers with their outcomes and the report; events before the request are ignored', () => {
    const fold = (events: ConsultationEvent[]) => events.reduce(consultationDecider.evolve, consultationDecider.initialState());
    expect(fold([offered(A, 0), accepted(A, 0)])).toEqual({ status: 'none' });
    const open = { expertId: A, offerIndex: 0, offeredAt: t0, expiresAt: tLate, outcome: 'open' };
    expect(fold([requested, offered(A, 0)])).toEqual({ status: 'offered', request: requested.data, offers: [open], report: null, contentErasedAt: null });
    expect(fold([requested, offered(A, 0), accepted(A, 0)])).toMatchObject({ status: 'accepted', offers: [{ ...open, outcome: 'accepted' }] });
    const report = { expertId: A, diagnosis: 'Type B dissection', recommendations: 'Transfer', issuedAt: t1, attempts: 0 };
    expect(fold([requested, offered(A, 0), accepted(A, 0), issued, acknowledged])).toMatchObject({ status: 'acknowledged', report: { ...report, nextResendAt: null } });
    expect(fold([requested, offered(A, 0), accepted(A, 0), issued, erased])).toMatchObject({ status: 'reported', contentErasedAt: t1, report: { ...report, nextResendAt: null } });
    // Cancelled: the open offer is settled as cancelled, a declined one stays declined.
    const b = { expertId: B, offerIndex: 1, offeredAt: t1, expiresAt: '2024-05-01T11:30:00.000Z' };
    expect(fold([...allDeclined.slice(0, 4), cancelled])).toMatchObject({ status: 'cancelled', offers: [{ ...open, outcome: 'declined' }, { ...b, outcome: 'cancelled' }] });
  });
});
