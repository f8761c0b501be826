import type { JWTVerifyGetKey } from 'jose';

/**
 * An identity provider's key set (RTS_AUTH_JWKS_URL), fetched by this module rather than by jose's
 * createRemoteJWKSet: jose's remote set makes the request that finds the set old wait for the refetch, and refuses
 * every token once its own 10-minute cacheMaxAge has passed without a successful fetch (an identity provider down for
 * ten minutes locked every clinician out). Here:
 *
 * - A key set is current for JWKS_MAX_AGE_MS after the fetch that brought it started. The first token after that
 *   starts a refetch in the background and is verified with the set in hand (stale-while-revalidate), as are the
 *   tokens that come while the refetch is under way, for up to one fetch's timeout more. A token that comes later
 *   than that (the hub was idle) waits for the fetch. So a key the provider stopped serving verifies for at most a
 *   minute plus one fetch after it did, while the provider answers.
 * - A fetch that fails (no answer, timeout, an HTTP status other than 200, a body larger than JWKS_MAX_BODY_BYTES,
 *   a body that is not JSON or not a key set) is no answer: the set in hand is kept, and used while the provider keeps failing, up to `maxStaleMs` after the
 *   last successful fetch; later, no token can be checked (ERR_JWKS_UNAVAILABLE: HTTP answers 503 auth_unavailable). Another fetch is tried at most once
 *   per JWKS_RETRY_AFTER_FAILURE_MS (tokens keep coming, and a provider refusing connections fails at once). The
 *   first answer after an outage replaces the set at once.
 * - An answer (200, a JSON key set) is the provider's word, also when it holds no keys: every token is then refused.
 *   A provider that empties its key set has revoked every key, and the hub cannot tell that from a mistake.
 * - A token naming a kid the set lacks (a key the provider added) waits for a fetch, at most one per
 *   JWKS_UNKNOWN_KID_COOLDOWN_MS counted from the last such fetch (or for the fetch under way), so tokens with
 *   made-up kids cannot make the hub fetch the set with every request. Such a token is refused (ERR_JWKS_NO_MATCHING_KEY,
 *   401) only on the provider's word: when the last fetch (the one waited for, or the last one made, within the
 *   cooldown) was answered. When it failed, the provider may hold the kid (a key it added just before it went down)
 *   and the hub cannot tell: ERR_JWKS_UNAVAILABLE (503), at once within the cooldown or the retry interval.
 *
 * Ages and intervals (the set's minute, the outage allowance, the retry interval, the unknown-kid cooldown) are measured
 * on a monotonic clock (performance.now: the one no one sets), not the wall clock: a wall clock set back during an
 * outage (an NTP step, again and again) made the set in hand younger at each step and kept it in use past maxStaleMs,
 * and a clock set forward ended the allowance early. The wall clock only says, in the caller's terms, when the set
 * was fetched (`asOf`) and when a fetch was made (for the log).
 */

type Jose = typeof import('jose');
type LocalKeySet = ReturnType<Jose['createLocalJWKSet']>;

/** How old the identity provider's key set (RTS_AUTH_JWKS_URL) may be when a token is verified with it. */
export const JWKS_MAX_AGE_MS = 60_000;
/**
 * How long after fetching the key set for a token whose kid it lacked another such token is refused without fetching
 * it again (so tokens with made-up kids cannot make the hub fetch it with every request): jose's own default.
 */
export const JWKS_UNKNOWN_KID_COOLDOWN_MS = 30_000;
/** How long one fetch of the key set may take (jose's default): also how long past its minute the set is used while it is fetched again. */
export const JWKS_FETCH_TIMEOUT_MS = 5_000;
/** How long after a failed fetch the next is tried. */
export const JWKS_RETRY_AFTER_FAILURE_MS = 5_000;
/**
 * The most of an answer's body that is read. A real key set is a few KiB (a 4096-bit RSA key is under 1 KiB as a
 * JWK); whatever answers at the URL (a captive portal, a misconfigured proxy, a broken provider) may send a body
 * without end, which read whole grew the hub's memory for the fetch's 5 s at the network's speed. A longer body is a
 * failed fetch (the set in hand is kept). Also bounds the key set's size, so the CPU a token's key lookup takes.
 */
export const JWKS_MAX_BODY_BYTES = 512 * 1024;
/** RTS_AUTH_JWKS_MAX_STALE_SECONDS's default: how long a key set stays usable while the provider cannot be reached. */
export const JWKS_MAX_STALE_DEFAULT_MS = 3_600_000;

/**
 * What a fetch of the key set came to, for logs and metrics. `reason` is a fixed word, an HTTP status or a network
 * error code: never the URL (it may carry credentials) nor anything of a token. `at`: when the fetch started, on the
 * caller's wall clock (for the log); `monotonicAt`: the same moment on the monotonic clock, which intervals between
 * fetches (how often a warning is repeated) are measured on.
 */
export type JwksFetchOutcome =
  | Readonly<{ ok: true; at: number; monotonicAt: number; keys: number; afterFailures: boolean }>
  | Readonly<{ ok: false; at: number; monotonicAt: number; reason: string; keySetAgeMs: number | null; usableForMs: number }>;

export type RemoteKeySetOptions = Readonly<{
  url: string;
  /** How long after its last successful fetch the key set is used while fetches fail. */
  maxStaleMs: number;
  onFetch?: (outcome: JwksFetchOutcome) => void;
  /** Milliseconds on a clock that is never set (default performance.now): what ages and intervals are measured on. Tests pass their own. */
  monotonicNow?: () => number;
}>;

export type RemoteKeySet = {
  /**
   * The key lookup to verify a token that came `at` (the caller's wall clock) with, the age of the key set it uses
   * (`ageMs`, on the monotonic clock: a token verified with it is remembered no longer than that set is current), and
   * when that set was fetched on the caller's wall clock as it reads now (`asOf`: `at` less the age, for reports).
   * Throws (code ERR_JWKS_UNAVAILABLE) when there is no key set it may use.
   */
  keysFor(at: number): Promise<{ getKey: JWTVerifyGetKey; ageMs: number; asOf: number }>;
};

/** A failed fetch, with a reason fit for a log line. */
class JwksFetchFailure extends Error {
  constructor(readonly reason: string) {
    super(`JWKS fetch failed: ${reason}`);
  }
}

/** The body of `response`, read up to JWKS_MAX_BODY_BYTES: JwksFetchFailure('body too large') beyond. */
const readCappedBody = async (response: Response, signal: AbortSignal): Promise<Uint8Array> => {
  const tooLarge = () => new JwksFetchFailure(`body too large (over ${JWKS_MAX_BODY_BYTES} bytes)`);
  const declared = Number(response.headers.get('content-length') ?? '');
  if (Number.isFinite(declared) && declared > JWKS_MAX_BODY_BYTES) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    let chunk: Awaited<ReturnType<typeof reader.read>>;
    try {
      chunk = await reader.read();
    } catch {
      throw new JwksFetchFailure(signal.aborted ? 'timeout' : 'body cut off');
    }
    if (chunk.done) break;
    length += chunk.value.byteLength;
    if (length > JWKS_MAX_BODY_BYTES) {
      // Cancelled, not drained: the connection is closed rather than read to its end.
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(chunk.value);
  }
  return Buffer.concat(chunks, length);
};

const unavailable = (): Error => Object.assign(new Error('no usable key set from the identity provider'), { code: 'ERR_JWKS_UNAVAILABLE' });

/**
 * The user name and password written into a JWKS URL (https://user:password@idp/...), %-escapes decoded (a stray %,
 * not an escape, as written); null when it holds neither. A user name holding ':' (written %3A) cannot go as HTTP
 * Basic: RFC 7617 forbids it in the user-id, and the provider splits at the first colon, so takes another user and
 * password than those written; the setting's validation refuses such a URL (bootstrap/auth-config.ts).
 */
export const jwksUrlCredentials = (url: URL): Readonly<{ user: string; password: string }> | null => {
  const decoded = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part; // a stray % (not an escape): as written
    }
  };
  return url.username === '' && url.password === '' ? null : { user: decoded(url.username), password: decoded(url.password) };
};

export const createRemoteKeySet = (jose: Jose, options: RemoteKeySetOptions): RemoteKeySet => {
  const url = new URL(options.url);
  // Credentials written into the URL (https://user:password@idp/...) go as HTTP Basic, as curl sends them: fetch
  // refuses a URL that holds them (a TypeError, which quotes the URL), so such a provider was never reached, and
  // every fetch was reported 'unreachable'. The URL fetched, and anything said of it, holds them no more.
  const credentials = jwksUrlCredentials(url);
  const authorization = credentials === null ? null : `Basic ${Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64')}`;
  url.username = '';
  url.password = '';
  const monotonicNow = options.monotonicNow ?? (() => performance.now());
  let local: LocalKeySet | null = null;
  // Every time below is on the monotonic clock.
  /** When the fetch that brought `local` started. */
  let keysAsOf: number | null = null;
  /** When the last fetch started that failed, unless one succeeded since. */
  let failedAt: number | null = null;
  let inflight: Promise<boolean> | null = null;
  let kidFetchedAt: number | null = null;

  const fetchKeySet = async (): Promise<LocalKeySet> => {
    const signal = AbortSignal.timeout(JWKS_FETCH_TIMEOUT_MS);
    let response: Response;
    try {
      // redirect manual: a redirect is no key set (as jose), not a hop to wherever the answer points.
      const headers: Record<string, string> = { accept: 'application/json, application/jwk-set+json', ...(authorization === null ? {} : { authorization }) };
      response = await fetch(url, { method: 'GET', redirect: 'manual', signal, headers });
    } catch (error) {
      const code = (error as { cause?: { code?: unknown } }).cause?.code;
      throw new JwksFetchFailure(signal.aborted ? 'timeout' : typeof code === 'string' && /^[A-Z0-9_]{1,40}$/.test(code) ? code : 'unreachable');
    }
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      throw new JwksFetchFailure(`HTTP ${response.status}`);
    }
    const body = await readCappedBody(response, signal);
    let json: unknown;
    try {
      // As response.json() decodes it: UTF-8, a byte-order mark dropped.
      json = JSON.parse(new TextDecoder().decode(body));
    } catch {
      throw new JwksFetchFailure('malformed JSON');
    }
    try {
      return jose.createLocalJWKSet(json as Parameters<Jose['createLocalJWKSet']>[0]);
    } catch {
      throw new JwksFetchFailure('not a key set');
    }
  };

  /**
   * Fetches the key set unless a fetch is under way (then that one's outcome): whether it brought one. `now` on the
   * monotonic clock, `at` the same moment on the wall clock (for the outcome reported).
   */
  const refresh = (now: number, at: number): Promise<boolean> =>
    (inflight ??= fetchKeySet()
      .then(
        (fetched) => {
          const afterFailures = failedAt !== null;
          local = fetched;
          keysAsOf = now;
          failedAt = null;
          options.onFetch?.({ ok: true, at, monotonicAt: now, keys: fetched.jwks()?.keys.length ?? 0, afterFailures });
          return true;
        },
        (error: unknown) => {
          failedAt = now;
          const keySetAgeMs = keysAsOf === null ? null : Math.max(0, now - keysAsOf);
          const usableForMs = keySetAgeMs === null ? 0 : Math.max(0, options.maxStaleMs - keySetAgeMs);
          options.onFetch?.({ ok: false, at, monotonicAt: now, reason: error instanceof JwksFetchFailure ? error.reason : 'unreachable', keySetAgeMs, usableForMs });
          return false;
        },
      )
      .finally(() => (inflight = null)));

  const lookup = (getKey: LocalKeySet, now: number, at: number): JWTVerifyGetKey => async (header, token) => {
    try {
      return await getKey(header, token);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw error;
      let pending = inflight;
      if (pending === null) {
        // No fetch now (within the cooldown, or the retry interval after a failure): the last fetch's outcome says.
        const retryDue = failedAt === null || now - failedAt >= JWKS_RETRY_AFTER_FAILURE_MS;
        if (!retryDue || (kidFetchedAt !== null && now - kidFetchedAt < JWKS_UNKNOWN_KID_COOLDOWN_MS)) throw failedAt === null ? error : unavailable();
        kidFetchedAt = now;
        pending = refresh(now, at);
      }
      // The provider did not answer: the kid may be a key it added just before, which the hub cannot tell (503), not
      // a token it may call bad (401: the patient page throws its sign-in away).
      if (!(await pending) || local === null) throw unavailable();
      return local(header, token);
    }
  };

  /**
   * The set in hand for a token that came at `now` (monotonic clock), `at` (wall clock): asOf is when its fetch started,
   * on the wall clock as it reads now (a step of the wall clock since does not move it out of its minute or into it).
   */
  const usable = (now: number, at: number) => ({ getKey: lookup(local!, now, at), ageMs: now - keysAsOf!, asOf: at - (now - keysAsOf!) });

  return {
    keysFor: async (at) => {
      const now = monotonicNow();
      const retryDue = failedAt === null || now - failedAt >= JWKS_RETRY_AFTER_FAILURE_MS;
      if (local === null || keysAsOf === null) {
        // None yet: each token waits for a fetch (one in flight at a time, one per retry interval while it fails).
        const pending = inflight ?? (retryDue ? refresh(now, at) : null);
        if (pending === null || !(await pending)) throw unavailable();
        return usable(now, at);
      }
      const age = now - keysAsOf;
      if (age < JWKS_MAX_AGE_MS) return usable(now, at);
      const pending = inflight ?? (retryDue ? refresh(now, at) : null);
      // Within a fetch's time of its minute, or while the provider has failed to answer within the last minute (and
      // for no longer than maxStaleMs): used as it is, the fetch running in the background.
      const providerFailedLately = failedAt !== null && now - failedAt < JWKS_MAX_AGE_MS;
      if (age < JWKS_MAX_AGE_MS + JWKS_FETCH_TIMEOUT_MS || (providerFailedLately && age < options.maxStaleMs)) return usable(now, at);
      // Older than that (the hub was idle, or the outage has lasted longer than maxStaleMs): the fetch decides.
      if (pending !== null && (await pending)) return usable(now, at);
      if (now - keysAsOf < options.maxStaleMs) return usable(now, at);
      throw unavailable();
    },
  };
};
