import { DateTime } from 'luxon';
import { assertNever } from '../../domain/shared/decider';
import { ValidationError } from '../../domain/shared/errors';
import { homeSystemOf, type ConsultationEvent, type ConsultationStatus, type Offer, type ReportResendPolicy } from '../../domain/consultation/consultation';

/**
 * The consultation query side as pure evolve functions (storage adapters apply them; tests call them directly).
 *
 * - `evolveConsultationView(view | null, event)`: one row per consultation, with what the lists filter on: the
 *   applicant system, the system of the expert it is with now (`expertSystemId`: the open offer's or the
 *   accepted expert's home system; null once unassigned), the status, and the next timer (`dueAt`: the open
 *   offer's expiry, or the next report resend) that the Deadlines runner polls.
 * - `evolveMonthlyCounts(counts, event)`: consultations requested per calendar month (UTC), the paper's Figure 5.
 *
 * Events come opened (sealed-consultations.ts): a text that cannot be read (its consultation's key erased) is
 * null, and so it is in the view, with `contentErased` true; ConsultationContentErased forgets every text the
 * view holds. A view never holds ciphertext.
 */
/** The free-text fields of consultation events (sealed in the store). */
type TextField = 'clinicalQuestion' | 'summary' | 'diagnosis' | 'recommendations' | 'reason';
// ConsultationOfferWithdrawn's `reason` is a code the hub chose (OfferWithdrawalReason), never sealed: it stays as is.
type Opened<E> = E extends { type: 'ConsultationOfferWithdrawn' }
  ? Readonly<E>
  : E extends { type: infer T; data: infer D }
    ? Readonly<{ type: T; data: Readonly<{ [K in keyof D]: K extends TextField ? D[K] | null : D[K] }> }>
    : never;
/** A consultation event as the projection gets it: texts in clear, or null where they could not be opened. */
export type OpenedConsultationEvent = Opened<ConsultationEvent>;

export type ConsultationView = Readonly<{
  consultationId: string;
  correlationId: string;
  applicantSystemId: string;
  applicantClinician: string;
  candidates: readonly string[];
  /** null once the content was erased (or cannot be read). */
  clinicalQuestion: string | null;
  summary: string | null;
  attachments: readonly string[];
  deadlineSeconds: number;
  reportResend: ReportResendPolicy;
  status: ConsultationStatus;
  offers: readonly (Offer & { reason: string | null; settledAt: string | null })[];
  expertId: string | null;
  expertSystemId: string | null;
  report: Readonly<{
    expertId: string;
    diagnosis: string | null;
    recommendations: string | null;
    issuedAt: string;
    resends: number;
    lastSentAt: string;
    nextResendAt: string | null;
    acknowledgedAt: string | null;
  }> | null;
  cancelled: Readonly<{ reason: string | null; cancelledAt: string }> | null;
  /** The texts about the patient were erased (crypto-shredded) or cannot be read: they are null here. */
  contentErased: boolean;
  /**
   * The pseudonymous keys of the patients its request recorded (sorted, once each; never a CPR number): what an access
   * to the case is audited under (ConsultationService.patientKeysOfView), kept here so that a page of 500 needs no
   * read of 500 streams. Absent for a request that recorded none (builds to 2026-12-01) and in rows stored by builds
   * to 2026-12-06: ConsultationService.patientKeysOf then reads them from the stream. Kept after an erasure of the
   * texts: the pseudonym the erased patient's export still finds the trail by. Never answered to a caller.
   */
  patientKeys?: readonly string[];
  requestedAt: string;
  updatedAt: string;
  /** The next timer: 'offer' (expiry of offer `offerIndex`) or 'resend' (of resend `attempt`); null when none. */
  due: DueTimer | null;
}>;

/**
 * The systems that take part in a consultation, and so know it exists: the applicant, and the home system of every
 * expert it was offered to, the offer open or ended (declined, expired, withdrawn). Who may read it now is fewer
 * (consultationReaders, below); anyone else is answered as for an unknown id (the HTTP edge).
 */
export const consultationParties = (c: Pick<ConsultationView, 'applicantSystemId' | 'offers'>): readonly string[] => [
  ...new Set([c.applicantSystemId, ...c.offers.map((o) => homeSystemOf(o.expertId))]),
];

/**
 * The systems that may read a consultation: the applicant, and the system of the expert it is with: the open offer's,
 * or the expert who accepted it, also once that case is closed (reported, acknowledged, or cancelled after the
 * acceptance). Not the systems whose offer ended without an acceptance: their experts declined, let the offer expire,
 * were withdrawn, or held the offer when the applicant cancelled. What came after (another expert's report, the
 * cancellation's reason) is not theirs to read. They still take part (consultationParties), so a read of theirs is
 * refused 403, not answered as an unknown id, and a step of theirs is answered without those texts
 * (consultation-routes' answerTo). A case cancelled while offered is judged here from its offers, not from
 * expertSystemId alone: rows stored by builds to 2026-12-06 kept the offered expert's system there after the cancel.
 */
export const consultationReaders = (c: Pick<ConsultationView, 'applicantSystemId' | 'expertSystemId' | 'status' | 'offers'>): readonly string[] => {
  const cancelledUnaccepted = c.status === 'cancelled' && !c.offers.some((o) => o.outcome === 'accepted');
  const expertSystem = cancelledUnaccepted ? null : c.expertSystemId;
  return [c.applicantSystemId, ...(expertSystem && expertSystem !== c.applicantSystemId ? [expertSystem] : [])];
};

export type DueTimer = Readonly<{ kind: 'offer'; offerIndex: number; dueAt: string } | { kind: 'resend'; attempt: number; dueAt: string }>;

const dueOf = (v: Omit<ConsultationView, 'due'>): DueTimer | null => {
  if (v.status === 'offered') {
    const open = v.offers.find((o) => o.outcome === 'open');
    return open ? { kind: 'offer', offerIndex: open.offerIndex, dueAt: open.expiresAt } : null;
  }
  if (v.status === 'reported' && v.report?.nextResendAt) return { kind: 'resend', attempt: v.report.resends + 1, dueAt: v.report.nextResendAt };
  return null;
};

const withDue = (v: Omit<ConsultationView, 'due'>): ConsultationView => ({ ...v, due: dueOf(v) });

const settle = (v: ConsultationView, offerIndex: number, outcome: Offer['outcome'], at: string, reason: string | null): ConsultationView['offers'] =>
  v.offers.map((o) => (o.offerIndex === offerIndex ? { ...o, outcome, settledAt: at, reason } : o));

/** What a view keeps of its texts once they are erased: nothing. */
const forgetTexts = (v: ConsultationView): Omit<ConsultationView, 'due'> => ({
  ...v,
  clinicalQuestion: null,
  summary: null,
  offers: v.offers.map((o) => (o.reason === null ? o : { ...o, reason: null })),
  report: v.report && { ...v.report, diagnosis: null, recommendations: null, nextResendAt: null },
  cancelled: v.cancelled && { ...v.cancelled, reason: null },
  contentErased: true,
});

/** Whether a text of the event could not be opened (null). */
const hasNullText = (event: OpenedConsultationEvent): boolean => {
  const d = event.data as Readonly<Record<string, unknown>>;
  return (['clinicalQuestion', 'summary', 'diagnosis', 'recommendations', 'reason'] as const).some((f) => f in d && d[f] === null);
};

/** Once erased, or as soon as one of its texts cannot be read, a view holds none of its texts (nor re-sends its report). */
export const evolveConsultationView = (current: ConsultationView | null, event: OpenedConsultationEvent): ConsultationView | null => {
  const next = evolveView(current, event);
  if (next === null || next === current) return next;
  return next.contentErased || hasNullText(event) ? withDue(forgetTexts(next)) : next;
};

const evolveView = (current: ConsultationView | null, event: OpenedConsultationEvent): ConsultationView | null => {
  if (event.type === 'ConsultationRequested') {
    if (current) return current;
    const d = event.data;
    return withDue({
      consultationId: d.consultationId,
      correlationId: d.correlationId,
      applicantSystemId: d.applicantSystemId,
      applicantClinician: d.applicantClinician,
      candidates: d.candidates,
      clinicalQuestion: d.clinicalQuestion,
      summary: d.summary,
      attachments: d.attachments,
      deadlineSeconds: d.deadlineSeconds,
      reportResend: d.reportResend,
      status: 'offered',
      offers: [],
      expertId: null,
      expertSystemId: null,
      report: null,
      cancelled: null,
      contentErased: false,
      ...(d.patientKeys !== undefined ? { patientKeys: [...new Set(d.patientKeys)].sort() } : {}),
      requestedAt: d.requestedAt,
      updatedAt: d.requestedAt,
    });
  }
  if (!current) return current;
  switch (event.type) {
    case 'ConsultationOffered': {
      const d = event.data;
      if (current.offers.some((o) => o.offerIndex === d.offerIndex)) return current;
      const offer = { expertId: d.expertId, offerIndex: d.offerIndex, offeredAt: d.offeredAt, expiresAt: d.expiresAt, outcome: 'open' as const, reason: null, settledAt: null };
      return withDue({ ...current, status: 'offered', offers: [...current.offers, offer], expertId: d.expertId, expertSystemId: homeSystemOf(d.expertId), updatedAt: d.offeredAt });
    }
    case 'ConsultationAccepted':
      return withDue({ ...current, status: 'accepted', offers: settle(current, event.data.offerIndex, 'accepted', event.data.acceptedAt, null), updatedAt: event.data.acceptedAt });
    case 'ConsultationDeclined':
      return withDue({ ...current, offers: settle(current, event.data.offerIndex, 'declined', event.data.declinedAt, event.data.reason), updatedAt: event.data.declinedAt });
    case 'ConsultationExpired':
      return withDue({ ...current, offers: settle(current, event.data.offerIndex, 'expired', event.data.expiredAt, null), updatedAt: event.data.expiredAt });
    case 'ConsultationOfferWithdrawn':
      // The next candidate's offer (or the unassignment) follows in the same append and moves expertSystemId on.
      return withDue({ ...current, offers: settle(current, event.data.offerIndex, 'withdrawn', event.data.withdrawnAt, event.data.reason), updatedAt: event.data.withdrawnAt });
    case 'ConsultationUnassigned':
      return withDue({ ...current, status: 'unassigned', expertId: null, expertSystemId: null, updatedAt: event.data.unassignedAt });
    case 'ReportIssued': {
      const d = event.data;
      const report = { expertId: d.expertId, diagnosis: d.diagnosis, recommendations: d.recommendations, issuedAt: d.issuedAt, resends: 0, lastSentAt: d.issuedAt, nextResendAt: d.nextResendAt, acknowledgedAt: null };
      return withDue({ ...current, status: 'reported', report, updatedAt: d.issuedAt });
    }
    case 'ReportResent':
      if (!current.report) return current;
      return withDue({
        ...current,
        report: { ...current.report, resends: event.data.attempt, lastSentAt: event.data.resentAt, nextResendAt: event.data.nextResendAt },
        updatedAt: event.data.resentAt,
      });
    case 'ReportAcknowledged':
      if (!current.report) return current;
      return withDue({
        ...current,
        status: 'acknowledged',
        report: { ...current.report, nextResendAt: null, acknowledgedAt: event.data.acknowledgedAt },
        updatedAt: event.data.acknowledgedAt,
      });
    case 'ConsultationCancelled': {
      const { reason, cancelledAt } = event.data;
      // The open offer ends with the case (it stayed 'open' on a cancelled consultation).
      const offers = current.offers.map((o) => (o.outcome === 'open' ? { ...o, outcome: 'cancelled' as const, settledAt: cancelledAt } : o));
      // Cancelled before any expert accepted it, the case is with no expert any more: the offered expert's system no
      // longer lists it (consultationReaders). An accepted expert's system keeps its case, as after a report.
      const accepted = offers.some((o) => o.outcome === 'accepted');
      const expertSystemId = accepted ? current.expertSystemId : null;
      return withDue({ ...current, status: 'cancelled', offers, expertSystemId, cancelled: { reason, cancelledAt }, updatedAt: cancelledAt });
    }
    case 'ConsultationContentErased':
      // Also when the view holds no texts already: folded again after the erasure (a rebuild, the library's patient
      // export), the texts of the earlier events cannot be opened any more, and the view must still end as the live
      // one did, updated at the erasure. The decider records the erasure once.
      return withDue({ ...forgetTexts(current), updatedAt: event.data.erasedAt });
    default:
      return assertNever(event);
  }
};

/** Calendar month (UTC) of an ISO-8601 instant: 'YYYY-MM'. */
export const monthOf = (iso: string): string => DateTime.fromISO(iso, { setZone: true }).toUTC().toFormat('yyyy-MM');

export type MonthlyCounts = ReadonlyMap<string, number>;

/** Consultations requested per month (UTC). Only ConsultationRequested counts; other events leave it as is. */
export const evolveMonthlyCounts = (counts: MonthlyCounts, event: OpenedConsultationEvent): MonthlyCounts => {
  if (event.type !== 'ConsultationRequested') return counts;
  const month = monthOf(event.data.requestedAt);
  return new Map(counts).set(month, (counts.get(month) ?? 0) + 1);
};

export type MonthCount = Readonly<{ month: string; requested: number }>;

/**
 * The months from `from` to `to` (inclusive, 'YYYY-MM'), each with its count, zero where nothing was requested:
 * the series a chart draws. Without bounds: from the first to the last month with requests.
 */
/** The most months one series spans (100 years). */
export const MAX_SERIES_MONTHS = 1200;

/**
 * The months from..to (each bound defaulting to the data's first or last month) with their counts. A span over
 * MAX_SERIES_MONTHS -> ValidationError 'interval_too_wide': the series used to stop at 1200 months without a
 * word, so 1900-01..2026-12 answered 1900-1999 and none of the months with data.
 */
export const monthSeries = (counts: readonly MonthCount[], range: Readonly<{ from?: string; to?: string }> = {}): MonthCount[] => {
  const sorted = [...counts].sort((a, b) => (a.month < b.month ? -1 : a.month > b.month ? 1 : 0));
  const from = range.from ?? sorted[0]?.month;
  const to = range.to ?? sorted[sorted.length - 1]?.month;
  if (from === undefined || to === undefined || from > to) return [];
  const start = DateTime.fromFormat(from, 'yyyy-MM', { zone: 'utc' });
  const span = DateTime.fromFormat(to, 'yyyy-MM', { zone: 'utc' }).diff(start, 'months').months + 1;
  if (span > MAX_SERIES_MONTHS) {
    throw new ValidationError('interval_too_wide', `a series may span at most ${MAX_SERIES_MONTHS} months`, [
      { path: range.from === undefined ? 'query.to' : 'query.from', message: `at most ${MAX_SERIES_MONTHS} months before to` },
    ]);
  }
  const byMonth = new Map(sorted.map((c) => [c.month, c.requested]));
  const out: MonthCount[] = [];
  // Counted, not compared as text: after 9999-12 comes "10000-01", which sorts before it, and a series ending at
  // 9999-12 ran on for a million months (37 MB, the event loop held for 20 s).
  for (let i = 0, m = start; i < span; i++, m = m.plus({ months: 1 })) {
    const month = m.toFormat('yyyy-MM');
    out.push({ month, requested: byMonth.get(month) ?? 0 });
  }
  return out;
};
