// docs/messaging.md's signed and encrypted examples: each JWE opens with the published EXAMPLE keys, is signed by
// the right sender for the right receiver, and holds exactly the envelope shown beside it, which the consultation
// contract accepts.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { JWK } from 'jose';
import { JoseCodec } from '../../src/adapters/crypto/jose-codec';
import { KeyRegistry, importPartyKeys } from '../../src/adapters/crypto/jose-keys';
import { CONSULTATION_DOWNLINK_TYPES, CONSULTATION_UPLINK_TYPES, parseConsultationDownlink, parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';
import { MAX_BATCH_EXPERTS } from '../../src/adapters/messaging/messages';
import { ACCEPTS_PROPERTY, REFUSED_TYPE } from '../../src/adapters/messaging/refusal-notices';
import { MAX_BATCH_JSON_BYTES } from '../../src/application/directory/directory-messages';

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

// What the tester of the guide missed: the limits and reasons it must state, in step with the code that sets them.
describe('docs/messaging.md: the rules a team in another language cannot guess', () => {
  const repo = resolve(__dirname, '..', '..');
  const read = (path: string) => readFileSync(resolve(repo, path), 'utf8');
  const flat = guide.replace(/\s+/g, ' ');

  it('states the broker frame limit the deployment scripts configure, and what happens past it', () => {
    for (const script of ['scripts/activemq/broker.sh', 'scripts/cluster/cluster.sh']) expect(read(script)).toContain('wireFormat.maxFrameSize=1048576');
    expect(flat).toContain('`wireFormat.maxFrameSize=1048576`');
    expect(flat).toContain("a message's body must stay under 1 MiB");
    expect(flat).toContain('the broker closes your **whole connection** (`amqp:decode-error`');
  });

  it('gives the batch size limit of the hub, and the Python client cuts by the same numbers', () => {
    expect(MAX_BATCH_JSON_BYTES).toBe(384 * 1024);
    expect(flat).toContain('at most 500 experts **and** at most 384 KiB of the experts\' JSON');
    const python = read('clients/python/rts_client.py');
    expect(python).toMatch(/^MAX_BATCH_JSON_BYTES = 384 \* 1024$/m);
    expect(python).toMatch(new RegExp(`^MAX_BATCH_EXPERTS = ${MAX_BATCH_EXPERTS}$`, 'm'));
    expect(python).toContain('ensure_ascii=False, separators=(",", ":")');
    expect(python).not.toMatch(/json\.dumps\((?![^)]*ensure_ascii=False)[^)]*\)\.encode/); // a body written with \uXXXX escapes
  });

  it('lists the dead letter reasons a system meets, with the mode each one belongs to', () => {
    for (const reason of ['`body is not an AMQP value string`', '`unknown_key: ...`', '`unknown_system: ...`', '`system_name_mismatch`', '`expert_retired`', '`unknown_type: type: must be one of ...`']) expect(flat).toContain(reason);
    expect(flat).toContain('With message security on (the hub\'s default, `RTS_MESSAGE_SECURITY=jose`) the reason is `unknown_key: ...`');
    expect(flat).toContain('with `RTS_MESSAGE_SECURITY=off` it is `unknown_system: ...`');
    expect(flat).toContain('the experts of the **other** joined systems (never your own');
  });

  it('tells how to ask for refusal notices, by the property the hub reads and the SDK and the Python client set', () => {
    expect(ACCEPTS_PROPERTY).toBe('rts_accepts');
    expect(REFUSED_TYPE).toBe('consultation.refused');
    expect(flat).toContain('set the AMQP application property **`rts_accepts`** (a string, comma-separated downlink types) to include `consultation.refused`');
    const python = read('clients/python/rts_client.py');
    expect(python).toMatch(/^ACCEPTS_PROPERTY = "rts_accepts"$/m);
    expect(python).toMatch(/^ACCEPTED_EXTRA_TYPES = "consultation.refused"$/m);
  });

  it('shows Proton users how to settle modified with delivery-failed, and the example uses the local broker port', () => {
    expect(guide).toContain('delivery.local.failed = True');
    const port = /port="\$\{RTS_BROKER_PORT:-(\d+)\}"/.exec(read('scripts/activemq/broker.sh'))?.[1];
    expect(port).toBe('5673');
    expect(read('clients/python/city_system.py')).toContain(`--broker amqp://127.0.0.1:${port}`);
    expect(flat).toContain(`\`amqp://127.0.0.1:${port}\``);
  });
});
