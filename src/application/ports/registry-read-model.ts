import type { RecordedEvent } from './event-store';
import type { Replacement } from '../projector';
import type { RegistryEntryView } from '../projections/registry-projection';

/** Where a page of `findAllOf` ended: its last entry's service time (epoch seconds) and uniqueId. */
export type RegistryPosition = Readonly<{ serviceStartEpoch: number; uniqueId: string }>;

/**
 * Storage of the registry projection. An adapter applies a batch of events and advances its checkpoint in one
 * transaction, so a crash never leaves the rows and the checkpoint disagreeing; it can be dropped and rebuilt
 * from the events at any time.
 */
export interface RegistryReadModel {
  /** Global position of the last event applied (0n when empty). */
  checkpoint(): Promise<bigint>;
  /**
   * Apply events (all of them, in order; the model ignores types it does not know) and set the checkpoint. `from`:
   * the checkpoint the page was read after; a checkpoint before it (a rebuild reset the model meanwhile) throws
   * ProjectionBehind and applies nothing (see Projector).
   */
  apply(events: readonly RecordedEvent[], checkpoint: bigint, from?: bigint): Promise<void>;
  /** Approved entries of one patient with serviceStartEpoch in [fromEpoch, toEpoch), oldest first. */
  findCurrent(patientKey: string, fromEpoch: number, toEpoch: number, limit: number): Promise<readonly RegistryEntryView[]>;
  /**
   * Every entry of one patient, current and deprecated, ordered by (serviceStartEpoch, uniqueId), after `after` (the
   * last entry of the previous page; null: from the first), at most `limit`: a patient's whole record, page by page
   * (the right of access, PatientDataExport). uniqueIds compare by their characters' code points, as the adapters'
   * indexes order them.
   */
  findAllOf(patientKey: string, after: RegistryPosition | null, limit: number): Promise<readonly RegistryEntryView[]>;
  /**
   * Every entry of one patient, current and deprecated, in findAllOf's order, as of one moment: one read snapshot (in
   * memory: the rows as one apply left them; SQLite: one statement; PostgreSQL: `pageSize` rows at a time in one
   * REPEATABLE READ transaction). Pages read one by one with findAllOf
   * each saw the rows as they were then: a correction applied between two of them showed the old reading still current
   * and the new one too, or neither; an upload landing before the page boundary was missed, one after it was not.
   */
  allEntriesOf(patientKey: string, pageSize: number): Promise<readonly RegistryEntryView[]>;
  get(uniqueId: string): Promise<RegistryEntryView | null>;
  /** Whether any document, current or not, was ever registered for the patient. */
  knowsPatient(patientKey: string): Promise<boolean>;
  /** Forget every row and the checkpoint, for a rebuild. */
  reset(): Promise<void>;
  /**
   * Where other processes read the same rows (PostgreSQL): a replacement built beside the rows and swapped in for
   * them, which a rebuild then uses instead of reset (see Replacement).
   */
  rebuildBeside?(): Promise<Replacement<RegistryReadModel>>;
}
