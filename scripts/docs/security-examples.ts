// Prints the "Message security" examples of docs/messaging.md: EXAMPLE keys (generated here, private parts
// published on purpose so a team can check its implementation against them) and each consultation message of
// src/sdk/asyncapi.ts signed by its sender and encrypted for its receiver with the hub's own JoseCodec.
//
//   node -r ./test/support/ts-register.js scripts/docs/security-examples.ts > /tmp/examples.md
//   node -r ./test/support/ts-register.js scripts/docs/security-examples.ts --keys-from docs/messaging.md --only consultation.refused
//
// Real JOSE output, so every run differs (new keys, random CEKs and IVs); test/unit/messaging-guide.unit.spec.ts
// opens what is committed with the published keys. With --keys-from, the keys published in that guide are used
// instead of new ones, and only the example blocks are printed (--only: those of the listed types, comma-separated):
// a message type added to the contract gets its example without changing the keys teams already test against.
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, exportPartyKeys, generatePartyKeys, importPartyKeys, publicJwks, type PartyKeys } from '../../src/adapters/crypto/jose-keys';
import { EXAMPLE_CONSULTATION_DOWNLINK, EXAMPLE_CONSULTATION_UPLINK } from '../../src/sdk/asyncapi';

type PublishedJwk = JWK & { kid: string; alg: string; use: string };

/** The parties' keys as the guide publishes them (private JWKs, one sig and one enc each). */
const publishedKeys = async (guide: string): Promise<Record<string, PartyKeys>> => {
  const parties: Record<string, PartyKeys> = {};
  for (const m of guide.matchAll(/`([a-z-]+)` \(private JWKs[^\n]*\n\n```jwks\n([\s\S]*?)```/g)) {
    const keys = (JSON.parse(m[2]!) as { keys: PublishedJwk[] }).keys;
    const pub = ({ d: _d, ...rest }: PublishedJwk): JWK => rest;
    const sig = keys.find((k) => k.use === 'sig')!;
    const enc = keys.find((k) => k.use === 'enc')!;
    parties[m[1]!] = await importPartyKeys({ owner: m[1]!, signing: { kid: sig.kid, alg: sig.alg, privateJwk: sig, publicJwk: pub(sig) }, decryption: [{ kid: enc.kid, alg: enc.alg, privateJwk: enc, publicJwk: pub(enc) }] });
  }
  return parties;
};

const argument = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

const main = async (): Promise<void> => {
  const keysFrom = argument('--keys-from');
  const only = argument('--only')?.split(',');
  const parties: Record<string, PartyKeys> = keysFrom ? await publishedKeys(readFileSync(keysFrom, 'utf8')) : {};
  if (!keysFrom) for (const id of ['hub', 'chengdu', 'mianyang']) parties[id] = await generatePartyKeys(id);
  const registry = new KeyRegistry();
  for (const p of Object.values(parties)) {
    const pub = publicJwks(p);
    await registry.register(p.owner, pub.signing);
    await registry.register(p.owner, pub.encryption);
  }
  const codecOf = (id: string) => new JoseCodec({ keys: parties[id]!, registry, now: () => new Date('2026-11-23T03:00:00Z') });
  const out: string[] = [];
  const emit = async (direction: 'uplink' | 'downlink', envelope: { id: string; type: string; systemId: string }) => {
    if (only && !only.includes(envelope.type)) return;
    const from = direction === 'uplink' ? envelope.systemId : 'hub';
    const to = direction === 'uplink' ? 'hub' : envelope.systemId;
    const { body } = await codecOf(from).encode(envelope as never, { to });
    out.push(`#### \`${envelope.type}\` (${direction}: ${from} to ${to})`, '', '```json', JSON.stringify(envelope, null, 2), '```', '', '```jwe', body, '```', '');
  };
  if (keysFrom) {
    for (const e of Object.values(EXAMPLE_CONSULTATION_UPLINK)) await emit('uplink', e);
    for (const e of Object.values(EXAMPLE_CONSULTATION_DOWNLINK)) await emit('downlink', e);
    process.stdout.write(out.join('\n'));
    return;
  }
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
  for (const e of Object.values(EXAMPLE_CONSULTATION_UPLINK)) await emit('uplink', e);
  for (const e of Object.values(EXAMPLE_CONSULTATION_DOWNLINK)) await emit('downlink', e);
  process.stdout.write(out.join('\n'));
};

void main();
