import { createHash, timingSafeEqual, webcrypto } from 'node:crypto';
import type { JWTVerifyGetKey, JWTVerifyOptions } from 'jose';
import { z } from 'zod';
import { ROLES } from '../../application/access/policy';
import { holdsCprNumber } from '../../domain/monitoring/cpr-like';
import { holdsOneLineControl } from '../../domain/shared/text-limits';
import { PATIENT_KEY_PATTERN } from '../../application/ports/patient-keys';
import { createRemoteKeySet, JWKS_MAX_AGE_MS, JWKS_MAX_STALE_DEFAULT_MS, JWKS_UNKNOWN_KID_COOLDOWN_MS, type JwksFetchOutcome, type RemoteKeySet } from './remote-key-set';

/**
 * Bearer tokens (JWT, verified with jose) and API keys. jose is ESM-only: it is loaded on first use with a
 * dynamic import, so modules that never verify a token (and jest suites that do not need one) never load it.
 *
 * Claims: sub, role (patient | clinician | system | operator), systemId (clinicians and systems), iss, aud, exp, and
 * for patients one of:
 *   patientKey  the patient's pseudonymous key (HMAC of the CPR number under the hub's pseudonym secret): what the
 *               hub's own tokens (dev-login, token.js) carry, so a token that ends up in a browser's history, an
 *               environment or a proxy's log holds no CPR number;
 *   patient     the CPR number, as an identity provider knows the patient (it cannot know our pseudonym): turned
 *               into the pseudonymous key at once and never logged.
 * A token with both is refused: the two could name different patients.
 */
export const TokenClaims = z
  .object({
    // No control characters: the subject goes into the audit trail (NUL fails a PostgreSQL append) and log lines.
    sub: z.string().min(1).max(200).refine((sub) => !holdsOneLineControl(sub), 'no control characters'),
    role: z.enum(ROLES),
    // An identity provider's CPR number, ddmmyy-ssss or the ten digits many of them give: another shape is a token
    // refused with its reason (401), not a patient who silently reaches nothing (403 on every request).
    patient: z.string().regex(/^\d{6}-?\d{4}$/, 'a CPR number, ddmmyy-ssss or ten digits').optional(),
    patientKey: z.string().regex(PATIENT_KEY_PATTERN).optional(),
    systemId: z.string().regex(/^[a-z0-9][a-z0-9-]{1,31}$/).optional(),
  })
  .refine((c) => c.patient === undefined || c.patientKey === undefined, { message: 'patient and patientKey together', path: ['patientKey'] });
export type TokenClaims = z.infer<typeof TokenClaims>;

/**
 * Whether a token's sub or systemId is a CPR number: holdsCprNumber (domain/monitoring/cpr-like), the refusals'
 * strength (a form bounded by non-digits, not digits glued inside a longer run), since a refused sub locks its user
 * out for good: an identity provider's 24-hex-digit sub whose digits happen to hold ten with a date glued to others
 * is not refused.
 */
export { holdsCprNumber };

export { patientSubject } from '../../application/access/patient-subject';

/** InvalidTokenError's reason for a token whose `sub` is a CPR number (see holdsCprNumber). */
export const SUB_IS_CPR = 'ERR_SUB_IS_CPR';
/**
 * InvalidTokenError's reason for a token whose `systemId` is a CPR number (see holdsCprNumber): the claim is recorded
 * with every audit entry of the caller, as the sub is, and names a system in queries and stream names. POST /systems
 * refuses such an id (invalid_system_id), so no registered system has one.
 */
export const SYSTEM_ID_IS_CPR = 'ERR_SYSTEM_ID_IS_CPR';

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
    this.name = 'InvalidTokenError';
  }
}

/**
 * No token can be checked now: the identity provider's key set cannot be used (never fetched since the start, or its
 * outage has lasted longer than RTS_AUTH_JWKS_MAX_STALE_SECONDS). Not an InvalidTokenError: the token was not judged,
 * and a client told "your token is bad" (401) throws its user's sign-in away for the hub's fault. HTTP answers 503.
 */
export class AuthUnavailableError extends Error {
  readonly reason = 'ERR_JWKS_UNAVAILABLE';
  constructor() {
    super("no usable key set from the identity provider: tokens cannot be checked");
    this.name = 'AuthUnavailableError';
  }
}

type Jose = typeof import('jose');
let josePromise: Promise<Jose> | null = null;
const loadJose = (): Promise<Jose> => (josePromise ??= import('jose'));

/**
 * How far a token's `iat` and `nbf` may lie ahead of this hub's clock (the clocks of issuer and hub differ a little).
 * Not `exp`: a token expires at its `exp` by this hub's clock.
 */
export const ISSUED_AT_SKEW_MS = 60_000;

export type VerifierOptions = Readonly<
  { issuer: string; audience: string } & (
    | { secret: Buffer }
    | {
        jwksUrl: string;
        /** How long the key set last fetched stays usable while the provider cannot be reached (RTS_AUTH_JWKS_MAX_STALE_SECONDS). */
        jwksMaxStaleMs?: number;
        /** Told of every fetch of the key set (the hub logs a provider that cannot be reached, and counts it). */
        onJwksFetch?: (outcome: JwksFetchOutcome) => void;
      }
  )
>;

export { JWKS_MAX_AGE_MS, JWKS_UNKNOWN_KID_COOLDOWN_MS, JWKS_MAX_STALE_DEFAULT_MS, type JwksFetchOutcome };

/** The reason codes of a refused claim that the 401 names (tokens signed right, with a claim this hub does not take). */
const CLAIM_CODES: Readonly<Record<string, string>> = { nbf: 'ERR_JWT_NOT_YET_VALID', iss: 'ERR_JWT_WRONG_ISSUER', aud: 'ERR_JWT_WRONG_AUDIENCE' };

/**
 * jwtVerify against the identity provider's key set, trying each key that matches the token's kid and alg where there
 * are several (a provider that gives its new key the old one's kid while it still publishes the old one, or that lists
 * a key twice): jose refuses the token then (ERR_JWKS_MULTIPLE_MATCHING_KEYS) and leaves trying them to its caller, so
 * every token under that kid was refused. Each key of the set is one the provider vouches for, so the first whose
 * signature holds is as good as a single match; if none does, the token is refused as with a wrong signature.
 */
const verifyWithKeySet = async (jose: Jose, token: string, getKey: JWTVerifyGetKey, checks: JWTVerifyOptions) => {
  try {
    return await jose.jwtVerify(token, getKey, checks);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' || !(Symbol.asyncIterator in (error as object))) throw error;
    let lastError: unknown = error;
    for await (const key of error as AsyncIterable<webcrypto.CryptoKey>) {
      try {
        return await jose.jwtVerify(token, key, checks);
      } catch (attempt) {
        if ((attempt as { code?: string }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw attempt;
        lastError = attempt;
      }
    }
    throw lastError;
  }
};

/**
 * The reason a token is refused whatever key the identity provider's set holds, null when only a key can tell: not a
 * compact JWS, no header or payload jose can read, an alg this hub does not take (HS256 with a public key as its secret,
 * none), or expired. jose finds the first three before it looks for a key, the last after the signature; found here
 * before the key set is asked for, such a token is refused (401) at once, without waiting for a fetch of the set, and
 * never answered 503 auth_unavailable ("keep it and retry") while the set cannot be used: made-up tokens then cost
 * no fetch, and a client with an expired token is told to get another one rather than to wait for the provider.
 */
const refusedWithoutKeys = (jose: Jose, token: string, algorithms: readonly string[], at: number): string | null => {
  if (token.split('.').length !== 3) return 'ERR_JWS_INVALID';
  let alg: unknown;
  try {
    ({ alg } = jose.decodeProtectedHeader(token));
  } catch {
    return 'ERR_JWS_INVALID';
  }
  if (typeof alg !== 'string' || alg === '') return 'ERR_JWS_INVALID';
  if (!algorithms.includes(alg)) return 'ERR_JOSE_ALG_NOT_ALLOWED';
  let exp: unknown;
  try {
    ({ exp } = jose.decodeJwt(token));
  } catch {
    return 'ERR_JWT_INVALID';
  }
  // As checked after the signature below: whole seconds, no tolerance.
  return typeof exp === 'number' && exp <= Math.floor(at / 1000) ? 'ERR_JWT_EXPIRED' : null;
};

/** How long a verified token's claims are reused without verifying it again, and how many are kept. */
export type VerifierCache = Readonly<{
  maxEntries?: number;
  maxAgeMs?: number;
  /** The wall clock (default Date.now): what a token's exp, nbf and iat are checked against. */
  now?: () => number;
  /**
   * A clock that is never set (default performance.now): what the identity provider's key set's ages are measured on
   * (remote-key-set.ts), and how long a verified token is remembered (maxAgeMs, and no longer than its key set's minute).
   */
  monotonicNow?: () => number;
}>;

/**
 * A verifier: the claims of a valid token, InvalidTokenError otherwise (expired, wrong signature, issuer, audience,
 * claims).
 *
 * A token that verified is remembered (default: up to 10,000 tokens, each for at most 60 s and never past its
 * `exp`), so a client sending the same bearer token with every request pays the signature check once a minute
 * instead of every time (it was ~14 % of the hub's CPU per upload). Only successes are remembered. What that
 * allows: a token signed with a key that the identity provider's JWKS drops is still accepted for up to
 * `maxAgeMs`; JWTs have no revocation here either way.
 */
export const createTokenVerifier = (options: VerifierOptions, cache: VerifierCache = {}): ((token: string) => Promise<TokenClaims>) => {
  const maxEntries = cache.maxEntries ?? 10_000;
  const maxAgeMs = cache.maxAgeMs ?? 60_000;
  const now = cache.now ?? Date.now;
  const monotonicNow = cache.monotonicNow ?? (() => performance.now());
  type VerifyKey = webcrypto.CryptoKey | RemoteKeySet;
  // The HMAC secret as a WebCrypto key, imported once, for HS256 verification only. jose runs on WebCrypto: a
  // KeyObject or a Uint8Array is imported again on every verification, which took more than half its cost
  // (bench/tokens.js: 110-135 against 47-58 µs of CPU per token with 32 in flight). The identity provider's key set:
  // see remote-key-set.ts (when it is fetched again, and how long it is used while the provider cannot be reached).
  const loadKey = async (): Promise<VerifyKey> =>
    'secret' in options
      ? webcrypto.subtle.importKey('raw', options.secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify'])
      : createRemoteKeySet(await loadJose(), {
          url: options.jwksUrl,
          maxStaleMs: options.jwksMaxStaleMs ?? JWKS_MAX_STALE_DEFAULT_MS,
          ...(options.onJwksFetch ? { onFetch: options.onJwksFetch } : {}),
          ...(cache.monotonicNow ? { monotonicNow: cache.monotonicNow } : {}),
        });
  let keyPromise: Promise<VerifyKey> | null = null;
  const key = () => (keyPromise ??= loadKey());
  /**
   * `until`: on the monotonic clock, maxAgeMs after it was verified and no later than the end of its key set's minute:
   * on the wall clock, each small step back (an NTP correction, never behind `since`) kept it remembered as much longer,
   * a dropped key's token with it. `exp` (the token's own, ms) and `since` (when it was verified) on the wall clock,
   * which exp, nbf and iat are checked on: a wall clock set back before `since` drops it, to check nbf and iat again.
   */
  const verified = new Map<string, { claims: TokenClaims; since: number; exp: number; until: number }>();
  return async (token) => {
    const at = now();
    const steady = monotonicNow();
    const hit = verified.get(token);
    if (hit) {
      if (steady < hit.until && at < hit.exp && hit.since <= at) return hit.claims;
      verified.delete(token);
    }
    const jose = await loadJose();
    let payload: unknown;
    /** How old (monotonic clock) the key set the token was verified with was, when it was. */
    let keySetAgeMs: number | null = null;
    try {
      const checks = {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: 'secret' in options ? ['HS256'] : ['RS256', 'PS256', 'ES256', 'EdDSA'],
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(at),
        // For `nbf`, as for `iat` below: an identity provider 30 s ahead issues tokens with iat = nbf = its now, and
        // those were refused for their first 30 s with the generic detail. jose applies it to `exp` too: checked
        // again below without it.
        clockTolerance: ISSUED_AT_SKEW_MS / 1000,
      };
      const k = await key();
      if ('keysFor' in k) {
        const refused = refusedWithoutKeys(jose, token, checks.algorithms, at);
        if (refused !== null) throw new InvalidTokenError(refused);
        const current = await k.keysFor(at);
        // Remembered no longer than the key set it was verified with is current: a key the provider dropped then
        // stops the tokens remembered too.
        keySetAgeMs = current.ageMs;
        ({ payload } = await verifyWithKeySet(jose, token, current.getKey, checks));
      } else ({ payload } = await jose.jwtVerify(token, k, checks));
    } catch (error) {
      if (error instanceof InvalidTokenError) throw error;
      const { code, claim } = error as { code?: string; claim?: string };
      if (code === 'ERR_JWKS_UNAVAILABLE') throw new AuthUnavailableError();
      // jose checks the claims after the signature: a refused iss or aud is a caller with a well-signed token (an
      // identity provider set up with another issuer or audience), who may be told which.
      const claimCode = code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' ? CLAIM_CODES[claim ?? ''] : undefined;
      throw new InvalidTokenError(claimCode ?? code ?? 'unverifiable');
    }
    // As jose compares it (whole seconds), without the tolerance given above for nbf.
    if ((payload as { exp: number }).exp <= Math.floor(at / 1000)) throw new InvalidTokenError('ERR_JWT_EXPIRED');
    // jose checks `iat` only against a maximum token age, which is not set here: a token issued in the future (an
    // identity provider with a wrong clock, or one minted to outlive a key rotation) would be taken as it stands.
    const iat = (payload as { iat?: unknown }).iat;
    if (typeof iat === 'number' && iat * 1000 > at + ISSUED_AT_SKEW_MS) throw new InvalidTokenError('ERR_JWT_ISSUED_IN_FUTURE');
    const claims = TokenClaims.safeParse(payload);
    if (!claims.success) throw new InvalidTokenError('claims');
    if (holdsCprNumber(claims.data.sub)) throw new InvalidTokenError(SUB_IS_CPR);
    if (claims.data.systemId !== undefined && holdsCprNumber(claims.data.systemId)) throw new InvalidTokenError(SYSTEM_ID_IS_CPR);
    const exp = (payload as { exp: number }).exp * 1000;
    if (maxAgeMs > 0 && maxEntries > 0) {
      if (verified.size >= maxEntries) verified.delete(verified.keys().next().value as string);
      verified.set(token, { claims: claims.data, since: at, exp, until: steady + Math.min(maxAgeMs, keySetAgeMs === null ? Infinity : JWKS_MAX_AGE_MS - keySetAgeMs) });
    }
    return claims.data;
  };
};

/** Sign an HS256 token (the embedded profile's own tokens: dev login and `node dist/bootstrap/token.js`). */
export const signToken = async (secret: Buffer, claims: TokenClaims, options: { issuer: string; audience: string; ttlSeconds: number }): Promise<string> => {
  // Callers check first, with their own answer.
  if (holdsCprNumber(claims.sub)) throw new Error("a token's sub must not be a CPR number");
  if (claims.systemId !== undefined && holdsCprNumber(claims.systemId)) throw new Error("a token's systemId must not be a CPR number");
  const jose = await loadJose();
  const { sub, ...rest } = claims;
  // iat and exp from this module's Date.now, which createTokenVerifier checks them against, not from jose's own
  // clock: the same time source on both sides (jose may be loaded in another realm, as the tests' mock of it is).
  const issuedAt = Math.floor(Date.now() / 1000);
  return new jose.SignJWT(rest)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + Math.max(1, Math.floor(options.ttlSeconds)))
    .sign(new Uint8Array(secret));
};

export const sha256HexOf = (value: string): string => createHash('sha256').update(value, 'utf8').digest('hex');

/** The system an API key belongs to (keys stored as sha256 hex), compared in constant time. */
export const systemOfApiKey = (apiKeys: Readonly<Record<string, string>>, presented: string): string | null => {
  if (presented.length < 16 || presented.length > 512) return null;
  const digest = Buffer.from(sha256HexOf(presented), 'hex');
  let found: string | null = null;
  for (const [systemId, hex] of Object.entries(apiKeys)) {
    const stored = Buffer.from(hex, 'hex');
    if (stored.length === digest.length && timingSafeEqual(stored, digest)) found = systemId;
  }
  return found;
};
