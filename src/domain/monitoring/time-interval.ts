import { DateTime } from 'luxon';
import { ValidationError } from '../shared/errors';

/**
 * The interval of a query, half-open: [from, to). A reading taken exactly at `to` belongs to the next interval,
 * so consecutive weeks never count a reading twice. Bounds are compared as instants at whole-second precision
 * (the precision of the HL7 effectiveTime); fractions of a second in a bound are truncated.
 */
export type TimeInterval = Readonly<{ from: DateTime; to: DateTime }>;

/** The widest interval one query may ask for; keeps one request's work bounded. */
export const MAX_INTERVAL_DAYS = 366;

/** The first and last whole seconds an RFC 3339 date-time can name in UTC (0000-01-01T00:00:00Z, 9999-12-31T23:59:59Z). */
const FIRST_UTC_SECOND = -62_167_219_200;
const LAST_UTC_SECOND = 253_402_300_799;
/** The detail of a bound refused for lying outside them (an adapter telling it from the other refusals says it in its own words). */
export const OUTSIDE_RFC3339_YEARS = 'must lie in the years 0000-9999 in UTC';

/**
 * The rules of an interval, on whole seconds since the epoch (no luxon arithmetic: its diff cost ~40 µs, a quarter
 * of a query, when getObservationsFor checked every interval it was given).
 */
const checkBounds = (from: unknown, to: unknown): void => {
  if (!DateTime.isDateTime(from) || !DateTime.isDateTime(to)) {
    // Said as it is: an embedder who passed ISO texts was told they "must be valid ISO-8601 date-times", which they were.
    throw new ValidationError('invalid_interval', 'interval bounds must be luxon DateTimes (DateTime.fromISO(text) for an ISO-8601 text)');
  }
  if (!from.isValid || !to.isValid) {
    throw new ValidationError('invalid_interval', 'interval bounds must be valid date-times (an invalid luxon DateTime was given)');
  }
  const f = Math.floor(from.toMillis() / 1000);
  const t = Math.floor(to.toMillis() / 1000);
  // The answer names its bounds in UTC, as RFC 3339 writes a time: with a four-digit year. A bound whose UTC instant
  // lies outside 0000-9999 (9999-12-31T23:59:59-23:59 is in the year 10000 UTC) was answered 200 with a `to` of
  // "+010000-01-01T23:58:59Z", which no date-time schema (the answer's own in /openapi.json) or RFC 3339 reader takes.
  for (const [path, at] of [['from', f], ['to', t]] as const) {
    if (at < FIRST_UTC_SECOND || at > LAST_UTC_SECOND) {
      throw new ValidationError('invalid_interval', `interval ${path} ${OUTSIDE_RFC3339_YEARS}`, [{ path, message: OUTSIDE_RFC3339_YEARS }]);
    }
  }
  if (t <= f) {
    throw new ValidationError('invalid_interval', 'interval end must lie after its start', [{ path: 'to', message: 'must be after from' }]);
  }
  if (t - f > MAX_INTERVAL_DAYS * 86_400) {
    throw new ValidationError('interval_too_wide', `an interval may span at most ${MAX_INTERVAL_DAYS} days`, [
      { path: 'to', message: `at most ${MAX_INTERVAL_DAYS} days after from` },
    ]);
  }
};

export const timeInterval = (from: DateTime, to: DateTime): TimeInterval => {
  checkBounds(from, to);
  return { from: from.toUTC().startOf('second'), to: to.toUTC().startOf('second') };
};

/**
 * How far ahead of the hub's clock a reading's time may lie (a meter's clock drift): an upload up to this far ahead
 * is stored, so an interval "up to now" must reach that far to list it.
 */
export const MEASURED_AHEAD_SECONDS = 300;

/**
 * The end of an interval "up to now": this second included, and the MEASURED_AHEAD_SECONDS an upload may lie ahead
 * (it ended at now + 1 s, and a reading just stored 4 minutes ahead was missing from the answer).
 */
export const endOfNow = (now: DateTime): DateTime => now.toUTC().startOf('second').plus({ seconds: 1 + MEASURED_AHEAD_SECONDS });

/**
 * The last `days` days up to `now`: [now + 1 s - days, endOfNow(now)), so a reading taken this very second, and one
 * stored up to 5 minutes ahead, is included. `days` may be at most MAX_INTERVAL_DAYS (366; more is refused
 * interval_too_wide); at 366 the interval, 1 s + 5 minutes longer than that, starts MAX_INTERVAL_DAYS before its end.
 */
export const lastDays = (days: number, now: DateTime): TimeInterval => {
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0) {
    throw new ValidationError('invalid_interval', 'the number of days must be a positive number', [{ path: 'days', message: 'must be a positive number' }]);
  }
  const end = endOfNow(now);
  const start = now.toUTC().startOf('second').plus({ seconds: 1 }).minus({ days });
  const earliest = end.minus({ days: MAX_INTERVAL_DAYS });
  return timeInterval(start < earliest && days <= MAX_INTERVAL_DAYS ? earliest : start, end);
};

/**
 * An interval a library caller passes in, checked as timeInterval checks its bounds (valid, from before to, at most
 * MAX_INTERVAL_DAYS): one built by hand is held to the same rules as one from timeInterval or lastDays.
 */
export const checkedInterval = (interval: unknown): TimeInterval => {
  const i = (typeof interval === 'object' && interval !== null ? interval : {}) as Partial<TimeInterval>;
  checkBounds(i.from, i.to);
  return { from: i.from!, to: i.to! }; // queries compare whole seconds of these, as timeInterval's would be
};

export const contains = (interval: TimeInterval, instant: DateTime): boolean => instant >= interval.from && instant < interval.to;
