import { DateTime } from 'luxon';

/**
 * ISO-8601 instants on the hot path of every upload, without luxon where the text has the form the hub itself
 * writes (`toIsoSeconds`: 2017-05-10T14:50:14Z) or a close variant (fraction, numeric offset): luxon's parse and
 * format took ~20 µs per document, several per cent of the hub's CPU per upload. Any other text goes to luxon,
 * so the result is luxon's in every case (property-tested against it).
 */
const EXTENDED_INSTANT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

/** Milliseconds since the epoch of an ISO-8601 date-time; NaN when luxon would not read it. */
export const isoInstantMillis = (text: string): number => {
  const plain = plainUtcMillis(text);
  if (!Number.isNaN(plain)) return plain;
  const m = EXTENDED_INSTANT.exec(text);
  if (m !== null) {
    const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
    const offsetHours = m[9] === undefined ? 0 : Number(m[9]);
    const offsetMinutes = m[10] === undefined ? 0 : Number(m[10]);
    // Years from 1000 (Date.UTC reads 0-99 as 19xx), real calendar days, no leap second or 24:00, offsets below
    // 24 h: the same instants luxon accepts. Outside that luxon decides, and refuses what it refuses.
    if (
      year >= 1000 &&
      month >= 1 &&
      month <= 12 &&
      day >= 1 &&
      day <= daysInMonth(year, month) &&
      hour <= 23 &&
      minute <= 59 &&
      second <= 59 &&
      offsetHours <= 23 &&
      offsetMinutes <= 59
    ) {
      const millis = m[7] === undefined ? 0 : Number(m[7].slice(0, 3).padEnd(3, '0'));
      const offset = (m[8] === '-' ? -1 : 1) * (offsetHours * 60 + offsetMinutes);
      return Date.UTC(year, month - 1, day, hour, minute, second, millis) - offset * 60_000;
    }
  }
  // An embedder's luxon may be set to throw on an invalid DateTime (Settings.throwOnInvalid, which luxon's TypeScript
  // guide recommends): its InvalidDateTimeError, no RtsError and quoting the text, then escaped the library's
  // validation of a measuredAt such as 2026-02-30T10:00:00+01:00, or of an HL7 effectiveTime. NaN, as otherwise.
  try {
    const dt = DateTime.fromISO(text, { setZone: true });
    return dt.isValid ? dt.toMillis() : Number.NaN;
  } catch {
    return Number.NaN;
  }
};

const digits2 = (text: string, at: number): number => {
  const hi = text.charCodeAt(at) - 48;
  const lo = text.charCodeAt(at + 1) - 48;
  return hi >= 0 && hi <= 9 && lo >= 0 && lo <= 9 ? hi * 10 + lo : Number.NaN;
};

/**
 * Exactly the form the hub writes, 2017-05-10T14:50:14Z, read without the regex (the registry reads one per
 * upload); NaN for anything else, which then takes the general path (so also for years before 1000).
 */
const plainUtcMillis = (text: string): number => {
  if (
    text.length !== 20 ||
    text.charCodeAt(4) !== 45 || // -
    text.charCodeAt(7) !== 45 ||
    text.charCodeAt(10) !== 84 || // T
    text.charCodeAt(13) !== 58 || // :
    text.charCodeAt(16) !== 58 ||
    text.charCodeAt(19) !== 90 // Z
  ) {
    return Number.NaN;
  }
  const year = digits2(text, 0) * 100 + digits2(text, 2);
  const month = digits2(text, 5);
  const day = digits2(text, 8);
  const hour = digits2(text, 11);
  const minute = digits2(text, 14);
  const second = digits2(text, 17);
  // Every comparison with NaN is false: a non-digit anywhere fails here too.
  if (!(year >= 1000 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month) && hour <= 23 && minute <= 59 && second <= 59)) {
    return Number.NaN;
  }
  return Date.UTC(year, month - 1, day, hour, minute, second);
};

/**
 * The date-times the hub takes from a caller, by every way in (a reading's `measuredAt` over HTTP and through the
 * library, a query's bounds): ISO-8601's extended form with an offset, `Z` or `+hh:mm`/`-hh:mm` (RFC 3339's, the
 * seconds optional), at most 40 characters. One rule for HTTP and the library: the library also read
 * `+0545`, `+9999`, week dates and `2026-11-30T10Z` (luxon takes them all), and stored a reading days away.
 */
export const OFFSET_DATE_TIME_FORM = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;
export const OFFSET_DATE_TIME_MAX_LENGTH = 40;

/**
 * OFFSET_DATE_TIME_FORM with the clock fields the hub takes, as the API documents' `pattern`: months 01-12, days
 * 01-31, hours 00-23, minutes and seconds 00-59, offsets at most 23:59. The hub refuses a leap second (:60: luxon,
 * Java's OffsetDateTime and Python's datetime cannot hold one either), which `format: date-time` alone takes
 * (RFC 3339 5.7, ajv-formats: 23:59:60Z), so the pattern says it. What it leaves to `format: date-time` is a day the
 * month does not have (30 February). ASCII digits: Python's `\d` takes any script's.
 */
export const OFFSET_DATE_TIME_PATTERN =
  '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]+)?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$';

/** The minute of a text in OFFSET_DATE_TIME_FORM that leaves the seconds out, and its offset. */
const WITHOUT_SECONDS = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})$/;

/**
 * A caller's date-time as an answer gives it back: with `:00` where it left the seconds out (2026-12-05T09:30+08:00
 * -> 2026-12-05T09:30:00+08:00), otherwise as sent. The hub takes a whole minute without seconds (as Java's
 * OffsetDateTime.toString() writes it), and answers with `format: date-time` (RFC 3339: seconds required), which a
 * generated client checks: a key's validFrom echoed as sent broke GET /systems/{id}/keys for such a client. The same
 * instant, the same offset.
 */
export const withSeconds = (text: string): string => text.replace(WITHOUT_SECONDS, '$1:00$2');

/** Whether a text has OFFSET_DATE_TIME_FORM and at most OFFSET_DATE_TIME_MAX_LENGTH characters, whatever its numbers. */
export const hasOffsetDateTimeForm = (text: string): boolean => text.length <= OFFSET_DATE_TIME_MAX_LENGTH && OFFSET_DATE_TIME_FORM.test(text);

/** The hour, minute and offset fields of a text in OFFSET_DATE_TIME_FORM (seconds are checked by the calendar parse). */
const CLOCK_FIELDS = /T(\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))$/;

/**
 * Whether the hour, minute and offset of an ISO-8601 text are on the clock (hour <= 23, offset <= 23:59, as RFC
 * 3339 has them). luxon reads 24:00 as the next day and +99:99 as an offset of four days, which moved a reading or
 * a query's bound silently. True for a text of another form (offsetDateTimeMillis refuses those by their form).
 */
export const clockFieldsInRange = (text: string): boolean => {
  const m = CLOCK_FIELDS.exec(text);
  if (m === null) return true;
  const [hour, minute, offsetHours, offsetMinutes] = [m[1], m[2], m[3] ?? '0', m[4] ?? '0'].map(Number) as [number, number, number, number];
  return hour <= 23 && minute <= 59 && offsetHours <= 23 && offsetMinutes <= 59;
};

/**
 * Milliseconds since the epoch of a caller's date-time: one in OFFSET_DATE_TIME_FORM whose day exists and whose
 * clock fields are in range; NaN for any other text. The rule of HTTP's schemas and of createTeleObservation alike.
 */
export const offsetDateTimeMillis = (text: string): number =>
  hasOffsetDateTimeForm(text) && clockFieldsInRange(text) ? isoInstantMillis(text) : Number.NaN;

/**
 * 2017-05-10T14:50:14Z (milliseconds only when not zero: 2017-05-10T14:50:14.250Z), as luxon's
 * `toUTC().toISO({ suppressMilliseconds: true })` writes it.
 */
export const isoUtc = (millis: number): string => {
  const date = new Date(millis);
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) return DateTime.fromMillis(millis, { zone: 'utc' }).toISO({ suppressMilliseconds: true, includeOffset: true })!;
  const text = date.toISOString();
  return text.endsWith('.000Z') ? `${text.slice(0, -5)}Z` : text;
};

/** The UTC calendar date year-month-day exists (29 February in leap years only). Years from 1000. */
export const isCalendarDate = (year: number, month: number, day: number): boolean =>
  Number.isInteger(year) && year >= 1000 && year <= 9999 && month >= 1 && month <= 12 && day >= 1 && day <= daysInMonth(year, month);

/** yyyyMMddHHmmss in UTC: the HL7 TS form of the seed's effectiveTime (seconds, fraction dropped). */
export const hl7TimestampUtc = (millis: number): string => {
  const t = new Date(millis);
  return (
    pad(t.getUTCFullYear(), 4) +
    pad(t.getUTCMonth() + 1, 2) +
    pad(t.getUTCDate(), 2) +
    pad(t.getUTCHours(), 2) +
    pad(t.getUTCMinutes(), 2) +
    pad(t.getUTCSeconds(), 2)
  );
};

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;
/** Days of a month (1-12) in the proleptic Gregorian calendar, as Date and luxon count them. */
const daysInMonth = (year: number, month: number): number =>
  month === 2 && ((year % 4 === 0 && year % 100 !== 0) || year % 400 === 0) ? 29 : (MONTH_DAYS[month - 1] ?? Number.NaN);
