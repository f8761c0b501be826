/**
 * telemed-rts as a library. See README "Embedding the core".
 */
export { openTeleMed, type EmbeddedTeleMed, type EmbeddedTeleMedService, type EmbeddedXds, type CorrectionOptions, type ExportOptions, type OpenOptions } from './bootstrap/library';
export type { PatientExportDocument } from './adapters/http/export-routes';
export type { ErasureOptions, ErasureResult, ErasurePage, RecordedErasure, RecordedPatientErasure, RecordedConsultationErasure } from './application/patient-erasure';
export { startHub, type RunningHub } from './bootstrap/main';
export { loadConfig, ConfigError, type Config } from './bootstrap/config';
export type { TeleMed, StoredObservation, RecordOptions, RecordResult, CorrectResult } from './application/telemed';
export { TeleMedService, buildDocument } from './application/telemed';
export { XdsBackend, type RetrievedDocument, type SubmitResult, type SubmitOptions, type RepeatedResult } from './application/xds-backend';
export type { RegistryEntryView } from './application/projections/registry-projection';
export type { EventStore, RecordedEvent, NewEvent, ExpectedVersion } from './application/ports/event-store';
export { ExpectedVersionConflictError } from './application/ports/event-store';
export { createTeleObservation, type TeleObservation, type TeleObservationInput, type Quantity, type PressureUnit } from './domain/monitoring/tele-observation';
export { parseCpr, isCpr, type Cpr } from './domain/monitoring/cpr';
export { timeInterval, lastDays, endOfNow, type TimeInterval } from './domain/monitoring/time-interval';
export { parseHl7Observation, HL7Builder, MetadataBuilder, Director, type DocumentMetadata } from './domain/documents/hl7';
export { RtsError, ValidationError, NotFoundError, ConflictError, ForbiddenError, UnavailableError, type ErrorKind } from './domain/shared/errors';
export { backupDataDir, restoreDataDir, clearRestoredMarker, verifyBackup, BackupError, type BackupManifest, type BackupResult } from './adapters/backup/data-dir-backup';
