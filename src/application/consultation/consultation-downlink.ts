import type { AuditEntry } from '../audit/audit-chain';
import type { RecordOptions } from '../audit/audit-trail';
import { uuidV5 } from '../ids';
import { readCoveredPage } from '../covered-page';
import { isExistingConsultationId } from '../../domain/consultation/legacy-id';
import { mayHoldCprDigits } from '../../domain/monitoring/cpr-like';
import { BackgroundDrain, pause } from '../drain-loop';
import { RepeatedFailureLog } from '../repeated-failure-log';
import { WakeUp } from '../wake-up';
import { CONSULTATION_EVENT_TYPES, homeSystemOf, isConsultationEvent, type ConsultationEvent, type OfferWithdrawalReason } from '../../domain/consultation/consultation';
import type { PatientDataProtection } from '../ports/patient-data-protection';
import { CONTRACT_VERSION, downlinkMessageId, type Envelope } from '../directory/directory-messages';
import type { CheckpointStore } from '../ports/downlink-outbox';
import type { EventStore, RecordedEvent } from '../ports/event-store';
import type { ProjectorLogger } from '../projector';
import type { ConsultationDownlinkEnvelope, ConsultationDownlinkPayloads, ConsultationDownlinkType } from './consultation-messages';
import type { ConsultationView, OpenedConsultationEvent } from './consultation-projection';
import { openConsultationEvent } from './sealed-consultations';
import type { ConsultationReadModel } from './consultation-read-model';

/** The events the consultation downlink reads (the store skips the rest). */
const CONSULTATION_TYPES: ReadonlySet<string> = new Set<string>(CONSULTATION_EVENT_TYPES);

/**
 * PURE: which downlink messages one recorded consultation event causes, and to which system's queue.
 *
 *   planConsultationDownlink(event, { consultation, queueFor }) -> readonly { queue, envelope }[]
 *
 *   ConsultationOffered    -> 'consultation.offered'    to the candidate expert's home system
 *   ConsultationAccepted   -> 'consultation.accepted'   to the applicant system
 *   ConsultationDeclined   -> 'consultation.declined'   (outcome 'declined') to the applicant system
 *   ConsultationExpired    -> 'consultation.declined'   (outcome 'expired', reason 'offer_expired') to the applicant,
 *                             and 'consultation.cancelled' (reason 'offer_expired: ...') to the expert's home system
 *   ConsultationOfferWithdrawn -> 'consultation.declined' (outcome 'declined', reason 'expert_retired') to the
 *                             applicant, and 'consultation.cancelled' (reason 'expert_retired: ...') to the expert's
 *                             home system (the hub took the open offer back: the expert retired)
 *   ConsultationUnassigned -> 'consultation.unassigned' to the applicant system
 *   ReportIssued           -> 'consultation.report'     (attempt 0) to the applicant system
 *   ReportResent           -> 'consultation.report'     (attempt n, the same report) to the applicant system
 *   ConsultationCancelled  -> 'consultation.cancelled'  to the home system of the expert it was with (open offer
 *                             or accepted), nothing when it was with nobody
 *   ConsultationRequested, ReportAcknowledged, ConsultationContentErased, other contexts' events -> nothing
 *
 * Erased content (sealed-consultations.ts): the event comes opened, a text that could not be opened is null, and
 * the row's texts are null once the content was erased. The hub then sends no text again: a report (first or
 * resend) is not sent at all, an offer goes out with '' as question and summary (the expert's system can still
 * accept or decline it, and the applicant cancel), a decline or cancel with '' as reason. Message shapes stay.
 *
 * `consultation` is the read model's row (caught up to at least the event): the planner takes the request's
 * details from it (they never change) and the report for a resend; everything that changes comes from the event,
 * so planning an event again later gives the same messages. Ids: downlinkMessageId(event.id, target); time: the
 * event's recordedAt; correlation id: the consultation's.
 */
export type ConsultationDownlinkContext = Readonly<{
  consultation: ConsultationView;
  queueFor: (systemId: string) => string;
}>;
export type ConsultationDownlinkMessage = Readonly<{ queue: string; envelope: ConsultationDownlinkEnvelope }>;

export const planConsultationDownlink = (event: RecordedEvent, context: ConsultationDownlinkContext): readonly ConsultationDownlinkMessage[] => {
  if (!isConsultationEvent(event)) return [];
  const e = { type: event.type, data: event.data } as OpenedConsultationEvent;
  const c = context.consultation;
  const message = <T extends ConsultationDownlinkType>(to: string, type: T, payload: ConsultationDownlinkPayloads[T]): ConsultationDownlinkMessage => ({
    queue: context.queueFor(to),
    envelope: {
      id: downlinkMessageId(event.id, to),
      type,
      version: CONTRACT_VERSION,
      systemId: to,
      correlationId: c.correlationId,
      time: event.recordedAt,
      payload,
    } as Envelope<T, ConsultationDownlinkPayloads[T]> as ConsultationDownlinkEnvelope,
  });
  const applicant = c.applicantSystemId;
  switch (e.type) {
    case 'ConsultationOffered': {
      const d = e.data;
      return [
        message(homeSystemOf(d.expertId), 'consultation.offered', {
          consultationId: d.consultationId,
          expertId: d.expertId,
          offerIndex: d.offerIndex,
          offeredAt: d.offeredAt,
          expiresAt: d.expiresAt,
          applicantSystemId: applicant,
          applicantClinician: c.applicantClinician,
          clinicalQuestion: c.clinicalQuestion ?? '',
          summary: c.summary ?? '',
          attachments: c.attachments,
        }),
      ];
    }
    case 'ConsultationAccepted':
      return [message(applicant, 'consultation.accepted', { consultationId: e.data.consultationId, expertId: e.data.expertId, acceptedAt: e.data.acceptedAt })];
    case 'ConsultationDeclined':
      return [message(applicant, 'consultation.declined', { consultationId: e.data.consultationId, expertId: e.data.expertId, outcome: 'declined', reason: e.data.reason ?? '', at: e.data.declinedAt })];
    case 'ConsultationExpired':
      return [
        message(applicant, 'consultation.declined', { consultationId: e.data.consultationId, expertId: e.data.expertId, outcome: 'expired', reason: 'offer_expired', at: e.data.expiredAt }),
        // The expert's system too: it would otherwise keep a stale offer, and its later accept is dead-lettered.
        message(homeSystemOf(e.data.expertId), 'consultation.cancelled', {
          consultationId: e.data.consultationId,
          expertId: e.data.expertId,
          reason: EXPIRED_OFFER_CANCEL_REASON,
          cancelledAt: e.data.expiredAt,
        }),
      ];
    case 'ConsultationOfferWithdrawn':
      // The message shapes of a decline and of an expiry: the applicant hears that this candidate will not take it
      // (the next offer, or the unassignment, follows), the expert's system that the offer is gone.
      return [
        message(applicant, 'consultation.declined', { consultationId: e.data.consultationId, expertId: e.data.expertId, outcome: 'declined', reason: e.data.reason, at: e.data.withdrawnAt }),
        message(homeSystemOf(e.data.expertId), 'consultation.cancelled', {
          consultationId: e.data.consultationId,
          expertId: e.data.expertId,
          reason: `${e.data.reason}: ${WITHDRAWAL_DETAIL[e.data.reason]}`,
          cancelledAt: e.data.withdrawnAt,
        }),
      ];
    case 'ConsultationUnassigned':
      return [message(applicant, 'consultation.unassigned', { consultationId: e.data.consultationId, unassignedAt: e.data.unassignedAt })];
    case 'ReportIssued': {
      const d = e.data;
      if (d.diagnosis === null || d.recommendations === null || c.contentErased) return [];
      return [message(applicant, 'consultation.report', { consultationId: d.consultationId, expertId: d.expertId, diagnosis: d.diagnosis, recommendations: d.recommendations, issuedAt: d.issuedAt, attempt: 0 })];
    }
    case 'ReportResent': {
      const r = c.report;
      if (!r || r.diagnosis === null || r.recommendations === null || c.contentErased) return [];
      return [message(applicant, 'consultation.report', { consultationId: e.data.consultationId, expertId: r.expertId, diagnosis: r.diagnosis, recommendations: r.recommendations, issuedAt: r.issuedAt, attempt: e.data.attempt })];
    }
    case 'ConsultationCancelled': {
      // With whom it was: the offer open (settled 'cancelled' by this cancel, once the model has it) or accepted;
      // cancel is final, so the row's offers are those of the moment of cancelling, however far the model has moved.
      const withExpert = c.offers.find((o) => o.outcome === 'open' || o.outcome === 'cancelled' || o.outcome === 'accepted');
      if (!withExpert) return [];
      return [
        message(homeSystemOf(withExpert.expertId), 'consultation.cancelled', {
          consultationId: e.data.consultationId,
          expertId: withExpert.expertId,
          reason: e.data.reason ?? '',
          cancelledAt: e.data.cancelledAt,
        }),
      ];
    }
    case 'ConsultationRequested':
    case 'ReportAcknowledged':
    case 'ConsultationContentErased':
      return [];
    default: {
      const never: never = e;
      return never;
    }
  }
};

/** What the expert's system is told after the reason code of a withdrawn offer. */
const WITHDRAWAL_DETAIL: Readonly<Record<OfferWithdrawalReason, string>> = {
  expert_retired: 'the expert retired from the directory; the offer was withdrawn and the case moved on (to the next candidate, or unassigned when none was left)',
};

/** The reason the expert's system is told when its offer ran out. */
const EXPIRED_OFFER_CANCEL_REASON = 'offer_expired: no answer before expiresAt; the case moved on (to the next candidate, or unassigned when none was left)';

/**
 * The reasons the hub itself writes into consultation.declined and consultation.cancelled (an expiry, a withdrawal):
 * fixed texts, no patient information. Any other reason is a decline's or cancellation's own, which the store keeps
 * sealed (held-downlinks.ts seals it in a held message too).
 */
export const HUB_MADE_REASONS: ReadonlySet<string> = new Set<string>([
  'offer_expired',
  EXPIRED_OFFER_CANCEL_REASON,
  ...(Object.keys(WITHDRAWAL_DETAIL) as OfferWithdrawalReason[]).flatMap((reason) => [reason, `${reason}: ${WITHDRAWAL_DETAIL[reason]}`]),
]);

/**
 * The audit trail the publisher records each message it sent in (the HTTP side's, security-module.ts), so that the
 * patient's export (POST /patients/export) lists every system the hub told of their case and what: the offer (with the
 * question, summary and attachments) to the expert's system, the report (the diagnosis) to the applicant's, and the
 * rest of the case's messages (accept, decline, cancel, unassignment: a reason may be a clinician's text).
 */
export type DownlinkAuditTrail = Readonly<{ record(entry: AuditEntry, options?: RecordOptions): Promise<void> }>;

/**
 * The id a message's entry is stored under once (AuditTrail's RecordOptions): from the receiver, the message id
 * (deterministic: a message sent again has its first sending's), the consultation and the patient. A hub that died
 * after the entry was stored and before the checkpoint moved sends the message again at its next start, and its entry
 * is not recorded a second time.
 */
export const downlinkAuditOnceId = (entry: AuditEntry): string =>
  uuidV5(`audit-once/consultation.sent/${JSON.stringify([entry.subject, entry.requestId, entry.resource, entry.patientKey])}`);

/**
 * The entries of one message the broker took for `systemId`'s queue, one per patient of the case (alike but for the
 * key), one without a key for a case with none:
 *   subject `system:<systemId>`, role 'system', systemId: the receiving system (as its own read over HTTP would be
 *   recorded: a search by user `system:<id>` finds what it did and what it was told); action 'consultation.sent';
 *   resource the consultation id; reason the message's type (consultation.offered, consultation.report, ...), the
 *   one thing an entry says of what was told; outcome 'allowed', status 200; ip ''; requestId the message's id (what
 *   the receiving system logs and dedupes by). No text of the message.
 */
export const downlinkAuditEntries = (envelope: ConsultationDownlinkEnvelope, patientKeys: readonly string[], at: string): AuditEntry[] => {
  const entry: AuditEntry = {
    at,
    subject: `system:${envelope.systemId}`,
    role: 'system',
    systemId: envelope.systemId,
    action: 'consultation.sent',
    patientKey: null,
    // As the HTTP side keeps a consultation id (security.ts's resourceOf): a legacy id an older build took could read as
    // a CPR number, which the hash-chained trail would keep beyond any erasure.
    resource: isExistingConsultationId(envelope.payload.consultationId) && !mayHoldCprDigits(envelope.payload.consultationId) ? envelope.payload.consultationId : null,
    ip: '',
    requestId: envelope.id,
    outcome: 'allowed',
    status: 200,
    reason: envelope.type,
  };
  return patientKeys.length === 0 ? [entry] : [...new Set(patientKeys)].map((patientKey) => ({ ...entry, patientKey }));
};

/** Where the consultation publisher hands its messages (part B: the same durable AMQP sender as the directory's). */
export interface ConsultationOutbox {
  send(queue: string, envelope: ConsultationDownlinkEnvelope): Promise<void>;
}

/**
 * At-least-once publisher of the consultation downlink from a checkpointed subscription to the store (the
 * directory's DownlinkPublisher pattern): for each consultation event, catch the read model up to it, plan,
 * send every message (resolved only once the broker holds it), then move the checkpoint. A crash resends from
 * the checkpoint with the same message ids; receivers dedupe by id.
 */
export type ConsultationPublisherDependencies = Readonly<{
  store: EventStore;
  consultations: Pick<ConsultationReadModel, 'get' | 'checkpoint'>;
  projector: { catchUp(): Promise<void> };
  outbox: ConsultationOutbox;
  /** Opens the events' sealed texts (sealed-consultations.ts). */
  protection: PatientDataProtection;
  checkpoints: CheckpointStore;
  queueFor: (systemId: string) => string;
  /** Checkpoint name (default 'consultation-downlink'). */
  name?: string;
  batchSize?: number;
  logger?: ProjectorLogger;
  /**
   * Where each message sent is recorded (downlinkAuditEntries), under the keys `patientKeysOf` gives for its case, at
   * `now` (ISO-8601). Recorded once the outbox has the message (the broker accepted it), before the checkpoint moves
   * and before the next message is sent. An entry that cannot be stored is tried again every `auditRetryMs` (default
   * 1000) until it is, the message NOT sent again: the downlink waits meanwhile, so no message leaves without its
   * entry. A stop in that time leaves the checkpoint before the event: the next start sends the message again (its
   * id, which receivers dedupe) and records it then. Each entry is recorded once (downlinkAuditOnceId): a message sent
   * again because the hub stopped after its entry was stored and before the checkpoint moved is not recorded again.
   */
  audit?: DownlinkAuditTrail;
  patientKeysOf?: (consultation: ConsultationView) => Promise<readonly string[]>;
  now?: () => string;
  auditRetryMs?: number;
}>;

export class ConsultationDownlinkPublisher extends BackgroundDrain {
  private readonly name: string;

  /** Ends an audit retry's pause at stop(), so a stop during an audit outage does not wait for the trail. */
  private stopping = new WakeUp();
  private readonly auditFailures: RepeatedFailureLog;

  constructor(private readonly deps: ConsultationPublisherDependencies) {
    super(deps.logger, { failed: 'consultation downlink failed; retrying from the checkpoint', recovered: 'consultation downlink works again' });
    this.name = deps.name ?? 'consultation-downlink';
    this.auditFailures = new RepeatedFailureLog(deps.logger, {
      failed: 'consultation downlink: the audit entry of a message sent could not be stored; retrying it (the message is not sent again, the downlink waits)',
      recovered: 'consultation downlink: audit entries are stored again',
    });
  }

  override start(): void {
    if (this.stopping.isFired) this.stopping = new WakeUp();
    super.start();
  }

  override async stop(): Promise<void> {
    this.stopRequested = true;
    this.stopping.fire();
    await super.stop();
  }

  protected async waitForWork(): Promise<unknown> {
    return this.deps.store.waitForAppend(await this.deps.checkpoints.get(this.name), 1000);
  }

  /**
   * Records a message the broker took, trying again what could not be stored until it is; false when a stop ended
   * the tries (the checkpoint must then stay before the event). Failing the event instead, as before, sent the
   * message again at each retry of the loop: a trail that could not be written (a full disk) put one copy a second
   * of the same offer on the receiver's queue for as long as it lasted, and an event of two messages recorded its
   * first again at each retry. Only the entries not stored are tried again (one per patient: their chains differ).
   */
  private async recordSent(envelope: ConsultationDownlinkEnvelope, patientKeys: readonly string[]): Promise<boolean> {
    const audit = this.deps.audit!;
    const at = this.deps.now?.() ?? new Date().toISOString();
    let pending = downlinkAuditEntries(envelope, patientKeys, at);
    let failed = false;
    for (;;) {
      const outcomes = await Promise.allSettled(pending.map((entry) => audit.record(entry, { onceId: downlinkAuditOnceId(entry) })));
      const rejected = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [{ entry: pending[i]!, reason: o.reason as unknown }] : []));
      if (rejected.length === 0) {
        if (failed) this.auditFailures.succeeded();
        return true;
      }
      failed = true;
      this.auditFailures.failed(rejected[0]!.reason);
      pending = rejected.map((r) => r.entry);
      await pause(this.deps.auditRetryMs ?? 1000, this.stopping);
      if (this.stopRequested) return false;
    }
  }

  /** The stored checkpoint: every event up to it was gone through (its messages accepted). Read for the lag metric. */
  checkpoint(): Promise<bigint> {
    return this.deps.checkpoints.get(this.name);
  }

  /** To the head, or until stop() asks it to end; it sends each event's messages as it goes. */
  protected async drain(): Promise<boolean> {
    let checkpoint = await this.deps.checkpoints.get(this.name);
    for (;;) {
      // Only consultation events; a short page lets the checkpoint move up to the head (see readCoveredPage).
      const { events, through } = await readCoveredPage(this.deps.store, checkpoint, this.deps.batchSize ?? 200, CONSULTATION_TYPES);
      if (through <= checkpoint) return true;
      const last = events.length > 0 ? events[events.length - 1]!.globalPosition : checkpoint;
      if (events.length > 0 && (await this.deps.consultations.checkpoint()) < last) await this.deps.projector.catchUp();
      for (const event of events) {
        if (!isConsultationEvent(event)) continue;
        const consultation = await this.deps.consultations.get(String(event.data.consultationId));
        if (!consultation) continue;
        const opened = await openConsultationEvent(this.deps.protection, event);
        const messages = planConsultationDownlink(opened, { consultation, queueFor: this.deps.queueFor });
        const patientKeys = messages.length > 0 && this.deps.audit ? await (this.deps.patientKeysOf?.(consultation) ?? Promise.resolve([])) : [];
        for (const m of messages) {
          await this.deps.outbox.send(m.queue, m.envelope);
          // Stopped while its entry could not be stored: the checkpoint stays, the next start sends and records it.
          if (this.deps.audit && !(await this.recordSent(m.envelope, patientKeys))) return true;
        }
        await this.deps.checkpoints.set(this.name, event.globalPosition);
        // stop() waits for the event in hand; the rest is sent on the next start. Callers of catchUp() are released
        // too (reported as served), as before: during a stop nothing should keep the publisher sending.
        if (this.stopRequested) return true;
      }
      checkpoint = through;
      await this.deps.checkpoints.set(this.name, checkpoint);
    }
  }
}
