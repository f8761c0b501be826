import type { DateTime } from 'luxon';
import { homeSystemOf, type ConsultationStatus } from '../domain/consultation/consultation';
import { parseCpr, type Cpr } from '../domain/monitoring/cpr';
import type { Quantity } from '../domain/monitoring/tele-observation';
import { NotFoundError } from '../domain/shared/errors';
import type { AuditOutcome, ChainedAuditEntry } from './audit/audit-chain';
import { MAX_AUDIT_DAYS, MAX_AUDIT_RESULTS, type AuditPosition, type AuditTrail } from './audit/audit-trail';
import { patientSubject } from './access/patient-subject';
import type { ConsultationContentErasure } from './consultation/consultation-erasure';
import type { ConsultationView } from './consultation/consultation-projection';
import type { PatientErasure } from './patient-erasure';
import type { Clock } from './ports/clock';
import type { EventStore } from './ports/event-store';
import type { PatientKeys } from './ports/patient-keys';
import type { RegistryEntryView } from './projections/registry-projection';
import type { XdsBackend } from './xds-backend';

/**
 * The patient's right of access (GDPR art. 15) as one answer: everything the hub holds about one patient, gathered
 * from the ports that already read each part, so that the data protection officer need not stitch it together:
 *
 *   observations   every document ever registered for the patient, current and deprecated, with what replaced
 *                  what (the registry: XdsBackend.allEntriesOf, all pages in one read snapshot; values as the
 *                  registry holds them, in mmHg)
 *   consultations  those whose request recorded the patient's key, or that attach one of the patient's documents
 *                  (ConsultationContentErasure.consultationsOf: the scan a patient's erasure makes), each as the
 *                  consultation read model has it (ConsultationService.get), texts included unless erased
 *   audit          every audit entry recorded under the patient's key, since the store's first event, all pages
 *                  (AuditTrail.byPatient, in windows of at most MAX_AUDIT_DAYS)
 *   erasure        whether and when the patient was erased (PatientErasure.holdingOf)
 *
 * Other patients: a consultation may attach documents of several patients. Only this patient's own documents are
 * listed among its attachments (the others are counted, never named: their uniqueIds are another patient's
 * pseudonymous data), no other patient's key is ever in the answer, and the audit entries are those recorded under
 * this patient's key only. The consultation's own fields (systems, experts, times, and its clinical texts, which the
 * hub cannot split by patient) are the consultation's, and so are shown.
 *
 * A patient the hub holds nothing of (no document, no data key, no erasure: the test an erasure makes) is
 * NotFoundError `unknown_patient`, as DELETE /patients/{cpr} answers them. An erased patient's export says so
 * (`erasure`), with what is left of them: no readings (their key is gone), the consultations' bookkeeping with
 * their texts marked erased, and the audit trail.
 */
export const PATIENT_EXPORT_FORMAT_VERSION = 1;

export type ExportedObservation = Readonly<{
  uniqueId: string;
  /** The uploader's own id of the reading, when it gave one. */
  observationId: string | null;
  measuredAt: string;
  /** When the hub registered the document. */
  storedAt: string;
  systolic: Quantity;
  diastolic: Quantity;
  /** 'deprecated': replaced by a correction (`replacedBy`); queries show only current readings. */
  status: 'current' | 'deprecated';
  /** The reading this one corrected. */
  replaces: string | null;
  /** The correction that replaced it (only once deprecated: a correction under way leaves it current). */
  replacedBy: string | null;
}>;

export type ExportedOffer = Readonly<{
  expertId: string;
  systemId: string;
  offeredAt: string;
  expiresAt: string;
  outcome: 'open' | 'accepted' | 'declined' | 'expired' | 'cancelled' | 'withdrawn';
  settledAt: string | null;
}>;

/** A consultation's texts about its patients, while they exist. */
export type ConsultationTexts = Readonly<{
  clinicalQuestion: string;
  summary: string;
  /** The experts' reasons for declining, by offer. */
  declineReasons: readonly Readonly<{ offerIndex: number; expertId: string; reason: string }>[];
  report: Readonly<{ diagnosis: string; recommendations: string }> | null;
  cancelReason: string | null;
}>;

export type ExportedConsultation = Readonly<{
  consultationId: string;
  status: ConsultationStatus;
  requestedAt: string;
  updatedAt: string;
  requesting: Readonly<{ systemId: string; clinician: string }>;
  /** The experts asked, in order of preference. */
  candidates: readonly string[];
  offers: readonly ExportedOffer[];
  /** The expert the case is with (offered or accepted), or who reported; null once unassigned. */
  answering: Readonly<{ expertId: string; systemId: string }> | null;
  report: Readonly<{ expertId: string; issuedAt: string; acknowledgedAt: string | null }> | null;
  cancelledAt: string | null;
  /** The attached documents that are this patient's. */
  attachments: readonly string[];
  /** How many attachments are not this patient's documents (another patient's, or of no patient the hub holds): left out. */
  otherAttachments: number;
  /** The texts were erased (crypto-shredded): `texts` is null. */
  contentErased: boolean;
  texts: ConsultationTexts | null;
}>;

export type ExportedAuditEntry = Readonly<{
  at: string;
  /** Who: the token subject, its role and (clinicians, systems) its system. */
  subject: string;
  role: string;
  systemId: string | null;
  action: string;
  /** The document uniqueId or consultation id it was about, when there was one. */
  resource: string | null;
  outcome: AuditOutcome;
  status: number;
  /** Why it was denied (the policy's reason), or the problem code of one that failed. */
  reason: string | null;
}>;

export type PatientDataExport = Readonly<{
  patientKey: string;
  exportedAt: string;
  /** null: not erased. */
  erasure: Readonly<{ erasedAt: string | null }> | null;
  observations: readonly ExportedObservation[];
  consultations: readonly ExportedConsultation[];
  /** The entries in [from, to), oldest first (by UTC day, within a day in recording order). */
  audit: Readonly<{ from: string; to: string; entries: readonly ExportedAuditEntry[] }>;
}>;

export type PatientExportDependencies = Readonly<{
  patientKeys: Pick<PatientKeys, 'keyFor'>;
  documents: Pick<XdsBackend, 'allEntriesOf' | 'patientKeyOfDocument'>;
  erasure: Pick<PatientErasure, 'holdingOf'>;
  /** The consultation context, where it is composed (a hub; the library composes none). */
  consultations?: Readonly<{ linked: Pick<ConsultationContentErasure, 'consultationsOf'>; get(consultationId: string): Promise<ConsultationView> }>;
  /** chainDays where the store can tell: the days that hold audit chains (a clock set wrong puts some far off). */
  audit: Pick<AuditTrail, 'byPatient'> & Partial<Pick<AuditTrail, 'chainDays'>>;
  /** The store's first event tells where the audit trail can begin. */
  store: Pick<EventStore, 'readAll'>;
  clock: Clock;
}>;

const DAY_MS = 86_400_000;
const WINDOW_MS = MAX_AUDIT_DAYS * DAY_MS;

export class PatientExport {
  constructor(private readonly deps: PatientExportDependencies) {}

  async exportPatientData(patientId: Cpr): Promise<PatientDataExport> {
    const cpr = parseCpr(patientId);
    const patientKey = this.deps.patientKeys.keyFor(cpr);
    const now = this.deps.clock.now().toUTC();
    const holding = await this.deps.erasure.holdingOf(patientKey);
    if (!holding.known) throw new NotFoundError('unknown_patient', 'the hub holds nothing of this patient (no document, no data key, no erasure): there is nothing to export');
    const entries = await this.deps.documents.allEntriesOf(cpr);
    const observations = entries.map(observationOf);
    const consultations = await this.consultationsOf(patientKey, new Set(entries.map((e) => e.uniqueId)));
    const audit = await this.auditOf(patientKey, now);
    return {
      patientKey,
      exportedAt: now.toISO()!,
      erasure: holding.keyErased || holding.erasureRecorded ? { erasedAt: holding.erasedAt } : null,
      observations,
      consultations,
      audit,
    };
  }

  private async consultationsOf(patientKey: string, ownDocuments: ReadonlySet<string>): Promise<readonly ExportedConsultation[]> {
    const context = this.deps.consultations;
    if (!context) return [];
    const ids = await context.linked.consultationsOf(patientKey, ownDocuments);
    const out: ExportedConsultation[] = [];
    for (const id of ids) {
      const view = await context.get(id);
      // An erased patient's documents have no registry row any more: their own streams still name the patient.
      const own: string[] = [];
      for (const uniqueId of view.attachments) {
        if (ownDocuments.has(uniqueId) || (await this.deps.documents.patientKeyOfDocument(uniqueId)) === patientKey) own.push(uniqueId);
      }
      out.push(consultationOf(view, own));
    }
    return out;
  }

  /**
   * Every audit entry under the patient's key, oldest first, read page by page in windows of at most
   * MAX_AUDIT_DAYS. Where the store can tell (chainDays), the windows cover the days that hold audit chains, whole,
   * and skip the days between: entries a hub recorded while its clock was set back (before the store's first event)
   * or ran ahead (after now) are there too (an export after a clock ran two days ahead left those days out, without a
   * word), and a clock once set centuries off costs a seek per day it wrote, not a read of every day between. Else
   * from the day before the store's first event (clocks of hub and store may differ a little) up to `now` included.
   */
  private async auditOf(patientKey: string, now: DateTime): Promise<PatientDataExport['audit']> {
    // Up to and including `now`: the windows are [from, to), and an entry recorded in the export's own millisecond
    // (an access just before it) belongs to it.
    const end = new Date(now.toMillis() + 1);
    const [first] = await this.deps.store.readAll({ after: 0n, maxCount: 1 });
    const firstAt = first ? Math.min(Date.parse(first.recordedAt), end.getTime()) : end.getTime();
    const start = new Date(Math.floor(firstAt / DAY_MS) * DAY_MS - DAY_MS);
    const items: ExportedAuditEntry[] = [];
    const read = async (from: number, to: number): Promise<void> => {
      let position: AuditPosition | undefined;
      for (;;) {
        const page = await this.deps.audit.byPatient(patientKey, { from: new Date(from), to: new Date(to), now: new Date(to), limit: MAX_AUDIT_RESULTS, ...(position ? { after: position } : {}) });
        items.push(...page.items.map(auditEntryOf(patientKey)));
        if (!page.truncated || page.next === null) break;
        position = page.next;
      }
    };
    const days = (await this.deps.audit.chainDays?.())?.map((day) => Date.parse(`${day}T00:00:00Z`)) ?? null;
    // No chains, or a store that cannot tell: the span from the day before the first event up to now.
    if (days === null || days.length === 0) {
      if (days === null) for (let from = start.getTime(); from < end.getTime(); from += WINDOW_MS) await read(from, Math.min(from + WINDOW_MS, end.getTime()));
      return { from: start.toISOString(), to: now.toJSDate().toISOString(), entries: items };
    }
    // Windows of whole days that hold chains: each from a chain's day to the last chain day within MAX_AUDIT_DAYS.
    for (let i = 0; i < days.length; ) {
      const from = days[i]!;
      let j = i;
      while (j + 1 < days.length && days[j + 1]! + DAY_MS - from <= WINDOW_MS) j++;
      await read(from, days[j]! + DAY_MS);
      i = j + 1;
    }
    // The days read, [from, to): the first chain day's start to the last one's end.
    return { from: new Date(days[0]!).toISOString(), to: new Date(days[days.length - 1]! + DAY_MS).toISOString(), entries: items };
  }
}

const observationOf = (e: RegistryEntryView): ExportedObservation => ({
  uniqueId: e.uniqueId,
  observationId: e.observationId,
  measuredAt: e.serviceStartTime,
  storedAt: e.creationTime,
  systolic: e.systolic,
  diastolic: e.diastolic,
  status: e.status === 'Deprecated' ? 'deprecated' : 'current',
  replaces: e.replaces,
  // An Approved row with a successor is mid-correction (or its second step failed): still current, no successor yet.
  replacedBy: e.status === 'Deprecated' ? e.replacedBy : null,
});

const consultationOf = (c: ConsultationView, ownAttachments: readonly string[]): ExportedConsultation => {
  const answeringExpert = c.report?.expertId ?? c.expertId;
  return {
    consultationId: c.consultationId,
    status: c.status,
    requestedAt: c.requestedAt,
    updatedAt: c.updatedAt,
    requesting: { systemId: c.applicantSystemId, clinician: c.applicantClinician },
    candidates: c.candidates,
    // A view stored before the projection settled the open offer at a cancel says 'open' on a cancelled case.
    offers: c.offers.map((o) => {
      const cancelled = o.outcome === 'open' && c.cancelled !== null;
      return {
        expertId: o.expertId,
        systemId: homeSystemOf(o.expertId),
        offeredAt: o.offeredAt,
        expiresAt: o.expiresAt,
        outcome: cancelled ? 'cancelled' : o.outcome,
        settledAt: cancelled ? c.cancelled!.cancelledAt : o.settledAt,
      };
    }),
    answering: answeringExpert ? { expertId: answeringExpert, systemId: homeSystemOf(answeringExpert) } : null,
    report: c.report && { expertId: c.report.expertId, issuedAt: c.report.issuedAt, acknowledgedAt: c.report.acknowledgedAt },
    cancelledAt: c.cancelled?.cancelledAt ?? null,
    attachments: ownAttachments,
    otherAttachments: c.attachments.length - ownAttachments.length,
    contentErased: c.contentErased ?? false,
    texts: c.contentErased
      ? null
      : {
          clinicalQuestion: c.clinicalQuestion ?? '',
          summary: c.summary ?? '',
          declineReasons: c.offers.filter((o) => o.outcome === 'declined' && o.reason).map((o) => ({ offerIndex: o.offerIndex, expertId: o.expertId, reason: o.reason! })),
          report: c.report && { diagnosis: c.report.diagnosis ?? '', recommendations: c.report.recommendations ?? '' },
          cancelReason: c.cancelled ? c.cancelled.reason || null : null,
        },
  };
};

/** What an export shows for another patient's audit subject (see auditEntryOf). */
export const ANOTHER_PATIENT = 'another patient';

/**
 * Who did what, when, and how it ended; not the address or the request id (the staff's and the hub's own data).
 * A patient's request under this patient's key is theirs when the hub allowed it (a patient reaches only their own
 * data), or when the entry says the caller was this patient (`selfAccess`, recorded since 2026-12-06 from the patient
 * key of the caller's token, whoever issued it: an identity provider's patient, whose `sub` is the provider's own,
 * and whose own failed request was shown as another patient's); an older entry without it, when its subject is this
 * patient's pseudonym (a piece of their key, see patientSubject: what the hub's own tokens carry). Otherwise another
 * patient tried (refused: not_own_patient_data), and their subject would link them across trails.
 */
const isOwnRequest = (patientKey: string, e: ChainedAuditEntry): boolean =>
  e.outcome === 'allowed' || (typeof e.selfAccess === 'boolean' ? e.selfAccess : e.subject === patientSubject(patientKey));

const auditEntryOf = (patientKey: string) => (e: ChainedAuditEntry): ExportedAuditEntry => ({
  at: e.at,
  subject: e.role !== 'patient' || isOwnRequest(patientKey, e) ? e.subject : ANOTHER_PATIENT,
  role: e.role,
  systemId: e.systemId,
  action: e.action,
  resource: e.resource,
  outcome: e.outcome,
  status: e.status,
  reason: e.reason,
});
