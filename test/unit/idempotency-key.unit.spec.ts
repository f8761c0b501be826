import { randomUUID } from 'node:crypto';
import { idempotencyKeyProblem } from '../../src/domain/shared/idempotency-key';
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
