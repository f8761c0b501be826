import { DateTime } from 'luxon';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseHl7Observation } from '../../src/domain/documents/hl7';
import { CLOCK_SKEW_SECONDS, createTeleObservation, ensureTeleObservation, toIsoSeconds, type TeleObservationInput } from '../../src/domain/monitoring/tele-observation';
import { ValidationError } from '../../src/domain/shared/errors';

const NOW = DateTime.fromISO('2024-03-10T12:00:00Z', { zone: 'utc' });

const seed: TeleObservationInput = {
  patientId: '251248-1234',
  systolic: 126,
  diastolic: 70,
  measuredAt: '2017-05-10T14:50:14Z',
};

const rejectionOf = (input: Partial<TeleObservationInput>, now = NOW): ValidationError => {
  try {
    createTeleObservation({ ...seed, ...input }, now);
  } catch (e) {
    if (e instanceof ValidationError) return e;
    throw e;
  }
  throw new Error('expected the observation to be rejected');
};

const paths = (e: ValidationError): string[] => e.details.map((d) => d.path);

describe('createTeleObservation', () => {
  it("accepts the seed's reading and normalises it", () => {
    expect(createTeleObservation(seed, NOW)).toEqual({
      patientId: '251248-1234',
      systolic: { value: 126, unit: 'mmHg' },
      diastolic: { value: 70, unit: 'mmHg' },
      measuredAt: '2017-05-10T14:50:14Z',
    });
  });

  describe('quantities', () => {
    it('takes a bare number as mmHg, or an object with value and unit', () => {
      const obs = createTeleObservation({ ...seed, systolic: { value: 126.5, unit: 'mmHg' }, diastolic: 70.5 }, NOW);
      expect(obs.systolic).toEqual({ value: 126.5, unit: 'mmHg' });
      expect(obs.diastolic).toEqual({ value: 70.5, unit: 'mmHg' });
    });

    it.each(['mm(Hg)', 'mmHg', 'mm[Hg]'])('accepts the unit spelling %s and stores it as mmHg', (unit) => {
      const obs = createTeleObservation({ ...seed, systolic: { value: 126, unit }, diastolic: { value: 70, unit } }, NOW);
      expect(obs.systolic.unit).toBe('mmHg');
      expect(obs.diastolic.unit).toBe('mmHg');
    });

    it.each(['kPa', 'MMHG', 'mm Hg', '', 42, null])('rejects the unit %p', (unit) => {
      const e = rejectionOf({ diastolic: { value: 70, unit } });
      expect(e.code).toBe('invalid_observation');
      expect(paths(e)).toEqual(['diastolic.unit']);
    });

    it.each([
      ['NaN', Number.NaN],
      ['Infinity', Number.POSITIVE_INFINITY],
      ['-Infinity', Number.NEGATIVE_INFINITY],
      ['a numeric string', '126'],
      ['null', null],
      ['undefined', undefined],
      ['a boolean', true],
      ['an object without value', { unit: 'mmHg' }],
      ['a string value in an object', { value: '126', unit: 'mmHg' }],
    ])('rejects %s as systolic', (_why, systolic) => {
      const e = rejectionOf({ systolic });
      expect(e.code).toBe('invalid_observation');
      expect(paths(e)).toEqual(['systolic']);
    });
  });

  describe('plausible ranges (systolic 50-300, diastolic 20-200)', () => {
    it.each([
      [50, 20],
      [300, 200],
      [201, 200],
    ])('accepts the bounds themselves: %i/%i', (systolic, diastolic) => {
      expect(createTeleObservation({ ...seed, systolic, diastolic }, NOW).systolic.value).toBe(systolic);
    });

    it.each([
      ['systolic below 50', { systolic: 49.9 }, 'systolic'],
      ['systolic above 300', { systolic: 300.1 }, 'systolic'],
      ['diastolic below 20', { diastolic: 19 }, 'diastolic'],
      ['diastolic above 200', { systolic: 250, diastolic: 201 }, 'diastolic'],
      ['a negative pressure', { diastolic: -70 }, 'diastolic'],
    ])('rejects %s as implausible', (_why, input, path) => {
      const e = rejectionOf(input);
      expect(e.code).toBe('implausible_observation');
      expect(paths(e)).toEqual([path]);
    });

    it.each([
      [120, 120],
      [80, 120],
    ])('rejects systolic %i not above diastolic %i', (systolic, diastolic) => {
      const e = rejectionOf({ systolic, diastolic });
      expect(e.code).toBe('implausible_observation');
      expect(e.details).toEqual([{ path: 'systolic', message: expect.stringMatching(/above the diastolic/) }]);
    });
  });

  describe('measurement time', () => {
    it(`accepts a time up to ${CLOCK_SKEW_SECONDS} s in the future (a meter's clock drift)`, () => {
      expect(createTeleObservation({ ...seed, measuredAt: NOW.plus({ seconds: CLOCK_SKEW_SECONDS }).toISO() }, NOW).measuredAt).toBe('2024-03-10T12:05:00Z');
    });

    it('rejects a time beyond the skew as implausible', () => {
      const e = rejectionOf({ measuredAt: '2024-03-10T12:05:01Z' });
      expect(e.code).toBe('implausible_observation');
      expect(e.details).toEqual([{ path: 'measuredAt', message: expect.stringMatching(/future/) }]);
    });

    it('truncates fractions of a second: 12:05:00.999 is still within the skew', () => {
      expect(createTeleObservation({ ...seed, measuredAt: '2024-03-10T12:05:00.999Z' }, NOW).measuredAt).toBe('2024-03-10T12:05:00Z');
    });

    it('converts an offset to UTC and truncates to whole seconds', () => {
      expect(createTeleObservation({ ...seed, measuredAt: '2017-05-10T16:50:14.987+02:00' }, NOW).measuredAt).toBe('2017-05-10T14:50:14Z');
    });

    it("refuses an offset without its colon, as HTTP does (the library read +9999 as four days and stored that)", () => {
      for (const measuredAt of ['2017-05-10T09:50:14-0500', '2017-05-10T09:50:14+9999', '2017-05-10T24:00:00+0000']) {
        expect(rejectionOf({ measuredAt }).details).toEqual([{ path: 'measuredAt', message: expect.stringMatching(/must be an ISO-8601 date-time with an offset \(Z or \+hh:mm, with the colon\)/) }]);
      }
    });

    it('takes a luxon DateTime in any zone', () => {
      const dt = DateTime.fromISO('2017-05-10T16:50:14.5', { zone: 'Europe/Copenhagen' });
      expect(createTeleObservation({ ...seed, measuredAt: dt }, NOW).measuredAt).toBe('2017-05-10T14:50:14Z');
    });

    it.each([
      ['without an offset', '2017-05-10T14:50:14'],
      ['not a date', 'yesterday'],
      ['an impossible date', '2017-02-30T14:50:14Z'],
      ['a number', 1494427814],
      ['a JS Date', new Date('2017-05-10T14:50:14Z')],
      ['an invalid DateTime', DateTime.invalid('test')],
    ])('rejects a time %s', (_why, measuredAt) => {
      const e = rejectionOf({ measuredAt });
      expect(e.code).toBe('invalid_observation');
      expect(paths(e)).toEqual(['measuredAt']);
    });

    it('tells a time in the right form that does not exist from one in the wrong form', () => {
      for (const measuredAt of ['2024-02-30T10:00:00Z', '2023-02-29T10:00:00+01:00', '2024-03-10T25:00:00Z', '2024-03-10T10:61:00Z']) {
        const e = rejectionOf({ measuredAt });
        expect(e.code).toBe('invalid_observation');
        expect(e.details).toEqual([{ path: 'measuredAt', message: expect.stringMatching(/not a date and time that exists/) }]);
      }
      for (const measuredAt of ['2024-03-10', 'later', '2024-03-10T10:00:00']) {
        expect(rejectionOf({ measuredAt }).details).toEqual([{ path: 'measuredAt', message: expect.stringMatching(/must be an ISO-8601 date-time with an offset/) }]);
      }
    });

    it('refuses offsets and hours outside RFC 3339 (+99:99 moved a reading by four days), keeps the real ones', () => {
      for (const measuredAt of ['2024-03-09T10:00:00+99:99', '2024-03-09T10:00:00-24:00', '2024-03-09T10:00:00+05:60', '2024-03-09T24:00:00Z', '2024-03-09T24:00Z']) {
        const e = rejectionOf({ measuredAt });
        expect(e.code).toBe('invalid_observation');
        expect(e.details).toEqual([{ path: 'measuredAt', message: expect.stringMatching(/not a date and time that exists/) }]);
      }
      expect(createTeleObservation({ ...seed, measuredAt: '2024-03-09T10:00:00+14:00' }, NOW).measuredAt).toBe('2024-03-08T20:00:00Z');
      expect(createTeleObservation({ ...seed, measuredAt: '2024-03-09T10:00:00-23:59' }, NOW).measuredAt).toBe('2024-03-10T09:59:00Z');
      expect(createTeleObservation({ ...seed, measuredAt: '2024-03-09T10:00+05:30' }, NOW).measuredAt).toBe('2024-03-09T04:30:00Z');
    });

    it("refuses a time before the patient's birth date (a day's slack for time zones), without saying the date", () => {
      // 251248-1234: born 25 December 1948.
      for (const measuredAt of ['0000-01-01T00:00:00+14:00', '1900-01-01T00:00:00Z', '1948-12-23T23:59:59Z']) {
        const e = rejectionOf({ measuredAt });
        expect(e.code).toBe('implausible_observation');
        expect(e.details).toEqual([{ path: 'measuredAt', message: "lies before the patient's date of birth" }]);
        expect(e.message).not.toMatch(/1948|251248/);
      }
      expect(createTeleObservation({ ...seed, measuredAt: '1948-12-24T23:30:00-01:00' }, NOW).measuredAt).toBe('1948-12-25T00:30:00Z');
      expect(createTeleObservation({ ...seed, measuredAt: '1948-12-24T00:00:00Z' }, NOW).measuredAt).toBe('1948-12-24T00:00:00Z');
    });

    it('refuses a CPR number whose birth date lies in the future, on patientId (not as a time before the birth, whatever the time)', () => {
      // 010125-5234: born 1 January 2025 by the century rule (serial 5, year 25), after NOW.
      for (const measuredAt of [undefined, '2024-03-10T11:00:00Z']) {
        const e = rejectionOf({ patientId: '010125-5234', ...(measuredAt ? { measuredAt } : {}) });
        expect(e.code).toBe('invalid_patient_id');
        expect(e.details).toEqual([{ path: 'patientId', message: 'the birth date in this CPR number lies in the future' }]);
      }
      expect(createTeleObservation({ ...seed, patientId: '010125-5234', measuredAt: '2025-01-02T08:00:00Z' }, DateTime.fromISO('2025-01-02T09:00:00Z')).patientId).toBe('010125-5234');
    });

    it('toIsoSeconds writes UTC with a Z and no milliseconds', () => {
      expect(toIsoSeconds(DateTime.fromISO('2017-05-10T16:50:14.000+02:00', { setZone: true }))).toBe('2017-05-10T14:50:14Z');
    });
  });

  describe('every problem is reported at once', () => {
    it('lists one issue per bad field', () => {
      const e = rejectionOf({ patientId: 'x', systolic: Number.NaN, diastolic: { value: 70, unit: 'kPa' }, measuredAt: 'later' });
      expect(paths(e).sort()).toEqual(['diastolic.unit', 'measuredAt', 'patientId', 'systolic']);
      expect(e.message).toMatch(/patientId/);
      expect(e.message).toMatch(/measuredAt/);
    });

    it('reports implausible values and a future time together', () => {
      const e = rejectionOf({ systolic: 400, diastolic: 10, measuredAt: '2030-01-01T00:00:00Z' });
      expect(e.code).toBe('implausible_observation');
      expect(paths(e).sort()).toEqual(['diastolic', 'measuredAt', 'systolic']);
    });
  });

  describe('codes', () => {
    it('a bad patient id wins: invalid_patient_id even with other problems', () => {
      expect(rejectionOf({ patientId: '320148-1234', systolic: 10 }).code).toBe('invalid_patient_id');
      expect(rejectionOf({ patientId: 42 }).code).toBe('invalid_patient_id');
    });

    it('wrong shapes without implausible values are invalid_observation', () => {
      expect(rejectionOf({ systolic: 'high' }).code).toBe('invalid_observation');
    });

    it('implausible values mixed with wrong shapes are implausible_observation (one implausible value decides)', () => {
      const e = rejectionOf({ systolic: 400, measuredAt: 'later' });
      expect(e.code).toBe('implausible_observation');
      expect(paths(e).sort()).toEqual(['measuredAt', 'systolic']);
      expect(rejectionOf({ systolic: 'high', measuredAt: '2030-01-01T00:00:00Z' }).code).toBe('implausible_observation');
      expect(rejectionOf({ diastolic: { value: 70, unit: 'kPa' }, measuredAt: '1900-01-01T00:00:00Z' }).code).toBe('implausible_observation');
    });

    it('the error never contains the CPR number', () => {
      const e = rejectionOf({ patientId: '251248-1234', systolic: 20, measuredAt: 'soon' });
      expect(`${e.message} ${JSON.stringify(e.details)}`).not.toContain('251248');
    });
  });
});

describe('createTeleObservation: a measuredAt that cannot be read', () => {
  it('is only that, never also "before the patient\'s date of birth" (a patient born after 1970)', () => {
    const e = rejectionOf({ patientId: '010180-1234', measuredAt: 'yesterday' });
    expect(e.code).toBe('invalid_observation');
    expect(paths(e)).toEqual(['measuredAt']);
  });
});

describe('ensureTeleObservation', () => {
  const seedXml = readFileSync(join(__dirname, '../fixtures/seed-hl7-example.xml'), 'utf8');
  const noClock = (): DateTime => {
    throw new Error('now() was asked for an observation createTeleObservation made');
  };

  it('takes an observation createTeleObservation made as it is, after checking its time against the clock', () => {
    const created = createTeleObservation(seed, NOW);
    expect(ensureTeleObservation(created, () => NOW)).toBe(created);
    expect(() => ensureTeleObservation(created, noClock)).toThrow('now() was asked');
  });

  it("refuses one made against another now that lies in the future by the clock's now, as HTTP does (a library stored 2099)", () => {
    const future = createTeleObservation({ ...seed, measuredAt: '2099-01-01T00:00:00Z' }, DateTime.fromISO('2099-01-01T00:00:00Z', { zone: 'utc' }));
    expect(() => ensureTeleObservation(future, () => NOW)).toThrow(expect.objectContaining({ code: 'implausible_observation', details: [{ path: 'measuredAt', message: 'lies in the future' }] }));
    // Within the clock skew of the clock's now: taken.
    const soon = createTeleObservation({ ...seed, measuredAt: NOW.plus({ seconds: CLOCK_SKEW_SECONDS }).toISO()! }, NOW.plus({ days: 1 }));
    expect(ensureTeleObservation(soon, () => NOW)).toBe(soon);
  });

  it('createTeleObservation refuses an invalid now (DateTime.fromISO of a missing field): it switched the future check off', () => {
    for (const now of [DateTime.invalid('missing'), DateTime.fromISO(undefined as unknown as string), undefined as unknown as DateTime]) {
      expect(() => createTeleObservation(seed, now)).toThrow(expect.objectContaining({ code: 'invalid_observation', details: [{ path: 'now', message: 'not a valid DateTime' }] }));
    }
  });

  it('validates anything else now, with the same errors', () => {
    const plain = { patientId: '251248-1234', systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt: '2017-05-10T14:50:14Z' };
    const checked = ensureTeleObservation(plain, () => NOW);
    expect(checked).toEqual(plain);
    expect(checked).not.toBe(plain);
    for (const value of [null, undefined, 'x', 42]) {
      expect(() => ensureTeleObservation(value, () => NOW)).toThrow(expect.objectContaining({ code: 'invalid_observation' }));
    }
    expect(() => ensureTeleObservation({ ...plain, systolic: 400 }, () => NOW)).toThrow(expect.objectContaining({ code: 'implausible_observation' }));
  });

  it('does not take an observation parsed from a stored document as validated: one dated before the birth date is refused', () => {
    // 251248-1234: born 25 December 1948. A stored document is read without the birth-date check ...
    const parsed = parseHl7Observation(seedXml.replace('20170510145014', '19000101120000'));
    expect(parsed.measuredAt).toBe('1900-01-01T12:00:00Z');
    // ... but passed on as a new reading, it meets that check.
    expect(() => ensureTeleObservation(parsed, () => NOW)).toThrow(expect.objectContaining({ code: 'implausible_observation' }));
    // A parsed document within the rules is validated again and accepted.
    const fine = parseHl7Observation(seedXml);
    expect(ensureTeleObservation(fine, () => NOW)).toEqual(fine);
  });
});
