// Message security for the SDK (issue 5): a MessageCodec that signs what this system sends with its own key and
// encrypts it for the hub, and opens what the hub sends (decrypt with our key, verify the hub's signature).
//
//   const keys = await generatePartyKeys('city-a');                    // keep exportPartyKeys(keys) secret on disk
//   await registerSystem('https://hub.example.org', { id: 'city-a', name: 'City A', area: 'North' }, keys,  // POST /systems with the public keys,
//     { authorization: `Bearer ${operatorToken}` });                                                          // which is an operator's act
//   const codec = await joseCodecFor({ keys, hubUrl: 'https://hub.example.org' });                     // fetches /.well-known/jwks.json
//   // https:, or http: to the hub's own machine (loopback); plain http: elsewhere only with insecureHubUrl: true
//   const client = await RtsClient.connect({ systemId: 'city-a', url, codec });
//
// Rotation without downtime, in this order: generate a new key pair; switch the codec to PartyKeys with BOTH
// decryption keys (old and new) FIRST, since the hub encrypts for the newest key as soon as it is registered;
// then POST the new public keys to /systems/<id>/keys; then retire the old kids (POST
// /systems/<id>/keys/<kid>/retire with a date) once nothing is queued for them. Registered before the codec had
// the new decryption key, the hub's next message to the system was dead-lettered there as not_for_us. The hub
// rotates its own keys the same way; the codec re-reads the hub's JWKS once when a hub key is unknown, and when
// the keys it holds are older than 5 minutes, and from then on trusts only the hub keys it lists.
import { JoseCodec, type JoseDecodeResult } from '../adapters/crypto/jose-codec';
import { HUB_SYSTEM_ID } from '../domain/directory/connected-system';
import { ConflictError } from '../domain/shared/errors';
import { KeyRegistry, publicJwks, type JWK, type PartyKeys } from '../adapters/crypto/jose-keys';
import { isLoopbackHost } from '../adapters/validation/loopback-host';
import type { AnyEnvelope, DecodeContext, EncodeContext, EncodedMessage, MessageCodec } from './codec';

export { JoseCodec, JoseError, type JoseErrorCode } from '../adapters/crypto/jose-codec';
export {
  KeyRegistry,
  exportPartyKeys,
  generateEncryptionKey,
  generatePartyKeys,
  generateSigningKey,
  importPartyKeys,
  kidOf,
  publicJwks,
  type PartyKeys,
  type StoredPartyKeys,
} from '../adapters/crypto/jose-keys';

export const HUB_PARTY = HUB_SYSTEM_ID;

/** How long a request to the hub's HTTP API (its JWKS, POST /systems) may take before it is given up. */
export const HUB_HTTP_TIMEOUT_MS = 10_000;

export type HubUrlOptions = Readonly<{
  /**
   * Allow a plain `http://` hub URL whose host is not loopback. Off by default: the JWKS read from it is what the
   * codec trusts (a key slipped into it over the wire signs "hub" messages that are then accepted), and POST /systems
   * carries an operator's token. Only for a network the operator controls end to end.
   */
  insecureHubUrl?: boolean;
}>;

/**
 * The hub's URL, checked: `https:`, or `http:` to a loopback host (the hub's own machine, or a TLS proxy there);
 * plain `http:` elsewhere only with `insecureHubUrl`. Throws TypeError naming the URL's scheme and host.
 */
export const checkedHubUrl = (hubUrl: string | URL, options: HubUrlOptions = {}): URL => {
  let url: URL;
  try {
    url = new URL(hubUrl);
  } catch {
    throw new TypeError('the hub URL is not a URL (give e.g. https://hub.example.org)');
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol !== 'http:') throw new TypeError(`the hub URL's scheme ${url.protocol} is not https: or http:`);
  if (isLoopbackHost(url.hostname) || options.insecureHubUrl === true) return url;
  throw new TypeError(
    `the hub URL http://${url.host} is not https: the hub's keys read over it could be replaced on the way, and POST /systems sends an operator's token; ` +
      'use https:// (the hub behind its TLS proxy), or pass insecureHubUrl: true for a network you control end to end',
  );
};

/** A request to the hub's HTTP API: to a checked URL, redirects not followed (one could lead to http: or elsewhere), bounded in time. */
const hubRequest = async (hubUrl: string, path: string, init: RequestInit, options: HubUrlOptions): Promise<Response> => {
  const url = new URL(path, checkedHubUrl(hubUrl, options));
  try {
    return await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(HUB_HTTP_TIMEOUT_MS) });
  } catch (error) {
    const reason = (error as { name?: string }).name === 'TimeoutError' ? `no answer in ${HUB_HTTP_TIMEOUT_MS} ms` : String((error as { cause?: unknown }).cause ?? error);
    throw new Error(`${init.method ?? 'GET'} ${path}: ${reason}`);
  }
};

/** The most an answer of the hub's HTTP API (its JWKS, POST /systems) may hold; the hub's JWKS of a few keys is a few KB. */
export const HUB_ANSWER_MAX_BYTES = 1024 * 1024;

/**
 * An answer's JSON, read up to HUB_ANSWER_MAX_BYTES: a larger one is refused before it is all in memory (a proxy or
 * a broken hub answering without end filled the system's memory for as long as the timeout let it read).
 */
const cappedJson = async (res: Response, what: string): Promise<unknown> => {
  const tooLarge = () => new Error(`${what}: the answer is larger than ${HUB_ANSWER_MAX_BYTES} bytes`);
  if (Number(res.headers.get('content-length') ?? 0) > HUB_ANSWER_MAX_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  try {
    for (let part = await reader?.read(); part !== undefined && !part.done; part = await reader?.read()) {
      size += part.value.byteLength;
      if (size > HUB_ANSWER_MAX_BYTES) {
        await reader?.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(part.value);
    }
  } catch (error) {
    if ((error as Error).message === tooLarge().message) throw error;
    throw new Error(`${what}: the answer did not arrive whole: ${(error as { name?: string }).name === 'TimeoutError' ? `not in ${HUB_HTTP_TIMEOUT_MS} ms` : String(error)}`);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(`${what}: HTTP ${res.status}, the answer is not JSON`);
  }
};

const refuseRedirect = (res: Response, what: string): void => {
  if (res.status >= 300 && res.status < 400) throw new Error(`${what}: HTTP ${res.status}, a redirect${res.headers.get('location') ? ` to ${res.headers.get('location')}` : ''}; redirects are not followed: give the hub's own URL`);
};

/**
 * The hub's public JWKS (GET <hubUrl>/.well-known/jwks.json), read past any cache (`cache-control: no-cache`: the hub
 * lets caches keep it 5 minutes, and a revoked key must go at the next read). The URL as checkedHubUrl says.
 */
export const fetchHubJwks = async (hubUrl: string, options: HubUrlOptions = {}): Promise<{ keys: JWK[] }> => {
  const what = 'GET /.well-known/jwks.json';
  const res = await hubRequest(hubUrl, '/.well-known/jwks.json', { headers: { accept: 'application/jwk-set+json, application/json', 'cache-control': 'no-cache' } }, options);
  refuseRedirect(res, what);
  if (!res.ok) throw new Error(`${what}: HTTP ${res.status}`);
  const body = await cappedJson(res, what);
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { keys?: unknown }).keys)) throw new Error(`${what}: the answer is not a JWKS (no "keys" array)`);
  return body as { keys: JWK[] };
};

/**
 * Makes the hub's keys (party 'hub') in `registry` exactly those a JWKS of the hub lists; keys marked retired are
 * given their date. A hub key the JWKS no longer lists is removed: an operator drops a leaked key from the hub's key
 * file, and a client that only ever added keys went on accepting messages signed with it until it restarted.
 *
 * Whole or not at all: a JWKS that holds a key the registry refuses, or lacks a signing key or an encryption key valid
 * at `at`, throws and leaves the hub's keys as they were. Such an answer is a broken hub or a broken fetch, not the
 * hub revoking everything; applied, it would leave the system unable to open or send anything until the next read.
 */
export const registerHubJwks = async (registry: KeyRegistry, jwks: { keys: readonly JWK[] }, at: Date = new Date()): Promise<void> => {
  const listed = new KeyRegistry(); // every key checked here first, before the registry in use is touched
  for (const jwk of jwks.keys) {
    const retiresAt = (jwk as Record<string, unknown>).rts_retires_at;
    const { rts_retires_at: _r, ...key } = jwk as Record<string, unknown>;
    await listed.register(HUB_PARTY, key as JWK, typeof retiresAt === 'string' ? { retiresAt } : {});
  }
  const keys = listed.keysOf(HUB_PARTY);
  const verifies = (await Promise.all(keys.filter((r) => r.use === 'sig').map((r) => listed.lookup(r.kid, 'sig', at)))).some((l) => l.ok);
  if (!verifies || !(await listed.encryptionKeyFor(HUB_PARTY, at))) throw new Error("the hub's JWKS has no valid signing key, or no valid encryption key");
  if (keys.some((r) => (registry.ownerOf(r.kid) ?? HUB_PARTY) !== HUB_PARTY)) throw new ConflictError('key_owned_by_other_party', 'a key of the hub is registered to another party');
  // New keys first, then the dropped ones out: a message under a key the hub still lists is never refused meanwhile.
  for (const r of keys) await registry.register(HUB_PARTY, r.jwk, r.retiresAt === null ? {} : { retiresAt: r.retiresAt });
  for (const r of registry.keysOf(HUB_PARTY)) if (!listed.ownerOf(r.kid)) registry.remove(HUB_PARTY, r.kid);
};

/**
 * POST /systems with this system's public keys (signing and encryption). Resolves with the hub's answer. The hub
 * takes it from an operator only: pass `{ authorization: 'Bearer <operator token>' }` as `headers`. The URL as
 * checkedHubUrl says (the token must not cross a network in clear); a redirect is not followed.
 */
export const registerSystem = async (
  hubUrl: string,
  system: { id: string; name: string; area: string },
  keys: PartyKeys,
  headers: Record<string, string> = {},
  options: HubUrlOptions = {},
): Promise<unknown> => {
  const pub = publicJwks(keys);
  const res = await hubRequest(
    hubUrl,
    '/systems',
    { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json', ...headers }, body: JSON.stringify({ ...system, keys: [pub.signing, pub.encryption] }) },
    options,
  );
  refuseRedirect(res, 'POST /systems');
  const body = await cappedJson(res, 'POST /systems');
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /systems: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
};

/** The least time between two re-reads of the hub's JWKS for the same cause: an unknown key, or the keys' age (see SdkJoseCodec). */
export const HUB_KEYS_REFRESH_INTERVAL_MS = 30_000;

/** How old the hub's keys, as last read, may grow before they are read again ahead of their next use (see SdkJoseCodec). */
export const HUB_KEYS_MAX_AGE_MS = 300_000;

export type SdkJoseCodecOptions = Readonly<{
  /** The least time between two re-reads of the hub's JWKS for the same cause (HUB_KEYS_REFRESH_INTERVAL_MS). */
  refreshIntervalMs?: number;
  /** Keys last read longer ago than this are read again before they are used (HUB_KEYS_MAX_AGE_MS); null: never. */
  maxAgeMs?: number | null;
  /** When the keys in the registry were read (clock time); null: not known, so read again at first use. Default: now. */
  keysReadAt?: number | null;
  /**
   * Milliseconds since the epoch. Default: a clock that never runs back (the process's start time plus its
   * monotonic time since), so a wall clock set back (an NTP step) neither makes old keys look fresh nor ends the
   * intervals between reads early.
   */
  clock?: () => number;
}>;

/** Wall time at the process's start plus monotonic time since: it moves with time, never back with the wall clock. */
const steadyClock = (): number => performance.timeOrigin + performance.now();

/**
 * The SDK's JOSE codec: JoseCodec with our keys and a registry holding the hub's, which it reads again from the
 * hub's JWKS (when it was given a way to: `refreshHubKeys`) in two cases:
 *
 * - **Their age.** Keys last read more than `maxAgeMs` ago (5 minutes) are read again before the next message is
 *   encoded or decoded with them. So a hub key the operator revoked (dropped from the JWKS) is trusted at most that
 *   long after the revocation, plus the hub's 5 minutes of cache for a caching proxy that ignores the request's
 *   `no-cache`, even when the hub sends no message under a new key. A read that fails (the hub's HTTP API
 *   unreachable, an unusable answer) keeps the keys, and the message goes on with them: the HTTP API being down
 *   must not stop messaging. For maxAgeMs after a read that failed, the next timed one runs beside the messages
 *   (see freshKeys). `hubKeysReadAt` says when the keys were last read, for a health check.
 * - **An unknown key** (the hub rotated), before a message is refused.
 *
 * Reads are limited: a message under an unknown key costs nothing to send (anyone who can write to our queue
 * can), and re-reading the JWKS for each one let a stream of them make every system hammer the hub's
 * `/.well-known/jwks.json`. Concurrent reads share one request, and a new one starts at most once per
 * `refreshIntervalMs` (30 s) for each cause (a read for their age must not hold off the one for the hub's new
 * signing key that comes right after it); in between, and when the hub cannot be reached, a message under an
 * unknown key is refused as `unknown_key` (decode) or the unknown-key error is thrown (encode). A real rotation is
 * picked up by the first message under the new key, and a hub key the JWKS no longer lists is trusted no more from
 * that read on (registerHubJwks).
 */
export class SdkJoseCodec implements MessageCodec {
  readonly name = 'jose';
  private readonly codec: JoseCodec;
  private readonly refreshIntervalMs: number;
  private readonly maxAgeMs: number | null;
  private readonly clock: () => number;
  /** When a read was last started for an unknown key, and for the keys' age: each cause has its own interval. */
  private lastReadAt: Record<'unknown_key' | 'age', number> = { unknown_key: Number.NEGATIVE_INFINITY, age: Number.NEGATIVE_INFINITY };
  private keysReadAt: number | null;
  /** When the last read of the hub's JWKS was started, if it failed (null: it did not; see freshKeys). */
  private failedReadAt: number | null = null;
  private refreshing: Promise<boolean> | undefined;

  constructor(
    keys: PartyKeys,
    private readonly registry: KeyRegistry,
    private readonly refreshHubKeys?: () => Promise<{ keys: JWK[] }>,
    options: SdkJoseCodecOptions = {},
  ) {
    this.codec = new JoseCodec({ keys, registry });
    this.refreshIntervalMs = options.refreshIntervalMs ?? HUB_KEYS_REFRESH_INTERVAL_MS;
    const maxAgeMs = options.maxAgeMs === undefined ? HUB_KEYS_MAX_AGE_MS : options.maxAgeMs;
    if (maxAgeMs !== null && !(Number.isFinite(maxAgeMs) && maxAgeMs >= 0)) throw new TypeError('maxAgeMs must be a number of milliseconds (0 or more), or null');
    this.maxAgeMs = maxAgeMs;
    this.clock = options.clock ?? steadyClock;
    this.keysReadAt = options.keysReadAt === undefined ? this.clock() : options.keysReadAt;
  }

  /** When the hub's keys were last read (by the clock given, steadyClock by default); null when not since this codec was made from saved keys. */
  get hubKeysReadAt(): Date | null {
    return this.keysReadAt === null ? null : new Date(this.keysReadAt);
  }

  async encode(envelope: AnyEnvelope, ctx: EncodeContext): Promise<EncodedMessage> {
    const justRead = await this.freshKeys();
    try {
      return await this.codec.encode(envelope, ctx);
    } catch (error) {
      if ((error as { code?: string }).code !== 'unknown_key' || justRead || !(await this.refreshed())) throw error;
      return this.codec.encode(envelope, ctx);
    }
  }

  async decode<E>(body: unknown, applicationProperties: Readonly<Record<string, unknown>>, ctx: DecodeContext<E>): Promise<JoseDecodeResult<E>> {
    const justRead = await this.freshKeys();
    const result = await this.codec.decode(body, applicationProperties, ctx);
    if (result.ok || result.reason !== 'unknown_key' || justRead || !(await this.refreshed())) return result;
    return this.codec.decode(body, applicationProperties, ctx);
  }

  /**
   * Reads the hub's keys again first when they are older than maxAgeMs (or of unknown age). Never throws. A clock
   * that reads earlier than the last read (the wall clock set back) cannot tell their age: they are read again.
   * True when they were read just now (no read for an unknown key then: the JWKS is as new as it gets).
   *
   * While the last read failed (the hub's HTTP API down, or not answering within the 10 s timeout), the message
   * does not wait for the next one: it goes on with the keys held, as it would after that read failed too, and the
   * read runs beside it. Else a hub that takes connections and never answers stalled every message for 10 s once
   * per interval. Only for maxAgeMs after the failed read was started, though: a message that goes on beside the
   * read is checked against the keys held, and a failure long ago (the hub restarting to drop a leaked key, then
   * quiet) would let the next message under that key through however long after the revocation it came. So a
   * revoked key is trusted at most maxAgeMs after the revocation, plus one read's time, while the JWKS is reachable.
   */
  private async freshKeys(): Promise<boolean> {
    if (this.maxAgeMs === null || !this.refreshHubKeys) return false;
    const now = this.clock();
    if (this.keysReadAt !== null && now >= this.keysReadAt && now - this.keysReadAt <= this.maxAgeMs) return false;
    const failed = this.failedReadAt;
    if (failed === null || now < failed || now - failed >= this.maxAgeMs) return this.read('age');
    void this.read('age');
    return false;
  }

  /** Whether the hub's keys were read again just now (or by a read this call joined): then try once more. */
  private refreshed(): Promise<boolean> {
    return this.read('unknown_key');
  }

  /**
   * Reads the hub's JWKS, at most once per refreshIntervalMs for each cause. Separate intervals: a read for the keys'
   * age (that failed while the hub restarted, or that came just before the hub took a new signing key) must not
   * make the first messages under the hub's new key unknown_key for 30 s; a flood of unknown keys still costs one
   * read per interval. A clock earlier than the last read (set back) ends the interval.
   */
  private read(cause: 'unknown_key' | 'age'): Promise<boolean> {
    const refresh = this.refreshHubKeys;
    if (!refresh) return Promise.resolve(false);
    if (this.refreshing) return this.refreshing;
    const now = this.clock();
    const last = this.lastReadAt[cause];
    if (now >= last && now - last < this.refreshIntervalMs) return Promise.resolve(false);
    this.lastReadAt[cause] = now;
    this.refreshing = (async () => {
      try {
        // Not a step before this.refreshing is set: a refreshHubKeys that throws at once would else run `finally`
        // first, and leave this.refreshing a settled read that every later one joined (no read ever again).
        await undefined;
        await registerHubJwks(this.registry, await refresh());
        // Their age counts from the request, not its answer: a key the hub dropped while a slow read was on its way
        // must not be trusted the read's time longer.
        this.keysReadAt = now;
        this.failedReadAt = null;
        return true;
      } catch {
        this.failedReadAt = now;
        return false; // the hub unreachable or its answer unusable: the keys stay as they were, try again after the interval
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}

/**
 * A ready codec: our keys, and the hub's, from `hubJwks` (saved) or fetched from `hubUrl`. With `hubUrl` they are
 * read again as SdkJoseCodec says (their age, an unknown key); saved keys given with it are read again at first use.
 * `hubUrl` as checkedHubUrl says (https:, or http: to loopback, or `insecureHubUrl`), checked here even when the
 * keys are given.
 */
export const joseCodecFor = async (
  options: Readonly<{ keys: PartyKeys; hubUrl?: string; hubJwks?: { keys: JWK[] }; refreshIntervalMs?: number; hubKeysMaxAgeMs?: number | null } & HubUrlOptions>,
): Promise<SdkJoseCodec> => {
  const registry = new KeyRegistry();
  const hubUrl = options.hubUrl;
  if (hubUrl !== undefined) checkedHubUrl(hubUrl, options);
  const refresh = hubUrl !== undefined ? () => fetchHubJwks(hubUrl, options) : undefined;
  const jwks = options.hubJwks ?? (refresh ? await refresh() : undefined);
  if (!jwks) throw new TypeError('joseCodecFor: give hubUrl or hubJwks');
  await registerHubJwks(registry, jwks);
  return new SdkJoseCodec(options.keys, registry, refresh, {
    refreshIntervalMs: options.refreshIntervalMs,
    maxAgeMs: options.hubKeysMaxAgeMs,
    ...(options.hubJwks ? { keysReadAt: null } : {}), // else now, by the codec's clock
  });
};
