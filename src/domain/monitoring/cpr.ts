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

/**
 * The slack of the birth-date rules, one day. A CPR number's birth date is a calendar date where the patient was
 * born (Danish time, mostly), while the hub counts in UTC and takes the date as midnight UTC: a child born just after
 * midnight in Copenhagen is born the evening before in UTC, and "today" in Copenhagen is tomorrow in UTC for an hour
 * or two each night. So a birth date up to a day after the hub's now is not yet "in the future", and a reading up to
 * a day before midnight UTC of the birth date is not yet "before the birth".
 */
export const BIRTH_DATE_SLACK_MS = 86_400_000;

/** Whether a CPR number's birth date lies more than BIRTH_DATE_SLACK_MS after `nowMillis`: nobody can have readings yet. */
export const bornAfter = (cpr: Cpr, nowMillis: number): boolean => {
  const born = birthMillisOf(cpr);
  return born !== null && born > nowMillis + BIRTH_DATE_SLACK_MS;
};

export const FUTURE_BIRTH_MESSAGE = 'the birth date in this CPR number lies in the future';

/**
 * parseCpr, and a birth date that is not in the future (with BIRTH_DATE_SLACK_MS): the identifier of someone who can
 * have readings. An upload refuses such a number as invalid_patient_id; a query does the same, rather than "no
 * readings" (404 unknown_patient), which a number that can never be valid would get for ever.
 */
export const parseCprBornBy = (value: unknown, nowMillis: number, path = 'patientId'): Cpr => {
  const cpr = parseCpr(value, path);
  if (bornAfter(cpr, nowMillis)) {
    throw new ValidationError('invalid_patient_id', 'patient identifier has a birth date in the future', [{ path, message: FUTURE_BIRTH_MESSAGE }]);
  }
  return cpr;
};

export const isCpr = (value: unknown): value is Cpr => typeof value === 'string' && CPR_FORM.test(value) && birthDateOf(value) !== null;
