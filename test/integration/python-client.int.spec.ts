// A client that is not ours and not JavaScript: clients/python (Debian's python3-qpid-proton and python3-jwcrypto)
// joins as a city system over HTTP + AMQP with message security on, registers an expert, and asks an expert of
// another system for a consultation; that system is played by the TypeScript SDK, which accepts and reports. The
// Python client receives the report (decrypted, the hub's signature verified) and acknowledges it. Access control
// is on, as a hub runs by default: the Python script registers its system with an operator's token. The broker is
// as production brokers should be: TLS only (amqps://, a keytool certificate), a certificate and an account per party.
// jose (the hub's tokens) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RunningHub } from '../../src/bootstrap/main';
import { MAX_BATCH_JSON_BYTES, partitionExperts } from '../../src/application/directory/directory-messages';
import { RtsClient, generatePartyKeys, joseCodecFor, registerSystem } from '../../src/sdk';
import { brokerCertificate, clientCertificates, startBroker, type TestBroker } from '../support/activemq';
import { getJson, postJson, profile, startInProcessHub, tempDir, until } from './hub-support';
import { runChild } from '../support/children';

jest.setTimeout(180_000);

const PYTHON = '/usr/bin/python3';
const CLIENT_DIR = resolve(__dirname, '..', '..', 'clients', 'python');
const available = spawnSync(PYTHON, ['-c', 'import proton, jwcrypto'], { stdio: 'ignore' }).status === 0;
if (!available) {
  // One line, then skip: .ci/run installs the packages.
  console.warn('python-client: skipped: /usr/bin/python3 with python3-qpid-proton and python3-jwcrypto is needed (apt-get install -y python3-qpid-proton python3-jwcrypto)');
}
const maybe = available ? describe : describe.skip;

maybe('Python city system (qpid-proton + jwcrypto) against the real broker and hub', () => {
  let broker: TestBroker;
  let hub: RunningHub;
  let data: { dir: string; remove(): void };
  let experts: RtsClient | undefined;
  let operator: Record<string, string>;
  let pyCity: Record<string, string>;
  const bearer = async (who: Record<string, string>): Promise<Record<string, string>> => {
    const login = await postJson<{ token?: string }>(hub.url, '/auth/dev-login', who);
    if (login.status !== 200 || !login.body.token) throw new Error(`dev-login ${JSON.stringify(who)}: HTTP ${login.status}`);
    return { authorization: `Bearer ${login.body.token}` };
  };

  // As in production: TLS only, and an account per party (the RTS access map: py-city may read only its own queue).
  const accounts = {
    hub: { name: 'hub', password: 'hub-secret', hub: true },
    pyCity: { name: 'py-city', password: 'py-secret' },
    pyBig: { name: 'py-big', password: 'big-secret' },
    pyRot: { name: 'py-rot', password: 'rot-secret' },
    pyPeer: { name: 'py-rot-peer', password: 'peer-secret' },
    pyRef: { name: 'py-ref', password: 'ref-secret' },
    tsExperts: { name: 'ts-experts', password: 'ts-secret' },
  };
  let certificate: ReturnType<typeof brokerCertificate>;
  let clients: ReturnType<typeof clientCertificates>;
  let keysDir: { dir: string; remove(): void };
  const amqps = (user: { name: string; password: string }) => `amqps://${user.name}:${user.password}@127.0.0.1:${broker.amqpPort}`;

  beforeAll(async () => {
    keysDir = tempDir('rts-python-client-tls-');
    certificate = brokerCertificate(keysDir.dir);
    // Mutual TLS too: each party shows a certificate the broker trusts.
    clients = clientCertificates(keysDir.dir, ['hub', 'py-city', 'py-big', 'py-rot', 'py-rot-peer', 'py-ref', 'ts-experts']);
    broker = await startBroker({ users: Object.values(accounts), tls: { ...certificate, truststore: { file: clients.truststore, password: clients.password, probe: clients.certificates.hub! } } });
    data = tempDir('rts-python-client-');
    hub = await startInProcessHub(broker, data.dir, {
      env: {
        RTS_MESSAGE_SECURITY: 'jose',
        RTS_AUTH: 'on',
        RTS_BROKER_USERNAME: accounts.hub.name,
        RTS_BROKER_PASSWORD: accounts.hub.password,
        RTS_BROKER_TLS_CA: certificate.caFile,
        RTS_BROKER_TLS_CERT: clients.certificates.hub!.certFile,
        RTS_BROKER_TLS_KEY: clients.certificates.hub!.keyFile,
      },
    });
    // The local hub's development login hands out the operator's token (a deployment mints it: token.js).
    operator = await bearer({ role: 'operator' });
    // Consultations are read by the systems in them, not by operators (they hold patient data).
    pyCity = await bearer({ role: 'system', systemId: 'py-city' });
  });

  afterAll(async () => {
    await experts?.close().catch(() => undefined);
    await hub?.stop();
    await broker?.destroy();
    data?.remove();
    keysDir?.remove();
  });

  it('joins, registers an expert, requests a consultation and receives and acknowledges the report', async () => {
    // The other city system, with the TypeScript SDK: one cardiologist who accepts and reports.
    const keys = await generatePartyKeys('ts-experts');
    await registerSystem(hub.url, { id: 'ts-experts', name: 'TS Experts', area: 'Sichuan' }, keys, operator);
    experts = await RtsClient.connect({ systemId: 'ts-experts', url: amqps(accounts.tsExperts), tls: { ca: certificate.caPem, cert: clients.certificates['ts-experts']!.certPem, key: clients.certificates['ts-experts']!.keyPem }, codec: await joseCodecFor({ keys, hubUrl: hub.url }) });
    await experts.joinWithExperts([{ localExpertId: 'cardio-1', ...profile(2) }]);
    const offered: string[] = [];
    await experts.subscribe({
      onConsultationOffered: async (m) => {
        offered.push(m.payload.clinicalQuestion);
        await experts!.acceptConsultation(m.payload.consultationId, m.payload.expertId, { correlationId: m.correlationId });
        await experts!.issueReport(m.payload.consultationId, m.payload.expertId, { diagnosis: 'Brugada pattern type 2', recommendations: 'Ajmaline test' }, { correlationId: m.correlationId });
      },
    });
    await until('ts-experts joined', async () => (await getJson(hub.url, '/systems/ts-experts', operator)).body.status === 'joined');

    const { code, out, err } = await runChild(PYTHON, [join(CLIENT_DIR, 'city_system.py'), '--hub', hub.url, '--broker', amqps(accounts.pyCity), '--ca', certificate.caFile, '--cert', clients.certificates['py-city']!.certFile, '--key', clients.certificates['py-city']!.keyFile, '--system', 'py-city', '--candidate', 'ts-experts:cardio-1', '--timeout', '90'], {
      cwd: CLIENT_DIR,
      env: { ...process.env, RTS_TOKEN: operator.authorization!.slice('Bearer '.length) },
    });
    if (code !== 0) throw new Error(`city_system.py exited ${code}\nstdout:\n${out}\nstderr:\n${err}`);

    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const requested = lines.find((l) => l.event === 'requested')!;
    const report = lines.find((l) => l.event === 'report')!;
    expect(report).toMatchObject({ expertId: 'ts-experts:cardio-1', diagnosis: 'Brugada pattern type 2', correlationId: requested.consultationId });
    expect(offered).toEqual(['Second opinion on an atypical ECG']);

    const consultationId = String(requested.consultationId);
    await until('acknowledged', async () => (await getJson(hub.url, `/consultations/${consultationId}`, pyCity)).body.status === 'acknowledged');
    const consultation = (await getJson(hub.url, `/consultations/${consultationId}`, pyCity)).body;
    expect(consultation).toMatchObject({ applicantSystemId: 'py-city' });
    await until('the Python expert is in the directory', async () => (await getJson(hub.url, '/experts/py-city:py-expert-1', operator)).status === 200);
    expect((await getJson(hub.url, '/systems/py-city/keys', operator)).body.items).toHaveLength(2);
  });

  it('says why the broker refused it, and never prints the password of its URL', async () => {
    const wrong = `amqps://py-city:not-the-py-password@127.0.0.1:${broker.amqpPort}`;
    const { code, out, err } = await runChild(
      PYTHON,
      [join(CLIENT_DIR, 'city_system.py'), '--hub', hub.url, '--broker', wrong, '--ca', certificate.caFile, '--cert', clients.certificates['py-city']!.certFile, '--key', clients.certificates['py-city']!.keyFile, '--system', 'py-city', '--candidate', 'ts-experts:cardio-1', '--timeout', '5'],
      { cwd: CLIENT_DIR, env: { ...process.env, RTS_TOKEN: operator.authorization!.slice('Bearer '.length) } },
    );
    expect(code).not.toBe(0);
    expect(err).toContain(`ConnectionError: Connection amqps://127.0.0.1:${broker.amqpPort} disconnected`);
    expect(err).toContain('Authentication failed');
    expect(out + err).not.toContain('not-the-py-password');
  });
  it('keeps the wire rules: failover, the 1 MiB limit, a join cut by size, settling after the handler, dead letters', async () => {
    // Runs after the first test: ts-experts and py-city are joined, so the snapshot has experts of both.
    const dead = `amqps://${accounts.pyBig.name}:${accounts.pyBig.password}@127.0.0.1:1`;
    const { code, out, err } = await runChild(
      PYTHON,
      [
        join(CLIENT_DIR, 'tests', 'wire_rules_check.py'),
        ...['--hub', hub.url, '--broker', dead, '--broker', amqps(accounts.pyBig), '--feeder', amqps(accounts.hub), '--ca', certificate.caFile],
        ...['--cert', clients.certificates['py-big']!.certFile, '--key', clients.certificates['py-big']!.keyFile],
        ...['--feeder-cert', clients.certificates.hub!.certFile, '--feeder-key', clients.certificates.hub!.keyFile, '--system', 'py-big', '--experts', '150'],
      ],
      { cwd: CLIENT_DIR, env: { ...process.env, RTS_TOKEN: operator.authorization!.slice('Bearer '.length) } },
    );
    if (code !== 0) throw new Error(`wire_rules_check.py exited ${code}\nstdout:\n${out}\nstderr:\n${err}`);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const event = (name: string) => lines.filter((l) => l.event === name);

    // A message over the broker's frame limit costs the sender its connection; the client refuses one itself.
    expect(event('oversize_refused')).toHaveLength(1);
    expect(event('too_large_refused')).toHaveLength(1);
    // The join: sent after that loss (reconnected), cut by size (150 experts, ~1.2 MB of UTF-8 JSON), each body under 1 MiB.
    const sent = event('join_sent')[0]!;
    expect(sent.reconnects).toBeGreaterThanOrEqual(1);
    expect(sent.batches).toBeGreaterThanOrEqual(3);
    expect(sent.largestPayloadBytes).toBeLessThanOrEqual(MAX_BATCH_JSON_BYTES + 100);
    expect(sent.largestBodyBytes).toBeLessThan(1024 * 1024);
    expect(sent.utf8Bytes).toBeLessThan(sent.asciiEscapedBytes * 0.6);
    await until('py-big joined', async () => (await getJson(hub.url, '/systems/py-big', operator)).body.status === 'joined');
    expect((await getJson(hub.url, '/experts/py-big:big-149', operator)).status).toBe(200);

    // The handler raised on the first message: it came again, its attempt counted (delivery-failed was set).
    const failed = event('handler_failed')[0]!;
    expect(failed.attempt).toBe(1);
    expect(event('handled').find((l) => l.id === failed.id)).toMatchObject({ attempt: 2 });
    // The snapshot holds the other systems' experts, never the joiner's own.
    const homes = new Set(lines.filter((l) => l.type === 'directory.snapshot').flatMap((l) => l.homes as string[]));
    expect([...homes].sort()).toEqual(['py-city', 'ts-experts']);

    // The two forged messages: in rts.dlq with the reason, the source queue and the attempts, never handled.
    const { poison } = { poison: event('poison_sent')[0]! };
    await until('both forged messages dead-lettered', async () => {
      const items = (await getJson<{ items: Array<Record<string, unknown>> }>(hub.url, '/dead-letters?limit=100', operator)).body.items;
      return [poison.malformed, poison.data].every((id) => items.some((d) => d.envelopeId === id || d.id === id));
    });
    const items = (await getJson<{ items: Array<Record<string, any>> }>(hub.url, '/dead-letters?limit=100', operator)).body.items;
    const find = (id: string) => items.find((d) => d.envelopeId === id || d.id === id)!;
    expect(find(poison.malformed)).toMatchObject({ sourceQueue: 'rts.downlink.py-big', attempts: 1, systemId: 'py-big' });
    expect(find(poison.malformed).reason).toMatch(/^malformed_jose: /);
    expect(find(poison.data)).toMatchObject({ sourceQueue: 'rts.downlink.py-big', reason: 'body is not an AMQP value string' });
    expect(lines.filter((l) => l.id === poison.malformed || l.id === poison.data)).toEqual([]);
  });

  it('rotates its encryption key in the documented order and loses none of the messages queued for the old key', async () => {
    const { code, out, err } = await runChild(
      PYTHON,
      [
        join(CLIENT_DIR, 'tests', 'rotation_check.py'),
        ...['--hub', hub.url, '--broker', amqps(accounts.pyRot), '--peer-broker', amqps(accounts.pyPeer), '--ca', certificate.caFile],
        ...['--cert', clients.certificates['py-rot']!.certFile, '--key', clients.certificates['py-rot']!.keyFile],
        ...['--peer-cert', clients.certificates['py-rot-peer']!.certFile, '--peer-key', clients.certificates['py-rot-peer']!.keyFile, '--system', 'py-rot', '--peer', 'py-rot-peer'],
      ],
      { cwd: CLIENT_DIR, env: { ...process.env, RTS_TOKEN: operator.authorization!.slice('Bearer '.length) } },
    );
    if (code !== 0) throw new Error(`rotation_check.py exited ${code}\nstdout:\n${out}\nstderr:\n${err}`);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    const event = (name: string) => lines.filter((l) => l.event === name);
    const rotated = event('rotated')[0]!;
    expect(event('joined_unread')[0]!.waiting).toBeGreaterThanOrEqual(2);
    expect(rotated.registered).toEqual([rotated.new]);
    const handled = event('handled');
    // Queued before the new key was registered: the join's confirmation and snapshot, for the old key...
    expect(handled.filter((l) => l.kid === rotated.old).map((l) => l.type)).toEqual(expect.arrayContaining(['system.joined', 'directory.snapshot']));
    // ...and after it the news of the peer, for the new key.
    expect(handled.filter((l) => l.kid === rotated.new).map((l) => l.type)).toEqual(expect.arrayContaining(['system.joined', 'directory.expert.upserted']));
    expect(handled.find((l) => l.type === 'directory.expert.upserted')).toMatchObject({ about: 'py-rot-peer:peer-1' });
    expect(event('done')[0]).toMatchObject({ kids: [rotated.old, rotated.new].sort(), decryption: [rotated.new] });
    const items = (await getJson<{ items: Array<Record<string, any>> }>(hub.url, '/dead-letters?limit=100', operator)).body.items;
    expect(items.filter((d) => d.sourceQueue === 'rts.downlink.py-rot')).toEqual([]);
    const keys = (await getJson<{ items: Array<{ kid: string; retiresAt: string | null }> }>(hub.url, '/systems/py-rot/keys', operator)).body.items;
    expect(keys.find((k) => k.kid === rotated.old)?.retiresAt).toEqual(expect.any(String));
    expect(keys.find((k) => k.kid === rotated.new)?.retiresAt).toBeNull();
  });

  it('is told when the hub refuses its request (consultation.refused, a retired candidate): its consultation messages carry rts_accepts', async () => {
    // Runs last (py-ref joins with an expert: the snapshots of the tests above would hold it) and after the first test
    // (ts-experts is joined). One of ts-experts' experts retires before the Python system asks for them.
    await experts!.registerExpert('gone', profile(3));
    await until('ts-experts:gone known', async () => (await getJson(hub.url, '/experts/ts-experts:gone', operator)).status === 200);
    await experts!.retireExpert('gone');
    await until('ts-experts:gone retired', async () => (await getJson(hub.url, '/experts/ts-experts:gone', operator)).body.status === 'retired');

    const { code, out, err } = await runChild(PYTHON, [join(CLIENT_DIR, 'city_system.py'), '--hub', hub.url, '--broker', amqps(accounts.pyRef), '--ca', certificate.caFile, '--cert', clients.certificates['py-ref']!.certFile, '--key', clients.certificates['py-ref']!.keyFile, '--system', 'py-ref', '--candidate', 'ts-experts:gone', '--timeout', '90'], {
      cwd: CLIENT_DIR,
      env: { ...process.env, RTS_TOKEN: operator.authorization!.slice('Bearer '.length) },
    });
    if (code !== 2) throw new Error(`city_system.py exited ${code}, not 2 (refused)\nstdout:\n${out}\nstderr:\n${err}`);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const requested = lines.find((l) => l.event === 'requested')!;
    // Decrypted and verified like every hub message, and handed to the handler: the request's id, the code, the fields.
    expect(lines.find((l) => l.event === 'refused')).toEqual({
      event: 'refused',
      consultationId: requested.consultationId,
      refusedMessageId: requested.id,
      refusedType: 'consultation.requested',
      reason: 'candidate_retired',
      detail: 'candidates.0 retired',
    });
    const pyRef = await bearer({ role: 'system', systemId: 'py-ref' });
    expect((await getJson(hub.url, `/consultations/${String(requested.consultationId)}`, pyRef)).status).toBe(404);
  });
});

maybe('Python client (offline): cuts a join as the hub does, and its codec passes its unit tests', () => {
  it('passes its offline unit tests: several decryption keys, re-reading the hub JWKS, the reasons of the checks', () => {
    const run = spawnSync(PYTHON, ['-m', 'unittest', 'discover', '-s', 'tests', '-v'], { cwd: CLIENT_DIR, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`python3 -m unittest exited ${run.status}\n${run.stderr}`);
    expect(run.stderr).toMatch(/^Ran \d+ tests? in /m);
    expect(run.stderr).toContain('test_a_signing_kid_not_seen_yet_triggers_one_re_read_and_is_accepted');
    expect(run.stderr).toMatch(/^OK$/m);
  });


  it('puts the same experts in the same batches as partitionExperts, by UTF-8 bytes of compact JSON', () => {
    const dir = tempDir('rts-python-partition-');
    try {
      const experts = Array.from({ length: 700 }, (_, i) => ({
        localExpertId: `e-${i}`,
        ...profile(i),
        name: i % 3 === 0 ? '张'.repeat(1 + (i % 200)) : i % 3 === 1 ? `Dr. "Q" \\ ${'x'.repeat(i % 190)}` : `🩺 ${'é'.repeat(i % 150)}\n`,
        specialties: Array.from({ length: 1 + (i % 20) }, () => '心血管内科'.repeat(20)),
      }));
      const file = join(dir.dir, 'experts.json');
      writeFileSync(file, JSON.stringify(experts));
      const script = 'import json, sys; from rts_client import partition_experts; print(json.dumps([len(b) for b in partition_experts(json.load(open(sys.argv[1], encoding="utf-8")))]))';
      const run = spawnSync(PYTHON, ['-c', script, file], { cwd: CLIENT_DIR, encoding: 'utf8' });
      if (run.status !== 0) throw new Error(run.stderr);
      const ours = partitionExperts(experts).map((b) => b.length);
      expect(ours.length).toBeGreaterThan(2); // by size: 700 experts would be 2 batches by count
      expect(JSON.parse(run.stdout)).toEqual(ours);
    } finally {
      dir.remove();
    }
  });
});
