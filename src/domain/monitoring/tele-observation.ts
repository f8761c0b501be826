import { DateTime } from 'luxon';
import { hasOffsetDateTimeForm, isoUtc, OFFSET_DATE_TIME_MAX_LENGTH, offsetDateTimeMillis } from '../shared/iso-instant';
import { ValidationError } from '../shared/errors';
import { BIRTH_DATE_SLACK_MS, birthMillisOf, bornAfter, FUTURE_BIRTH_MESSAGE, parseCpr, type Cpr } from './cpr';
import { MEASURED_AHEAD_SECONDS } from './time-interval';

/**
 * The seed's TeleObservation: one home blood pressure reading of one patient.
 * Quantities carry their unit (Fowler's Quantity); the only unit accepted is mmHg.
 * The measurement time is kept at whole-second precision (the HL7 effectiveTime has seconds) in UTC.
 */
export const MMHG = 'mmHg' as const;
export type PressureUnit = typeof MMHG;

export type Quantity = Readonly<{ value: number; unit: PressureUnit }>;

export type TeleObservation = Readonly<{
  patientId: Cpr;
  systolic: Quantity;
  diastolic: Quantity;
  /** ISO-8601 UTC at second precision, e.g. 2017-05-10T14:50:14Z */
  measuredAt: string;
}>;

/** Plausible ranges for a home reading; outside them a meter or a typing error is far likelier than a patient. */
export const PLAUSIBLE = {
  systolic: { min: 50, max: 300 },
  diastolic: { min: 20, max: 200 },
} as const;

/** How far in the future a measurement time may lie, to forgive a meter's clock drift (queries "up to now" reach as far). */
export const CLOCK_SKEW_SECONDS = MEASURED_AHEAD_SECONDS;

export type TeleObservationInput = {
  patientId: unknown;
  systolic: unknown;
  diastolic: unknown;
  /** DateTime, or an ISO-8601 string with an offset. */
  measuredAt: unknown;
};

type Issue = { path: string; message: string };

const FIELDS: ReadonlySet<string> = new Set(['patientId', 'systolic', 'diastolic', 'measuredAt']);

/**
 * Fields an observation does not have, refused as HTTP refuses them: a library caller who copied the HTTP body got
 * its `observationId` dropped without a word, and a repeat stored the reading twice. A key is named only when it
 * looks like a field name (it is the caller's text).
 */
const unknownFieldIssues = (input: object): Issue[] =>
  Object.keys(input)
    .filter((key) => !FIELDS.has(key))
    .map((key) =>
      key === 'observationId'
        ? { path: key, message: 'is no field of the observation: give it as an option, record(observation, { observationId })' }
        : /^[A-Za-z_$][A-Za-z0-9_$]{0,40}$/.test(key)
          ? { path: key, message: 'is no field of the observation (patientId, systolic, diastolic, measuredAt)' }
          : { path: 'observation', message: 'has a field that is none of patientId, systolic, diastolic, measuredAt' },
    );

const quantity = (raw: unknown, path: 'systolic' | 'diastolic', issues: Issue[]): Quantity | null => {
  const value = typeof raw === 'object' && raw !== null && 'value' in raw ? (raw as { value: unknown }).value : raw;
  const unit = typeof raw === 'object' && raw !== null && 'unit' in raw ? (raw as { unit: unknown }).unit : MMHG;
  if (unit !== MMHG && unit !== 'mm(Hg)' && unit !== 'mm[Hg]') {
    issues.push({ path: `${path}.unit`, message: 'unit must be mmHg' });
    return null;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    issues.push({ path, message: 'must be a finite number' });
    return null;
  }
  const range = PLAUSIBLE[path];
  if (value < range.min || value > range.max) {
    issues.push({ path, message: `must be between ${range.min} and ${range.max} mmHg` });
    return null;
  }
  return { value, unit: MMHG };
};

/** Milliseconds since the epoch, whole seconds (luxon only for a DateTime or a text off the fast path). */
const instant = (raw: unknown, issues: Issue[]): number | null => {
  let millis = Number.NaN;
  if (DateTime.isDateTime(raw)) millis = raw.isValid ? raw.toMillis() : Number.NaN;
  // A text: HTTP's rule exactly (the form, then the clock and the calendar), so the library stores what HTTP does.
  else if (typeof raw === 'string') millis = offsetDateTimeMillis(raw);
  if (Number.isNaN(millis)) {
    // In the right form but not on the calendar or the clock (February 30, 25:00): say so, not "wrong form".
    const message = typeof raw !== 'string'
      ? 'must be an ISO-8601 date-time with an offset, e.g. 2017-05-10T14:50:14+02:00'
      : hasOffsetDateTimeForm(raw)
        ? 'is not a date and time that exists (check the day of the month, the hour, a leap second :60 and the offset)'
        : raw.length > OFFSET_DATE_TIME_MAX_LENGTH
          ? `must have at most ${OFFSET_DATE_TIME_MAX_LENGTH} characters`
          : 'must be an ISO-8601 date-time with an offset (Z or +hh:mm, with the colon), e.g. 2017-05-10T14:50:14+02:00';
    issues.push({ path: 'measuredAt', message });
    return null;
  }
  return Math.floor(millis / 1000) * 1000;
};

/**
 * Validate raw input into a TeleObservation, collecting every problem at once. `now` comes from the Clock port.
 * `notBeforeBirth: false` skips the birth-date check: for documents already stored, which are read as they were
 * stored (builds before the check accepted such times, and a projection must not stop on them).
 */
export const createTeleObservation = (input: TeleObservationInput, now: DateTime, { notBeforeBirth = true }: { notBeforeBirth?: boolean } = {}): TeleObservation => {
  // An invalid DateTime (DateTime.fromISO of a missing field) made every comparison with it false: no future check.
  if (typeof now?.toMillis !== 'function' || !Number.isFinite(now.toMillis())) {
    throw new ValidationError('invalid_observation', 'createTeleObservation needs now as a valid luxon DateTime (the time a reading must not lie after)', [{ path: 'now', message: 'not a valid DateTime' }]);
  }
  const issues: Issue[] = unknownFieldIssues(input);
  let patientId: Cpr | null = null;
  try {
    patientId = parseCpr(input.patientId);
  } catch (e) {
    if (e instanceof ValidationError) issues.push(...e.details);
    else throw e;
  }
  const systolic = quantity(input.systolic, 'systolic', issues);
  const diastolic = quantity(input.diastolic, 'diastolic', issues);
  const measuredAt = instant(input.measuredAt, issues);
  if (systolic && diastolic && systolic.value <= diastolic.value) {
    issues.push({ path: 'systolic', message: 'must be above the diastolic pressure' });
  }
  if (measuredAt !== null && measuredAt > now.toMillis() + CLOCK_SKEW_SECONDS * 1000) {
    issues.push({ path: 'measuredAt', message: 'lies in the future' });
  }
  // Not before the patient was born (the CPR number's date, a day's slack for the time zones: BIRTH_DATE_SLACK_MS).
  // This also keeps the HL7 effectiveTime a four-digit year: a reading in year 0 made a document no parser (nor a
  // correction) accepts.
  const born = patientId === null || !notBeforeBirth ? null : birthMillisOf(patientId);
  if (born !== null && bornAfter(patientId!, now.toMillis())) {
    // Said of the CPR number, not of every time tried (each was "before the patient's date of birth").
    issues.push({ path: 'patientId', message: FUTURE_BIRTH_MESSAGE });
  } else if (measuredAt !== null && born !== null && measuredAt < born - BIRTH_DATE_SLACK_MS) {
    issues.push({ path: 'measuredAt', message: "lies before the patient's date of birth" });
  }
  if (issues.length > 0 || !patientId || !systolic || !diastolic || measuredAt === null) {
    const code = issues.some((i) => i.path === 'patientId') ? 'invalid_patient_id' : issues.some((i) => /must be between|above the diastolic|in the future|date of birth/.test(i.message)) ? 'implausible_observation' : 'invalid_observation';
    throw new ValidationError(code, `the observation is not valid: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, issues);
  }
  const observation: TeleObservation = Object.freeze({ patientId, systolic: Object.freeze(systolic), diastolic: Object.freeze(diastolic), measuredAt: isoUtc(measuredAt) });
  // Not one read from a stored document (no birth-date check, its `now` the parser's end of time): a caller passing
  // that on as a new reading has it validated again.
  if (notBeforeBirth) VALIDATED.add(observation);
  return observation;
};

/** Observations createTeleObservation made (frozen, so still valid): ensureTeleObservation takes them as they are. */
const VALIDATED = new WeakSet<object>();

/**
 * A TeleObservation a library caller passes in: one createTeleObservation made is returned as it is; anything else
 * (built by hand, read from JSON, from JavaScript without types) is validated now, with the same errors.
 */
export const ensureTeleObservation = (value: unknown, now: () => DateTime): TeleObservation => {
  if (typeof value === 'object' && value !== null && VALIDATED.has(value)) {
    // Made against the caller's `now`, which may have been any time (a stale one, a test's): not in the future is
    // the hub's clock's rule, as over HTTP. A library caller stored a reading of 2099 that HTTP refused.
    const current = now();
    if (Date.parse((value as TeleObservation).measuredAt) <= current.toMillis() + CLOCK_SKEW_SECONDS * 1000) return value as TeleObservation;
    return createTeleObservation(value as TeleObservationInput, current); // refused as it would be made now
  }
  if (typeof value !== 'object' || value === null) throw new ValidationError('invalid_observation', 'the observation must be an object { patientId, systolic, diastolic, measuredAt }');
  return createTeleObservation(value as TeleObservationInput, now());
};

/** ISO-8601 UTC at whole seconds: 2017-05-10T14:50:14Z (XDS creationTime is a DTM of seconds; the fraction is dropped). */
export const toIsoSeconds = (dt: DateTime): string => isoUtc(Math.floor(dt.toMillis() / 1000) * 1000);
