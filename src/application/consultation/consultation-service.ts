import {
  consultationDecider,
  consultationStreamName,
  type ConsultationCommand,
  type ConsultationEvent,
  type ConsultationState,
  type ConsultationStatus,
  type OfferWithdrawalReason,
  type ReportResendPolicy,
} from '../../domain/consultation/consultation';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/shared/errors';
import { handleCommand } from '../command-handling';
import type { DirectoryReadModel } from '../directory/directory-read-model';
import type { Clock } from '../ports/clock';
import type { EventStore } from '../ports/event-store';
import type { IdGenerator } from '../ports/id-generator';
import { monthSeries, type ConsultationView, type MonthCount } from './consultation-projection';
import type { ConsultationReadModel, ConsultationRole } from './consultation-read-model';

/**
 * The consultation use cases (HTTP and the uplink handler call these).
 *
 *   request(input, opts)                      -> { consultation, created }   (created false for a repeat)
 *   accept(id, { expertId, bySystemId }, opts) / decline(id, { expertId, bySystemId, reason }, opts)
 *   issueReport(id, { expertId, bySystemId, diagnosis, recommendations }, opts)
 *   acknowledge(id, { bySystemId }, opts) / cancel(id, { bySystemId, reason? }, opts)
 *   expireOffer(id, offerIndex, opts) / resendReport(id, attempt, opts)        (the Deadlines runner)
 *   withdrawOffer(id, { expertId, offerIndex, reason }, opts)                  (the RetiredExpertOffers reactor)
 *     -> { consultation, changed }
 *   get(id) -> ConsultationView | NotFoundError 'consultation_not_found'
 *   correlationIdOf(id) -> the consultation's correlation id, or null (for log lines)
 *   list({ systemId, role?, status?, limit?, cursor? }) -> { items, nextCursor }
 *   consultationsPerMonth({ from?, to? }) -> [{ month: 'YYYY-MM', requested }] with zero months filled in
 *
 * opts: { commandId?, correlationId? }. `commandId` (an uplink envelope id, an HTTP idempotency key, a timer's
 * deterministic id) becomes the events' ids, so a repeat is stored once. `correlationId` is used by `request`
 * only: every later event carries the consultation's own correlation id (read from its stream), whoever acts.
 *
 * `request` checks against the directory (caught up first) that the applicant system is registered
 * (NotFoundError 'unknown_system') and that each candidate is a known expert (ValidationError 'unknown_candidate')
 * who is not retired (ValidationError 'candidate_retired'); the decider checks the rest. Errors carry field paths
 * and never the values sent (they may be patient information).
 */
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export type ConsultationPolicy = Readonly<{
  /** Seconds a candidate has to answer an offer when the request names none. */
  defaultDeadlineSeconds: number;
  reportResend: ReportResendPolicy;
}>;
export const DEFAULT_CONSULTATION_POLICY: ConsultationPolicy = { defaultDeadlineSeconds: 24 * 3600, reportResend: { intervalSeconds: 3600, maxAttempts: 5 } };

export type ConsultationServiceDependencies = Readonly<{
  store: EventStore;
  consultations: ConsultationReadModel;
  projector: { catchUp(): Promise<void> };
  directory: Pick<DirectoryReadModel, 'getExpert' | 'getSystem'>;
  directoryProjector: { catchUp(): Promise<void> };
  clock: Clock;
  ids: IdGenerator;
  policy?: ConsultationPolicy;
}>;

export type CommandOptions = Readonly<{ commandId?: string; correlationId?: string }>;

export type RequestInput = Readonly<{
  consultationId?: string;
  applicantSystemId: string;
  applicantClinician: string;
  candidates: readonly string[];
  clinicalQuestion: string;
  summary: string;
  attachments?: readonly string[];
  deadlineSeconds?: number;
}>;

export type ListInput = Readonly<{ systemId: string; role?: ConsultationRole; status?: ConsultationStatus; limit?: number; cursor?: string }>;
export type ConsultationsPage = Readonly<{ items: readonly ConsultationView[]; nextCursor: string | null }>;
export type StepResult = Readonly<{ consultation: ConsultationView; changed: boolean }>;

export const encodeConsultationCursor = (v: Pick<ConsultationView, 'requestedAt' | 'consultationId'>): string =>
  Buffer.from(`c:${v.requestedAt}|${v.consultationId}`, 'utf8').toString('base64url');
export const decodeConsultationCursor = (cursor: string): { requestedAt: string; consultationId: string } => {
  const text = /^[A-Za-z0-9_-]{1,300}$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  const m = /^c:([^|]{1,40})\|([A-Za-z0-9_-]{1,64})$/.exec(text);
  if (!m) throw new ValidationError('invalid_cursor', 'the cursor is not one this API gave out', [{ path: 'query.cursor', message: 'unknown cursor' }]);
  return { requestedAt: m[1]!, consultationId: m[2]! };
};

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Step = DistributiveOmit<Exclude<ConsultationCommand, { type: 'RequestConsultation' }>, 'consultationId' | 'now'>;

export class ConsultationService {
  private readonly policy: ConsultationPolicy;

  constructor(private readonly deps: ConsultationServiceDependencies) {
    this.policy = deps.policy ?? DEFAULT_CONSULTATION_POLICY;
  }

  private now(): string {
    return this.deps.clock.now().toUTC().toISO({ suppressMilliseconds: false })!;
  }

  async request(input: RequestInput, options: CommandOptions = {}): Promise<{ consultation: ConsultationView; created: boolean }> {
    await this.checkParticipants(input);
    const consultationId = input.consultationId ?? this.deps.ids.uuid();
    const correlationId = options.correlationId ?? consultationId;
    const { newEvents } = await handleCommand(
      this.deps.store,
      consultationStreamName(consultationId),
      consultationDecider,
      {
        type: 'RequestConsultation',
        consultationId,
        applicantSystemId: input.applicantSystemId,
        applicantClinician: input.applicantClinician,
        candidates: input.candidates,
        clinicalQuestion: input.clinicalQuestion,
        summary: input.summary,
        attachments: input.attachments ?? [],
        deadlineSeconds: input.deadlineSeconds ?? this.policy.defaultDeadlineSeconds,
        reportResend: this.policy.reportResend,
        correlationId,
        now: this.now(),
      },
      { commandId: options.commandId ?? this.deps.ids.uuid(), metadata: { correlationId } },
    );
    return { consultation: await this.get(consultationId), created: newEvents.length > 0 };
  }

  /** `sentAt`: the sender's signed message time (uplink only), weighed when the hub handles it after the deadline. */
  async accept(id: string, by: Readonly<{ expertId: string; bySystemId: string; sentAt?: string }>, options: CommandOptions = {}): Promise<StepResult> {
    // An expert who has left the directory takes no case (the offer then runs out and goes to the next candidate).
    await this.deps.directoryProjector.catchUp();
    if ((await this.deps.directory.getExpert(by.expertId))?.status === 'retired') {
      throw new ConflictError('expert_retired', 'the expert has retired from the directory and cannot take a consultation');
    }
    return this.step(id, { type: 'AcceptConsultation', ...by }, options);
  }

  async decline(id: string, by: Readonly<{ expertId: string; bySystemId: string; reason: string }>, options: CommandOptions = {}): Promise<StepResult> {
    return this.step(id, { type: 'DeclineConsultation', ...by, unavailable: await this.retiredCandidates(id) }, options);
  }

  issueReport(
    id: string,
    report: Readonly<{ expertId: string; bySystemId: string; diagnosis: string; recommendations: string }>,
    options: CommandOptions = {},
  ): Promise<StepResult> {
    return this.step(id, { type: 'IssueReport', ...report }, options);
  }

  acknowledge(id: string, by: Readonly<{ bySystemId: string }>, options: CommandOptions = {}): Promise<StepResult> {
    return this.step(id, { type: 'AcknowledgeReport', ...by }, options);
  }

  cancel(id: string, by: Readonly<{ bySystemId: string; reason?: string }>, options: CommandOptions = {}): Promise<StepResult> {
    return this.step(id, { type: 'CancelConsultation', bySystemId: by.bySystemId, reason: by.reason ?? '' }, options);
  }

  async expireOffer(id: string, offerIndex: number, options: CommandOptions = {}): Promise<StepResult> {
    return this.step(id, { type: 'ExpireOffer', offerIndex, unavailable: await this.retiredCandidates(id) }, options);
  }

  /**
   * The hub takes the open offer `offerIndex` back from `expertId` (who retired) and moves the case on, passing by
   * the other candidates who retired; a stale or repeated withdrawal changes nothing.
   */
  async withdrawOffer(id: string, offer: Readonly<{ expertId: string; offerIndex: number; reason: OfferWithdrawalReason }>, options: CommandOptions = {}): Promise<StepResult> {
    return this.step(id, { type: 'WithdrawOffer', ...offer, unavailable: await this.retiredCandidates(id) }, options);
  }

  /** The consultation's candidates that have retired since the request: the next offer passes them by. */
  private async retiredCandidates(consultationId: string): Promise<readonly string[]> {
    const { state } = await this.deps.store.aggregateStream<ConsultationState>(consultationStreamName(consultationId), {
      evolve: (s, e) => consultationDecider.evolve(s, { type: e.type, data: e.data } as unknown as ConsultationEvent),
      initialState: consultationDecider.initialState,
    });
    if (state.status === 'none') return [];
    await this.deps.directoryProjector.catchUp();
    const experts = await Promise.all(state.request.candidates.map((expertId) => this.deps.directory.getExpert(expertId)));
    return state.request.candidates.filter((_, i) => experts[i]?.status === 'retired');
  }

  resendReport(id: string, attempt: number, options: CommandOptions = {}): Promise<StepResult> {
    return this.step(id, { type: 'ResendReport', attempt }, options);
  }

  async get(consultationId: string): Promise<ConsultationView> {
    await this.deps.projector.catchUp();
    const view = await this.deps.consultations.get(consultationId);
    if (!view) throw new NotFoundError('consultation_not_found', 'no consultation has this id');
    return view;
  }

  async list(input: ListInput): Promise<ConsultationsPage> {
    const limit = input.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      throw new ValidationError('invalid_request', `limit must be 1..${MAX_PAGE_SIZE}`, [{ path: 'query.limit', message: `must be 1..${MAX_PAGE_SIZE}` }]);
    }
    const before = input.cursor === undefined ? undefined : decodeConsultationCursor(input.cursor);
    await this.deps.projector.catchUp();
    const page = await this.deps.consultations.list({ systemId: input.systemId, role: input.role ?? 'any', status: input.status, before, limit });
    const last = page.items[page.items.length - 1];
    return { items: page.items, nextCursor: page.hasMore && last ? encodeConsultationCursor(last) : null };
  }

  async consultationsPerMonth(range: Readonly<{ from?: string; to?: string }> = {}): Promise<readonly MonthCount[]> {
    if (range.from !== undefined && range.to !== undefined && range.from > range.to) {
      throw new ValidationError('invalid_interval', 'from must not be after to', [{ path: 'query.from', message: 'after to' }]);
    }
    await this.deps.projector.catchUp();
    return monthSeries(await this.deps.consultations.monthlyCounts(range), range);
  }

  private async checkParticipants(input: RequestInput): Promise<void> {
    await this.deps.directoryProjector.catchUp();
    if (!(await this.deps.directory.getSystem(input.applicantSystemId))) {
      throw new NotFoundError('unknown_system', 'the applicant system is not registered with the hub', [{ path: 'applicantSystemId', message: 'unknown system' }]);
    }
    const experts = await Promise.all(input.candidates.map((id) => this.deps.directory.getExpert(id)));
    const unknown = experts.flatMap((e, i) => (e ? [] : [{ path: `candidates.${i}`, message: 'no expert has this id' }]));
    if (unknown.length > 0) throw new ValidationError('unknown_candidate', 'a candidate is not an expert of the directory', unknown);
    const retired = experts.flatMap((e, i) => (e?.status === 'retired' ? [{ path: `candidates.${i}`, message: 'retired' }] : []));
    if (retired.length > 0) throw new ValidationError('candidate_retired', 'a candidate expert has retired', retired);
  }

  /** The consultation's own correlation id, from its stream; null when there is no such consultation (for log lines). */
  async correlationIdOf(consultationId: string): Promise<string | null> {
    const { state } = await this.deps.store.aggregateStream<ConsultationState>(consultationStreamName(consultationId), {
      evolve: (s, e) => consultationDecider.evolve(s, { type: e.type, data: e.data } as unknown as ConsultationEvent),
      initialState: consultationDecider.initialState,
    });
    return state.status === 'none' ? null : state.request.correlationId;
  }

  /** The consultation's own correlation id, from its stream (NotFoundError when there is no such consultation). */
  private async correlationOf(consultationId: string): Promise<string> {
    const { state } = await this.deps.store.aggregateStream<ConsultationState>(consultationStreamName(consultationId), {
      evolve: (s, e) => consultationDecider.evolve(s, { type: e.type, data: e.data } as unknown as ConsultationEvent),
      initialState: consultationDecider.initialState,
    });
    if (state.status === 'none') throw new NotFoundError('consultation_not_found', 'no consultation has this id');
    return state.request.correlationId;
  }

  private async step(consultationId: string, step: Step, options: CommandOptions): Promise<StepResult> {
    const correlationId = await this.correlationOf(consultationId);
    const command = { ...step, consultationId, now: this.now() } as ConsultationCommand;
    const { newEvents } = await handleCommand(this.deps.store, consultationStreamName(consultationId), consultationDecider, command, {
      commandId: options.commandId ?? this.deps.ids.uuid(),
      metadata: { correlationId },
      // A step's repeat decides to nothing on what it stored (or is refused as the case moved on), so events here
      // mean the id (an HTTP actionId, an uplink message id) was used before for another step.
      reusedId: () => new ConflictError('action_id_reused', 'this actionId (or message id) was already used for another step on this consultation'),
    });
    return { consultation: await this.get(consultationId), changed: newEvents.length > 0 };
  }
}
