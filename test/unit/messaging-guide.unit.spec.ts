// docs/messaging.md's signed and encrypted examples: each JWE opens with the published EXAMPLE keys, is signed by
// the right sender for the right receiver, and holds exactly the envelope shown beside it, which the consultation
// contract accepts.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JWK } from 'jose';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, importPartyKeys } from '../../src/adapters/crypto/jose-keys';
import { CONSULTATION_DOWNLINK_TYPES, CONSULTATION_UPLINK_TYPES, parseConsultationDownlink, parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';

const guide = readFileSync(resolve(__dirname, '..', '..', 'docs', 'messaging.md'), 'utf8');

const keyBlocks = [...guide.matchAll(/`([a-z-]+)` \(private JWKs[^\n]*\n\n```jwks\n([\s\S]*?)```/g)].map((m) => ({ owner: m[1]!, keys: (JSON.parse(m[2]!) as { keys: (JWK & { kid: string; alg: string; use: string })[] }).keys }));
const examples = [...guide.matchAll(/#### `([a-z.]+)` \((uplink|downlink): ([a-z-]+) to ([a-z-]+)\)\n\n```json\n([\s\S]*?)```\n\n```jwe\n(\S+)\n```/g)].map((m) => ({
  type: m[1]!,
  direction: m[2] as 'uplink' | 'downlink',
  from: m[3]!,
  to: m[4]!,
  envelope: JSON.parse(m[5]!) as Record<string, unknown>,
  jwe: m[6]!,
}));

describe('docs/messaging.md: the signed and encrypted examples', () => {
  it('publishes example keys for the hub and two systems, and every consultation message both ways', () => {
    expect(keyBlocks.map((k) => k.owner).sort()).toEqual(['chengdu', 'hub', 'mianyang']);
    expect(examples.filter((e) => e.direction === 'uplink').map((e) => e.type).sort()).toEqual([...CONSULTATION_UPLINK_TYPES].sort());
    expect(examples.filter((e) => e.direction === 'downlink').map((e) => e.type).sort()).toEqual([...CONSULTATION_DOWNLINK_TYPES].sort());
  });

  it('opens each one with the receiver key, verifies the sender, and finds the envelope shown', async () => {
    const registry = new KeyRegistry();
    const parties = new Map<string, Awaited<ReturnType<typeof importPartyKeys>>>();
    for (const { owner, keys } of keyBlocks) {
      const sig = keys.find((k) => k.use === 'sig')!;
      const enc = keys.find((k) => k.use === 'enc')!;
      const pub = (k: JWK & { kid: string; alg: string; use: string }) => {
        const { d: _d, ...rest } = k;
        return rest as JWK;
      };
      await registry.register(owner, pub(sig));
      await registry.register(owner, pub(enc));
      parties.set(owner, await importPartyKeys({ owner, signing: { kid: sig.kid, alg: sig.alg, privateJwk: sig, publicJwk: pub(sig) }, decryption: [{ kid: enc.kid, alg: enc.alg, privateJwk: enc, publicJwk: pub(enc) }] }));
    }
    for (const e of examples) {
      const codec = new JoseCodec({ keys: parties.get(e.to)!, registry });
      const opened = await codec.open(e.jwe, { from: e.from });
      expect(opened.sender).toBe(e.from);
      expect(opened.envelope).toEqual(e.envelope);
      const parsed = e.direction === 'uplink' ? parseConsultationUplink(opened.json) : parseConsultationDownlink(opened.json);
      expect(parsed.ok).toBe(true);
    }
  });
});
