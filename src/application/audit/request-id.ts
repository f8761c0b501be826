import { mayHoldCprDigits } from '../../domain/monitoring/cpr-like';

/** A caller's X-Request-Id the hub keeps as the request's id: 1-64 characters of A-Z a-z 0-9 . _ : - */
export const REQUEST_ID_FORM = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Whether `given` is a request id the hub keeps or issues: a plain token (REQUEST_ID_FORM) that may hold no CPR
 * number, in any spelling, also glued into a longer run of digits (mayHoldCprDigits, cpr-like.ts; the hub's own UUIDs
 * pass whatever their digits). Every other X-Request-Id is replaced by a new UUID (server.ts), so no request id in the
 * log or the audit trail has another shape, and an audit search by request id (POST /audit/search) takes only this one.
 */
export const isKeptRequestId = (given: string): boolean => REQUEST_ID_FORM.test(given) && !mayHoldCprDigits(given);
