import { decodeAuditCursor, encodeAuditCursor, type AuditQueryKey } from '../../src/adapters/http/audit-cursor';
import { ValidationError } from '../../src/domain/shared/errors';

/** GET /audit's cursor: the audit trail's position, bound to the query that gave it. */
const key: AuditQueryKey = { by: 'patient', who: 'a'.repeat(64), from: Date.parse('2026-11-30T08:00:00.000Z'), to: null };
const position = { day: '2026-11-30', after: [-1n, -1n, 1234n, -1n, -1n, 0n, -1n, 99_999_999_999n] };

const codeOf = (fn: () => unknown): string | null => {
  try {
    fn();
    return null;
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).code;
  }
};

describe('the audit paging cursor', () => {
  it('gives back the position it was made from, for the same query', () => {
    const token = encodeAuditCursor(key, position);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeAuditCursor(token, { ...key })).toEqual(position);
  });

  it('holds no personal data: the patient is a fingerprint of the pseudonymous key, not the key itself', () => {
    const text = Buffer.from(encodeAuditCursor(key, position), 'base64url').toString('utf8');
    expect(text).toMatch(/^a1\|[0-9a-f]{16}\|2026-11-30\|-1,-1,1234,-1,-1,0,-1,99999999999$/);
    expect(text).not.toContain(key.who);
  });

  it('refuses a cursor of another query: another patient, a user, other bounds, a bound left out', () => {
    const token = encodeAuditCursor(key, position);
    for (const other of [
      { ...key, who: 'b'.repeat(64) },
      { ...key, by: 'user' as const },
      { ...key, from: key.from! + 1 },
      { ...key, to: Date.parse('2026-12-01T00:00:00Z') },
      { ...key, from: null },
    ]) {
      expect(codeOf(() => decodeAuditCursor(token, other))).toBe('invalid_cursor');
    }
  });

  it('refuses what it did not give out, with 422 invalid_cursor and without quoting it', () => {
    const valid = Buffer.from(encodeAuditCursor(key, position), 'base64url').toString('utf8');
    const fp = valid.split('|')[1]!;
    const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64url');
    const bad = [
      '',
      'not a cursor!',
      '251248-1234',
      'x'.repeat(401),
      b64('hello'),
      b64(valid.replace('a1|', 'a2|')),
      b64(`a1|${fp}|2026-02-30|${position.after.join(',')}`), // no such day
      b64(`a1|${fp}|2026-11-30|1,2,3`), // not one version per chain
      b64(`a1|${fp}|2026-11-30|-2,-1,-1,-1,-1,-1,-1,-1`),
      b64(`a1|${fp}|2026-11-30|01,-1,-1,-1,-1,-1,-1,-1`),
      b64(`a1|${fp}|2026-11-30|1e3,-1,-1,-1,-1,-1,-1,-1`),
      b64(`${valid}|more`),
      `${b64(valid)}x`, // a stray character that base64url decoding alone would pass over
      `${b64(valid)}==`,
    ];
    for (const token of bad) {
      let error: unknown;
      try {
        decodeAuditCursor(token, key);
      } catch (e) {
        error = e;
      }
      expect({ token, code: (error as ValidationError | undefined)?.code }).toEqual({ token, code: 'invalid_cursor' });
      expect((error as Error).message).not.toContain('251248');
    }
  });
});
