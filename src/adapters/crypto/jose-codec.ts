import { jose } from './jose-lib';
import type { ParseResult } from '../messaging/messages';
import { CONTENT_ENCRYPTION, KEY_MANAGEMENT_ALG, type KeyRegistry, type PartyKeys } from './jose-keys';

/**
 * Message security with JOSE: every message is signed by its sender (JWS compact, ES256 or EdDSA, `kid` of the
 * sender's signing key) and the signed message is encrypted for its receiver (JWE compact, ECDH-ES+A256KW with
 * A256GCM, `kid` of the receiver's encryption key): JWS inside JWE, so the broker sees neither the content nor
 * who signed it, and the receiver knows both who sent it and that it was meant for it.
 *
 * The signed payload (a JWT-like claim set): { iss: sender id, aud: receiver id, iat, jti: envelope id, msg: envelope }.
 * Party ids are system ids, and 'hub' for the hub (`hubId`).
 *
 *   const codec = new JoseCodec({ keys: myPartyKeys, registry });
 *   const { body, applicationProperties } = await codec.encode(envelope, { to: 'chengdu' });
 *   const result = await codec.decode(body, applicationProperties, { from: 'hub', parse: parseDownlink }); // never throws
 *   const { envelope } = await codec.open(body, { from: 'hub' });  // throws JoseError
 *
 * Matches the SDK's MessageCodec (src/sdk/codec.ts): encode(envelope, { from?, to, queue? }) and
 * decode(body, applicationProperties, { from?, to?, queue?, parse }) -> { ok: true, envelope } | { ok: false, reason, detail }.
 *
 * Decoding checks, in order, each failure typed (JoseError.code; the DecodeFailure's reason):
 *   malformed_jose   not a compact JWE of ECDH-ES+A256KW/A256GCM holding a compact JWS with the claim set above
 *   not_for_us       the JWE's kid is none of our decryption keys, or `aud` is not us
 *   bad_signature    the JWE fails its integrity check (tampered ciphertext, tag or header), or the JWS signature
 *                    does not verify
 *   unknown_key      the signing kid is not registered, is retired (from its retiresAt on) or not yet valid
 *   sender_mismatch  `iss` is not the owner of the signing key; or not the expected sender (`from`); or the
 *                    envelope's systemId is not the sender (a system's message) / not us (the hub's message)
 * A message that decodes is then given to `parse` (the contract's zod parser) as JSON text.
 */
export type JoseErrorCode = 'bad_signature' | 'unknown_key' | 'not_for_us' | 'sender_mismatch' | 'malformed_jose';

export class JoseError extends Error {
  constructor(
    readonly code: JoseErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'JoseError';
  }
}

export type JoseCodecOptions = Readonly<{
  /** Our own keys; `keys.owner` is our party id. */
  keys: PartyKeys;
  registry: KeyRegistry;
  /** The hub's party id (default 'hub'). */
  hubId?: string;
  now?: () => Date;
}>;

export type EnvelopeLike = Readonly<{ id: string; systemId: string; [key: string]: unknown }>;
export type JoseEncoded = { body: string; applicationProperties: Record<string, string> };
export type OpenedMessage = Readonly<{ envelope: EnvelopeLike; json: string; sender: string; signingKid: string; issuedAt: number }>;
export type JoseDecodeResult<E> =
  | Readonly<{ ok: true; envelope: E }>
  | Readonly<{ ok: false; reason: string; detail: string; envelope?: Readonly<{ id?: string; type?: string; systemId?: string }> }>;

const JWS_TYPE = 'rts-message+jwt';
const CONTENT_TYPE = 'application/jose';
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const { CompactEncrypt, CompactSign, compactDecrypt, compactVerify, decodeProtectedHeader, errors } = jose;
const COMPACT_JWE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
/** Largest body looked at: 4 MiB of message, grown by base64url twice. */
const MAX_BODY_CHARS = 4 * 1024 * 1024 * 2;

const anyParty = (from: string | undefined): boolean => from === undefined || from === '' || from === '*';

export class JoseCodec {
  readonly name = 'jose';
  private readonly hubId: string;
  private readonly now: () => Date;

  constructor(private readonly options: JoseCodecOptions) {
    this.hubId = options.hubId ?? 'hub';
    this.now = options.now ?? (() => new Date());
  }

  get self(): string {
    return this.options.keys.owner;
  }

  /** Sign as us, encrypt for `to`. Throws JoseError 'unknown_key' when `to` has no valid encryption key. */
  async encode(envelope: EnvelopeLike, ctx: Readonly<{ to: string; from?: string; queue?: string }>): Promise<JoseEncoded> {
    if (!anyParty(ctx.from) && ctx.from !== this.self) throw new TypeError(`this codec signs as ${this.self}, not as ${ctx.from}`);
    const receiver = await this.options.registry.encryptionKeyFor(ctx.to, this.now());
    if (!receiver) throw new JoseError('unknown_key', `no valid encryption key is registered for ${ctx.to}`);
    const { signing } = this.options.keys;
    const claims = { iss: this.self, aud: ctx.to, iat: Math.floor(this.now().getTime() / 1000), jti: envelope.id, msg: envelope };
    const jws = await new CompactSign(encoder.encode(JSON.stringify(claims))).setProtectedHeader({ alg: signing.alg, kid: signing.kid, typ: JWS_TYPE }).sign(signing.privateKey);
    const jwe = await new CompactEncrypt(encoder.encode(jws))
      .setProtectedHeader({ alg: KEY_MANAGEMENT_ALG, enc: CONTENT_ENCRYPTION, kid: receiver.record.kid, cty: 'JWT' })
      .encrypt(receiver.key);
    return { body: jwe, applicationProperties: { contentType: CONTENT_TYPE, codec: this.name, kid: receiver.record.kid, alg: KEY_MANAGEMENT_ALG, enc: CONTENT_ENCRYPTION } };
  }

  /** Decrypt, verify and check; throws JoseError. `from`: the sender expected (a party id; '*' or absent: anyone registered). */
  async open(body: unknown, ctx: Readonly<{ from?: string }> = {}): Promise<OpenedMessage> {
    if (typeof body !== 'string' || body.length > MAX_BODY_CHARS || !COMPACT_JWE.test(body)) throw new JoseError('malformed_jose', 'the body is not a compact JWE');
    const outer = header(body);
    if (outer.alg !== KEY_MANAGEMENT_ALG || outer.enc !== CONTENT_ENCRYPTION || typeof outer.kid !== 'string') {
      throw new JoseError('malformed_jose', `the JWE must use ${KEY_MANAGEMENT_ALG} with ${CONTENT_ENCRYPTION} and name its kid`);
    }
    // Compression before encryption is not in the profile (docs/messaging.md): its output length depends on the
    // plaintext, which can leak it (CRIME-like), and inflating is a decompression bomb's way in.
    if (outer.zip !== undefined) throw new JoseError('malformed_jose', 'the JWE must not be compressed (zip is not part of the profile)');
    const ours = this.options.keys.decryption.find((k) => k.kid === outer.kid);
    if (!ours) throw new JoseError('not_for_us', 'the message is encrypted for a key that is not ours');

    let jws: string;
    try {
      const { plaintext } = await compactDecrypt(body, ours.privateKey, { keyManagementAlgorithms: [KEY_MANAGEMENT_ALG], contentEncryptionAlgorithms: [CONTENT_ENCRYPTION] });
      jws = decoder.decode(plaintext);
    } catch (error) {
      if (error instanceof errors.JWEInvalid) throw new JoseError('malformed_jose', 'the JWE could not be read');
      if (error instanceof errors.JOSEError) throw new JoseError('bad_signature', 'the encrypted message failed its integrity check');
      throw new JoseError('malformed_jose', 'the decrypted content is not text');
    }
    if (!COMPACT_JWS.test(jws)) throw new JoseError('malformed_jose', 'the encrypted content is not a compact JWS');
    const inner = header(jws);
    if (typeof inner.kid !== 'string' || typeof inner.alg !== 'string') throw new JoseError('malformed_jose', 'the JWS must name its alg and kid');

    const found = await this.options.registry.lookup(inner.kid, 'sig', this.now());
    if (!found.ok) {
      const why = { unknown: 'is not registered', retired: 'was retired', not_yet_valid: 'is not valid yet', wrong_use: 'is not a signing key' }[found.reason];
      throw new JoseError('unknown_key', `the signing key ${why}`);
    }
    let payload: Uint8Array;
    try {
      ({ payload } = await compactVerify(jws, found.key, { algorithms: [found.record.alg] }));
    } catch (error) {
      if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JOSEAlgNotAllowed) throw new JoseError('bad_signature', 'the signature does not verify');
      throw new JoseError('malformed_jose', 'the JWS could not be read');
    }
    // The profile's type, checked once the signature holds (docs/messaging.md's order: an unknown key is unknown_key
    // whatever its typ): a JWS made for another purpose (an id token signed with the same key) is not a message.
    // RFC 7515 4.1.9: compared without case, "application/" may be left out.
    if (typeof inner.typ !== 'string' || inner.typ.toLowerCase().replace(/^application\//, '') !== JWS_TYPE) throw new JoseError('malformed_jose', `the JWS typ must be ${JWS_TYPE}`);

    let claims: { iss?: unknown; aud?: unknown; iat?: unknown; jti?: unknown; msg?: unknown };
    let json: string;
    try {
      claims = JSON.parse(decoder.decode(payload)) as typeof claims;
    } catch {
      throw new JoseError('malformed_jose', 'the signed payload is not JSON');
    }
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) throw new JoseError('malformed_jose', 'the signed payload is not a JSON object');
    json = JSON.stringify(claims.msg);
    const msg = claims.msg as Partial<EnvelopeLike> | undefined;
    // RFC 7519 4.1.3 lets aud be an array of strings (.NET's and jose4j's libraries write one): one receiver either way.
    if (Array.isArray(claims.aud) && claims.aud.length === 1) claims.aud = claims.aud[0];
    const missing = [
      typeof claims.iss !== 'string' ? 'iss (a string)' : null,
      typeof claims.aud !== 'string' ? 'aud (a string, or an array of one)' : null,
      typeof msg !== 'object' || msg === null || typeof msg.systemId !== 'string' || typeof msg.id !== 'string' ? 'msg (the envelope, with its id and systemId)' : null,
    ].filter((m) => m !== null);
    if (missing.length > 0 || msg === undefined) throw new JoseError('malformed_jose', `the signed payload lacks, or has of another type, ${missing.join(', ')}`);
    // The signed jti is the envelope's id, which receivers dedupe on: one that differs was not made by the profile.
    if (claims.jti === undefined) throw new JoseError('malformed_jose', "the signed payload lacks jti (the envelope's id)");
    if (claims.jti !== msg.id) throw new JoseError('malformed_jose', "the signed jti is not the envelope's id");
    const sender = claims.iss;
    if (sender !== found.record.owner) throw new JoseError('sender_mismatch', 'the claimed sender does not own the signing key');
    if (claims.aud !== this.self) throw new JoseError('not_for_us', 'the message is addressed to another party');
    if (!anyParty(ctx.from) && ctx.from !== sender) throw new JoseError('sender_mismatch', 'the message is not from the expected sender');
    // A system's message names the system as its sender; the hub's names the receiving system.
    const expectedSystemId = sender === this.hubId ? this.self : sender;
    if (msg.systemId !== expectedSystemId) throw new JoseError('sender_mismatch', "the envelope's systemId does not match the signer");
    return { envelope: msg as EnvelopeLike, json, sender, signingKid: inner.kid, issuedAt: typeof claims.iat === 'number' ? claims.iat : 0 };
  }

  /**
   * The SDK's MessageCodec.decode: never throws. A security failure's reason is its JoseError code; a message
   * that opens is handed to `ctx.parse` (bad_json / bad_schema as the JSON codec reports them).
   */
  async decode<E>(
    body: unknown,
    _applicationProperties: Readonly<Record<string, unknown>>,
    ctx: Readonly<{ from?: string; to?: string; queue?: string; parse: (json: string) => ParseResult<E> }>,
  ): Promise<JoseDecodeResult<E>> {
    if (ctx.to !== undefined && ctx.to !== this.self) return { ok: false, reason: 'not_for_us', detail: `this codec decodes messages for ${this.self}` };
    let opened: OpenedMessage;
    try {
      opened = await this.open(body, { from: ctx.from });
    } catch (error) {
      if (error instanceof JoseError) return { ok: false, reason: error.code, detail: error.message };
      return { ok: false, reason: 'malformed_jose', detail: 'the message could not be decoded' };
    }
    const parsed = ctx.parse(opened.json);
    if (parsed.ok) return { ok: true, envelope: parsed.message };
    return parsed.envelope ? { ok: false, reason: parsed.reason, detail: parsed.detail, envelope: parsed.envelope } : { ok: false, reason: parsed.reason, detail: parsed.detail };
  }
}

const header = (token: string): Record<string, unknown> => {
  try {
    return decodeProtectedHeader(token) as Record<string, unknown>;
  } catch {
    throw new JoseError('malformed_jose', 'the protected header is not readable');
  }
};
