import type { RegistryEntryView } from '../../application/projections/registry-projection';
import type { DocumentStatus } from '../../domain/documents/document-entry';
import { MMHG } from '../../domain/monitoring/tele-observation';

/** One registry row as both SQL adapters store it (snake_case columns, values in mmHg). */
export type RegistryRow = {
  unique_id: string;
  patient_key: string;
  repository_unique_id: string;
  status: DocumentStatus;
  creation_time: string;
  service_start_time: string;
  /** PostgreSQL returns bigint columns as strings. */
  service_start_epoch: string | number;
  mime_type: string;
  hash: string;
  size: number;
  replaces: string | null;
  replaced_by: string | null;
  observation_id: string | null;
  systolic: number;
  diastolic: number;
};

export const rowToView = (r: RegistryRow): RegistryEntryView => ({
  uniqueId: r.unique_id,
  patientKey: r.patient_key,
  repositoryUniqueId: r.repository_unique_id,
  status: r.status,
  creationTime: r.creation_time,
  serviceStartTime: r.service_start_time,
  serviceStartEpoch: Number(r.service_start_epoch),
  mimeType: r.mime_type,
  hash: r.hash,
  size: Number(r.size),
  replaces: r.replaces,
  replacedBy: r.replaced_by,
  observationId: r.observation_id,
  systolic: { value: Number(r.systolic), unit: MMHG },
  diastolic: { value: Number(r.diastolic), unit: MMHG },
});

export const viewToRow = (v: RegistryEntryView): RegistryRow => ({
  unique_id: v.uniqueId,
  patient_key: v.patientKey,
  repository_unique_id: v.repositoryUniqueId,
  status: v.status,
  creation_time: v.creationTime,
  service_start_time: v.serviceStartTime,
  service_start_epoch: v.serviceStartEpoch,
  mime_type: v.mimeType,
  hash: v.hash,
  size: v.size,
  replaces: v.replaces,
  replaced_by: v.replacedBy,
  observation_id: v.observationId,
  systolic: v.systolic.value,
  diastolic: v.diastolic.value,
});
