import { z } from 'zod';
import { hasOffsetDateTimeForm, OFFSET_DATE_TIME_FORM, OFFSET_DATE_TIME_MAX_LENGTH, OFFSET_DATE_TIME_PATTERN, offsetDateTimeMillis } from '../../domain/shared/iso-instant';

/**
 * What `format: date-time` beside the pattern does not say, for a contract's reader: said in every such field's
 * description (a field's own description gets it appended: openapi.ts, asyncapi.ts).
 */
export const OFFSET_DATE_TIME_FORMAT_NOTE =
  "RFC 3339 (format date-time) with two differences, which the pattern says: the seconds may be left out (2026-12-05T09:30+08:00, as Java's OffsetDateTime.toString() writes a whole minute), and a leap second (:60) is refused (format date-time alone takes 23:59:60Z)";

export const OFFSET_DATE_TIME_MESSAGE = 'an ISO-8601 date-time with an offset, e.g. 2017-05-10T14:50:14+02:00';
const NOT_ON_THE_CALENDAR = 'is not a date and time that exists: hours at most 23, minutes and seconds at most 59 (no leap second), offsets at most 23:59 (RFC 3339), a day of the month it names';
const PLUS_READ_AS_SPACE = "has a space where the offset's + goes: in a query string a + must be percent-encoded, as %2B";

/**
 * A bound with a space where its offset's sign goes: a `+` sent unencoded in a query string, which reads as a space
 * (?from=2026-11-30T10:00:00+05:45).
 */
const plusReadAsSpace = (input: unknown): boolean => typeof input === 'string' && input.includes(' ') && hasOffsetDateTimeForm(input.replace(' ', '+'));

/**
 * A date-time that a caller or a small system sends the hub, by the domain's rule (OFFSET_DATE_TIME_FORM, on the
 * clock and the calendar): the texts a reading's measuredAt takes, everywhere else too. The seconds are optional:
 * Java's `OffsetDateTime.toString()` writes `2026-12-04T10:00Z` when they are zero, and zod 4.5 began refusing that
 * in `z.iso.datetime()` (RFC 3339 asks for seconds), which would have dead-lettered one message a minute of such a
 * system. One message per value: each check stops the ones after it; a space where the offset's sign goes is told
 * as the query string's unencoded `+` it most likely is.
 */
export const offsetDateTime = z
  .string()
  .max(OFFSET_DATE_TIME_MAX_LENGTH, { abort: true })
  .regex(OFFSET_DATE_TIME_FORM, {
    error: (issue) => (plusReadAsSpace(issue.input) ? PLUS_READ_AS_SPACE : OFFSET_DATE_TIME_MESSAGE),
    abort: true,
  })
  .refine((text) => !Number.isNaN(offsetDateTimeMillis(text)), NOT_ON_THE_CALENDAR)
  // `format: date-time` in the OpenAPI and AsyncAPI documents, which code generators map to a date-time type; the
  // pattern beside it says what is accepted, and the description says so to a validator's user: a format checker
  // (jsonschema's FormatChecker, ajv-formats) refuses 2026-12-05T09:30+08:00, which the hub takes. The pattern is the
  // form with the clock in range (OFFSET_DATE_TIME_PATTERN), not the form alone: a client then refuses :60 as the hub does.
  .meta({ description: `ISO-8601 date-time with offset. ${OFFSET_DATE_TIME_FORMAT_NOTE}`, format: 'date-time', pattern: OFFSET_DATE_TIME_PATTERN });
