import { BIRTH_DATE_SLACK_MS, bornAfter, birthDateOf, isCpr, parseCpr, parseCprBornBy, type Cpr } from '../../src/domain/monitoring/cpr';
import { ValidationError } from '../../src/domain/shared/errors';

const rejectionOf = (value: unknown, path?: string): ValidationError => {
  try {
    parseCpr(value, path);
  } catch (e) {
    if (e instanceof ValidationError) return e;
    throw e;
  }
  throw new Error('expected parseCpr to reject the value');
};

const birthYear = (cpr: string): number | null => birthDateOf(cpr)?.year ?? null;

describe('CPR number', () => {
  it("accepts the seed's 251248-1234, born 25 December 1948", () => {
    expect(parseCpr('251248-1234')).toBe('251248-1234');
    expect(isCpr('251248-1234')).toBe(true);
    expect(birthDateOf('251248-1234')?.toISODate()).toBe('1948-12-25');
  });

  describe('the first serial digit sets the century', () => {
    it.each([
      ['010100-0000', 1900],
      ['311299-3999', 1999],
      ['150560-2123', 1960],
    ])('digits 0-3 are always the 1900s: %s -> %i', (cpr, year) => {
      expect(birthYear(cpr)).toBe(year);
    });

    it.each([
      ['010136-4000', 2036],
      ['010137-4000', 1937],
      ['010100-4000', 2000],
      ['010199-4000', 1999],
      ['010136-9000', 2036],
      ['010137-9000', 1937],
    ])('digits 4 and 9 are the 2000s up to yy=36, else the 1900s: %s -> %i', (cpr, year) => {
      expect(birthYear(cpr)).toBe(year);
    });

    it.each([
      ['010157-5000', 2057],
      ['010158-5000', 1858],
      ['010157-8999', 2057],
      ['010158-8999', 1858],
      ['010199-6000', 1899],
      ['010100-7000', 2000],
    ])('digits 5-8 are the 2000s up to yy=57, the 1800s from yy=58: %s -> %i', (cpr, year) => {
      expect(birthYear(cpr)).toBe(year);
    });
  });

  describe('29 February exists only in leap years of the implied century', () => {
    it.each([
      ['290200-4000', '2000-02-29'], // 2000 is a leap year (divisible by 400)
      ['290200-9123', '2000-02-29'],
      ['290200-5000', '2000-02-29'],
      ['290204-0000', '1904-02-29'],
      ['290236-4000', '2036-02-29'],
      ['290296-5000', '1896-02-29'],
    ])('%s is valid (%s)', (cpr, date) => {
      expect(parseCpr(cpr)).toBe(cpr);
      expect(birthDateOf(cpr)?.toISODate()).toBe(date);
    });

    it.each([
      ['290200-1000'], // 1900 is not a leap year (divisible by 100, not by 400)
      ['290200-0000'],
      ['290200-3999'], // 3 -> 1900 as well
      ['290201-4000'], // 2001
      ['290237-4000'], // 1937
      ['290258-5000'], // 1858
    ])('%s is not a real date', (cpr) => {
      expect(birthDateOf(cpr)).toBeNull();
      expect(isCpr(cpr)).toBe(false);
      expect(rejectionOf(cpr).code).toBe('invalid_patient_id');
    });
  });

  it.each(['320148-1234', '311148-1234', '310448-1234', '001248-1234', '250048-1234', '251348-1234'])('rejects %s: not a calendar date', (cpr) => {
    const error = rejectionOf(cpr);
    expect(error.code).toBe('invalid_patient_id');
    expect(error.message).toMatch(/birth date/);
  });

  it.each([
    ['without the hyphen', '2512481234'],
    ['a short serial', '251248-123'],
    ['a long serial', '251248-12345'],
    ['a space for the hyphen', '251248 1234'],
    ['an en dash for the hyphen', '251248\u20131234'],
    ['leading space', ' 251248-1234'],
    ['trailing space', '251248-1234 '],
    ['trailing newline', '251248-1234\n'],
    ['letters', 'ab1248-1234'],
    ['non-ASCII digits', '\u0662\u0665\u0661\u0662\u0664\u0668-\u0661\u0662\u0663\u0664'],
    ['the empty string', ''],
  ])('rejects the wrong form: %s', (_why, value) => {
    const error = rejectionOf(value);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error.code).toBe('invalid_patient_id');
    expect(error.details).toEqual([{ path: 'patientId', message: expect.stringMatching(/ddmmyy-ssss/) }]);
    expect(isCpr(value)).toBe(false);
    expect(birthDateOf(value)).toBeNull();
  });

  it.each([[2512481234], [null], [undefined], [{ cpr: '251248-1234' }], [['251248-1234']]])('rejects a non-string: %p', (value) => {
    expect(rejectionOf(value).code).toBe('invalid_patient_id');
    expect(isCpr(value)).toBe(false);
  });

  it('names the given path in the error details', () => {
    expect(rejectionOf('nope', 'body.patientId').details[0]?.path).toBe('body.patientId');
  });

  it.each(['2512481234', '320148-1234', '290200-1000', '251248-12345', '251248 1234', '311148-1234'])('never echoes the input in an error: %s', (value) => {
    const error = rejectionOf(value);
    const text = `${error.message} ${JSON.stringify(error.details)} ${String(error)}`;
    expect(text).not.toContain(value);
    // Not even the digits split apart by the message: neither the date part nor the serial.
    expect(text).not.toContain(value.slice(0, 6));
    expect(text).not.toMatch(/\d{4}/);
  });

  describe('a birth date in the future (parseCprBornBy: uploads and queries alike), with a day of slack', () => {
    // 03122026 at 00:00 UTC is "tomorrow" at noon on 2 December 2026: a calendar date where the patient was born
    // (Copenhagen's 3 December starts at 23:00 UTC on the 2nd), so a day's slack; the 4th is refused.
    const NOON = Date.parse('2026-12-02T12:00:00Z');
    it('takes a birth date up to a day after now, refuses one later as invalid_patient_id on the path given', () => {
      expect(parseCprBornBy('021226-4234', NOON)).toBe('021226-4234');
      expect(parseCprBornBy('031226-4234', NOON)).toBe('031226-4234');
      for (const [cpr, path] of [['041226-4234', undefined], ['010137-5234', 'patientId'], ['010137-5234', 'body.patientId']] as const) {
        let error: unknown;
        try {
          parseCprBornBy(cpr, NOON, path);
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(ValidationError);
        expect(error).toMatchObject({ code: 'invalid_patient_id', details: [{ path: path ?? 'patientId', message: 'the birth date in this CPR number lies in the future' }] });
        expect(String((error as Error).message)).not.toMatch(/\d{4}/);
      }
    });

    it('the boundary: a birth date exactly the slack after now is taken, one millisecond later is refused', () => {
      // 031226-4234: born 3 December 2026, 00:00 UTC.
      const born = Date.parse('2026-12-03T00:00:00Z');
      const cpr = '031226-4234' as Cpr;
      expect(bornAfter(cpr, born - BIRTH_DATE_SLACK_MS)).toBe(false);
      expect(parseCprBornBy(cpr, born - BIRTH_DATE_SLACK_MS)).toBe(cpr);
      expect(bornAfter(cpr, born - BIRTH_DATE_SLACK_MS - 1)).toBe(true);
      expect(() => parseCprBornBy(cpr, born - BIRTH_DATE_SLACK_MS - 1)).toThrow(expect.objectContaining({ code: 'invalid_patient_id' }));
    });

    it('still refuses what parseCpr refuses, with its own message', () => {
      expect(() => parseCprBornBy('320148-1234', NOON)).toThrow(/real birth date/);
    });
  });
});
