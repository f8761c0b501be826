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
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RunningHub } from '../../src/bootstrap/main';
import { MAX_BATCH_JSON_BYTES, partitionExperts } from '../../src/application/directory/directory-messages';
import { messageTraceOf } from '../../src/adapters/messaging/message-trace';
import { deadLetterIdFor } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { isBlankText, showsNothing } from '../../src/domain/shared/text-limits';
import { message as amqpMessage, type Message } from 'rhea';
import { mayHoldCprDigits } from '../../src/domain/monitoring/cpr-like';
import { RtsClient, generatePartyKeys, joseCodecFor, registerSystem } from '../../src/sdk';
import { brokerCertificate, clientCertificates, startBroker, type TestBroker } from '../support/activemq';
import { getJson, jsonLines, postJson, profile, startInProcessHub, tempDir, until } from './hub-support';
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

/**
 * The Python client's log lines as logging.basicConfig writes them to stderr (`<date> <time> <LEVEL> rts_client
 * <message> key=value ...`, a value with a space in JSON quotes), parsed: `msg` is the message (the SDK's), the
 * fields beside it.
 */
type ClientLine = Record<string, unknown> & { level: string; msg: string };
const clientLog = (stderr: string): ClientLine[] =>
  stderr.split('\n').flatMap((text) => {
    const m = /^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) rts_client (.*)$/.exec(text);
    if (!m) return [];
    const rest = m[2]!;
    const fieldsAt = rest.search(/ [A-Za-z]+=/);
    const line: ClientLine = { level: m[1]!, msg: fieldsAt < 0 ? rest : rest.slice(0, fieldsAt) };
    for (const [, key, raw] of (fieldsAt < 0 ? '' : rest.slice(fieldsAt)).matchAll(/ ([A-Za-z]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
      line[key!] = raw!.startsWith('"') ? (JSON.parse(raw!) as string) : /^\d+$/.test(raw!) ? Number(raw) : raw === 'true' ? true : raw;
    }
    return [line];
  });
/** What a log line's text may hold of a JWE, a JWS or a token: none of them belongs in one. */
const COMPACT_JOSE = /eyJ[A-Za-z0-9_-]{20,}/;

maybe('Python city system (qpid-proton + jwcrypto) against the real broker and hub', () => {
  let broker: TestBroker;
  let hub: RunningHub;
  let data: { dir: string; remove(): void };
  let experts: RtsClient | undefined;
  let operator: Record<string, string>;
  let pyCity: Record<string, string>;
  // The hub's log, to follow one message from the Python system's lines to the hub's by its ids.
  const hubLog = jsonLines('info');
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
      logger: hubLog.logger,
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

    // The Python system's half of the trace (README, "Tracing a consultation or a message"): its log (stderr) names
    // each message by the ids of the hub's lines, and holds none of the case's texts, names or keys.
    const log = clientLog(err);
    const sent = log.filter((l) => l.msg === 'uplink message sent');
    expect(sent.find((l) => l.type === 'consultation.requested')).toMatchObject({ level: 'INFO', systemId: 'py-city', id: requested.id, correlationId: consultationId, consultationId, queue: 'rts.uplink', attempts: 1 });
    expect(hubLog.lines.find((l) => l['msg'] === 'uplink message handled' && l['id'] === requested.id)).toMatchObject({ type: 'consultation.requested', consultationId, correlationId: consultationId });
    const hubReports = hubLog.lines.filter((l) => l['msg'] === 'downlink message sent' && l['type'] === 'consultation.report' && l['systemId'] === 'py-city');
    expect(hubReports[0]).toMatchObject({ consultationId, correlationId: consultationId, queue: 'rts.downlink.py-city' });
    const handled = log.find((l) => l.msg === 'downlink message handled' && l.type === 'consultation.report')!;
    expect(handled).toMatchObject({ level: 'INFO', systemId: 'py-city', correlationId: consultationId, consultationId, attempt: 1 });
    expect(hubReports.map((l) => l['id'])).toContain(handled.id);
    const acknowledge = sent.find((l) => l.type === 'consultation.acknowledge')!;
    expect(acknowledge).toMatchObject({ level: 'INFO', consultationId, correlationId: consultationId });
    expect(hubLog.lines.find((l) => l['msg'] === 'uplink message handled' && l['id'] === acknowledge.id)).toMatchObject({ consultationId });
    expect(log.find((l) => l.msg === 'connected to the hub broker')).toMatchObject({ level: 'INFO', endpoint: `127.0.0.1:${broker.amqpPort}`, connectionCount: 1 });
    expect(log.find((l) => l.msg === 'join uploaded')).toMatchObject({ level: 'INFO', batches: 1, experts: 1 });
    for (const text of ['Second opinion on an atypical ECG', 'Resting ECG', 'Brugada', 'Ajmaline', 'Dr. Py Thon', 'dr-python', accounts.pyCity.password]) expect(err).not.toContain(text);
    expect(err).not.toMatch(COMPACT_JOSE);
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

    // Its log (stderr) says the same: the dead broker it passed over, the connection the oversize send cost, the
    // handler's failure and the two dead letters, each by the message's ids.
    const log = clientLog(err);
    expect(log.find((l) => l.msg === 'hub broker connection failed')).toMatchObject({ level: 'WARNING', systemId: 'py-big', endpoint: '127.0.0.1:1' });
    expect(log.filter((l) => l.msg === 'connected to the hub broker').map((l) => [l.endpoint, l.connectionCount])).toEqual(expect.arrayContaining([[`127.0.0.1:${broker.amqpPort}`, 1], [`127.0.0.1:${broker.amqpPort}`, 2]]));
    expect(log.find((l) => l.msg === 'disconnected from the hub broker')).toMatchObject({ level: 'WARNING', endpoint: `127.0.0.1:${broker.amqpPort}`, reconnecting: true });
    expect(log.find((l) => l.msg === 'downlink message handed back for redelivery')).toMatchObject({ level: 'WARNING', id: failed.id, type: failed.type, queue: 'rts.downlink.py-big', attempt: 1, reason: 'handler threw: RuntimeError' });
    const deadLines = log.filter((l) => l.msg === 'downlink message dead-lettered');
    expect(deadLines.find((l) => l.id === poison.malformed)).toMatchObject({ level: 'WARNING', type: 'system.joined', systemId: 'py-big', queue: 'rts.downlink.py-big', attempt: 1, reason: expect.stringMatching(/^malformed_jose: /) });
    expect(deadLines.find((l) => l.id === poison.data)).toMatchObject({ level: 'WARNING', reason: 'body is not an AMQP value string' });
    for (const password of [accounts.pyBig.password, accounts.hub.password]) expect(err).not.toContain(password);
    expect(err).not.toMatch(COMPACT_JOSE);
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


  it("leaves out of its log lines what the hub's would: may_hold_cpr_digits and loggable agree with mayHoldCprDigits and messageTraceOf", () => {
    // Values a sender might set as an id: CPR numbers in every spelling the hub reads, dates that are none, the hub's
    // own ids (alone and glued to digits), and seeded random numbers with separators, some holding a real date.
    let seed = 0x5eed;
    const random = (n: number): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    const pick = <T,>(items: readonly T[]): T => items[random(items.length)]!;
    const digits = (n: number): string => Array.from({ length: n }, () => String(random(10))).join('');
    const two = (n: number): string => String(n).padStart(2, '0');
    const separators = ['', '', '-', '.', '_', ':', '/', ' ', '+', '--', '-.-', '\u2013', '\u2212', '\uff0d', '\u00a0', '\u00ad', '\u200b', '\u200b-', '\u2060', '\u200f', '\u200e-', '\u061c', '\u30fc', '\uff5e'];
    const glue = ['', '', 'x', 'cons-', 'ticket:', 'a1', '9', '1.2.', 'order-'];
    const fullWidth = (text: string): string => text.replace(/[0-9]/g, (d) => String.fromCharCode(d.charCodeAt(0) + 0xfee0));
    const fixed = ['251248-1234', '2512481234', '25.12.48-1234', '25 12 48 1234', '25-12-1948-1234', '19481225-1234', '1948-12-25-1234', '25124-81234', '251248-12-34', '3201481234',
      '290200-1234', '290201-1234', '12512481234', '202612021030', 'order-202612021030-17', 'order-20261202-1030-17', '2024-01-01 12:00:00', '3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10',
      '00000000-0000-4000-8000-002512481234', '00000000-0000-4000-0000-002512481234', 'abcdefab-cdef-4abc-0abc-ab2512481234', '5f2b8c3e-1234-4a5b-9c8d-123456789012/251248-1234',
      '2.25.329800735698586629295641978511506172918', '2.25.3298007356985866292956419785115061729180', '2.25.2512481234', '1.2.2512481234', 'p0102031234abcdef0102031234abcdef',
      `p${'0'.repeat(22)}2512481234`, 'patient-0102031234ab', 'cons-0001', 'ticket:2026/17', '２５１２４８-１２３４', '患者２５１２４８－１２３４，胸痛', '\u0662\u0665\u0661\u0662\u0664\u0668-\u0661\u0662\u0663\u0664', '\u06F2\u06F5\u06F1\u06F2\u06F4\u06F8\u06F1\u06F2\u06F3\u06F4', 'a b', 'x'.repeat(101), ''];
    const generated = Array.from({ length: 4000 }, (_, i) => {
      switch (i % 4) {
        case 0: return Array.from({ length: 1 + random(5) }, () => digits(1 + random(8))).reduce((a, b) => a + pick(separators) + b);
        case 1: {
          const [d, m] = [1 + random(31), 1 + random(13)];
          const year = random(2) ? two(random(100)) : String(1790 + random(320));
          const groups = random(3) === 0 ? [String(year).padStart(4, '0'), two(m), two(d)] : [two(d), two(m), year];
          const text = [...groups, digits(4)].reduce((a, b) => a + pick(separators) + b);
          return pick(glue) + (random(8) === 0 ? fullWidth(text) : text) + pick(glue);
        }
        case 2: return pick(glue) + randomUUID() + pick(['', '', digits(1 + random(12)), `-${digits(10)}`]);
        default: return pick(glue) + digits(8 + random(8)) + pick(glue);
      }
    });
    const values = [...fixed, ...generated];
    const expected = values.map((v) => [mayHoldCprDigits(v), messageTraceOf({ body: undefined, application_properties: { correlationId: v } }).correlationId ?? null]);
    expect(expected.filter(([held]) => held).length).toBeGreaterThan(500);
    expect(expected.filter(([held, shown]) => !held && shown !== null).length).toBeGreaterThan(500);

    const dir = tempDir('rts-python-loggable-');
    try {
      const file = join(dir.dir, 'values.json');
      writeFileSync(file, JSON.stringify(values));
      const script = 'import json, sys; from rts_client import loggable, may_hold_cpr_digits; print(json.dumps([[may_hold_cpr_digits(v), loggable(v)] for v in json.load(open(sys.argv[1], encoding="utf-8"))]))';
      const run = spawnSync(PYTHON, ['-c', script, file], { cwd: CLIENT_DIR, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (run.status !== 0) throw new Error(run.stderr);
      const ours = JSON.parse(run.stdout) as unknown[];
      expect(values.map((v, i) => ({ v, rule: ours[i] })).filter((x, i) => JSON.stringify(x.rule) !== JSON.stringify(expected[i]))).toEqual([]);
    } finally {
      dir.remove();
    }
  });

  it("refuses before sending the texts the hub would dead-letter: shows_nothing agrees with showsNothing on every code point", () => {
    // Python's unicodedata knows its own Unicode (14.0 in Debian 12's 3.11), Node's ICU 17.0: every code point alone,
    // and texts around trim() (which Python's strip() does not match: U+001C-U+001F, U+0085, U+FEFF).
    const codePoints = Array.from({ length: 0x110000 }, (_, cp) => cp).filter((cp) => cp < 0xd800 || cp > 0xdfff);
    const blank = codePoints.filter((cp) => isBlankText(String.fromCodePoint(cp)));
    const texts = ['', ' ', '\t\n', '\ufeff', '\u3000', '\x1c', '\x85', ' \x1c ', '\u200b', '\ufeff\u200b', '\u00ad', 'Hoved\u00adpine', '\u0600', '\u0600\u200b', '\u{110cd}', '\u3164\ufe0f', '\u{e0041}', '\u{13439}', 'a', '\u{1f468}\u200d\u2695'];
    const expected = { blank, shows: texts.map((t) => showsNothing(t)) };
    expect(blank.length).toBeGreaterThan(4000);
    expect(expected.shows).toContain(true);
    expect(expected.shows).toContain(false);
    const dir = tempDir('rts-python-shown-');
    try {
      const file = join(dir.dir, 'texts.json');
      writeFileSync(file, JSON.stringify(texts));
      const script = 'import json, sys; from rts_client import is_blank_text, shows_nothing; print(json.dumps({"blank": [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and is_blank_text(chr(c))], "shows": [shows_nothing(t) for t in json.load(open(sys.argv[1], encoding="utf-8"))]}))';
      const run = spawnSync(PYTHON, ['-c', script, file], { cwd: CLIENT_DIR, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      if (run.status !== 0) throw new Error(run.stderr);
      const ours = JSON.parse(run.stdout) as typeof expected;
      const only = (a: number[], b: number[]): string[] => a.filter((cp) => !new Set(b).has(cp)).map((cp) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`);
      expect({ pythonOnly: only(ours.blank, blank), hubOnly: only(blank, ours.blank) }).toEqual({ pythonOnly: [], hubOnly: [] });
      expect(ours.shows).toEqual(expected.shows);
    } finally {
      dir.remove();
    }
  });

  it("names its own dead letters as the hub would: dead_letter_id_for agrees with deadLetterIdFor on the message as rhea reads it", () => {
    // Python encodes each message as proton puts it on the wire and computes the id on it as it reads it back; the
    // hub's function gets the same bytes as rhea reads them.
    const script = `
import json, uuid
from proton import Message, int32, timestamp, ulong
from rts_client import dead_letter_id_for
props = {"messageId": "3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10", "type": "consultation.report", "version": int32(1), "systemId": "py-city", "correlationId": "c-1", "codec": "jose", "consultationId": "5f2b8c3e-1234-4a5b-9c8d-123456789012"}
jwe = "eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a.b.c.d"
cases = [
    Message(body=jwe, id=props["messageId"], properties=props),
    Message(body=jwe, id=props["messageId"], user_id=b"py-city", properties=props),
    Message(body=jwe, id=uuid.UUID(props["messageId"]), properties=props),
    Message(body=jwe, id=ulong(42), properties=props),
    Message(body=jwe, properties={}),
    Message(body=b"\\x00\\x01binary\\xff", inferred=True, id="m-data", properties=props),
    Message(body=b"\\x00\\x01binary\\xff", inferred=False, id="m-binary", properties=props),
    Message(body="\\u60a3\\u8005 \\u2028 \\U0001f600 \\"q\\" \\\\ \\x01\\x7f", id="m-text", properties={"b": True, "a": None, "B": 12345678901, "_": "S\\u00f8ren \\U0001f600\\n", "\\u00e9": -1, "rts_dlq_id": str(uuid.uuid4()), "rts_envelope_id": "e-1", "x-dlq-attempts": int32(3), "f": 1.5, "g": 2.0, "t": timestamp(1765058400123)}),
]
out = []
for m in cases:
    back = Message()
    back.decode(m.encode())
    out.append([m.encode().hex(), dead_letter_id_for(back)])
print(json.dumps(out))
`;
    const run = spawnSync(PYTHON, ['-c', script], { cwd: CLIENT_DIR, encoding: 'utf8' });
    if (run.status !== 0) throw new Error(run.stderr);
    const cases = JSON.parse(run.stdout) as [string, string][];
    expect(cases).toHaveLength(8);
    const ids = cases.map(([wire]) => deadLetterIdFor(amqpMessage.decode(Buffer.from(wire, 'hex')) as unknown as Message));
    expect(new Set(ids).size).toBe(8);
    expect(cases.map(([, id]) => id)).toEqual(ids);
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
