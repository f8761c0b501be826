import { randomUUID } from 'node:crypto';
import { checkIdempotencyKey, checkPatientIdempotencyKey, idempotencyKeyProblem } from '../../src/domain/shared/idempotency-key';
import { idempotencyKey } from '../../src/adapters/http/schemas';

// An upload's observationId or a correction's correctionId: stored in clear, so never a CPR number.
describe('idempotencyKeyProblem', () => {
  it('refuses a key that is a CPR number as a whole, in any spelling (anyone\'s, not only the uploading patient\'s)', () => {
    for (const key of ['010203-4321', '0102034321', '010203_4321', '01.02.03-4321', '01:02:03:4321', '01-02-2003-4321']) {
      expect({ key, problem: idempotencyKeyProblem(key) }).toEqual({ key, problem: 'must not be a CPR number (it is stored in clear)' });
    }
  });

  it('takes UUIDs, meter serials and date-stamped ids', () => {
    for (const key of ['obs-42', 'meter:A17:0001', '2026-11-30-0001', '2026.11.30.0001', '12345678-1234', 'order-202612021030-17', '202612021030', ...Array.from({ length: 2000 }, () => randomUUID())]) {
      expect({ key, problem: idempotencyKeyProblem(key) }).toEqual({ key, problem: null });
    }
  });
});

describe('idempotencyKeyProblem: the form', () => {
  it('refuses a key that is not 1-64 of A-Z a-z 0-9 . _ : -, or not text at all', () => {
    for (const key of ['a b', '', 'x'.repeat(65), 'key/1', 42, null, undefined]) {
      expect({ key, problem: idempotencyKeyProblem(key) }).toEqual({ key, problem: '1-64 characters of A-Z a-z 0-9 . _ : -' });
    }
  });

  it('reads a CPR number only from a key of digits and separators: letters among twelve characters make none', () => {
    // Without its letters, 2512ab481234 would read as 25124812 34 with a four-digit year cut: 2512481234.
    for (const key of ['2512ab481234', 'ab2512481234', '2512481234ab']) expect({ key, problem: idempotencyKeyProblem(key) }).toEqual({ key, problem: null });
    expect(idempotencyKeyProblem('25-12-1948-1234')).toBe('must not be a CPR number (it is stored in clear)');
  });
});

describe('checkIdempotencyKey and checkPatientIdempotencyKey', () => {
  const refusal = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return e;
    }
    throw new Error('expected a refusal');
  };

  it('returns a good key, and refuses another with the code asked for, naming the field', () => {
    expect(checkIdempotencyKey('obs-42', 'observationId')).toBe('obs-42');
    expect(refusal(() => checkIdempotencyKey('a b', 'observationId'))).toMatchObject({
      code: 'invalid_request',
      details: [{ path: 'observationId', message: '1-64 characters of A-Z a-z 0-9 . _ : -' }],
    });
    expect(refusal(() => checkIdempotencyKey('2512481234', 'correctionId', 'invalid_correction'))).toMatchObject({ code: 'invalid_correction', details: [{ path: 'correctionId' }] });
  });

  it("refuses a key holding the patient's own CPR number in any spelling, and only the patient's", () => {
    // The four-digit-year spellings too (found by a review: 19481225-1234 and obs-25-12-1948-1234 were stored).
    const fourDigitYears = ['19481225-1234', 'bp:19481225-1234', '1948-12-25-1234', '19481225.1234', 'obs-25-12-1948-1234', 'x25121948_1234'];
    for (const key of ['bp:2512481234', '251248-1234-a', 'x.251248.1234', 'm_2512481234_1', ...fourDigitYears]) {
      expect(refusal(() => checkPatientIdempotencyKey(key, '2512481234', 'observationId'))).toMatchObject({
        code: 'invalid_request',
        details: [{ path: 'observationId', message: "must not hold the patient's CPR number (it is stored in clear)" }],
      });
    }
    expect(checkPatientIdempotencyKey('bp:0102034321', '2512481234', 'observationId')).toBe('bp:0102034321');
    // A date-stamped id of another day, and the patient's birth date without the serial, are ids like any other.
    for (const key of ['2026-11-30-0001', '19481225-0001', 'obs-1948-12-25', 'obs-251248']) {
      expect(checkPatientIdempotencyKey(key, '2512481234', 'observationId')).toBe(key);
    }
    // The key cannot tell the century: each year the six digits can stand for is looked for.
    for (const key of ['18481225-1234', '20481225-1234', '25122048-1234']) {
      expect(refusal(() => checkPatientIdempotencyKey(key, '2512481234', 'observationId'))).toMatchObject({ code: 'invalid_request' });
    }
    expect(checkPatientIdempotencyKey('bp:251248-0000', '2512481234', 'observationId')).toBe('bp:251248-0000');
  });
});

describe('the HTTP schema of an observationId or correctionId', () => {
  it('tells a key of the wrong form only that, not that it must not be a CPR number', () => {
    for (const key of ['a b', 'nul\u0000here', 'lone\ud800surrogate', '', 'x'.repeat(65)]) {
      const result = idempotencyKey.safeParse(key);
      expect({ key, messages: result.success ? [] : result.error.issues.map((i) => i.message) }).toEqual({ key, messages: ['1-64 characters of A-Z a-z 0-9 . _ : -'] });
    }
    const cpr = idempotencyKey.safeParse('2512481234');
    expect(cpr.success ? [] : cpr.error.issues.map((i) => i.message)).toEqual(['must not be a CPR number (it is stored in clear)']);
  });
});
