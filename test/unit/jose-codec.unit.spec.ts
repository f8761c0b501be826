// jose ships as ESM only: hand jest the module as Node loads it (as the `cookie` workaround of http-api.int.spec.ts).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});

import { JoseCodec, JoseError } from '../../src/adapters/crypto/jose-codec';
import { jose } from '../../src/adapters/crypto/jose-lib';
import { KeyRegistry, exportPartyKeys, generateEncryptionKey, generatePartyKeys, importPartyKeys, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
import { parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';
import { parseDownlink } from '../../src/adapters/messaging/messages';

const QUESTION = 'Suspected aortic dissection in a 64-year-old with tearing chest pain';
let clock = new Date('2024-05-01T10:00:00Z');
const now = () => clock;

const uplink = (systemId: string) => ({
  id: '6f1c1d7e-1c2b-4c1a-9d7e-0a1b2c3d4e5f',
  type: 'consultation.requested',
  version: 1,
  systemId,
  correlationId: 'corr-1',
  time: '2024-05-01T10:00:00Z',
  payload: { consultationId: '11111111-2222-4333-8444-555555555555', applicantClinician: 'dr-chen', candidates: ['chengdu:li'], clinicalQuestion: QUESTION, summary: 'CT', attachments: [] },
});
const downlink = { id: '7f1c1d7e-1c2b-4c1a-9d7e-0a1b2c3d4e5f', type: 'system.joined', version: 1, systemId: 'xian', correlationId: 'c', time: '2024-05-01T10:00:00Z', payload: { systemId: 'xian', name: 'Xian', area: 'Xian' } };

const register = async (registry: KeyRegistry, keys: PartyKeys) => {
  const pub = publicJwks(keys);
  await registry.register(keys.owner, pub.signing);
  await registry.register(keys.owner, pub.encryption);
};

/** Tamper with one character of part `index` of a compact token. */
const tamper = (token: string, index: number): string => {
  const parts = token.split('.');
  const p = parts[index]!;
  const at = Math.floor(p.length / 2);
  parts[index] = p.slice(0, at) + (p[at] === 'A' ? 'B' : 'A') + p.slice(at + 1);
  return parts.join('.');
};

describe('JoseCodec: JWS inside JWE', () => {
  let registry: KeyRegistry;
  let hub: PartyKeys;
  let xian: PartyKeys;
  let other: PartyKeys;
  let hubCodec: JoseCodec;
  let xianCodec: JoseCodec;

  beforeAll(async () => {
    registry = new KeyRegistry();
    hub = await generatePartyKeys('hub');
    xian = await generatePartyKeys('xian', { signingAlg: 'EdDSA' });
    other = await generatePartyKeys('beijing');
    for (const k of [hub, xian, other]) await register(registry, k);
    hubCodec = new JoseCodec({ keys: hub, registry, now });
    xianCodec = new JoseCodec({ keys: xian, registry, now });
  });
  beforeEach(() => {
    clock = new Date('2024-05-01T10:00:00Z');
  });

  it('round trip both ways; the body carries no personal data in clear', async () => {
    const encoded = await xianCodec.encode(uplink('xian'), { from: 'xian', to: 'hub', queue: 'rts.uplink' });
    expect(encoded.body.split('.')).toHaveLength(5);
    expect(encoded.applicationProperties).toMatchObject({ kid: publicJwks(hub).encryption.kid, alg: 'ECDH-ES+A256KW', enc: 'A256GCM', codec: 'jose' });
    expect(encoded.body).not.toContain(QUESTION);
    expect(Buffer.from(encoded.body.split('.')[0]!, 'base64url').toString()).not.toContain('xian'); // nor who signed it
    for (const part of encoded.body.split('.')) expect(Buffer.from(part, 'base64url').toString('latin1')).not.toContain('aortic');
    const decoded = await hubCodec.decode(encoded.body, encoded.applicationProperties, { from: '*', to: 'hub', queue: 'rts.uplink', parse: parseConsultationUplink });
    expect(decoded).toEqual({ ok: true, envelope: uplink('xian') });

    const down = await hubCodec.encode(downlink, { to: 'xian' });
    expect(await xianCodec.decode(down.body, down.applicationProperties, { from: 'hub', to: 'xian', queue: 'q', parse: parseDownlink })).toEqual({ ok: true, envelope: downlink });
  });

  it('refuses a tampered ciphertext, tag or header (bad_signature)', async () => {
    const { body } = await xianCodec.encode(uplink('xian'), { to: 'hub' });
    for (const index of [0, 1, 2, 3, 4]) {
      const result = await hubCodec.decode(tamper(body, index), {}, { parse: parseConsultationUplink });
      expect(result.ok).toBe(false);
      expect(['bad_signature', 'malformed_jose', 'not_for_us']).toContain((result as { reason: string }).reason);
    }
    await expect(hubCodec.open(tamper(body, 3))).rejects.toMatchObject({ code: 'bad_signature' });
  });

  it('refuses a tampered inner signature (bad_signature)', async () => {
    // A party that holds the hub's public key re-wraps a JWS whose signature it changed.
    const { CompactEncrypt, compactDecrypt } = await import('jose');
    const { body } = await xianCodec.encode(uplink('xian'), { to: 'hub' });
    const { plaintext } = await compactDecrypt(body, hub.decryption[0]!.privateKey);
    const jws = new TextDecoder().decode(plaintext);
    const forged = await new CompactEncrypt(new TextEncoder().encode(tamper(jws, 2)))
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: hub.decryption[0]!.kid })
      .encrypt((await registry.encryptionKeyFor('hub', clock))!.key);
    await expect(hubCodec.open(forged)).rejects.toMatchObject({ code: 'bad_signature' });
    // A signed payload changed under the old signature fails the same way.
    const [h, p, s] = jws.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    claims.msg.payload.clinicalQuestion = 'changed';
    const swapped = await new CompactEncrypt(new TextEncoder().encode(`${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`))
      .setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: hub.decryption[0]!.kid })
      .encrypt((await registry.encryptionKeyFor('hub', clock))!.key);
    await expect(hubCodec.open(swapped)).rejects.toMatchObject({ code: 'bad_signature' });
  });

  it('refuses a message for another receiver (not_for_us)', async () => {
    const toBeijing = await xianCodec.encode(uplink('xian'), { to: 'beijing' });
    expect(await hubCodec.decode(toBeijing.body, toBeijing.applicationProperties, { parse: parseConsultationUplink })).toMatchObject({ ok: false, reason: 'not_for_us' });
  });

  it('refuses an unknown signing key (unknown_key), and a signer claiming another system (sender_mismatch)', async () => {
    const stranger = await generatePartyKeys('xian'); // keys never registered
    const strangerCodec = new JoseCodec({ keys: stranger, registry, now });
    const { body } = await strangerCodec.encode(uplink('xian'), { to: 'hub' });
    await expect(hubCodec.open(body)).rejects.toMatchObject({ code: 'unknown_key' });

    const beijingCodec = new JoseCodec({ keys: other, registry, now });
    const impersonating = await beijingCodec.encode(uplink('xian'), { to: 'hub' }); // beijing signs a message that says it is xian's
    await expect(hubCodec.open(impersonating.body)).rejects.toMatchObject({ code: 'sender_mismatch' });
    const fromBeijing = await beijingCodec.encode(uplink('beijing'), { to: 'hub' });
    await expect(hubCodec.open(fromBeijing.body, { from: 'xian' })).rejects.toMatchObject({ code: 'sender_mismatch' });
    expect((await hubCodec.open(fromBeijing.body, { from: 'beijing' })).sender).toBe('beijing');
  });

  it('refuses a JWS of another typ, or whose jti is not the envelope id, although signed by a registered key (malformed_jose)', async () => {
    // What the tester sent by hand and the hub applied: typ "JWT", and a jti other than the envelope's id.
    const { CompactEncrypt, CompactSign } = jose;
    const seal = async (typ: string, jti: string): Promise<string> => {
      const envelope = uplink('xian');
      const claims = { iss: 'xian', aud: 'hub', iat: Math.floor(clock.getTime() / 1000), jti, msg: envelope };
      const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: xian.signing.alg, kid: xian.signing.kid, typ }).sign(xian.signing.privateKey);
      const receiver = (await registry.encryptionKeyFor('hub', clock))!;
      return new CompactEncrypt(new TextEncoder().encode(jws)).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: receiver.record.kid, cty: 'JWT' }).encrypt(receiver.key);
    };
    expect((await hubCodec.open(await seal('rts-message+jwt', uplink('xian').id))).sender).toBe('xian'); // the hand-made one is right otherwise
    await expect(hubCodec.open(await seal('JWT', uplink('xian').id))).rejects.toMatchObject({ code: 'malformed_jose', message: expect.stringMatching(/typ/) });
    // RFC 7515's other spellings of the same type are the same type.
    for (const typ of ['application/rts-message+jwt', 'RTS-Message+JWT']) expect((await hubCodec.open(await seal(typ, uplink('xian').id))).sender).toBe('xian');
    await expect(hubCodec.open(await seal('rts-message+jwt', '00000000-0000-4000-8000-000000000000'))).rejects.toMatchObject({ code: 'malformed_jose', message: expect.stringMatching(/jti/) });
  });

  it('takes aud as an array of one (RFC 7519; .NET and jose4j write it so), and names the claim that is missing or wrong', async () => {
    const { CompactEncrypt, CompactSign } = jose;
    const seal = async (claims: Record<string, unknown>): Promise<string> => {
      const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: xian.signing.alg, kid: xian.signing.kid, typ: 'rts-message+jwt' }).sign(xian.signing.privateKey);
      const receiver = (await registry.encryptionKeyFor('hub', clock))!;
      return new CompactEncrypt(new TextEncoder().encode(jws)).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM', kid: receiver.record.kid, cty: 'JWT' }).encrypt(receiver.key);
    };
    const envelope = uplink('xian');
    const claims = { iss: 'xian', aud: ['hub'], iat: Math.floor(clock.getTime() / 1000), jti: envelope.id, msg: envelope };
    // Was malformed_jose "lacks iss, aud or msg", with aud there.
    expect((await hubCodec.open(await seal(claims))).sender).toBe('xian');
    await expect(hubCodec.open(await seal({ ...claims, aud: ['beijing'] }))).rejects.toMatchObject({ code: 'not_for_us' });
    await expect(hubCodec.open(await seal({ ...claims, aud: ['hub', 'beijing'] }))).rejects.toMatchObject({ code: 'malformed_jose', message: 'the signed payload lacks, or has of another type, aud (a string, or an array of one)' });
    await expect(hubCodec.open(await seal({ ...claims, iss: 7, msg: undefined }))).rejects.toMatchObject({
      code: 'malformed_jose',
      message: 'the signed payload lacks, or has of another type, iss (a string), msg (the envelope, with its id and systemId)',
    });
    await expect(hubCodec.open(await seal(null as unknown as Record<string, unknown>))).rejects.toMatchObject({ code: 'malformed_jose', message: 'the signed payload is not a JSON object' });
    await expect(hubCodec.open(await seal({ ...claims, jti: undefined }))).rejects.toMatchObject({ code: 'malformed_jose', message: "the signed payload lacks jti (the envelope's id)" });
  });

  it('rotation: old and new keys both work during the overlap; the old one is refused after its retirement', async () => {
    const reg = new KeyRegistry();
    const hubKeys = await generatePartyKeys('hub');
    await register(reg, hubKeys);
    const oldKeys = await generatePartyKeys('xian');
    await register(reg, oldKeys);
    const newSigning = (await generatePartyKeys('xian')).signing;
    const newEnc = await generateEncryptionKey();
    const rotated: PartyKeys = { owner: 'xian', signing: newSigning, decryption: [...oldKeys.decryption, newEnc] };
    await reg.register('xian', newSigning.publicJwk);
    await reg.register('xian', newEnc.publicJwk);
    reg.retire('xian', oldKeys.signing.kid, '2024-06-01T00:00:00Z');
    reg.retire('xian', oldKeys.decryption[0]!.kid, '2024-06-01T00:00:00Z');

    const hubCodec2 = new JoseCodec({ keys: hubKeys, registry: reg, now });
    const oldCodec = new JoseCodec({ keys: oldKeys, registry: reg, now });
    const newCodec = new JoseCodec({ keys: rotated, registry: reg, now });
    // Overlap: both signatures accepted; the hub encrypts for the newest key, which the rotated system holds.
    expect((await hubCodec2.open((await oldCodec.encode(uplink('xian'), { to: 'hub' })).body)).signingKid).toBe(oldKeys.signing.kid);
    expect((await hubCodec2.open((await newCodec.encode(uplink('xian'), { to: 'hub' })).body)).signingKid).toBe(newSigning.kid);
    const down = await hubCodec2.encode(downlink, { to: 'xian' });
    expect(down.applicationProperties.kid).toBe(newEnc.kid);
    expect((await newCodec.open(down.body)).envelope).toEqual(downlink);
    // A message sealed with the old key before the retirement, read after it, is refused too.
    const sealedBefore = (await oldCodec.encode(uplink('xian'), { to: 'hub' })).body;
    clock = new Date('2024-06-01T00:00:00Z');
    await expect(hubCodec2.open(sealedBefore)).rejects.toMatchObject({ code: 'unknown_key' });
    await expect(hubCodec2.open((await newCodec.encode(uplink('xian'), { to: 'hub' })).body)).resolves.toMatchObject({ sender: 'xian' });
  });

  it('refuses what is not JOSE (malformed_jose), and never throws from decode', async () => {
    for (const body of [42, '', 'a.b.c', JSON.stringify(uplink('xian')), 'x.y.z.w.v']) {
      const result = await hubCodec.decode(body, {}, { parse: parseConsultationUplink });
      expect(result).toMatchObject({ ok: false, reason: 'malformed_jose' });
    }
    await expect(hubCodec.open('a.b.c')).rejects.toBeInstanceOf(JoseError);
  });

  it('refuses a compressed JWE (zip), which the profile does not have, before decrypting', async () => {
    const sealed = (await xianCodec.encode(uplink('xian'), { to: 'hub' })).body;
    const [protectedHeader, ...rest] = sealed.split('.');
    const headerJson = JSON.parse(Buffer.from(protectedHeader!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const zipped = [Buffer.from(JSON.stringify({ ...headerJson, zip: 'DEF' })).toString('base64url'), ...rest].join('.');
    await expect(hubCodec.open(zipped)).rejects.toMatchObject({ code: 'malformed_jose', message: expect.stringMatching(/zip/) });
    await expect(hubCodec.open(sealed)).resolves.toMatchObject({ sender: 'xian' });
  });

  it('keys: exported and imported again, registered as public JWKs only, kid = thumbprint', async () => {
    const saved = JSON.parse(JSON.stringify(await exportPartyKeys(xian)));
    const again = await importPartyKeys(saved);
    const codec = new JoseCodec({ keys: again, registry, now });
    expect((await hubCodec.open((await codec.encode(uplink('xian'), { to: 'hub' })).body)).sender).toBe('xian');
    const reg = new KeyRegistry();
    await expect(reg.register('xian', saved.signing.privateJwk, { use: 'sig', alg: saved.signing.alg })).rejects.toMatchObject({ code: 'invalid_key' });
    await expect(reg.register('xian', { ...publicJwks(xian).signing, kid: 'made-up' })).rejects.toMatchObject({ code: 'invalid_key' });
    await reg.register('xian', publicJwks(xian).signing);
    await expect(reg.register('beijing', publicJwks(xian).signing)).rejects.toMatchObject({ code: 'key_owned_by_other_party' });
  });
});

// The SDK's codec interface: a JoseCodec slots in where the JsonCodec is used (checked at compile time).
import type { MessageCodec } from '../../src/sdk/codec';
const fitsTheSdk = (codec: JoseCodec): MessageCodec => codec;
void fitsTheSdk;
