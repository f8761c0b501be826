import {
  consultationDecider,
  consultationStreamName,
  homeSystemOf,
  repeatsRecordedRequest,
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
import type { PatientDataProtection } from '../ports/patient-data-protection';
import type { DocumentEntries } from '../ports/document-entries';
import type { DocumentStatus } from '../../domain/documents/document-entry';
import { PATIENT_ERASED, patientStreamName } from '../sealed-documents';
import { ConsultationContentErasure, ContentErasureIncompleteError, type ContentErasureResult } from './consultation-erasure';
import { SealingConsultationStore } from './sealed-consultations';
import { consultationReaders, monthSeries, type ConsultationView, type MonthCount } from './consultation-projection';
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
 *   eraseContent(id, { by, correlationId? }) -> { consultationId, erasedAt, alreadyErased } (crypto-shredding of its texts)
 *   get(id) -> ConsultationView | NotFoundError 'consultation_not_found'
 *   patientKeysOf(id) -> the pseudonymous keys of the patients it is about (what its accesses are audited under)
 *   patientKeysOfView(view) -> the same, from the row when it holds them (no read of the stream)
 *   attachmentsNow(view) -> [{ uniqueId, status, replacedBy, currentVersion }]   (the registry at read time)
 *   correlationIdOf(id) -> the consultation's correlation id, or null (for log lines)
 *   list({ systemId, role?, status?, limit?, cursor? }) -> { items, nextCursor }   (only those the system may read:
 *                                             consultationReaders; a page may hold fewer than `limit`)
 *   consultationsPerMonth({ from?, to? }) -> [{ month: 'YYYY-MM', requested }] with zero months filled in
 *
 * opts: { commandId?, correlationId? }. `commandId` (an uplink envelope id, an HTTP idempotency key, a timer's
 * deterministic id) becomes the events' ids, so a repeat is stored once. `correlationId` is used by `request`
 * only: every later event carries the consultation's own correlation id (read from its stream), whoever acts.
 *
 * `request` checks against the directory (caught up first) that the applicant system is registered
 * (NotFoundError 'unknown_system') and that each candidate is a known expert (ValidationError 'unknown_candidate')
 * who is not retired (ValidationError 'candidate_retired'), and against the hub's registry (`documents`) that each
 * attachment is a registered document ('unknown_attachment'), current ('attachment_replaced', naming the current
 * version of its correction chain so the caller can attach that), and that all are of one patient
 * ('attachments_of_several_patients'), all ValidationErrors; the decider checks the rest. A request already
 * stored under its consultationId with the same content (the decider's repeatsRecordedRequest, deadlineSeconds
 * included; one naming no deadline takes the stored one) skips every one of these checks: a retry is answered as
 * the first request was, even when a candidate retired or an attachment was corrected since. Another request under
 * a stored id gets the participant checks and then ConflictError 'consultation_id_reused'. Errors carry field paths
 * and never the values sent (they may be patient information) nor a patient's identifier or key.
 *
 * Texts are sealed under the consultation's own data key before they are stored, and opened when the stream is
 * read for a decision (sealed-consultations.ts). `request` records the pseudonymous keys of the attachments'
 * patients (from the documents' own streams), so erasing one of them erases the consultation's texts; an
 * attachment of a patient already erased -> NotFoundError 'patient_erased'. A request stored while one of its
 * patients is being erased is caught after its append: its texts are erased at once.
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
  /** Seals and opens the consultations' texts (the patients' data protection, one key per consultation). */
  protection: PatientDataProtection;
  /** The hub's XDS registry, by document uniqueId: the attachments' entries. */
  documents: DocumentEntries;
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

/**
 * An attachment as the registry has it now. `status` null: the registry holds no entry for it (a document of another
 * hub or never registered, attached before requests were checked, or one whose patient was erased). `replacedBy`: the
 * correction that replaced it (Deprecated only); `currentVersion`: the current document of its correction chain (the
 * attachment itself while Approved; null when unknown).
 */
export type AttachmentNow = Readonly<{ uniqueId: string; status: DocumentStatus | null; replacedBy: string | null; currentVersion: string | null }>;

/** Corrections followed at most, from an attachment to the current version (a chain is one step per correction). */
const MAX_CORRECTION_CHAIN = 100;

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
  /** The store as command handling sees it: texts opened on read, sealed on append. */
  private readonly sealed: EventStore;
  private readonly erasure: ConsultationContentErasure;

  constructor(private readonly deps: ConsultationServiceDependencies) {
    this.policy = deps.policy ?? DEFAULT_CONSULTATION_POLICY;
    this.sealed = new SealingConsultationStore(deps.store, deps.protection);
    this.erasure = new ConsultationContentErasure({ store: deps.store, protection: deps.protection, clock: deps.clock });
  }

  private now(): string {
    return this.deps.clock.now().toUTC().toISO({ suppressMilliseconds: false })!;
  }

  async request(input: RequestInput, options: CommandOptions = {}): Promise<{ consultation: ConsultationView; created: boolean }> {
    const consultationId = input.consultationId ?? this.deps.ids.uuid();
    const correlationId = options.correlationId ?? consultationId;
    // The consultation stored under this id, texts opened (to compare with this request), or null for a new id.
    const stored = input.consultationId === undefined ? null : await this.storedConsultation(consultationId);
    // A request naming no deadline asks for the hub's default; under an id already stored, for the deadline stored (a
    // retry after the default was changed is still a retry).
    const deadlineSeconds = input.deadlineSeconds ?? stored?.request.deadlineSeconds ?? this.policy.defaultDeadlineSeconds;
    const attachments = input.attachments ?? [];
    // A request stored before with this content (a retry after a lost answer, a redelivery) is answered as it was,
    // whatever became of its participants and attachments since: a candidate who retired since does not turn the
    // retry into a refusal. Another request under its id is refused by the decider (consultation_id_reused), after
    // the participant checks as before; its attachments are not checked.
    const repeat = stored !== null && repeatsRecordedRequest(stored, { ...input, attachments, deadlineSeconds });
    // A consultation whose texts were erased answers any request under its id 410 consultation_erased (the decider),
    // not a refusal of a candidate who retired since.
    if (!repeat && stored?.contentErasedAt == null) await this.checkParticipants(input);
    // Texts erased (the erasure of an attachment's patient, or the DPO's): the decider answers consultation_erased, as
    // docs/messaging.md says of a repeat; the attachments' patients are not looked up (an erased one answered
    // patient_erased first).
    const patientKeys = stored?.contentErasedAt != null ? (stored.request.patientKeys ?? []) : await this.patientsOf(attachments, { check: stored === null });
    const { newEvents } = await handleCommand(
      this.sealed,
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
        attachments,
        patientKeys,
        deadlineSeconds,
        reportResend: this.policy.reportResend,
        correlationId,
        now: this.now(),
      },
      { commandId: options.commandId ?? this.deps.ids.uuid(), metadata: { correlationId } },
    );
    // An erasure of one of the patients that ran while this request was being stored may have looked for the
    // patient's consultations before this one existed: erase its texts now (the erasure is recorded before the
    // patient's key goes, and this looks after the append, so one of the two always sees the other).
    if (newEvents.length > 0 && (await this.anyErased(patientKeys))) {
      await this.erasure.erase(consultationId, { by: 'hub', correlationId, cause: 'patient_erased' });
    }
    return { consultation: await this.get(consultationId), created: newEvents.length > 0 };
  }

  /**
   * The pseudonymous keys of the attachments' patients, sorted, each once (never a CPR number): from the registry
   * (DocumentEntries), which keeps a document's patient key after an erasure. NotFoundError 'patient_erased' when one
   * of them was erased: nothing more may be recorded about them. With `check` (a new request) each attachment must be
   * a registered document (unknown_attachment), current (attachment_replaced) and all of one patient
   * (attachments_of_several_patients); without it (a repeat) a document the hub does not hold adds no key.
   */
  private async patientsOf(attachments: readonly string[], { check }: Readonly<{ check: boolean }>): Promise<readonly string[]> {
    const entries = await Promise.all(attachments.map((uniqueId) => this.deps.documents.entryOf(uniqueId)));
    const unknown = entries.flatMap((e, i) => (e ? [] : [{ path: `attachments.${i}`, message: 'no document of this hub has this uniqueId' }]));
    if (check && unknown.length > 0) throw new ValidationError('unknown_attachment', 'an attachment is not a document registered with this hub', unknown);
    const sorted = [...new Set(entries.flatMap((e) => (e ? [e.patientKey] : [])))].sort();
    if (await this.anyErased(sorted)) {
      throw new NotFoundError('patient_erased', 'an attached document belongs to a patient who was erased', [{ path: 'attachments', message: "a document of an erased patient" }]);
    }
    if (!check) return sorted;
    // The current version is named (a document uniqueId, no patient data) so the caller can attach it instead.
    const replaced: { path: string; message: string; current: string }[] = [];
    for (const [i, e] of entries.entries()) {
      if (e?.status !== 'Deprecated') continue;
      const current = (await this.currentVersionOf(e)) ?? e.replacedBy ?? '';
      replaced.push({ path: `attachments.${i}`, message: `replaced by a correction; attach its current version ${current}`, current });
    }
    if (replaced.length > 0) {
      const which = replaced.map((r) => `${r.path} by ${r.current}`).join(', ');
      throw new ValidationError('attachment_replaced', `an attachment was replaced by a correction (XDS RPLC); attach the current version instead: ${which}`, replaced.map(({ path, message }) => ({ path, message })));
    }
    const firstKey = entries[0]?.patientKey;
    const others = entries.flatMap((e, i) => (e && e.patientKey !== firstKey ? [{ path: `attachments.${i}`, message: 'of another patient than attachments.0' }] : []));
    if (others.length > 0) {
      throw new ValidationError('attachments_of_several_patients', 'the attachments are documents of more than one patient: a consultation is about one patient', others);
    }
    return sorted;
  }

  /** The current (Approved) document at the end of a deprecated entry's correction chain; null when it cannot be followed. */
  private async currentVersionOf(entry: Readonly<{ status: DocumentStatus; replacedBy: string | null; uniqueId: string }>): Promise<string | null> {
    let at = entry;
    for (let step = 0; step < MAX_CORRECTION_CHAIN; step++) {
      if (at.status !== 'Deprecated' || at.replacedBy === null) return at.uniqueId;
      const next = await this.deps.documents.entryOf(at.replacedBy);
      if (!next) return null;
      at = next;
    }
    return null;
  }

  /**
   * Each attachment of a consultation as the registry has it now (read at every call, not stored): whether it is
   * still current or was replaced by a correction since the request, and by which document. An attachment whose
   * patient was erased, or that the registry does not hold, has status null.
   */
  async attachmentsNow(view: Pick<ConsultationView, 'attachments'>): Promise<readonly AttachmentNow[]> {
    return Promise.all(
      view.attachments.map(async (uniqueId): Promise<AttachmentNow> => {
        const entry = await this.deps.documents.entryOf(uniqueId);
        if (!entry || (await this.anyErased([entry.patientKey]))) return { uniqueId, status: null, replacedBy: null, currentVersion: null };
        return { uniqueId, status: entry.status, replacedBy: entry.replacedBy, currentVersion: await this.currentVersionOf(entry) };
      }),
    );
  }

  private async anyErased(patientKeys: readonly string[]): Promise<boolean> {
    for (const key of patientKeys) {
      const { events } = await this.deps.store.readStream(patientStreamName(key), { maxCount: 1 });
      if (events[0]?.type === PATIENT_ERASED) return true;
    }
    return false;
  }

  /**
   * Erases the consultation's texts (question, summary, report, reasons) by deleting its data key, for the data
   * protection officer: a consultation without attachments is reached by no patient's erasure. Idempotent;
   * NotFoundError 'consultation_not_found' for an unknown id.
   */
  async eraseContent(consultationId: string, options: Readonly<{ by: string; correlationId?: string }>): Promise<ContentErasureResult> {
    const result = await this.erasure.erase(consultationId, { ...options, cause: 'requested' });
    try {
      await this.deps.projector.catchUp();
    } catch (error) {
      // Recorded and its key deleted: the caller writes its line now, not left to a retry that may never come.
      if (result.alreadyErased) throw error;
      throw new ContentErasureIncompleteError(result);
    }
    return result;
  }

  /** `sentAt`: the sender's signed message time (uplink only), weighed when the hub handles it after the deadline. */
  async accept(id: string, by: Readonly<{ expertId: string; bySystemId: string; sentAt?: string }>, options: CommandOptions = {}): Promise<StepResult> {
    // An expert who has left the directory takes no case (the offer then runs out and goes to the next candidate).
    // A repeat of the accept the expert gave before retiring is not a new acceptance: it changes nothing (the decider),
    // rather than being refused (dead-lettered, consultation.refused) as an accept the hub had applied.
    await this.deps.directoryProjector.catchUp();
    // Only the expert's own home system is told so: to another sender the repeat check would say whether the retired
    // expert accepted this case (not_your_consultation from the decider, expert_retired otherwise).
    const repeat = homeSystemOf(by.expertId) === by.bySystemId && (await this.acceptedBy(id, by.expertId));
    if ((await this.deps.directory.getExpert(by.expertId))?.status === 'retired' && !repeat) {
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

  /** Whether the expert's latest offer on this consultation is one they accepted. */
  private async acceptedBy(consultationId: string, expertId: string): Promise<boolean> {
    const { state } = await this.deps.store.aggregateStream<ConsultationState>(consultationStreamName(consultationId), {
      evolve: (s, e) => consultationDecider.evolve(s, { type: e.type, data: e.data } as unknown as ConsultationEvent),
      initialState: consultationDecider.initialState,
    });
    return state.status !== 'none' && [...state.offers].reverse().find((o) => o.expertId === expertId)?.outcome === 'accepted';
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

  /**
   * The pseudonymous keys of the patients a consultation is about (never a CPR number), sorted: those its request
   * recorded, or, for a request of a build that recorded none (to 2026-12-01), its attachments' patients as the
   * registry keeps them (after an erasure too). The same patients a patient's erasure and export find it by
   * (ConsultationContentErasure.consultationsOf). [] for an unknown id or a consultation with no attachment of this hub.
   * What an access to the consultation is audited under, so that the patient's export lists who read it.
   */
  async patientKeysOf(consultationId: string): Promise<readonly string[]> {
    const { events } = await this.deps.store.readStream(consultationStreamName(consultationId), { maxCount: 1 });
    const first = events[0];
    if (first?.type !== 'ConsultationRequested') return [];
    const recorded = first.data['patientKeys'];
    if (Array.isArray(recorded)) return [...new Set(recorded.filter((k): k is string => typeof k === 'string'))].sort();
    const attachments = Array.isArray(first.data['attachments']) ? first.data['attachments'].filter((a): a is string => typeof a === 'string') : [];
    const entries = await Promise.all(attachments.map((uniqueId) => this.deps.documents.entryOf(uniqueId)));
    return [...new Set(entries.flatMap((e) => (e ? [e.patientKey] : [])))].sort();
  }

  /**
   * patientKeysOf for a row in hand: the keys the row holds (ConsultationView.patientKeys), else read from the stream
   * as patientKeysOf reads them (a row of an older build, a request that recorded none).
   */
  async patientKeysOfView(view: ConsultationView): Promise<readonly string[]> {
    return view.patientKeys ?? this.patientKeysOf(view.consultationId);
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
    // Only what the system may read: a row an older build stored for a case cancelled while offered still names the
    // offered expert's system (consultationReaders). The cursor stays on the last row read, so paging skips nothing.
    const items = page.items.filter((v) => consultationReaders(v).includes(input.systemId));
    return { items, nextCursor: page.hasMore && last ? encodeConsultationCursor(last) : null };
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

  /** The consultation's state with its texts opened (as the decider sees them), to tell a repeat of its request; null when there is none. */
  private async storedConsultation(consultationId: string): Promise<Exclude<ConsultationState, { status: 'none' }> | null> {
    const { state } = await this.sealed.aggregateStream<ConsultationState>(consultationStreamName(consultationId), {
      evolve: (s, e) => consultationDecider.evolve(s, { type: e.type, data: e.data } as unknown as ConsultationEvent),
      initialState: consultationDecider.initialState,
    });
    return state.status === 'none' ? null : state;
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
    const { newEvents } = await handleCommand(this.sealed, consultationStreamName(consultationId), consultationDecider, command, {
      commandId: options.commandId ?? this.deps.ids.uuid(),
      metadata: { correlationId },
      // A step's repeat decides to nothing on what it stored (or is refused as the case moved on), so events here
      // mean the id (an HTTP actionId, an uplink message id) was used before for another step.
      reusedId: () => new ConflictError('action_id_reused', 'this actionId (or message id) was already used for another step on this consultation'),
    });
    return { consultation: await this.get(consultationId), changed: newEvents.length > 0 };
  }
}
