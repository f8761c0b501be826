// Message security for the SDK (issue 5): a MessageCodec that signs what this system sends with its own key and
// encrypts it for the hub, and opens what the hub sends (decrypt with our key, verify the hub's signature).
//
//   const keys = await generatePartyKeys('city-a');                    // keep exportPartyKeys(keys) secret on disk
//   await registerSystem('http://hub:8080', { id: 'city-a', name: 'City A', area: 'North' }, keys,  // POST /systems with the public keys,
//     { authorization: `Bearer ${operatorToken}` });                                                 // which is an operator's act
//   const codec = await joseCodecFor({ keys, hubUrl: 'http://hub:8080' });                     // fetches /.well-known/jwks.json
//   const client = await RtsClient.connect({ systemId: 'city-a', url, codec });
//
// Rotation without downtime, in this order: generate a new key pair; switch the codec to PartyKeys with BOTH
// decryption keys (old and new) FIRST, since the hub encrypts for the newest key as soon as it is registered;
// then POST the new public keys to /systems/<id>/keys; then retire the old kids (POST
// /systems/<id>/keys/<kid>/retire with a date) once nothing is queued for them. Registered before the codec had
// the new decryption key, the hub's next message to the system was dead-lettered there as not_for_us. The hub
// rotates its own keys the same way; the codec re-reads the hub's JWKS once when a hub key is unknown, and from
// then on trusts only the hub keys it lists.
import type { JWK } from 'jose';
import { JoseCodec, type JoseDecodeResult } from '../adapters/crypto/jose-codec';
import { HUB_SYSTEM_ID } from '../domain/directory/connected-system';
import { ConflictError } from '../domain/shared/errors';
import { KeyRegistry, publicJwks, type PartyKeys } from '../adapters/crypto/jose-keys';
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

/** The hub's public JWKS (GET <hubUrl>/.well-known/jwks.json). */
export const fetchHubJwks = async (hubUrl: string): Promise<{ keys: JWK[] }> => {
  const res = await fetch(new URL('/.well-known/jwks.json', hubUrl));
  if (!res.ok) throw new Error(`GET /.well-known/jwks.json: HTTP ${res.status}`);
  return (await res.json()) as { keys: JWK[] };
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
 * takes it from an operator only: pass `{ authorization: 'Bearer <operator token>' }` as `headers`.
 */
export const registerSystem = async (hubUrl: string, system: { id: string; name: string; area: string }, keys: PartyKeys, headers: Record<string, string> = {}): Promise<unknown> => {
  const pub = publicJwks(keys);
  const res = await fetch(new URL('/systems', hubUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ ...system, keys: [pub.signing, pub.encryption] }),
  });
  const body = (await res.json()) as unknown;
  if (res.status !== 201 && res.status !== 200) throw new Error(`POST /systems: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body;
};

/** The least time between two re-reads of the hub's JWKS for unknown keys (see SdkJoseCodec). */
export const HUB_KEYS_REFRESH_INTERVAL_MS = 30_000;

/**
 * The SDK's JOSE codec: JoseCodec with our keys and a registry holding the hub's, plus a refresh of the hub's
 * JWKS when a hub key is unknown (the hub rotated) before a message is refused.
 *
 * The refresh is limited: a message under an unknown key costs nothing to send (anyone who can write to our queue
 * can), and re-reading the JWKS for each one let a stream of them make every system hammer the hub's
 * `/.well-known/jwks.json`. Concurrent refreshes share one request, and a new one starts at most once per
 * `refreshIntervalMs` (30 s); in between, and when the hub cannot be reached, the message is refused as
 * `unknown_key` (decode) or the unknown-key error is thrown (encode), as without a refresh. A real rotation is
 * picked up by the first message under the new key, and a hub key the JWKS no longer lists is trusted no more from
 * that read on (registerHubJwks). There is no timed re-read: a hub that drops a key without a new signing key
 * leaves running systems trusting the dropped one (README, "Revoking a compromised hub key").
 */
export class SdkJoseCodec implements MessageCodec {
  readonly name = 'jose';
  private readonly codec: JoseCodec;
  private readonly refreshIntervalMs: number;
  private readonly clock: () => number;
  private lastRefreshAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<boolean> | undefined;

  constructor(
    keys: PartyKeys,
    private readonly registry: KeyRegistry,
    private readonly refreshHubKeys?: () => Promise<{ keys: JWK[] }>,
    options: Readonly<{ refreshIntervalMs?: number; clock?: () => number }> = {},
  ) {
    this.codec = new JoseCodec({ keys, registry });
    this.refreshIntervalMs = options.refreshIntervalMs ?? HUB_KEYS_REFRESH_INTERVAL_MS;
    this.clock = options.clock ?? Date.now;
  }

  async encode(envelope: AnyEnvelope, ctx: EncodeContext): Promise<EncodedMessage> {
    try {
      return await this.codec.encode(envelope, ctx);
    } catch (error) {
      if ((error as { code?: string }).code !== 'unknown_key' || !(await this.refreshed())) throw error;
      return this.codec.encode(envelope, ctx);
    }
  }

  async decode<E>(body: unknown, applicationProperties: Readonly<Record<string, unknown>>, ctx: DecodeContext<E>): Promise<JoseDecodeResult<E>> {
    const result = await this.codec.decode(body, applicationProperties, ctx);
    if (result.ok || result.reason !== 'unknown_key' || !(await this.refreshed())) return result;
    return this.codec.decode(body, applicationProperties, ctx);
  }

  /** Whether the hub's keys were read again just now (or by a refresh this call joined): then try once more. */
  private refreshed(): Promise<boolean> {
    const refresh = this.refreshHubKeys;
    if (!refresh) return Promise.resolve(false);
    if (this.refreshing) return this.refreshing;
    const now = this.clock();
    if (now - this.lastRefreshAt < this.refreshIntervalMs) return Promise.resolve(false);
    this.lastRefreshAt = now;
    this.refreshing = (async () => {
      try {
        await registerHubJwks(this.registry, await refresh());
        return true;
      } catch {
        return false; // the hub unreachable or its answer unusable: the keys stay as they were, try again after the interval
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }
}

/** A ready codec: our keys, the hub's JWKS from `hubJwks` or fetched from `hubUrl` (and re-fetched on an unknown hub key). */
export const joseCodecFor = async (options: { keys: PartyKeys; hubUrl?: string; hubJwks?: { keys: JWK[] }; refreshIntervalMs?: number }): Promise<SdkJoseCodec> => {
  const registry = new KeyRegistry();
  const refresh = options.hubUrl ? () => fetchHubJwks(options.hubUrl!) : undefined;
  const jwks = options.hubJwks ?? (refresh ? await refresh() : undefined);
  if (!jwks) throw new TypeError('joseCodecFor: give hubUrl or hubJwks');
  await registerHubJwks(registry, jwks);
  return new SdkJoseCodec(options.keys, registry, refresh, { refreshIntervalMs: options.refreshIntervalMs });
};
