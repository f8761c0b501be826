import { rowToView, type RegistryRow } from './registry-rows';
import type { PatientDataProtection } from '../../application/ports/patient-data-protection';
import type { RegistryEntryView } from '../../application/projections/registry-projection';
import type { DocumentStatus } from '../../domain/documents/document-entry';
import { MMHG } from '../../domain/monitoring/tele-observation';

/**
 * A registry row on PostgreSQL: its personal values sealed under the patient's data key (crypto-shredding), the
 * rest in clear. PostgreSQL does not overwrite what it frees: a deleted row's old version stays in the table's
 * pages after VACUUM until the space is reused, and in the WAL, WAL archives and base backups. Sealed, every such
 * copy is unreadable once the patient's key is erased.
 *
 * Sealed (`sealed`, one AES-256-GCM envelope of JSON, the row's uniqueId bound in as context): the reading
 * (systolic, diastolic), what identifies the document's content (its plain SHA-256 `hash`, and `size`, whose
 * digits vary with the reading's), the client's `observation_id`, and the two times as text (upload and
 * measurement).
 *
 * In clear, because the queries filter, order or join on them, or the projection updates them without the key:
 * `patient_key`, `status`, `service_start_epoch` (the measurement time in seconds: interval queries and their
 * order), `unique_id`, `replaces`, `replaced_by`; and two values the hub sets, the same for every row:
 * `repository_unique_id` and `mime_type`. These are still personal data under the pseudonym (which times a
 * patient measured, how many documents and corrections there were): after an erasure they can stay in the
 * files like the rest, as the events keep the same bookkeeping (README, "Erasure by crypto-shredding").
 *
 * Rows written before sealing (`sealed` NULL) have their values in the clear columns; PostgresRegistry.open
 * re-seals them. A sealed row has NULL there.
 */
export type PgRegistryRow = Readonly<{
  unique_id: string;
  patient_key: string;
  repository_unique_id: string;
  status: DocumentStatus;
  /** PostgreSQL returns bigint columns as strings. */
  service_start_epoch: string | number;
  mime_type: string;
  replaces: string | null;
  replaced_by: string | null;
  sealed: string | null;
  creation_time: string | null;
  service_start_time: string | null;
  hash: string | null;
  size: number | null;
  observation_id: string | null;
  systolic: number | null;
  diastolic: number | null;
}>;

/** What the envelope holds. */
type Personal = Readonly<{
  creationTime: string;
  serviceStartTime: string;
  hash: string;
  size: number;
  observationId: string | null;
  systolic: number;
  diastolic: number;
}>;

/** The AEAD context of a row's envelope: its uniqueId, in a place of its own (a document's is `document/<id>`). */
export const registryRowContext = (uniqueId: string): string => `registry-entry/${uniqueId}`;

/** The row's personal values sealed under the patient's key. PatientErasedError once the patient is erased. */
export const sealRowValues = (protection: PatientDataProtection, v: RegistryEntryView): Promise<string> => {
  const personal: Personal = {
    creationTime: v.creationTime,
    serviceStartTime: v.serviceStartTime,
    hash: v.hash,
    size: v.size,
    observationId: v.observationId,
    systolic: v.systolic.value,
    diastolic: v.diastolic.value,
  };
  return protection.seal(v.patientKey, JSON.stringify(personal), registryRowContext(v.uniqueId), { openedSoon: false });
};

/** The columns written for a row: the clear ones, and the envelope (the personal clear columns stay NULL). */
export const sealedRowColumns = (v: RegistryEntryView, sealed: string | null) => ({
  unique_id: v.uniqueId,
  patient_key: v.patientKey,
  repository_unique_id: v.repositoryUniqueId,
  status: v.status,
  service_start_epoch: v.serviceStartEpoch,
  mime_type: v.mimeType,
  replaces: v.replaces,
  replaced_by: v.replacedBy,
  sealed,
});

/**
 * The row as a view, its envelope opened (without waiting when the key is in memory); null when the patient's key
 * was erased. A row from before sealing is read from its clear columns.
 */
export const openRow = async (protection: PatientDataProtection, row: PgRegistryRow): Promise<RegistryEntryView | null> => {
  if (row.sealed === null) return rowToView(row as RegistryRow);
  const context = registryRowContext(row.unique_id);
  const cached = protection.openCached?.(row.patient_key, row.sealed, context);
  const text = cached !== undefined ? cached : await protection.open(row.patient_key, row.sealed, context);
  if (text === null) return null;
  const p = JSON.parse(text) as Personal;
  return {
    uniqueId: row.unique_id,
    patientKey: row.patient_key,
    repositoryUniqueId: row.repository_unique_id,
    status: row.status,
    creationTime: p.creationTime,
    serviceStartTime: p.serviceStartTime,
    serviceStartEpoch: Number(row.service_start_epoch),
    mimeType: row.mime_type,
    hash: p.hash,
    size: p.size,
    replaces: row.replaces,
    replacedBy: row.replaced_by,
    observationId: p.observationId,
    systolic: { value: p.systolic, unit: MMHG },
    diastolic: { value: p.diastolic, unit: MMHG },
  };
};

/** Rows opened in order; rows whose key was erased left out. */
export const openRows = async (protection: PatientDataProtection, rows: readonly PgRegistryRow[]): Promise<RegistryEntryView[]> => {
  const out: RegistryEntryView[] = [];
  for (const row of rows) {
    const view = await openRow(protection, row);
    if (view !== null) out.push(view);
  }
  return out;
};
