import type { ConsultationStatus } from '../../domain/consultation/consultation';
import type { ProjectionTarget } from '../projector';
import type { ConsultationView, MonthCount } from './consultation-projection';

/**
 * Storage of the consultation projection (rows per consultation, the open timers, and the monthly counts), kept
 * by the shared Projector. Like the directory: `apply` writes the rows and the checkpoint in one transaction and
 * skips event types it does not know. Adapters: src/adapters/registry/in-memory-consultations.ts,
 * src/adapters/registry/sqlite-consultations.ts.
 *
 * Lists are newest first: ordered by (requestedAt, consultationId) descending; `before` is the position of the
 * last row of the previous page (keyset paging).
 */
export type ConsultationRole = 'applicant' | 'expert' | 'any';

export type ConsultationQuery = Readonly<{
  systemId: string;
  /** 'applicant': requested by the system; 'expert': with one of its experts now; 'any': either (default). */
  role?: ConsultationRole;
  status?: ConsultationStatus;
  before?: Readonly<{ requestedAt: string; consultationId: string }>;
  limit: number;
}>;

export type ConsultationPage = Readonly<{ items: readonly ConsultationView[]; hasMore: boolean }>;

/** An open timer that is due: the command the Deadlines runner issues for it. */
export type DueTimerRow = Readonly<{ consultationId: string; correlationId: string } & NonNullable<ConsultationView['due']>>;

/** A consultation whose open offer is to a given expert (the RetiredExpertOffers reactor withdraws it). */
export type OpenOfferRow = Readonly<{ consultationId: string; correlationId: string; offerIndex: number }>;

/** The open offer of a row to `expertId`, if it has one (shared by the adapters). */
export const openOfferTo = (v: ConsultationView, expertId: string): OpenOfferRow | null => {
  if (v.status !== 'offered') return null;
  const open = v.offers.find((o) => o.outcome === 'open' && o.expertId === expertId);
  return open ? { consultationId: v.consultationId, correlationId: v.correlationId, offerIndex: open.offerIndex } : null;
};

export interface ConsultationReadModel extends ProjectionTarget {
  get(consultationId: string): Promise<ConsultationView | null>;
  list(query: ConsultationQuery): Promise<ConsultationPage>;
  /** The consultations with an open offer to `expertId` now (at most one offer per consultation is open). */
  openOffersTo(expertId: string): Promise<readonly OpenOfferRow[]>;
  /** Timers due at or before `now` (ISO-8601), earliest first, at most `limit`. */
  dueTimers(now: string, limit: number): Promise<readonly DueTimerRow[]>;
  /** Consultations requested per month (UTC), ascending, months with requests only; bounds inclusive ('YYYY-MM'). */
  monthlyCounts(range: Readonly<{ from?: string; to?: string }>): Promise<readonly MonthCount[]>;
}
