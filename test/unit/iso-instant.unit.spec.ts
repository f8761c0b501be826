import fc from 'fast-check';
import { DateTime } from 'luxon';
import { hl7TimestampUtc, isCalendarDate, isoInstantMillis, isoUtc } from '../../src/domain/shared/iso-instant';

/** The fast path must give luxon's answer for every text: the same instant, or NaN where luxon refuses. */
const luxonMillis = (text: string): number => {
  const dt = DateTime.fromISO(text, { setZone: true });
  return dt.isValid ? dt.toMillis() : Number.NaN;
};

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** Date-time texts with free fields, valid or not: years 0-9999, months 0-13, days 0-32, hours 0-25, ... */
const isoText = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 0, max: 13 }),
    day: fc.integer({ min: 0, max: 32 }),
    hour: fc.integer({ min: 0, max: 25 }),
    minute: fc.integer({ min: 0, max: 60 }),
    second: fc.integer({ min: 0, max: 61 }),
    fraction: fc.option(fc.stringMatching(/^\d{1,9}$/), { nil: undefined }),
    zone: fc.oneof(
      fc.constant('Z'),
      fc.record({ sign: fc.constantFrom('+', '-'), h: fc.integer({ min: 0, max: 25 }), m: fc.integer({ min: 0, max: 60 }) }).map((z) => `${z.sign}${pad(z.h)}:${pad(z.m)}`),
      fc.constant(''),
    ),
  })
  .map((t) => `${pad(t.year, 4)}-${pad(t.month)}-${pad(t.day)}T${pad(t.hour)}:${pad(t.minute)}:${pad(t.second)}${t.fraction === undefined ? '' : `.${t.fraction}`}${t.zone}`);

describe('isoInstantMillis', () => {
  it('agrees with luxon on generated date-times, valid and invalid', () => {
    fc.assert(
      fc.property(isoText, (text) => {
        expect(isoInstantMillis(text)).toBe(luxonMillis(text));
      }),
      { numRuns: 5000 },
    );
  });

  it('agrees with luxon on the edges', () => {
    for (const text of [
      '2017-05-10T14:50:14Z',
      '2024-02-29T23:59:59.999+01:00',
      '2023-02-29T00:00:00Z', // no such day
      '2024-01-01T24:00:00Z',
      '2024-01-01T23:59:60Z',
      '2024-01-01T00:00:00+24:00',
      '2024-01-01T00:00:00-00:30',
      '0099-12-31T00:00:00Z',
      '2024-01-01T00:00:00', // no offset: local time, luxon's answer
      '2024-01-01',
      '20240101T000000Z',
      'not a date',
      '',
    ]) {
      expect([text, isoInstantMillis(text)]).toEqual([text, luxonMillis(text)]);
    }
  });
});

describe('hl7TimestampUtc', () => {
  it('writes what luxon writes for yyyyMMddHHmmss in UTC', () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(1000, 0, 1), max: Date.UTC(9999, 11, 31, 23, 59, 59, 999) }), (millis) => {
        expect(hl7TimestampUtc(millis)).toBe(DateTime.fromMillis(millis, { zone: 'utc' }).toFormat('yyyyMMddHHmmss'));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('isoUtc', () => {
  it("writes what luxon's toUTC().toISO({ suppressMilliseconds: true }) writes", () => {
    fc.assert(
      fc.property(fc.integer({ min: Date.UTC(-500, 0, 1), max: Date.UTC(12000, 0, 1) }), fc.boolean(), (millis, wholeSecond) => {
        const at = wholeSecond ? Math.floor(millis / 1000) * 1000 : millis;
        expect(isoUtc(at)).toBe(DateTime.fromMillis(at, { zone: 'utc' }).toISO({ suppressMilliseconds: true, includeOffset: true }));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('isCalendarDate', () => {
  it('agrees with luxon on which dates exist, 29 February included', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 9999 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), (year, month, day) => {
        expect(isCalendarDate(year, month, day)).toBe(DateTime.fromObject({ year, month, day }, { zone: 'utc' }).isValid);
      }),
      { numRuns: 5000 },
    );
    expect([isCalendarDate(2024, 2, 29), isCalendarDate(2023, 2, 29), isCalendarDate(1900, 2, 29), isCalendarDate(2000, 2, 29)]).toEqual([true, false, false, true]);
  });
});
