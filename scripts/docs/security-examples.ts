// Prints the "Message security" examples of docs/messaging.md: EXAMPLE keys (generated here, private parts
// published on purpose so a team can check its implementation against them) and each consultation message of
// src/sdk/asyncapi.ts signed by its sender and encrypted for its receiver with the hub's own JoseCodec.
//
//   node -r ./test/support/ts-register.js scripts/docs/security-examples.ts > /tmp/examples.md
//
// Real JOSE output, so every run differs (new keys, random CEKs and IVs); test/unit/messaging-guide.unit.spec.ts
// opens what is committed with the published keys.
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, exportPartyKeys, generatePartyKeys, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
import { EXAMPLE_CONSULTATION_DOWNLINK, EXAMPLE_CONSULTATION_UPLINK } from '../../src/sdk/asyncapi';

const main = async (): Promise<void> => {
  const parties: Record<string, PartyKeys> = {};
  for (const id of ['hub', 'chengdu', 'mianyang']) parties[id] = await generatePartyKeys(id);
  const registry = new KeyRegistry();
  for (const p of Object.values(parties)) {
    const pub = publicJwks(p);
    await registry.register(p.owner, pub.signing);
    await registry.register(p.owner, pub.encryption);
  }
  const codecOf = (id: string) => new JoseCodec({ keys: parties[id]!, registry, now: () => new Date('2026-11-23T03:00:00Z') });
  const out: string[] = [];
  out.push('### Example keys (EXAMPLES ONLY: never use them; the private parts are published to let you test)', '');
  for (const id of ['hub', 'chengdu', 'mianyang']) {
    const stored = await exportPartyKeys(parties[id]!);
    const keys = [
      { ...stored.signing.privateJwk, kid: stored.signing.kid, alg: stored.signing.alg, use: 'sig' },
      { ...stored.decryption[0]!.privateJwk, kid: stored.decryption[0]!.kid, alg: stored.decryption[0]!.alg, use: 'enc' },
    ];
    out.push(`\`${id}\` (private JWKs; the public ones are these without \`d\`):`, '', '```jwks', JSON.stringify({ keys }, null, 2), '```', '');
  }
  out.push('### Every consultation message, signed and encrypted (EXAMPLES, made with the keys above)', '');
  out.push('Each shows the envelope (`msg`), then the AMQP body: the compact JWE. Open it with the receiver\'s `enc` key, verify the JWS inside with the sender\'s `sig` key.', '');
  const emit = async (direction: 'uplink' | 'downlink', envelope: { id: string; type: string; systemId: string }) => {
    const from = direction === 'uplink' ? envelope.systemId : 'hub';
    const to = direction === 'uplink' ? 'hub' : envelope.systemId;
    const { body } = await codecOf(from).encode(envelope as never, { to });
    out.push(`#### \`${envelope.type}\` (${direction}: ${from} to ${to})`, '', '```json', JSON.stringify(envelope, null, 2), '```', '', '```jwe', body, '```', '');
  };
  for (const e of Object.values(EXAMPLE_CONSULTATION_UPLINK)) await emit('uplink', e);
  for (const e of Object.values(EXAMPLE_CONSULTATION_DOWNLINK)) await emit('downlink', e);
  process.stdout.write(out.join('\n'));
};

void main();
