import type { RecordedEvent } from '../../application/ports/event-store';
import { ProjectionBehind } from '../../application/projector';
import type { RegistryPosition, RegistryReadModel } from '../../application/ports/registry-read-model';
import { evolveRegistry, type RegistryEntryView } from '../../application/projections/registry-projection';
import { isDocumentEvent, type DocumentEvent } from '../../domain/documents/document-entry';

/**
 * (serviceStartEpoch, uniqueId) with uniqueIds in code-point order, as SQLite's BINARY and PostgreSQL's "C" collation
 * have it: the order of every query here. (findCurrent used localeCompare until 2026-12-06; for OIDs, the only
 * uniqueIds the hub makes or accepts, the two orders agree.)
 */
const byPosition = (a: RegistryPosition, b: RegistryPosition): number =>
  a.serviceStartEpoch - b.serviceStartEpoch || (a.uniqueId < b.uniqueId ? -1 : a.uniqueId > b.uniqueId ? 1 : 0);

/** Index of the first row of `rows` (sorted by byPosition) from `lo` on for which `before` is false. */
const firstNotBefore = (rows: readonly RegistryEntryView[], before: (row: RegistryEntryView) => boolean, lo = 0): number => {
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(rows[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
};

/** `rows` and `added`, both sorted by byPosition and with no uniqueId in common, as one sorted array. */
const merge = (rows: readonly RegistryEntryView[], added: readonly RegistryEntryView[]): RegistryEntryView[] => {
  const merged: RegistryEntryView[] = [];
  let from = 0;
  for (const row of added) {
    const at = firstNotBefore(rows, (r) => byPosition(r, row) < 0, from);
    for (let i = from; i < at; i++) merged.push(rows[i]!);
    merged.push(row);
    from = at;
  }
  for (let i = from; i < rows.length; i++) merged.push(rows[i]!);
  return merged;
};

/**
 * The registry projection held in memory: the library's registry, and the EventStoreDB profile's without
 * PostgreSQL (rebuilt from $all at start).
 *
 * Rows by uniqueId, and per patient an array of their rows in byPosition order that is never changed once made: an
 * apply that changes a patient's rows replaces that patient's array whole (copy on write). An apply costs what the
 * batch's patients hold, a query what its patient holds, and an array read once is one snapshot of the patient.
 * A row's patientKey never changes (a uniqueId's first submission makes the row; evolves keep its patientKey).
 */
export class InMemoryRegistry implements RegistryReadModel {
  private readonly rows = new Map<string, RegistryEntryView>();
  private readonly byPatient = new Map<string, readonly RegistryEntryView[]>();
  private position = 0n;
  private readonly erased = new Set<string>();

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint, from?: bigint): Promise<void> {
    // A page read after `from` while a rebuild reset the registry (the Projector's read overlapping a reset): applied,
    // it would put that page's rows into a registry that has not replayed what came before them.
    if (from !== undefined && this.position < from) throw new ProjectionBehind(this.position, from);
    // The batch's rows are staged beside the live ones and published only when every event evolved: an event that
    // throws leaves the registry as it was, as when apply built a whole new map.
    const staged = new Map<string, RegistryEntryView>();
    const rowOf = (id: string): RegistryEntryView | null => staged.get(id) ?? this.rows.get(id) ?? null;
    for (const e of events) {
      if (!isDocumentEvent(e)) continue;
      const event = { type: e.type, data: e.data } as DocumentEvent;
      if (event.type === 'DocumentSubmitted' && this.erased.has(event.data.patientKey)) continue; // see forgetPatient
      for (const row of evolveRegistry(rowOf, event)) staged.set(row.uniqueId, row);
    }
    const changedByPatient = new Map<string, RegistryEntryView[]>();
    for (const row of staged.values()) {
      const changed = changedByPatient.get(row.patientKey);
      if (changed) changed.push(row);
      else changedByPatient.set(row.patientKey, [row]);
    }
    for (const [patientKey, changed] of changedByPatient) {
      const before = this.byPatient.get(patientKey) ?? [];
      const added: RegistryEntryView[] = [];
      const evolved: RegistryEntryView[] = [];
      for (const row of changed) (this.rows.has(row.uniqueId) ? evolved : added).push(row);
      const after = added.length === 0 ? before.slice() : merge(before, added.sort(byPosition));
      // An evolve changes neither the time nor the uniqueId: the row keeps its place.
      for (const row of evolved) after[firstNotBefore(after, (r) => byPosition(r, row) < 0)] = row;
      this.byPatient.set(patientKey, after);
    }
    for (const [uniqueId, row] of staged) this.rows.set(uniqueId, row);
    this.position = checkpoint;
  }

  async findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]> {
    const rows = this.byPatient.get(patientKey) ?? [];
    const found: RegistryEntryView[] = [];
    const most = limit >= 0 ? limit : Number.POSITIVE_INFINITY; // a negative or NaN limit: sliced below, as before
    for (let i = firstNotBefore(rows, (r) => r.serviceStartEpoch < fromEpoch); i < rows.length && found.length < most; i++) {
      const row = rows[i]!;
      if (!(row.serviceStartEpoch < toEpoch)) break;
      if (row.status === 'Approved' && row.serviceStartEpoch >= fromEpoch) found.push(row);
    }
    return limit >= 0 ? found : found.slice(0, limit);
  }

  async findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): Promise<readonly RegistryEntryView[]> {
    const rows = this.byPatient.get(patientKey) ?? [];
    const start = after === null ? 0 : firstNotBefore(rows, (r) => byPosition(r, after) <= 0);
    return limit >= 0 ? rows.slice(start, start + limit) : rows.slice(start).slice(0, limit);
  }

  /** One snapshot by construction: `apply` and `forgetPatient` replace a patient's array whole, never change the one read here. */
  async allEntriesOf(patientKey: string, _pageSize: number): Promise<readonly RegistryEntryView[]> {
    return [...(this.byPatient.get(patientKey) ?? [])];
  }

  async get(uniqueId: string): Promise<RegistryEntryView | null> {
    return this.rows.get(uniqueId) ?? null;
  }

  async knowsPatient(patientKey: string): Promise<boolean> {
    return (this.byPatient.get(patientKey)?.length ?? 0) > 0;
  }

  /** Erasure: every row of the patient goes. */
  async forgetPatient(patientKey: string): Promise<void> {
    for (const row of this.byPatient.get(patientKey) ?? []) this.rows.delete(row.uniqueId);
    this.byPatient.delete(patientKey);
    this.erased.add(patientKey); // a document of theirs later in the events gets no row
  }

  async reset(): Promise<void> {
    this.rows.clear();
    this.byPatient.clear();
    this.erased.clear();
    this.position = 0n;
  }
}
