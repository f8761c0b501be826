import { holdsCprNumber } from '../monitoring/cpr-like';
import { CONSULTATION_ID_PATTERN } from './consultation';

/**
 * Consultation ids recorded before every entry took only a UUID (commit 72bf310, 2026-12-01): the builds before it
 * took any 8-64 characters of A-Z a-z 0-9 _ - (`cons-0001`, `case-2026-0001`). Such consultations are in stores
 * those builds wrote, some of them still open (an offer running out, a report to acknowledge).
 *
 * A new consultation still needs a UUID (the decider, HTTP, the uplink's consultation.requested). An id of an
 * existing one may be a legacy id: it can be read and acted on over HTTP and the uplink (an unknown one is
 * consultation_not_found, as any other), and the downlink delivers its messages. Not when it holds a CPR number
 * (holdsCprNumber, cpr-like.ts: one bounded by non-digits, with a real date, in any spelling; the old builds
 * took `251248-1234` as an id): such an id would go into log lines, the audit trail and AMQP messages outside their
 * encryption, so it stays refused as it was, and the start-up warning counts it (legacyConsultationIds). Digits
 * glued into a longer run (cons-202612021030) are no refusal: refusing costs a consultation its id for good.
 * With the characters allowed (no space, dot, colon, slash) and that check, a legacy id is as safe to log and to
 * pass on as a UUID: it holds no number that is a CPR number in a spelling the detector knows.
 */
export const LEGACY_CONSULTATION_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

/** An id of the old builds' shape that is no UUID and holds no CPR number. */
export const isLegacyConsultationId = (id: string): boolean => LEGACY_CONSULTATION_ID_PATTERN.test(id) && !CONSULTATION_ID_PATTERN.test(id) && !holdsCprNumber(id);

/** The id of an existing consultation: a UUID, or a legacy id (above). */
export const isExistingConsultationId = (id: string): boolean => CONSULTATION_ID_PATTERN.test(id) || isLegacyConsultationId(id);

/** What an existing consultation's id may be, said where one is refused (and in the API documents). */
export const LEGACY_CONSULTATION_ID_RULE = 'a UUID, or for a consultation recorded by a build before 2026-12-01 an id of 8-64 of A-Z a-z 0-9 _ - holding no CPR number';
