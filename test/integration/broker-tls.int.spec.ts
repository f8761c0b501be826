// AMQP over TLS (amqps://) between the hub, the SDK and a real ActiveMQ whose connector takes TLS only, with
// broker accounts on top: SASL PLAIN passwords and the directory no longer cross the network in clear. The broker's
// certificate is self-signed here (keytool, for 127.0.0.1 only), so trusting it takes RTS_BROKER_TLS_CA / `tls.ca`;
// without it, or for another host name, the connection is refused and the reason is said.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { RtsClient } from '../../src/sdk';
import { brokerCertificate, clientCertificates, startBroker, type BrokerUser, type TestBroker } from '../support/activemq';
import { directoryRoundTrip, failureOf, freePort, getJson, profile, registerSystem, startChildHub, tempDir, until, type ChildHub } from './hub-support';

jest.setTimeout(180_000);

const HUB: BrokerUser = { name: 'hub', password: 'hub-secret', hub: true };
const CHENGDU: BrokerUser = { name: 'chengdu', password: 'chengdu-secret' };
const MIANYANG: BrokerUser = { name: 'mianyang', password: 'mianyang-secret' };

/** What a suite here starts and must end: key and data directories, hubs, SDK clients, then its broker. */
const suiteResources = (prefix: string) => {
  const keys = tempDir(`${prefix}-keys-`);
  const data = tempDir(`${prefix}-`);
  const hubs: ChildHub[] = [];
  const clients: RtsClient[] = [];
  const release = async (broker: TestBroker | undefined) => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const h of hubs) await h.stop();
    await broker?.destroy();
    data.remove();
    keys.remove();
  };
  return { keys, data, hubs, clients, release };
};

describe('the hub and the SDK over TLS to a broker that takes TLS only', () => {
  const { keys, data, hubs, clients, release } = suiteResources('rts-broker-tls');
  let broker: TestBroker;
  let caFile: string;
  let ca: string;

  beforeAll(async () => {
    const certificate = brokerCertificate(keys.dir);
    caFile = certificate.caFile;
    ca = certificate.caPem;
    broker = await startBroker({ users: [HUB, CHENGDU, MIANYANG], tls: certificate });
    expect(broker.url).toBe(`amqps://127.0.0.1:${broker.amqpPort}`);
  });
  afterAll(() => release(broker));

  const url = (user: BrokerUser, host = '127.0.0.1') => `amqps://${user.name}:${user.password}@${host}:${broker.amqpPort}`;

  it('carries the join and the directory over amqps:// with the CA of RTS_BROKER_TLS_CA and tls.ca', async () => {
    const hub = await startChildHub(broker, join(data.dir, 'hub'), undefined, { RTS_BROKER_USERNAME: HUB.name, RTS_BROKER_PASSWORD: HUB.password, RTS_BROKER_TLS_CA: caFile });
    hubs.push(hub);
    await until('hub consuming', async () => (await getJson(hub.url, '/health')).body.uplink === 'consuming');
    await directoryRoundTrip(hub.url, (systemId) => RtsClient.connect({ systemId, url: url(systemId === 'chengdu' ? CHENGDU : MIANYANG), tls: { ca } }), clients);
  });

  it('refuses a broker whose certificate it cannot verify, and says why', async () => {
    const untrusted = await failureOf(RtsClient.connect({ systemId: 'chengdu', url: url(CHENGDU), connectTimeoutMs: 3000 }));
    expect(untrusted?.message).toMatch(/not established within 3000 ms .*last attempt: self-signed certificate/);

    // The certificate names 127.0.0.1 only.
    const otherName = await failureOf(RtsClient.connect({ systemId: 'chengdu', url: url(CHENGDU, 'localhost'), tls: { ca }, connectTimeoutMs: 3000 }));
    expect(otherName?.message).toMatch(/last attempt: Hostname\/IP does not match certificate's altnames/);

    // A hub without RTS_BROKER_TLS_CA serves HTTP, shows the broker disconnected, and logs the reason once.
    const hub = await startChildHub(broker, join(data.dir, 'hub-without-ca'), undefined, { RTS_BROKER_USERNAME: HUB.name, RTS_BROKER_PASSWORD: HUB.password });
    hubs.push(hub);
    expect((await getJson(hub.url, '/health')).body).toMatchObject({ broker: 'disconnected', uplink: 'not_consuming' });
    await new Promise((r) => setTimeout(r, 3000)); // a few more attempts
    const log = hub.output();
    expect(log.match(/"amqp disconnected"/g) ?? []).toHaveLength(1);
    expect(log).toMatch(/"event":"amqp.disconnected".*"error":"self-signed certificate"/);
    expect(log).not.toContain(HUB.password);
  });
});

describe('mutual TLS: a broker that lets in only clients with a certificate it trusts', () => {
  const { keys, data, hubs, clients, release } = suiteResources('rts-broker-mtls');
  let broker: TestBroker;
  let server: ReturnType<typeof brokerCertificate>;
  let trusted: ReturnType<typeof clientCertificates>;

  beforeAll(async () => {
    server = brokerCertificate(keys.dir);
    // The hub's and chengdu's certificates are in the broker's truststore; stranger's is not.
    trusted = clientCertificates(keys.dir, ['hub', 'chengdu']);
    broker = await startBroker({
      users: [HUB, CHENGDU],
      tls: { ...server, truststore: { file: trusted.truststore, password: trusted.password, probe: trusted.certificates.hub! } },
    });
  });
  afterAll(() => release(broker));

  const url = (user: BrokerUser) => `amqps://${user.name}:${user.password}@127.0.0.1:${broker.amqpPort}`;

  it('takes the hub with RTS_BROKER_TLS_CERT/KEY and a system with tls.cert/key, and no one without a trusted certificate', async () => {
    const hubCert = trusted.certificates.hub!;
    const hub = await startChildHub(broker, join(data.dir, 'hub'), undefined, {
      RTS_BROKER_USERNAME: HUB.name,
      RTS_BROKER_PASSWORD: HUB.password,
      RTS_BROKER_TLS_CA: server.caFile,
      RTS_BROKER_TLS_CERT: hubCert.certFile,
      RTS_BROKER_TLS_KEY: hubCert.keyFile,
    });
    hubs.push(hub);
    await until('hub consuming', async () => (await getJson(hub.url, '/health')).body.uplink === 'consuming');

    const chengduCert = trusted.certificates.chengdu!;
    const chengdu = await RtsClient.connect({ systemId: 'chengdu', url: url(CHENGDU), tls: { ca: server.caPem, cert: chengduCert.certPem, key: chengduCert.keyPem } });
    clients.push(chengdu);
    await registerSystem(hub.url, 'chengdu');
    await chengdu.joinWithExperts([{ localExpertId: 'c1', ...profile(1) }]);
    await until('chengdu joined', async () => (await getJson(hub.url, '/systems/chengdu')).body.status === 'joined');

    // The right password is not enough without a certificate the broker trusts: no certificate, or one of its own.
    const none = await failureOf(RtsClient.connect({ systemId: 'chengdu', url: url(CHENGDU), tls: { ca: server.caPem }, connectTimeoutMs: 3000 }));
    // The broker's TLS alert: 42 (bad certificate) for none, 46 (certificate unknown) for one it does not trust.
    expect(none?.message).toMatch(/not established within 3000 ms .*last attempt: .*alert bad certificate/s);
    const strangerDir = tempDir('rts-broker-mtls-stranger-');
    const stranger = clientCertificates(strangerDir.dir, ['stranger']).certificates.stranger!;
    const untrusted = await failureOf(
      RtsClient.connect({ systemId: 'chengdu', url: url(CHENGDU), tls: { ca: server.caPem, cert: stranger.certPem, key: stranger.keyPem }, connectTimeoutMs: 3000 }),
    );
    expect(untrusted?.message).toMatch(/not established within 3000 ms .*last attempt: .*alert certificate unknown/s);
    strangerDir.remove();
  });
});

describe('failover between two brokers that take TLS only', () => {
  const { keys, data, hubs, clients, release } = suiteResources('rts-broker-tls-failover');
  let first: TestBroker;
  let second: TestBroker;
  let certificate: ReturnType<typeof brokerCertificate>;

  beforeAll(async () => {
    certificate = brokerCertificate(keys.dir);
    [first, second] = await Promise.all([startBroker({ tls: certificate }), startBroker({ tls: certificate })]);
  });
  afterAll(async () => {
    await release(second);
    await first?.destroy();
  });

  it('the hub and the SDK move to the second over amqps:// with the same CA when the first dies', async () => {
    const list = `${first.url},${second.url}`;
    const hub = await startChildHub(first, join(data.dir, 'hub'), undefined, { RTS_BROKER_URL: list, RTS_BROKER_TLS_CA: certificate.caFile, RTS_LOG_LEVEL: 'info' });
    hubs.push(hub);
    await until('hub consuming', async () => (await getJson(hub.url, '/health')).body.uplink === 'consuming');
    await until('hub connected to the first', () => new RegExp(`"event":"amqp.connected".*"endpoint":"127.0.0.1:${first.amqpPort}"`).test(hub.output()), 5_000);

    await first.kill();
    // The failover keeps TLS and its CA: the hub consumes again, from the second broker.
    await until('hub failed over', async () => new RegExp(`"event":"amqp.failover".*"to":"127.0.0.1:${second.amqpPort}"`).test(hub.output()));
    await until('hub consuming again', async () => (await getJson(hub.url, '/health')).body.uplink === 'consuming');

    // Systems given the same list (the first is gone) join and sync through the second, over TLS.
    await directoryRoundTrip(hub.url, (systemId) => RtsClient.connect({ systemId, url: [first.url, second.url], tls: { ca: certificate.caPem } }), clients);
    expect(hub.output()).not.toMatch(/certificate|self-signed/i);
  });
});

describe('scripts/activemq/broker.sh up with a keystore', () => {
  const dir = tempDir('rts-broker-up-tls-');
  afterAll(() => dir.remove());

  it('prints the amqps:// URL clients must use (it printed amqp:// for a port that takes TLS only)', async () => {
    const certificate = brokerCertificate(dir.dir);
    const script = resolve(__dirname, '..', '..', 'scripts', 'activemq', 'broker.sh');
    const port = await freePort();
    const env = { ...process.env, RTS_BROKER_PORT: String(port), RTS_BROKER_DATA: join(dir.dir, 'data'), RTS_BROKER_HEAP: '256m', RTS_BROKER_TLS_KEYSTORE: certificate.keystore, RTS_BROKER_TLS_KEYSTORE_PASSWORD: certificate.password };
    const run = promisify(execFile);
    try {
      const { stdout } = await run('bash', [script, 'up'], { env });
      expect(stdout).toContain(`broker: up (pid `);
      expect(stdout).toContain(` amqps://127.0.0.1:${port} `);
    } finally {
      await run('bash', [script, 'down'], { env });
    }
  });
});
