// The HA cluster as production runs it (scripts/cluster/cluster.sh with RTS_HA_TLS_KEYSTORE and RTS_HA_USERS_FILE):
// real ActiveMQ nodes in a network namespace whose AMQP takes TLS only and only logins of broker accounts, with the
// RTS access map. (1) A master/slave group announces amqp+ssl://127.0.0.1:<port> by multicast: the hub
// (RTS_BROKER_DISCOVERY, RTS_BROKER_TLS_CA, RTS_BROKER_USERNAME/PASSWORD) and an SDK city system (discovery, tls.ca,
// sasl), both inside the namespace, find the master, connect over TLS with their accounts, verify its certificate,
// and follow the group to the slave after kill -9. A hub without the CA, and one with a wrong password, find the
// broker and are refused, saying why. (2) Two groups joined by the network bridge, which logs in as a hub account:
// a city system on one group joins the hub on the other. Until this test, TLS discovery was covered only by unit
// tests, and the failover tests ran against brokers without logins. Needs root and ip netns; skipped otherwise.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { brokerCertificate } from '../support/activemq';
import { startCluster, type TestCluster } from '../support/cluster';
import { netnsSupport } from '../support/netns';
import { inNs, Proc } from '../support/netns-proc';

const repoRoot = resolve(__dirname, '..', '..');
const support = netnsSupport();
if (!support.ok) console.log(`ha-tls-discovery: skipped (${support.reason}; needs root and ip netns)`);
const describeHa = support.ok ? describe : describe.skip;

const GROUP = 'rts-ht-test';
const DISCOVERY = `multicast://239.255.2.3:6155?group=${GROUP}&interface=127.0.0.1&rebalance=off`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HUB_ACCOUNT = { RTS_BROKER_USERNAME: 'hub', RTS_BROKER_PASSWORD: 'hub-secret' };

/** The cluster's broker accounts: the hub (which the bridges log in as too) and two city systems. */
const usersFile = (dir: string): string => {
  const file = join(dir, 'broker-users');
  writeFileSync(file, '# name password [hub]\nhub hub-secret hub\ncity-a city-a-secret\ncity-b city-b-secret\n', { mode: 0o600 });
  return file;
};

/** What a describe here runs on: a cluster with TLS and accounts, started before its tests and stopped after. */
type Fixture = { cluster?: TestCluster; work: string; caFile: string; procs: Proc[] };
const productionCluster = (netns: string, group: string, nodes: readonly string[]): Fixture => {
  const fx: Fixture = { work: '', caFile: '', procs: [] };
  beforeAll(async () => {
    fx.work = mkdtempSync(join(tmpdir(), `${netns}-`));
    const certificate = brokerCertificate(fx.work);
    fx.caFile = certificate.caFile;
    fx.cluster = await startCluster({ netns: `${netns}${process.pid}`, group, nodes, tls: { keystore: certificate.keystore, password: certificate.password }, users: usersFile(fx.work) });
  }, 240_000);
  afterAll(async () => {
    for (const p of fx.procs) await p.kill().catch(() => undefined);
    await fx.cluster?.stop();
    if (fx.work) rmSync(fx.work, { recursive: true, force: true });
  }, 120_000);
  return fx;
};

/** The hub (src/bootstrap/main.ts) inside the fixture's namespace; `env` says how it finds and logs in to brokers. */
const startHub = (fx: Fixture, name: string, port: number, env: Record<string, string>): Proc => {
  const proc = new Proc(
    name,
    inNs(fx.cluster!.netns, [join(repoRoot, 'src', 'bootstrap', 'main.ts')], {
      RTS_DATA_DIR: mkdtempSync(join(fx.work, `${name}-`)),
      RTS_HTTP_PORT: String(port),
      RTS_LOG_LEVEL: 'info',
      RTS_SHUTDOWN_GRACE_MS: '2000',
      // Plain JSON bodies and no tokens: this test is about the transport, not message security or access control.
      RTS_MESSAGE_SECURITY: 'off',
      RTS_AUTH: 'off',
      ...env,
    }),
  );
  fx.procs.push(proc);
  return proc;
};

describeHa('HA over TLS with broker accounts: brokers discovered by multicast, reached with amqps, a verified certificate and a login (netns, kill -9)', () => {
  const fx = productionCluster('rts-ht', GROUP, ['g1a', 'g1b']);

  it('the hub and a city system find the TLS-only master, and follow the group to its slave after kill -9', async () => {
    const c = fx.cluster!;
    const hub = startHub(fx, 'hub', 18080, { RTS_BROKER_DISCOVERY: DISCOVERY, RTS_BROKER_TLS_CA: fx.caFile, ...HUB_ACCOUNT });
    await hub.next((l) => l.event === 'amqp.discovery' && l.kind === 'added' && l.endpoint === '127.0.0.1:5701', 60_000, 'discovery of g1a');
    await hub.next((l) => l.event === 'amqp.connected' && l.endpoint === '127.0.0.1:5701', 60_000, 'hub connected to g1a');
    await hub.next((l) => l.msg === 'telemed-rts listening', 90_000, 'listening');

    const city = new Proc('city-a', inNs(c.netns, [join(repoRoot, 'scripts', 'cluster', 'ha-city.ts'), JSON.stringify({ systemId: 'city-a', discovery: DISCOVERY, tlsCaFile: fx.caFile, username: 'city-a', password: 'city-a-secret' })]));
    fx.procs.push(city);
    await city.next((l) => l.ev === 'ready', 90_000, 'city ready');
    const http = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> => {
      const r = await city.ask(`http ${method} http://127.0.0.1:18080${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`, 'http');
      if (r.ev === 'error') throw new Error(String(r.message));
      return { status: r.status as number, body: r.body as string };
    };
    const accepted = async () => Number(/rts_uplink_accepted_total\{queue="uplink"\} (\d+)/.exec((await http('GET', '/metrics')).body)?.[1] ?? 0);

    // The join goes up and the answer comes down through the discovered broker, over TLS both ways.
    expect([200, 201]).toContain((await http('POST', '/systems', { id: 'city-a', name: 'City A', area: 'Hubei' })).status);
    expect((await city.ask('join', 'joined', 60_000)).ev).toBe('joined');
    const beforeKill = await accepted();
    expect(beforeKill).toBeGreaterThanOrEqual(1);

    // kill -9 the master: the slave takes the lock, opens its TLS connector and announces it; both clients move.
    const since = hub.lines.length;
    const citySince = city.lines.length;
    const takeover = await c.killMaster('g1');
    expect(takeover).toMatchObject({ killed: 'g1a', master: 'g1b' });
    const failover = await hub.next((l) => l.event === 'amqp.failover' && l.to === '127.0.0.1:5702', 60_000, 'hub failover to g1b', since);
    expect(failover.from).toBe('127.0.0.1:5701');
    const moved = await city.next((l) => l.ev === 'failover', 60_000, 'city failover', citySince);
    expect(moved).toMatchObject({ from: '127.0.0.1:5701', to: '127.0.0.1:5702' });

    // Registrations sent after the failover reach the hub through g1b.
    city.send('stream 20');
    await sleep(2_000);
    expect((await city.ask('pause', 'paused', 60_000)).ev).toBe('paused');
    for (let i = 0; i < 60 && (await accepted()) <= beforeKill; i++) await sleep(500);
    expect(await accepted()).toBeGreaterThan(beforeKill);
  }, 300_000);

  it('a hub without the CA finds the broker by its announcement and refuses its certificate, saying why', async () => {
    const hub = startHub(fx, 'hub-no-ca', 18081, { RTS_BROKER_DISCOVERY: DISCOVERY, ...HUB_ACCOUNT });
    const master = `127.0.0.1:${(await fx.cluster!.status()).find((n) => n.role === 'master')!.port}`;
    await hub.next((l) => l.event === 'amqp.discovery' && l.kind === 'added' && l.endpoint === master, 60_000, `discovery of ${master}`);
    const refused = await hub.next((l) => l.event === 'amqp.disconnected' && /self-signed certificate/.test(String(l.error)), 60_000, 'certificate refusal');
    expect(refused.endpoint).toBe(master);
    expect(hub.lines.some((l) => l.event === 'amqp.connected')).toBe(false);
  }, 180_000);

  it('a hub with a wrong broker password reaches the broker over TLS and is refused its login, saying so', async () => {
    const hub = startHub(fx, 'hub-bad-login', 18082, { RTS_BROKER_DISCOVERY: DISCOVERY, RTS_BROKER_TLS_CA: fx.caFile, RTS_BROKER_USERNAME: 'hub', RTS_BROKER_PASSWORD: 'not-the-password' });
    const refused = await hub.next((l) => (l.event === 'amqp.disconnected' || l.event === 'amqp.error') && /login|sasl|auth/i.test(String(l.error)), 60_000, 'login refusal');
    expect(String(refused.error)).not.toContain('not-the-password');
    expect(hub.lines.some((l) => l.event === 'amqp.connected')).toBe(false);
  }, 180_000);
});

describeHa('HA with broker accounts: the network bridge between groups logs in as a hub account (netns)', () => {
  const fx = productionCluster('rts-hb', `${GROUP}-b`, ['g1a', 'g2a']);

  it('a city system on g2a joins the hub on g1a: its join goes over the bridge and the answer comes back', async () => {
    const hub = startHub(fx, 'hub', 18080, { RTS_BROKER_URL: 'amqps://127.0.0.1:5701', RTS_BROKER_TLS_CA: fx.caFile, ...HUB_ACCOUNT });
    await hub.next((l) => l.event === 'amqp.connected' && l.endpoint === '127.0.0.1:5701', 60_000, 'hub connected to g1a');
    await hub.next((l) => l.msg === 'telemed-rts listening', 90_000, 'listening');

    const city = new Proc('city-b', inNs(fx.cluster!.netns, [join(repoRoot, 'scripts', 'cluster', 'ha-city.ts'), JSON.stringify({ systemId: 'city-b', url: 'amqps://127.0.0.1:5703', tlsCaFile: fx.caFile, username: 'city-b', password: 'city-b-secret' })]));
    fx.procs.push(city);
    await city.next((l) => l.ev === 'ready', 90_000, 'city ready');
    const registered = await city.ask(`http POST http://127.0.0.1:18080/systems ${JSON.stringify({ id: 'city-b', name: 'City B', area: 'Hubei' })}`, 'http');
    expect([200, 201]).toContain(registered.status);
    // The join request crosses g2a -> g1a to the hub's uplink consumer; system.joined crosses back to city-b's
    // downlink queue, where city-b consumes on g2a. Without the bridge's login neither would move.
    expect((await city.ask('join', 'joined', 90_000)).ev).toBe('joined');
  }, 240_000);
});
