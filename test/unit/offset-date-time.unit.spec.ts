import { z } from 'zod';
import { parseUplink } from '../../src/adapters/messaging/messages';
import { AuditQuery, AuditVerifyQuery } from '../../src/adapters/http/security-schemas';
import { KeysBody } from '../../src/adapters/http/key-routes';
import { offsetDateTime } from '../../src/adapters/validation/offset-date-time';
import { issueMessage } from '../../src/adapters/validation/zod-issues';

/**
 * One rule for every date-time a caller or a small system sends (validation/offset-date-time.ts): the one a reading's
 * measuredAt has. It must not follow zod's `z.iso.datetime()`, which refuses `2026-12-04T10:00Z` from zod 4.5 on:
 * Java's `OffsetDateTime.toString()` writes exactly that when the seconds are zero.
 */
describe('offsetDateTime: the date-times the hub is sent', () => {
  const messages = (value: unknown): string[] => {
    const result = offsetDateTime.safeParse(value);
    return result.success ? [] : result.error.issues.map(issueMessage);
  };

  it.each([
    ['2026-12-04T10:00Z', "Java's OffsetDateTime.toString() at zero seconds, UTC"],
    ['2026-12-04T10:00+01:00', 'the same with an offset'],
    ['2026-12-04T10:00:00Z', 'seconds'],
    ['2026-12-04T10:00:00.123456789-05:30', 'a fraction beyond milliseconds and a negative offset'],
    ['2024-02-29T23:59:59+23:59', 'a leap day, the last minute, the largest offset'],
  ])('takes %s (%s)', (text) => {
    expect(messages(text)).toEqual([]);
  });

  it.each([
    ['2026-12-04T24:00:00Z', /is not a date and time that exists/],
    ['2026-12-04T10:00:00+99:99', /is not a date and time that exists/],
    ['2026-02-29T10:00:00Z', /is not a date and time that exists/],
    ['2026-12-04T10:00:00', /an ISO-8601 date-time with an offset/],
    ['2026-12-04 10:00:00Z', /an ISO-8601 date-time with an offset/],
    ['2026-12-04T10Z', /an ISO-8601 date-time with an offset/],
    ['2026-12-04T10:00:00+0100', /an ISO-8601 date-time with an offset/],
    ['2026-12-04T10:00:00 01:00', /a \+ must be percent-encoded, as %2B/],
    [`2026-12-04T10:00:00.${'1'.repeat(20)}Z`, /at most 40/],
  ])('refuses %s with one message', (text, message) => {
    const said = messages(text);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(message);
  });

  it('refuses what is not a string, and says so', () => {
    expect(messages(1733306400000)).toEqual(['must be a string (not a number)']);
  });

  it('is described as format date-time, with the pattern of what it takes', () => {
    expect(z.toJSONSchema(offsetDateTime)).toMatchObject({ type: 'string', format: 'date-time', maxLength: 40, pattern: expect.stringContaining('(:[0-5][0-9](\\.[0-9]+)?)?') });
    // The seconds may be left out, and a leap second is refused, as the hub does.
    const pattern = new RegExp(String((z.toJSONSchema(offsetDateTime) as { pattern?: string }).pattern), 'u');
    expect(['2026-12-04T10:00+01:00', '2016-12-31T23:59:60Z'].map((t) => pattern.test(t))).toEqual([true, false]);
  });
});

describe('every way in takes the same texts', () => {
  const minutes = '2026-12-04T10:00+01:00';

  it("an uplink message's time (a small system in Java)", () => {
    const json = JSON.stringify({
      id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abcd',
      type: 'expert.retired',
      version: 1,
      systemId: 'chengdu',
      correlationId: 'corr-1',
      time: minutes,
      payload: { localExpertId: 'e-1' },
    });
    expect(parseUplink(json)).toMatchObject({ ok: true, message: { time: minutes } });
    const refused = parseUplink(json.replace(minutes, '2026-12-04T24:00+01:00'));
    expect(refused).toMatchObject({ ok: false, reason: 'bad_schema' });
  });

  it("the audit routes' bounds and a key's validity", () => {
    expect(AuditQuery.safeParse({ user: 'nurse-1', from: '2026-12-01T00:00Z', to: minutes }).success).toBe(true);
    expect(AuditVerifyQuery.safeParse({ from: '2026-12-01T00:00Z', to: minutes }).success).toBe(true);
    expect(KeysBody.safeParse({ keys: [{}], validFrom: minutes, retiresAt: '2027-12-04T10:00Z' }).success).toBe(true);
    expect(AuditVerifyQuery.safeParse({ from: '2026-02-30T00:00Z' }).success).toBe(false);
  });
});
