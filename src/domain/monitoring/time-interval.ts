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

export const timeInterval = (from: DateTime, to: DateTime): TimeInterval => {
  if (!DateTime.isDateTime(from) || !DateTime.isDateTime(to) || !from.isValid || !to.isValid) {
    throw new ValidationError('invalid_interval', 'interval bounds must be valid ISO-8601 date-times with an offset');
  }
  const f = from.toUTC().startOf('second');
  const t = to.toUTC().startOf('second');
  if (t <= f) {
    throw new ValidationError('invalid_interval', 'interval end must lie after its start', [{ path: 'to', message: 'must be after from' }]);
  }
  if (t.diff(f, 'days').days > MAX_INTERVAL_DAYS) {
    throw new ValidationError('interval_too_wide', `an interval may span at most ${MAX_INTERVAL_DAYS} days`, [
      { path: 'to', message: `at most ${MAX_INTERVAL_DAYS} days after from` },
    ]);
  }
  return { from: f, to: t };
};

/** The last `days` days up to `now`: [now - days, now + 1s), so a reading taken this very second is included. */
export const lastDays = (days: number, now: DateTime): TimeInterval => {
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0) {
    throw new ValidationError('invalid_interval', 'the number of days must be a positive number', [{ path: 'days', message: 'must be a positive number' }]);
  }
  const end = now.toUTC().startOf('second').plus({ seconds: 1 });
  return timeInterval(end.minus({ days }), end);
};

/**
 * An interval a library caller passes in, checked as timeInterval checks its bounds (valid, from before to, at most
 * MAX_INTERVAL_DAYS): one built by hand is held to the same rules as one from timeInterval or lastDays.
 */
export const checkedInterval = (interval: unknown): TimeInterval => {
  const i = (typeof interval === 'object' && interval !== null ? interval : {}) as Partial<TimeInterval>;
  return timeInterval(i.from as DateTime, i.to as DateTime);
};

export const contains = (interval: TimeInterval, instant: DateTime): boolean => instant >= interval.from && instant < interval.to;
