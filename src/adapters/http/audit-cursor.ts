import { createHash } from 'node:crypto';
import { z } from 'zod';
import { AUDIT_PARTITIONS } from '../../application/audit/audit-chain';
import type { AuditPosition } from '../../application/audit/audit-trail';
import { ValidationError } from '../../domain/shared/errors';

/**
 * The paging cursor of POST /audit/search and the deprecated GET /audit: an opaque token (base64url) around the
 * audit trail's position (the UTC day of the last entry returned, and per chain the version of the last entry taken
 * from it) and a fingerprint of the query that gave it, so a cursor goes on only that query: the same patient or
 * user (resource, request id) and the same `from` and `to` as sent (an omitted bound stays omitted), whichever of the
 * two routes asks.
 * A cursor taken to another query, cut, or made up is 422 invalid_cursor.
 *
 * The fingerprint is a truncated SHA-256 of the query as the hub sees it: the patient's pseudonymous key (never
 * the CPR number), the user, the resource or the request id, and the bounds in milliseconds. A token holds no personal data: decoded, it is
 * `a1|<fingerprint>|<day>|<version>,...` with one version per chain of the day.
 */
export type AuditQueryKey = Readonly<{
  by: 'patient' | 'user' | 'resource' | 'requestId';
  /** The patient's pseudonymous key, the user (token subject), the resource or the request id. */
  who: string;
  /** The bounds as the caller gave them, in ms since the epoch; null when left out. */
  from: number | null;
  to: number | null;
}>;

const VERSION = '(?:-1|0|[1-9]\\d{0,17})';
const TEXT = new RegExp(`^a1\\|([0-9a-f]{16})\\|(\\d{4}-\\d{2}-\\d{2})\\|(${VERSION}(?:,${VERSION}){${AUDIT_PARTITIONS - 1}})$`);
const isDay = (day: string): boolean => {
  const t = Date.parse(`${day}T00:00:00Z`);
  return Number.isFinite(t) && new Date(t).toISOString().slice(0, 10) === day;
};

const fingerprint = (key: AuditQueryKey): string =>
  createHash('sha256').update(JSON.stringify(['audit-query', key.by, key.who, key.from, key.to]), 'utf8').digest('hex').slice(0, 16);

/** The token's shape and contents, checked with zod at the edge: what it says, not yet whether it fits the query. */
export const AuditCursor = z
  .string()
  .max(400)
  .regex(/^[A-Za-z0-9_-]+$/)
  .transform((token, ctx) => {
    const text = Buffer.from(token, 'base64url').toString('utf8');
    const m = TEXT.exec(text);
    // Only the encoding given out: Buffer's decoder would pass over stray trailing characters.
    if (!m || !isDay(m[2]!) || Buffer.from(text, 'utf8').toString('base64url') !== token) {
      ctx.issues.push({ code: 'custom', message: 'not a cursor this API gave out', input: token });
      return z.NEVER;
    }
    return { fingerprint: m[1]!, position: { day: m[2]!, after: m[3]!.split(',').map((v) => BigInt(v)) } satisfies AuditPosition };
  });

export const encodeAuditCursor = (key: AuditQueryKey, position: AuditPosition): string => {
  if (position.after.length !== AUDIT_PARTITIONS) throw new Error(`an audit position has ${AUDIT_PARTITIONS} chain versions`);
  return Buffer.from(`a1|${fingerprint(key)}|${position.day}|${position.after.map(String).join(',')}`, 'utf8').toString('base64url');
};

const invalid = (message: string): ValidationError =>
  new ValidationError('invalid_cursor', 'the cursor is not one this API gave out for this query; give the same patient, user, resource or request id, from and to as the answer that carried it', [
    { path: 'query.cursor', message },
  ]);

/** The position in `token`, when it is a cursor this hub gave out for the query `key`; else 422 invalid_cursor. */
export const decodeAuditCursor = (token: string, key: AuditQueryKey): AuditPosition => {
  const parsed = AuditCursor.safeParse(token);
  if (!parsed.success) throw invalid('unknown cursor');
  if (parsed.data.fingerprint !== fingerprint(key)) throw invalid('given out for another query');
  return parsed.data.position;
};
