// Multicast discovery of brokers whose AMQP takes TLS only: a master/slave group of real ActiveMQ nodes in a network
// namespace (scripts/cluster/cluster.sh with RTS_HA_TLS_KEYSTORE) announces amqp+ssl://127.0.0.1:<port>. The hub
// (RTS_BROKER_DISCOVERY, RTS_BROKER_TLS_CA) and an SDK city system (discovery, tls.ca), both inside the namespace,
// find the master by its announcement, connect over TLS, verify its certificate, and follow the group to the slave
// when the master is killed with kill -9. A hub without the CA finds the broker and refuses its certificate, and
// says so. Until this test, TLS discovery was covered only by unit tests of the announcement parser. Needs root and
// ip netns; skipped with one line otherwise.
import { mkdtempSync, rmSync } from 'node:fs';
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

describeHa('HA over TLS: brokers discovered by multicast, reached with amqps and a verified certificate (netns, kill -9)', () => {
  let cluster: TestCluster | undefined;
  let work = '';
  let caFile = '';
  const procs: Proc[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'rts-ha-tls-'));
    const certificate = brokerCertificate(work);
    caFile = certificate.caFile;
    cluster = await startCluster({ netns: `rts-ht${process.pid}`, group: GROUP, nodes: ['g1a', 'g1b'], tls: { keystore: certificate.keystore, password: certificate.password } });
  }, 240_000);

  afterAll(async () => {
    for (const p of procs) await p.kill().catch(() => undefined);
    await cluster?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  const startHub = async (name: string, port: number, env: Record<string, string>): Promise<Proc> => {
    const proc = new Proc(
      name,
      inNs(cluster!.netns, [join(repoRoot, 'src', 'bootstrap', 'main.ts')], {
        RTS_BROKER_DISCOVERY: DISCOVERY,
        RTS_DATA_DIR: mkdtempSync(join(work, `${name}-`)),
        RTS_HTTP_PORT: String(port),
        RTS_LOG_LEVEL: 'info',
        RTS_SHUTDOWN_GRACE_MS: '2000',
        // Plain JSON bodies and no tokens: this test is about the transport, not message security or access control.
        RTS_MESSAGE_SECURITY: 'off',
        RTS_AUTH: 'off',
        ...env,
      }),
    );
    procs.push(proc);
    return proc;
  };

  it('the hub and a city system find the TLS-only master, and follow the group to its slave after kill -9', async () => {
    const c = cluster!;
    const hub = await startHub('hub', 18080, { RTS_BROKER_TLS_CA: caFile });
    await hub.next((l) => l.event === 'amqp.discovery' && l.kind === 'added' && l.endpoint === '127.0.0.1:5701', 60_000, 'discovery of g1a');
    await hub.next((l) => l.event === 'amqp.connected' && l.endpoint === '127.0.0.1:5701', 60_000, 'hub connected to g1a');
    await hub.next((l) => l.msg === 'telemed-rts listening', 90_000, 'listening');

    const city = new Proc('city-a', inNs(c.netns, [join(repoRoot, 'scripts', 'cluster', 'ha-city.ts'), JSON.stringify({ systemId: 'city-a', discovery: DISCOVERY, tlsCaFile: caFile })]));
    procs.push(city);
    await city.next((l) => l.ev === 'ready', 90_000, 'city ready');
    const http = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> => {
      const r = await city.ask(`http ${method} http://127.0.0.1:18080${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`, 'http');
      if (r.ev === 'error') throw new Error(String(r.message));
      return { status: r.status as number, body: r.body as string };
    };
    const accepted = async () => Number(/rts_uplink_accepted_total\{queue="uplink"\} (\d+)/.exec((await http('GET', '/metrics')).body)?.[1] ?? 0);

    // The join goes up and the answer comes down through the discovered broker, over TLS both ways.
    expect([200, 201]).toContain((await http('POST', '/systems', { id: 'city-a', name: 'City A', area: 'Hubei' })).status);
    await city.ask('join', 'joined', 60_000);
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
    const hub = await startHub('hub-no-ca', 18081, {});
    const master = `127.0.0.1:${(await cluster!.status()).find((n) => n.role === 'master')!.port}`;
    await hub.next((l) => l.event === 'amqp.discovery' && l.kind === 'added' && l.endpoint === master, 60_000, `discovery of ${master}`);
    const refused = await hub.next((l) => l.event === 'amqp.disconnected' && /self-signed certificate/.test(String(l.error)), 60_000, 'certificate refusal');
    expect(refused.endpoint).toBe(master);
    expect(hub.lines.some((l) => l.event === 'amqp.connected')).toBe(false);
  }, 180_000);
});
