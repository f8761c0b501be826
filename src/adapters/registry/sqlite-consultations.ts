import type { Database } from 'better-sqlite3';
import { openOfferTo, type ConsultationPage, type ConsultationQuery, type ConsultationReadModel, type DueTimerRow, type OpenOfferRow } from '../../application/consultation/consultation-read-model';
import { evolveConsultationView, monthOf, type ConsultationView, type OpenedConsultationEvent, type MonthCount } from '../../application/consultation/consultation-projection';
import type { RecordedEvent } from '../../application/ports/event-store';
import { CONSULTATION_EVENT_TYPES, homeSystemOf, isConsultationEvent, type ConsultationEvent } from '../../domain/consultation/consultation';
import { truncateWal } from '../event-store/sqlite/wal-checkpoint';
import type { SqliteWriter } from './sqlite-registry';

const CONTENT_ERASED = 'ConsultationContentErased';
/** As the registry's erasure: how long the WAL's truncation waits for a reader before it leaves the frames. */
const ERASURE_CHECKPOINT_WAIT_MS = 100;

/**
 * The consultation projection in the SQLite file of the events (the pattern of SqliteDirectory): rows, monthly
 * counts and checkpoint change in one transaction taken through the store's writer (`runExclusive`).
 *
 * A row is stored whole as JSON (read whole, small) beside the columns the queries filter and sort on: applicant
 * and expert system with status, (requested_at, id) for newest-first keyset pages, and due_ms (the next timer as
 * epoch milliseconds, so instants with different offsets compare right) for the Deadlines runner.
 */
const PROJECTION = 'consultations';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS consultations (
  consultation_id TEXT PRIMARY KEY,
  applicant_system_id TEXT NOT NULL,
  expert_system_id TEXT,
  status TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  due_ms INTEGER,
  row TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS consultations_by_applicant ON consultations (applicant_system_id, status, requested_at, consultation_id);
CREATE INDEX IF NOT EXISTS consultations_by_expert_system ON consultations (expert_system_id, status, requested_at, consultation_id);
CREATE INDEX IF NOT EXISTS consultations_due ON consultations (due_ms) WHERE due_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS consultations_per_month (month TEXT PRIMARY KEY, requested INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS projection_checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL);
`;

export class SqliteConsultations implements ConsultationReadModel {
  /** The projector reads only these: the documents and audit events that make up most of the log are skipped. */
  readonly eventTypes: ReadonlySet<string> = new Set(CONSULTATION_EVENT_TYPES);
  private readonly db: Database;
  private readonly statements;
  /** The projection's write statements, prepared once (they run inside the writer's transactions). */
  private readonly writes;

  constructor(private readonly writer: SqliteWriter) {
    this.db = writer.database;
    this.db.exec(SCHEMA);
    this.statements = {
      get: this.db.prepare('SELECT row FROM consultations WHERE consultation_id = ?').pluck(),
      // The offered cases with the expert's home system (its index), the expert itself checked in the row.
      offeredWithSystem: this.db.prepare("SELECT row FROM consultations WHERE expert_system_id = ? AND status = 'offered'").pluck(),
      due: this.db.prepare('SELECT row FROM consultations WHERE due_ms IS NOT NULL AND due_ms <= ? ORDER BY due_ms, consultation_id LIMIT ?').pluck(),
      checkpoint: this.db.prepare('SELECT position FROM projection_checkpoints WHERE name = ?').pluck().safeIntegers(true),
    };
    this.writes = {
      upsert: this.db.prepare(
        `INSERT INTO consultations (consultation_id, applicant_system_id, expert_system_id, status, requested_at, due_ms, row)
         VALUES (@consultation_id, @applicant_system_id, @expert_system_id, @status, @requested_at, @due_ms, @row)
         ON CONFLICT (consultation_id) DO UPDATE SET expert_system_id = excluded.expert_system_id, status = excluded.status,
           due_ms = excluded.due_ms, row = excluded.row`,
      ),
      count: this.db.prepare('INSERT INTO consultations_per_month (month, requested) VALUES (?, 1) ON CONFLICT (month) DO UPDATE SET requested = requested + 1'),
      setCheckpoint: this.db.prepare('INSERT INTO projection_checkpoints (name, position) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET position = excluded.position'),
    };
  }

  async checkpoint(): Promise<bigint> {
    const position = this.statements.checkpoint.get(PROJECTION) as bigint | undefined;
    return position === undefined ? 0n : BigInt(position);
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    // Every rewrite of a row runs with secure_delete (on for every connection to the file: configure,
    // sqlite-event-store.ts): a row holds the texts in clear while the consultation's key
    // exists, and each step (offered, declined, accepted, reported) rewrites it, freeing the cells and overflow pages
    // of the row as it was. Zeroed only in the batch that erased, the earlier copies of a long row stayed in free
    // pages, readable in a copy of the file after the erasure (an outside review, texts of 3,000 characters and more).
    // The batch that erases texts is also synced in full, and the WAL's older frames go after it, as the registry's.
    const erasing = events.some((e) => e.type === CONTENT_ERASED);
    await this.writer.runExclusive(() => this.applyRows(events, checkpoint), { durability: erasing ? 'full' : 'relaxed' });
    if (erasing) await this.writer.runExclusive((db) => truncateWal(db, ERASURE_CHECKPOINT_WAIT_MS), { transaction: false });
  }

  private applyRows(events: readonly RecordedEvent[], checkpoint: bigint): void {
    const { upsert, count, setCheckpoint } = this.writes;
    const select = this.statements.get;
    for (const e of events) {
      if (!isConsultationEvent(e)) continue;
      const event = { type: e.type, data: e.data } as OpenedConsultationEvent;
      const json = select.get(event.data.consultationId) as string | undefined;
      const current = json === undefined ? null : (JSON.parse(json) as ConsultationView);
      const next = evolveConsultationView(current, event);
      if (!next || next === current) continue;
      // Counted where the row is first written, so a repeated ConsultationRequested is never counted twice.
      if (event.type === 'ConsultationRequested' && current === null) count.run(monthOf(event.data.requestedAt));
      upsert.run({
        consultation_id: next.consultationId,
        applicant_system_id: next.applicantSystemId,
        expert_system_id: next.expertSystemId,
        status: next.status,
        requested_at: next.requestedAt,
        due_ms: next.due ? Date.parse(next.due.dueAt) : null,
        row: JSON.stringify(next),
      });
    }
    setCheckpoint.run(PROJECTION, checkpoint);
  }

  async reset(): Promise<void> {
    await this.writer.runExclusive((db) => {
      db.prepare('DELETE FROM consultations').run();
      db.prepare('DELETE FROM consultations_per_month').run();
      db.prepare('DELETE FROM projection_checkpoints WHERE name = ?').run(PROJECTION);
    });
  }

  async get(consultationId: string): Promise<ConsultationView | null> {
    const json = this.statements.get.get(consultationId) as string | undefined;
    return json === undefined ? null : (JSON.parse(json) as ConsultationView);
  }

  async list(query: ConsultationQuery): Promise<ConsultationPage> {
    const role = query.role ?? 'any';
    const where: string[] = [];
    const params: unknown[] = [];
    if (role === 'applicant') (where.push('applicant_system_id = ?'), params.push(query.systemId));
    else if (role === 'expert') (where.push('expert_system_id = ?'), params.push(query.systemId));
    else (where.push('(applicant_system_id = ? OR expert_system_id = ?)'), params.push(query.systemId, query.systemId));
    if (query.status !== undefined) (where.push('status = ?'), params.push(query.status));
    if (query.before !== undefined) (where.push('(requested_at, consultation_id) < (?, ?)'), params.push(query.before.requestedAt, query.before.consultationId));
    const sql = `SELECT row FROM consultations WHERE ${where.join(' AND ')} ORDER BY requested_at DESC, consultation_id DESC LIMIT ?`;
    const rows = (this.db.prepare(sql).pluck().all(...params, query.limit + 1) as string[]).map((r) => JSON.parse(r) as ConsultationView);
    return { items: rows.slice(0, query.limit), hasMore: rows.length > query.limit };
  }

  async openOffersTo(expertId: string): Promise<readonly OpenOfferRow[]> {
    const system = homeSystemOf(expertId);
    return (this.statements.offeredWithSystem.all(system) as string[]).flatMap((json) => openOfferTo(JSON.parse(json) as ConsultationView, expertId) ?? []);
  }

  async dueTimers(now: string, limit: number): Promise<readonly DueTimerRow[]> {
    return (this.statements.due.all(Date.parse(now), limit) as string[]).flatMap((json) => {
      const v = JSON.parse(json) as ConsultationView;
      return v.due ? [{ consultationId: v.consultationId, correlationId: v.correlationId, ...v.due }] : [];
    });
  }

  async monthlyCounts(range: Readonly<{ from?: string; to?: string }>): Promise<readonly MonthCount[]> {
    const rows = this.db
      .prepare('SELECT month, requested FROM consultations_per_month WHERE month >= ? AND month <= ? ORDER BY month')
      .all(range.from ?? '', range.to ?? '9999-99') as { month: string; requested: number }[];
    return rows.map((r) => ({ month: r.month, requested: Number(r.requested) }));
  }
}
