import { createHash } from 'node:crypto';
import type { EventStore } from '../ports/event-store';
import { uuidV5 } from '../ids';
import { checkRecordedSetting, recordedSetting, type RecordedSetting } from '../recorded-setting';

/**
 * One way of verifying callers' tokens per store, among the hub processes that share it (PostgreSQL,
 * EventStoreDB). Behind one address, callers reach whichever process the load balancer picks. A process that
 * verifies with another HS256 secret (a second hub started without RTS_AUTH_JWT_SECRET generates its own into
 * its data directory), another identity provider, or other issuer or audience claims answers 401 to tokens the
 * others accept, at random. One started with RTS_AUTH=off lets every caller read and change all patients' data
 * that the others protect. So each process records how it verifies in the store at start, and one that verifies
 * otherwise than the last recorded refuses to start. A deliberate change of the whole deployment (a new secret,
 * another identity provider) is accepted once with `acceptChange`; the processes started after it find it.
 *
 * What is recorded tells settings apart and reveals no secret: an HS256 secret only by its fingerprint (an HMAC
 * under the secret of a fixed text), a JWKS by its URL without credentials, and by only a fingerprint of its query
 * string, which some identity providers use to carry an access key.
 */
export const TOKEN_VERIFICATION_STREAM = 'hub-token-verification';
export const TOKEN_VERIFICATION_IN_USE = 'TokenVerificationInUse';

export type TokenVerification =
  | Readonly<{ mode: 'off' }>
  | Readonly<{ mode: 'hs256'; secretFingerprint: string; issuer: string; audience: string }>
  | Readonly<{ mode: 'jwks'; jwksUrl: string; jwksQuerySha256?: string; issuer: string; audience: string }>;

/**
 * A JWKS URL as it is recorded and shown: no user name or password, no fragment, and the query string (which may
 * carry an access key) only as the first 32 hex digits of its SHA-256, so a changed query is still a changed setting.
 * Also reads what an earlier build recorded (the whole query in the URL) as the same setting.
 */
export const jwksLocation = (raw: string): Readonly<{ jwksUrl: string; jwksQuerySha256?: string }> => {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { jwksUrl: raw };
  }
  const query = url.search.slice(1);
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  return query === '' ? { jwksUrl: url.href } : { jwksUrl: url.href, jwksQuerySha256: createHash('sha256').update(query, 'utf8').digest('hex').slice(0, 32) };
};

/** How a setting reads in an operator's message (no secret in it). */
export const describeTokenVerification = (v: TokenVerification): string => {
  if (v.mode === 'off') return 'no token verification (RTS_AUTH=off)';
  const claims = `issuer ${JSON.stringify(v.issuer)}, audience ${JSON.stringify(v.audience)}`;
  return v.mode === 'hs256'
    ? `an HS256 secret with fingerprint ${v.secretFingerprint.slice(0, 12)} (${claims})`
    : `the identity provider's keys at ${v.jwksUrl}${v.jwksQuerySha256 ? ` with a query string of fingerprint ${v.jwksQuerySha256.slice(0, 12)}` : ''} (${claims})`;
};

export class TokenVerificationMismatchError extends Error {
  readonly code = 'token_verification_mismatch';
  constructor(
    readonly recorded: TokenVerification,
    readonly mine: TokenVerification,
  ) {
    super(`the store's hub processes verify tokens with ${describeTokenVerification(recorded)}, this one would with ${describeTokenVerification(mine)}`);
    this.name = 'TokenVerificationMismatchError';
  }
}

const text = (value: unknown): value is string => typeof value === 'string' && value.length > 0;

const verificationOf = (data: Readonly<Record<string, unknown>>): TokenVerification | null => {
  const { mode, secretFingerprint, jwksUrl, jwksQuerySha256, issuer, audience } = data;
  if (mode === 'off') return { mode };
  if (!text(issuer) || !text(audience)) return null;
  if (mode === 'hs256' && text(secretFingerprint)) return { mode, secretFingerprint, issuer, audience };
  if (mode === 'jwks' && text(jwksUrl)) {
    // An earlier build recorded the query string in the URL itself: read it as this build would record it.
    if (jwksUrl.includes('?')) return { mode, ...jwksLocation(jwksUrl), issuer, audience };
    return { mode, jwksUrl, ...(text(jwksQuerySha256) ? { jwksQuerySha256 } : {}), issuer, audience };
  }
  return null;
};

/** The fields in a fixed order: what is compared, recorded and hashed into the event id. */
const canonical = (v: TokenVerification): Record<string, string> =>
  v.mode === 'off'
    ? { mode: v.mode }
    : v.mode === 'hs256'
      ? { mode: v.mode, secretFingerprint: v.secretFingerprint, issuer: v.issuer, audience: v.audience }
      : { mode: v.mode, jwksUrl: v.jwksUrl, ...(v.jwksQuerySha256 ? { jwksQuerySha256: v.jwksQuerySha256 } : {}), issuer: v.issuer, audience: v.audience };

const tokenVerificationSetting = (acceptChange: boolean): RecordedSetting<TokenVerification, 'changed'> => ({
  stream: TOKEN_VERIFICATION_STREAM,
  type: TOKEN_VERIFICATION_IN_USE,
  parse: verificationOf,
  data: canonical,
  eventId: (mine, version) => uuidV5(`token-verification/${version}/${JSON.stringify(canonical(mine))}`),
  same: (last, mine) => JSON.stringify(canonical(last)) === JSON.stringify(canonical(mine)),
  judge: (last, mine) => {
    if (!acceptChange) throw new TokenVerificationMismatchError(last, mine);
    return 'changed';
  },
});

/** The verification last recorded in the store; null when none was recorded yet. */
export const recordedTokenVerification = async (store: EventStore): Promise<TokenVerification | null> =>
  (await recordedSetting(store, tokenVerificationSetting(false))).value;

/**
 * 'recorded' (the store had none), 'matches', or 'changed' (another and `acceptChange`: recorded as the one in use
 * now); throws TokenVerificationMismatchError for another without `acceptChange`.
 */
export const checkTokenVerification = (
  store: EventStore,
  mine: TokenVerification,
  recordedAt: string,
  options: { acceptChange?: boolean } = {},
): Promise<'recorded' | 'matches' | 'changed'> => checkRecordedSetting(store, tokenVerificationSetting(options.acceptChange ?? false), mine, recordedAt);
