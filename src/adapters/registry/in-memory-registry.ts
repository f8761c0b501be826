import type { RecordedEvent } from '../../application/ports/event-store';
import type { RegistryPosition, RegistryReadModel } from '../../application/ports/registry-read-model';
import { evolveRegistry, type RegistryEntryView } from '../../application/projections/registry-projection';
import { isDocumentEvent, type DocumentEvent } from '../../domain/documents/document-entry';

/** The registry projection held in memory: for unit tests of the core and for small embedded uses. */
export class InMemoryRegistry implements RegistryReadModel {
  private rows = new Map<string, RegistryEntryView>();
  private position = 0n;
  private readonly erased = new Set<string>();

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    const next = new Map(this.rows);
    for (const e of events) {
      if (!isDocumentEvent(e)) continue;
      const event = { type: e.type, data: e.data } as DocumentEvent;
      if (event.type === 'DocumentSubmitted' && this.erased.has(event.data.patientKey)) continue; // see forgetPatient
      for (const row of evolveRegistry((id) => next.get(id) ?? null, event)) next.set(row.uniqueId, row);
    }
    this.rows = next;
    this.position = checkpoint;
  }

  async findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]> {
    return [...this.rows.values()]
      .filter((r) => r.patientKey === patientKey && r.status === 'Approved' && r.serviceStartEpoch >= fromEpoch && r.serviceStartEpoch < toEpoch)
      .sort((a, b) => a.serviceStartEpoch - b.serviceStartEpoch || a.uniqueId.localeCompare(b.uniqueId))
      .slice(0, limit);
  }

  async findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): Promise<readonly RegistryEntryView[]> {
    return this.allOf(this.rows, patientKey, after, limit);
  }

  private allOf(rows: ReadonlyMap<string, RegistryEntryView>, patientKey: string, after: RegistryPosition | null, limit: number): RegistryEntryView[] {
    // Code-point order of uniqueIds, as SQLite's BINARY and PostgreSQL's "C" collation have it.
    const byPosition = (a: RegistryPosition, b: RegistryPosition): number => a.serviceStartEpoch - b.serviceStartEpoch || (a.uniqueId < b.uniqueId ? -1 : a.uniqueId > b.uniqueId ? 1 : 0);
    return [...rows.values()]
      .filter((r) => r.patientKey === patientKey && (after === null || byPosition(r, after) > 0))
      .sort(byPosition)
      .slice(0, limit);
  }

  /** One snapshot by construction: `apply` and `forgetPatient` replace the map whole, never change the one read here. */
  async allEntriesOf(patientKey: string, _pageSize: number): Promise<readonly RegistryEntryView[]> {
    const rows = this.rows;
    return this.allOf(rows, patientKey, null, Number.POSITIVE_INFINITY);
  }

  async get(uniqueId: string): Promise<RegistryEntryView | null> {
    return this.rows.get(uniqueId) ?? null;
  }

  async knowsPatient(patientKey: string): Promise<boolean> {
    for (const r of this.rows.values()) if (r.patientKey === patientKey) return true;
    return false;
  }

  /** Erasure: every row of the patient goes. */
  async forgetPatient(patientKey: string): Promise<void> {
    this.rows = new Map([...this.rows].filter(([, r]) => r.patientKey !== patientKey));
    this.erased.add(patientKey); // a document of theirs later in the events gets no row
  }

  async reset(): Promise<void> {
    this.rows = new Map();
    this.erased.clear();
    this.position = 0n;
  }
}
