import { DateTime } from 'luxon';
import { ValidationError } from '../shared/errors';
import { isCalendarDate } from '../shared/iso-instant';

/**
 * A Danish CPR number in the seed's form `ddmmyy-ssss`. The first digit of the serial tells the century
 * (the rules of the CPR office), so the date can be checked as a real calendar date, 29 February included.
 * The modulus-11 check is not applied: it has not been guaranteed for numbers issued since 2007.
 *
 * A CPR number is personal data (it contains the birth date): never put it in a message of an error, a log
 * line, a stream name or a metric label. Errors below say what is wrong without echoing the value.
 */
export type Cpr = string & { readonly __brand: 'Cpr' };

const CPR_FORM = /^(\d{2})(\d{2})(\d{2})-(\d)(\d{3})$/;

const centuryOf = (yy: number, serialFirstDigit: number): number | null => {
  if (serialFirstDigit <= 3) return 1900;
  if (serialFirstDigit === 4 || serialFirstDigit === 9) return yy <= 36 ? 2000 : 1900;
  if (serialFirstDigit >= 5 && serialFirstDigit <= 8) return yy <= 57 ? 2000 : 1800;
  return null;
};

/** Year, month and day of a CPR number's birth date, or null when the digits do not form a real date. */
const birthDateParts = (cpr: string): { year: number; month: number; day: number } | null => {
  const m = CPR_FORM.exec(cpr);
  if (!m) return null;
  const [, dd, mm, yy, s1] = m;
  const century = centuryOf(Number(yy), Number(s1));
  if (century === null) return null;
  const parts = { year: century + Number(yy), month: Number(mm), day: Number(dd) };
  return isCalendarDate(parts.year, parts.month, parts.day) ? parts : null;
};

/** Birth date of a CPR number, or null when the digits do not form a real date. */
export const birthDateOf = (cpr: string): DateTime | null => {
  const parts = birthDateParts(cpr);
  return parts === null ? null : DateTime.fromObject(parts, { zone: 'utc' });
};

/** Midnight UTC of a CPR number's birth date in epoch milliseconds, or null (no luxon: on the upload path). */
export const birthMillisOf = (cpr: string): number | null => {
  const parts = birthDateParts(cpr);
  return parts === null ? null : Date.UTC(parts.year, parts.month - 1, parts.day);
};

export const parseCpr = (value: unknown, path = 'patientId'): Cpr => {
  if (typeof value !== 'string' || !CPR_FORM.test(value)) {
    throw new ValidationError('invalid_patient_id', 'patient identifier must be a CPR number of the form ddmmyy-ssss', [
      { path, message: 'expected ddmmyy-ssss (six digits, a hyphen, four digits)' },
    ]);
  }
  if (birthDateParts(value) === null) {
    throw new ValidationError('invalid_patient_id', 'patient identifier does not contain a real birth date', [
      { path, message: 'ddmmyy is not a calendar date for the century its serial implies' },
    ]);
  }
  return value as Cpr;
};

export const isCpr = (value: unknown): value is Cpr => typeof value === 'string' && CPR_FORM.test(value) && birthDateOf(value) !== null;

/**
 * What may be a CPR number written inside other text, in the spellings people use: ddmmyy and ssss, with or without
 * a hyphen, a space, a dot, an underscore, a colon or a slash between the groups (251248-1234, 2512481234,
 * 251248.1234, 25.12.48-1234, 251248_1234, 251248/1234), or with the year in four digits and separators between the
 * date's parts (25-12-1948-1234), day 01-31 and month 01-12. Broader than parseCpr on purpose (no
 * century rule): it guards places where a CPR number must never go (a token's sub, ids that are logged, stored in
 * clear or passed on to other systems), and refusing there costs little.
 *
 * isCprLike: the run is not next to a letter or a digit, and a four-digit year needs its separators. A UUID (the
 * usual subject of an identity provider, the usual id of a message) has hex letters next to its digit runs and no
 * two-digit groups, so a refusal there would refuse good ids by chance; "x251248-1234" is let through.
 * containsCprDigits: the run is not next to a digit only, separators may be doubled (251248--1234), the four-digit
 * year needs none (19481225-1234) and may come first (1948-12-25-1234); and, whatever is around it, any ten digits
 * in a row, or with one separator anywhere among them, whose first six are a real date ddmmyy (cprDigitWindow:
 * 20261201251248-1234, 0251248-1234, 12512481234, 251248-12345, 25124-81234). For ids that are replaced when they
 * match (a caller's X-Request-Id), where a chance match costs nothing (a date-stamped id such as 2026.11.30-0001 is
 * one), and ids refused where a UUID is not the expected id (a system id, a library call's correlationId). About
 * one random UUID in 500 holds such digits by chance: where UUIDs are the usual id and a refusal would cost a
 * message or an upload (an AMQP correlationId, an observationId), isCprLike or the idempotency key's own check
 * guards instead.
 */
const S = '[-. _:/]';
const SS = '[-. _:/+]{0,3}';
/** Each spelling on its own (one regex's alternation would stop at the first that matches, date or not). */
const forms = (before: string, after: string, shapes: readonly string[]): RegExp[] => shapes.map((shape) => new RegExp(`${before}${shape}${after}`, 'g'));
const CPR_IN_TEXT = forms('(?<![0-9A-Za-z])', '(?![0-9A-Za-z])', [
  `(?<d>\\d{2})${S}?(?<m>\\d{2})${S}?\\d{2}${S}?\\d{4}`, // 251248-1234, 2512481234, 25.12.48-1234
  `(?<d>\\d{2})${S}(?<m>\\d{2})${S}\\d{4}${S}?\\d{4}`, // 25-12-1948-1234
  // Not yyyy-mm-dd-ssss: that is a date-stamped id (2026-11-30-0001) far more often than a CPR number.
]);
const CPR_DIGITS_IN_TEXT = forms('(?<!\\d)', '(?!\\d)', [
  `(?<d>\\d{2})${SS}(?<m>\\d{2})${SS}\\d{2}${SS}\\d{4}`,
  `(?<d>\\d{2})${SS}(?<m>\\d{2})${SS}\\d{4}${SS}\\d{4}`,
  `\\d{4}${SS}(?<m>\\d{2})${SS}(?<d>\\d{2})${SS}\\d{4}`,
]);
const dateShaped = (m: RegExpMatchArray): boolean => {
  const day = Number(m.groups?.['d']);
  const month = Number(m.groups?.['m']);
  return day >= 1 && day <= 31 && month >= 1 && month <= 12;
};
const anyDateShaped = (patterns: readonly RegExp[], value: string): boolean => patterns.some((p) => [...value.matchAll(p)].some(dateShaped));
export const isCprLike = (value: string): boolean => anyDateShaped(CPR_IN_TEXT, value);
const WINDOW_SEPARATOR = /^[-. _:/]$/;
const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
/** ddmmyy a real date in 19yy or 20yy (29 February in a year divisible by 4: 2000 is a leap year). */
const isDateDigits = (six: string): boolean => {
  const [day, month, yy] = [Number(six.slice(0, 2)), Number(six.slice(2, 4)), Number(six.slice(4, 6))];
  return isCalendarDate(2000 + yy, month, day) || isCalendarDate(1900 + yy, month, day);
};
/**
 * Whether some ten digits of `value`, in a row or with one separator anywhere among them, start with a real date:
 * a CPR number glued into a longer run of digits (a timestamp before it, a digit after it), which the patterns
 * above, bounded by non-digits, let through.
 */
const cprDigitWindow = (value: string): boolean => {
  for (let start = 0; start < value.length; start++) {
    if (!isDigit(value[start])) continue;
    let digits = '';
    let separated = false;
    for (let i = start; i < value.length && digits.length < 10; i++) {
      const c = value[i]!;
      if (isDigit(c)) digits += c;
      else if (!separated && WINDOW_SEPARATOR.test(c)) separated = true;
      else break;
    }
    if (digits.length === 10 && isDateDigits(digits.slice(0, 6))) return true;
  }
  return false;
};
export const containsCprDigits = (value: string): boolean => anyDateShaped(CPR_DIGITS_IN_TEXT, value) || cprDigitWindow(value);
