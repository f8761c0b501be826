import { ExpectedVersionConflictError } from '../../application/ports/event-store';
import { RtsError, type ErrorKind } from '../../domain/shared/errors';
import { isPgUnavailable } from '../event-store/postgres/pg-unavailable';

/**
 * The hub's error vocabulary, code -> [status, title]: every error code a caller can get, over HTTP as the problem's
 * type (problem.ts) and over AMQP as a dead letter's reason and the status its audit entry records (uplink-audit.ts),
 * as the library's audit entries do. The status is chosen here, at the edge, never in the domain.
 */
export const PROBLEM_TYPES = {
  malformed_json: [400, 'The request body is not valid JSON'],
  invalid_request: [400, 'The request does not have the expected shape'],
  invalid_patient_id: [422, 'The patient identifier is not a valid CPR number'],
  invalid_observation: [422, 'The observation is not valid'],
  implausible_observation: [422, 'The observation has implausible values'],
  invalid_interval: [422, 'The time interval is not valid'],
  interval_too_wide: [422, 'The time interval is too wide'],
  too_many_results: [422, 'Too many results; narrow the interval'],
  invalid_document: [422, 'The document is not a valid HL7 blood pressure document'],
  document_too_large: [413, 'The document is too large'],
  correction_patient_mismatch: [422, 'The correction concerns another patient'],
  unknown_patient: [404, 'No document is registered for this patient'],
  document_not_found: [404, 'No document has this uniqueId'],
  document_content_missing: [404, 'The repository does not hold the document'],
  not_found: [404, 'No such resource'],
  observation_id_reused: [409, 'The observation id was already used for a different reading'],
  correction_id_reused: [409, 'The correction id was already used for a different correction'],
  document_deprecated: [409, 'The document was already replaced'],
  concurrency_conflict: [409, 'The resource was changed concurrently; retry'],
  // The regional hub: directory and systems
  unknown_system: [404, 'The system that sent or applied is not registered with the hub'],
  system_not_found: [404, 'No system is registered with this id'],
  expert_not_found: [404, 'No expert has this id'],
  invalid_system_id: [422, 'The system id is not valid'],
  invalid_system: [422, 'The system is not valid'],
  invalid_expert_id: [422, 'The expert id is not valid'],
  invalid_expert_profile: [422, 'The expert profile is not valid'],
  invalid_join: [422, 'The join request is not valid'],
  invalid_cursor: [422, 'The paging cursor is not valid'],
  invalid_resource: [422, 'The resource is not a document uniqueId or a consultation id'],
  invalid_request_id: [422, 'The request id is not one the hub keeps'],
  batch_count_mismatch: [422, 'The batch count differs from the join request'],
  batch_index_out_of_range: [422, 'The batch index lies outside the join'],
  duplicate_expert_in_batch: [422, 'An expert appears twice in one batch'],
  too_many_experts: [422, 'More experts than the join announced'],
  system_name_mismatch: [422, 'The system name differs from the registered one'],
  unknown_message_type: [422, 'The message type is not known'],
  expert_owned_by_other_system: [403, 'The expert belongs to another system'],
  expert_retired: [409, 'The expert has retired'],
  join_already_started: [409, 'The system has already started joining'],
  system_already_joined: [409, 'The system has already joined'],
  system_already_registered: [409, 'A system with this id is already registered'],
  system_not_joined: [409, 'The system has not joined yet'],
  system_not_joining: [409, 'The system is not joining'],
  // Dead letters
  dead_letter_not_found: [404, 'No dead-lettered message has this id'],
  dead_letter_discarded: [410, 'The dead-lettered message was discarded'],
  dead_letter_taken: [409, 'Another request took the dead-lettered message off the queue meanwhile'],
  dead_letter_not_selectable: [409, 'The dead-lettered message cannot be selected for a replay or a discard'],
  dead_letter_without_source: [409, 'The dead-lettered message does not name its source queue'],
  replay_target_refused: [422, 'The dead-lettered message names a source queue the hub does not replay to'],
  // Consultations
  consultation_not_found: [404, 'No consultation has this id'],
  consultation_erased: [410, "The consultation's content was erased"],
  expert_not_offered: [403, 'The case was not offered to this expert'],
  not_your_consultation: [403, 'The consultation belongs to another system'],
  consultation_id_reused: [409, 'The consultation id was already used for another request'],
  action_id_reused: [409, 'The actionId was already used for another step on this consultation'],
  offer_expired: [409, 'The offer has expired'],
  offer_declined: [409, 'The offer was declined'],
  consultation_already_accepted: [409, 'The consultation was already accepted'],
  consultation_not_accepted: [409, 'The consultation has not been accepted'],
  consultation_cancelled: [409, 'The consultation was cancelled'],
  consultation_unassigned: [409, 'No expert accepted the consultation'],
  report_already_issued: [409, 'A report was already issued'],
  report_not_issued: [409, 'No report has been issued yet'],
  invalid_consultation: [422, 'The consultation request is not valid'],
  unknown_candidate: [422, 'A candidate expert is not in the directory'],
  candidate_retired: [422, 'A candidate expert has retired'],
  unknown_attachment: [422, 'An attachment is not a document registered with the hub'],
  attachment_replaced: [422, 'An attachment was replaced by a correction'],
  attachments_of_several_patients: [422, 'The attachments are documents of more than one patient'],
  invalid_report: [422, 'The report is not valid'],
  // Keys
  invalid_key: [422, 'The key is not valid'],
  key_owned_by_other_party: [409, 'The key is registered to another party'],
  key_not_found: [404, 'No such key is registered for this system'],
  invalid_key_dates: [422, 'The key must retire after it becomes valid'],
  key_use_changed: [409, 'The key is registered for another use'],
  key_retired: [409, 'The key was retired and cannot be registered again'],
  last_key: [409, 'The last valid key of its use cannot be retired before a successor is registered'],
  // Access control, limits, erasure
  unauthenticated: [401, 'Authentication is required'],
  // The hub's fault, not the token's: the identity provider's key set cannot be used, or lacks the token's key and the provider could not be asked (RTS_AUTH_JWKS_URL).
  auth_unavailable: [503, 'Bearer tokens cannot be checked right now'],
  invalid_subject: [422, 'The token subject is not allowed'],
  forbidden: [403, 'You may not do this'],
  rate_limited: [429, 'Too many requests'],
  patient_erased: [410, 'The patient was erased'],
  erasure_incomplete: [503, 'The erasure could not complete; retry it'],
  audit_unavailable: [503, 'The audit trail cannot record the request'],
  anchor_outside_days: [422, 'An anchor names an audit chain outside the days verified'],
  too_many_anchors: [422, 'Too many anchors in one verification'],
  body_too_large: [413, 'The request body is too large'],
  request_timeout: [408, 'The request did not arrive in time'],
  request_header_too_large: [431, 'The request headers or URL are too large'],
  unsupported_media_type: [415, 'The content type is not supported'],
  method_not_allowed: [405, 'Method not allowed'],
  expectation_failed: [417, 'The Expect header asks for something the hub does not do'],
  service_unavailable: [503, 'The service is not available'],
  closed: [503, 'The embedded TeleMed instance was closed'],
  storage_unavailable: [503, 'The hub cannot store data right now'],
  internal_error: [500, 'Internal error'],
} as const satisfies Record<string, readonly [number, string]>;

export type ProblemCode = keyof typeof PROBLEM_TYPES;

/** The status of an RtsError whose code has none of its own here, by its kind. */
const KIND_STATUS: Record<ErrorKind, number> = { validation: 422, not_found: 404, conflict: 409, forbidden: 403, unavailable: 503 };

/** The status of an RtsError: its code's, else its kind's. */
const statusOfRtsError = (error: RtsError): number => (PROBLEM_TYPES as Record<string, readonly [number, string]>)[error.code]?.[0] ?? KIND_STATUS[error.kind];

/**
 * The code and status of an error thrown by the core or a store, whatever the transport: an RtsError's own, a
 * version conflict (concurrency_conflict 409), a PostgreSQL that cannot be reached (storage_unavailable 503), anything
 * else internal_error 500. What an AMQP handling's or the library's audit entry records; HTTP's toProblem answers the
 * same for these and maps the HTTP server's own errors besides.
 */
export const codeAndStatusOf = (error: unknown): Readonly<{ code: string; status: number }> => {
  if (error instanceof RtsError) return { code: error.code, status: statusOfRtsError(error) };
  if (error instanceof ExpectedVersionConflictError) return { code: 'concurrency_conflict', status: PROBLEM_TYPES.concurrency_conflict[0] };
  if (isPgUnavailable(error)) return { code: 'storage_unavailable', status: PROBLEM_TYPES.storage_unavailable[0] };
  return { code: 'internal_error', status: PROBLEM_TYPES.internal_error[0] };
};
