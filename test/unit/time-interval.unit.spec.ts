import { DateTime } from 'luxon';
import { checkedInterval, contains, endOfNow, lastDays, MAX_INTERVAL_DAYS, timeInterval } from '../../src/domain/monitoring/time-interval';
import { ValidationError } from '../../src/domain/shared/errors';

const at = (iso: string): DateTime => DateTime.fromISO(iso, { setZone: true });

const rejectionOf = (from: DateTime, to: DateTime): ValidationError => {
  try {
    timeInterval(from, to);
  } catch (e) {
    if (e instanceof ValidationError) return e;
    throw e;
  }
  throw new Error('expected the interval to be rejected');
};

describe('TimeInterval: half-open [from, to) at whole seconds', () => {
  const week = timeInterval(at('2024-03-04T00:00:00Z'), at('2024-03-11T00:00:00Z'));

  it('includes a reading exactly at from', () => {
    expect(contains(week, at('2024-03-04T00:00:00Z'))).toBe(true);
  });

  it('excludes a reading exactly at to: it belongs to the next interval', () => {
    expect(contains(week, at('2024-03-11T00:00:00Z'))).toBe(false);
    const next = timeInterval(at('2024-03-11T00:00:00Z'), at('2024-03-18T00:00:00Z'));
    expect(contains(next, at('2024-03-11T00:00:00Z'))).toBe(true);
  });

  it('includes the last second before to and excludes the one before from', () => {
    expect(contains(week, at('2024-03-10T23:59:59Z'))).toBe(true);
    expect(contains(week, at('2024-03-03T23:59:59Z'))).toBe(false);
  });

  it('compares instants, whatever the offset of a bound', () => {
    const interval = timeInterval(at('2024-03-04T01:00:00+01:00'), at('2024-03-11T01:00:00+01:00'));
    expect(interval.from.toISO()).toBe('2024-03-04T00:00:00.000Z');
    expect(interval.to.toISO()).toBe('2024-03-11T00:00:00.000Z');
    expect(contains(interval, at('2024-03-04T00:00:00Z'))).toBe(true);
    expect(contains(interval, at('2024-03-11T01:00:00+01:00'))).toBe(false);
  });

  it('truncates fractions of a second in both bounds', () => {
    const interval = timeInterval(at('2024-03-04T00:00:00.900Z'), at('2024-03-04T00:00:10.999Z'));
    expect(interval.from.toISO()).toBe('2024-03-04T00:00:00.000Z');
    expect(interval.to.toISO()).toBe('2024-03-04T00:00:10.000Z');
    expect(contains(interval, at('2024-03-04T00:00:00Z'))).toBe(true);
    expect(contains(interval, at('2024-03-04T00:00:10Z'))).toBe(false);
  });

  it.each([
    ['to equal to from', '2024-03-04T00:00:00Z', '2024-03-04T00:00:00Z'],
    ['to before from', '2024-03-04T00:00:01Z', '2024-03-04T00:00:00Z'],
    ['to within the same second as from', '2024-03-04T00:00:00.100Z', '2024-03-04T00:00:00.900Z'],
  ])('rejects %s', (_why, from, to) => {
    const e = rejectionOf(at(from), at(to));
    expect(e.code).toBe('invalid_interval');
  });

  it('says that the end is the bound at fault when it does not lie after the start', () => {
    expect(rejectionOf(at('2024-03-04T00:00:01Z'), at('2024-03-04T00:00:00Z')).details).toEqual([{ path: 'to', message: 'must be after from' }]);
  });

  it('checkedInterval holds an interval built by hand to the same rules: bounds that are no DateTime are refused', () => {
    const from = at('2024-03-04T00:00:00Z');
    const to = at('2024-03-11T00:00:00Z');
    expect(checkedInterval({ from, to })).toEqual({ from, to });
    for (const interval of [{}, null, { from }, { to }, { from: '2024-03-04T00:00:00Z', to }, { from, to: '2024-03-11T00:00:00Z' }]) {
      expect(() => checkedInterval(interval)).toThrow(expect.objectContaining({ code: 'invalid_interval' }));
    }
    expect(() => checkedInterval({ from: to, to: from })).toThrow(expect.objectContaining({ code: 'invalid_interval' }));
    // ISO texts are refused as what they are not (DateTimes), not as "must be valid ISO-8601", which they are.
    expect(() => checkedInterval({ from: '2024-03-04T00:00:00Z', to: '2024-03-11T00:00:00Z' })).toThrow(/must be luxon DateTimes \(DateTime\.fromISO/);
    expect(() => checkedInterval({ from: at('2024-02-30T00:00:00Z'), to })).toThrow(/an invalid luxon DateTime was given/);
  });

  it('rejects an invalid bound', () => {
    expect(rejectionOf(at('not a date'), at('2024-03-04T00:00:00Z')).code).toBe('invalid_interval');
    expect(rejectionOf(at('2024-03-04T00:00:00Z'), at('2024-02-30T00:00:00Z')).code).toBe('invalid_interval');
  });

  it(`accepts exactly ${MAX_INTERVAL_DAYS} days and rejects one second more (interval_too_wide)`, () => {
    const from = at('2024-01-01T00:00:00Z');
    expect(timeInterval(from, from.plus({ days: MAX_INTERVAL_DAYS })).to.toISO()).toBe('2025-01-01T00:00:00.000Z');
    const e = rejectionOf(from, from.plus({ days: MAX_INTERVAL_DAYS, seconds: 1 }));
    expect(e.code).toBe('interval_too_wide');
    expect(e.details[0]?.path).toBe('to');
  });

  it('refuses a bound whose UTC instant RFC 3339 cannot write (outside the years 0000-9999): the answer names its bounds in UTC', () => {
    // In range at their own offsets, out of it in UTC: the answer said "+010000-01-01T23:58:59Z" and "-000001-12-31T00:01:00Z".
    const late = rejectionOf(at('9999-12-31T00:00:00-23:59'), at('9999-12-31T23:59:59-23:59'));
    expect(late.code).toBe('invalid_interval');
    expect(late.details).toEqual([{ path: 'to', message: 'must lie in the years 0000-9999 in UTC' }]);
    const early = rejectionOf(at('0000-01-01T00:00:00+23:59'), at('0000-01-01T23:00:00+23:59'));
    expect(early.details).toEqual([{ path: 'from', message: 'must lie in the years 0000-9999 in UTC' }]);
    expect(() => checkedInterval({ from: at('9999-12-31T00:00:00Z'), to: at('10000-01-01T00:00:00Z') })).toThrow(expect.objectContaining({ code: 'invalid_interval' }));
    // The first and the last second RFC 3339 writes are taken, and answered as written.
    const edges = [timeInterval(at('0000-01-01T00:00:00Z'), at('0000-01-02T00:00:00Z')), timeInterval(at('9999-12-30T23:59:59Z'), at('9999-12-31T23:59:59Z'))];
    expect(edges.map((i) => [i.from.toISO({ suppressMilliseconds: true }), i.to.toISO({ suppressMilliseconds: true })])).toEqual([
      ['0000-01-01T00:00:00Z', '0000-01-02T00:00:00Z'],
      ['9999-12-30T23:59:59Z', '9999-12-31T23:59:59Z'],
    ]);
  });

  it('rejects a decade as too wide', () => {
    expect(rejectionOf(at('2014-01-01T00:00:00Z'), at('2024-01-01T00:00:00Z')).code).toBe('interval_too_wide');
  });

  describe('lastDays', () => {
    const now = at('2024-03-10T12:34:56.789Z');

    it('includes a reading taken at now, even with a fraction of a second', () => {
      const interval = lastDays(7, now);
      expect(contains(interval, now.startOf('second'))).toBe(true);
      expect(contains(interval, at('2024-03-10T12:34:56Z'))).toBe(true);
    });

    it('reaches the 5 minutes a reading may lie ahead (an upload 4 minutes ahead is stored), not a second more', () => {
      const interval = lastDays(7, now);
      expect(contains(interval, at('2024-03-10T12:34:57Z'))).toBe(true);
      expect(contains(interval, at('2024-03-10T12:39:56Z'))).toBe(true);
      expect(contains(interval, at('2024-03-10T12:39:57Z'))).toBe(false);
      expect(interval.to.toISO()).toBe(endOfNow(now).toISO());
    });

    it('starts the given days before this second', () => {
      const interval = lastDays(7, now);
      expect(contains(interval, at('2024-03-03T12:34:57Z'))).toBe(true);
      expect(contains(interval, at('2024-03-03T12:34:56Z'))).toBe(false);
    });

    it(`at ${MAX_INTERVAL_DAYS} days starts ${MAX_INTERVAL_DAYS} days before its end (the 5 minutes ahead would make it too wide)`, () => {
      const interval = lastDays(MAX_INTERVAL_DAYS, now);
      expect(interval.to.diff(interval.from, 'days').days).toBe(MAX_INTERVAL_DAYS);
      expect(interval.to.toISO()).toBe(endOfNow(now).toISO());
    });

    it('refuses a number of days that is not a positive number, naming the field', () => {
      for (const days of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, '7' as unknown as number]) {
        expect(() => lastDays(days, now)).toThrow(expect.objectContaining({ code: 'invalid_interval', details: [{ path: 'days', message: 'must be a positive number' }] }));
      }
      expect(contains(lastDays(0.5, now), at('2024-03-10T00:34:57Z'))).toBe(true);
    });

    it('is bounded by the same width rule', () => {
      expect(() => lastDays(400, now)).toThrow(expect.objectContaining({ code: 'interval_too_wide' }));
    });
  });
});
