import { OPERATIONS } from '../../src/adapters/http/openapi';
import { consultationDecider, type ConsultationCommand, type ConsultationEvent, type ConsultationState } from '../../src/domain/consultation/consultation';
import { RtsError } from '../../src/domain/shared/errors';

/**
 * Every code the consultation decider answers a step with is listed for that step's route in the OpenAPI document:
 * the steps are tried on every state a consultation with two candidates reaches in up to six steps. The lists
 * left out expert_retired (accept), offer_expired and expert_not_offered (report), consultation_unassigned
 * (report, cancel, acknowledge) and consultation_cancelled (acknowledge).
 */
const id = 'c0ffee00-0000-4000-8000-000000000001';
const t0 = '2024-05-01T10:00:00.000Z';
const before = '2024-05-01T10:30:00.000Z';
const after = '2024-05-01T12:30:00.000Z'; // past both offers' deadlines (3600 s)
const A = 'chengdu:li';
const B = 'beijing:wang';
const C = 'mianyang:zhao'; // never offered

const request: ConsultationCommand = {
  type: 'RequestConsultation',
  consultationId: id,
  applicantSystemId: 'xian',
  applicantClinician: 'dr-chen',
  candidates: [A, B],
  clinicalQuestion: 'q',
  summary: '',
  attachments: [],
  deadlineSeconds: 3600,
  reportResend: { intervalSeconds: 600, maxAttempts: 1 },
  correlationId: 'k',
  now: t0,
};

const steps = (): { route: string; command: ConsultationCommand }[] => {
  const out: { route: string; command: ConsultationCommand }[] = [];
  for (const now of [before, after]) {
    for (const expertId of [A, B, C]) {
      const bySystemId = expertId.split(':')[0]!;
      for (const by of [bySystemId, 'xian']) {
        out.push({ route: 'POST /consultations/:id/accept', command: { type: 'AcceptConsultation', consultationId: id, expertId, bySystemId: by, now } });
        out.push({ route: 'POST /consultations/:id/decline', command: { type: 'DeclineConsultation', consultationId: id, expertId, bySystemId: by, reason: '', now } });
        out.push({ route: 'POST /consultations/:id/report', command: { type: 'IssueReport', consultationId: id, expertId, bySystemId: by, diagnosis: 'd', recommendations: '', now } });
        out.push({ route: 'POST /consultations/:id/report', command: { type: 'IssueReport', consultationId: id, expertId, bySystemId: by, diagnosis: 'other', recommendations: '', now } });
      }
    }
    for (const by of ['xian', 'chengdu']) {
      out.push({ route: 'POST /consultations/:id/acknowledge', command: { type: 'AcknowledgeReport', consultationId: id, bySystemId: by, now } });
      out.push({ route: 'POST /consultations/:id/cancel', command: { type: 'CancelConsultation', consultationId: id, bySystemId: by, reason: '', now } });
    }
    out.push({ route: 'DELETE /consultations/:id/content', command: { type: 'EraseConsultationContent', consultationId: id, cause: 'requested', now } });
    for (const offerIndex of [0, 1]) out.push({ route: 'timer', command: { type: 'ExpireOffer', consultationId: id, offerIndex, now } });
    // The hub's own step when an expert retires (the RetiredExpertOffers reactor): like a timer, never refused.
    for (const [offerIndex, expertId] of [[0, A], [1, B]] as const) {
      out.push({ route: 'timer', command: { type: 'WithdrawOffer', consultationId: id, expertId, offerIndex, reason: 'expert_retired', now } });
    }
  }
  return out;
};

const apply = (state: ConsultationState, events: readonly ConsultationEvent[]): ConsultationState => events.reduce(consultationDecider.evolve, state);

describe('the consultation steps’ problems in the OpenAPI document', () => {
  it('lists every code the decider answers a step with', () => {
    const start = apply(consultationDecider.initialState(), consultationDecider.decide(request, consultationDecider.initialState()));
    const seen = new Map<string, ConsultationState>([[JSON.stringify(start), start]]);
    const answered = new Map<string, Set<string>>();
    let frontier = [start];
    for (let depth = 0; depth < 6; depth++) {
      const next: ConsultationState[] = [];
      for (const state of frontier) {
        for (const { route, command } of steps()) {
          try {
            const after = apply(state, consultationDecider.decide(command, state));
            const key = JSON.stringify(after);
            if (!seen.has(key)) (seen.set(key, after), next.push(after));
          } catch (error) {
            if (!(error instanceof RtsError)) throw error;
            answered.set(route, (answered.get(route) ?? new Set()).add(error.code));
          }
        }
      }
      frontier = next;
    }
    expect(seen.size).toBeGreaterThan(10);
    // Answered by the service before the decider: a retired expert's accept, an actionId reused for another step.
    answered.get('POST /consultations/:id/accept')!.add('expert_retired');
    for (const route of answered.keys()) if (route !== 'timer') answered.get(route)!.add('action_id_reused');
    expect(answered.get('POST /consultations/:id/report')).toContain('consultation_erased');
    const missing = [...answered].filter(([route]) => route !== 'timer').flatMap(([route, codes]) => [...codes].filter((c) => !OPERATIONS[route]!.problems!.includes(c as never)).map((c) => `${route}: ${c}`));
    expect(missing).toEqual([]);
    expect(answered.get('timer')).toBeUndefined(); // timers never fail on state
  });
});
