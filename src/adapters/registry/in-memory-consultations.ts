import { openOfferTo, type ConsultationPage, type ConsultationQuery, type ConsultationReadModel, type DueTimerRow, type OpenOfferRow } from '../../application/consultation/consultation-read-model';
import { evolveConsultationView, evolveMonthlyCounts, type ConsultationView, type OpenedConsultationEvent, type MonthCount, type MonthlyCounts } from '../../application/consultation/consultation-projection';
import type { RecordedEvent } from '../../application/ports/event-store';
import { CONSULTATION_EVENT_TYPES, isConsultationEvent } from '../../domain/consultation/consultation';

/**
 * The consultation projection in memory: for unit tests and stores without a SQL side (rebuilt from the events at
 * start). `apply` builds the new state aside and swaps it in, so a failure leaves the old one.
 */
export class InMemoryConsultations implements ConsultationReadModel {
  private rows = new Map<string, ConsultationView>();
  private counts: MonthlyCounts = new Map();
  private position = 0n;
  /** The projector reads only these: the documents and audit events that make up most of the log are skipped. */
  readonly eventTypes: ReadonlySet<string> = new Set(CONSULTATION_EVENT_TYPES);

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    const rows = new Map(this.rows);
    let counts = this.counts;
    for (const e of events) {
      if (!isConsultationEvent(e)) continue;
      const event = { type: e.type, data: e.data } as OpenedConsultationEvent;
      const id = event.data.consultationId;
      const current = rows.get(id) ?? null;
      const next = evolveConsultationView(current, event);
      // Counted where the row is first written (as SqliteConsultations does).
      if (current === null) counts = evolveMonthlyCounts(counts, event);
      if (next) rows.set(id, next);
    }
    this.rows = rows;
    this.counts = counts;
    this.position = checkpoint;
  }

  async reset(): Promise<void> {
    this.rows = new Map();
    this.counts = new Map();
    this.position = 0n;
  }

  async get(consultationId: string): Promise<ConsultationView | null> {
    return this.rows.get(consultationId) ?? null;
  }

  async list(query: ConsultationQuery): Promise<ConsultationPage> {
    const role = query.role ?? 'any';
    const before = query.before;
    const matches = [...this.rows.values()]
      .filter(
        (v) =>
          ((role !== 'expert' && v.applicantSystemId === query.systemId) || (role !== 'applicant' && v.expertSystemId === query.systemId)) &&
          (query.status === undefined || v.status === query.status) &&
          (before === undefined || compare(v.requestedAt, before.requestedAt) < 0 || (v.requestedAt === before.requestedAt && compare(v.consultationId, before.consultationId) < 0)),
      )
      .sort((a, b) => compare(b.requestedAt, a.requestedAt) || compare(b.consultationId, a.consultationId));
    return { items: matches.slice(0, query.limit), hasMore: matches.length > query.limit };
  }

  async openOffersTo(expertId: string): Promise<readonly OpenOfferRow[]> {
    return [...this.rows.values()].flatMap((v) => openOfferTo(v, expertId) ?? []);
  }

  async dueTimers(now: string, limit: number): Promise<readonly DueTimerRow[]> {
    const at = Date.parse(now);
    return [...this.rows.values()]
      .flatMap((v) => (v.due && Date.parse(v.due.dueAt) <= at ? [{ consultationId: v.consultationId, correlationId: v.correlationId, ...v.due }] : []))
      .sort((a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt) || compare(a.consultationId, b.consultationId))
      .slice(0, limit);
  }

  async monthlyCounts(range: Readonly<{ from?: string; to?: string }>): Promise<readonly MonthCount[]> {
    return [...this.counts.entries()]
      .filter(([m]) => (range.from === undefined || m >= range.from) && (range.to === undefined || m <= range.to))
      .sort(([a], [b]) => compare(a, b))
      .map(([month, requested]) => ({ month, requested }));
  }
}

/** Code-unit order, as SQLite's BINARY collation, so both adapters page alike. */
const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
