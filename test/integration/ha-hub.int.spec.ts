// The hub under high availability (issue 6): real brokers, real kill -9. Two ActiveMQ master/slave groups in a
// network namespace (scripts/cluster/cluster.sh); the hub (src/bootstrap/main.ts, RTS_BROKER_DISCOVERY) and two
// SDK-driven city systems (scripts/cluster/ha-city.ts) run INSIDE the namespace as child processes, since
// multicast and their ports exist only there. While both systems stream expert registrations and the hub
// publishes downlink: kill -9 the master the hub is on and then the other group's; SIGKILL the hub and restart
// it; start a fifth node (the hub moves there, no restart) and stop it gracefully (its dead packet removes it at
// once). At the end: each registration exactly one ExpertRegistered in the event store, and each system got
// every other system's expert (deduped by envelope id). Needs root and ip netns; skipped with one line otherwise.
//
// RTS_HA_HUB_ROUNDS=n repeats the kill rounds (soak: scripts/cluster/soak.sh with RTS_HA_SOAK_MODE=hub).
// RTS_HA_HUB_RATE=n: registrations per second per system (default 100). At 100 a backlog builds on the hub's broker
// before each move, as in production under load. With the mesh's earlier networkTTL="3" this test then lost 42
// registrations in one of three runs (45 left on a broker the hub no longer used); at 150 with three rounds, 1,863 in
// one of one. At the former 25 it lost some only on a slow machine (50, 54), and passed otherwise. The deterministic
// check of that setting is ha-mesh-hops.int.spec.ts.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { expertStreamName } from '../../src/domain/directory/expert';
import { startCluster, groupOf, nodeOfPort, type TestCluster } from '../support/cluster';
import { netnsSupport } from '../support/netns';
import { inNs, Proc } from '../support/netns-proc';

const repoRoot = resolve(__dirname, '..', '..');
const support = netnsSupport();
if (!support.ok) console.log(`ha-hub: skipped (${support.reason}; needs root and ip netns)`);
const describeHa = support.ok ? describe : describe.skip;
const rounds = Math.max(1, Math.min(200, Number(process.env.RTS_HA_HUB_ROUNDS ?? 1) || 1));
const rate = Math.max(1, Math.min(1000, Number(process.env.RTS_HA_HUB_RATE ?? 100) || 100));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** 3,4,5,9 -> "x3-x5,x9". */
const idRanges = (ns: readonly number[]): string => {
  const sorted = [...ns].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    out.push(i === j ? `x${sorted[i]!}` : `x${sorted[i]!}-x${sorted[j]!}`);
    i = j + 1;
  }
  return out.join(',');
};

/** The WARN and ERROR lines of every node's log (node.out), digits folded, counted: "; g1a: 3x WARN ...". */
const brokerLogWarnings = (dir: string): string => {
  const parts: string[] = [];
  const nodes = join(dir, 'nodes');
  for (const name of existsSync(nodes) ? readdirSync(nodes).sort() : []) {
    const file = join(nodes, name, 'node.out');
    if (!existsSync(file)) continue;
    const counts = new Map<string, number>();
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!/\b(WARN|ERROR)\b/.test(line)) continue;
      const folded = line.replace(/^.*?\b(WARN|ERROR)\b/, '$1').replace(/\d+/g, 'N').slice(0, 200);
      counts.set(folded, (counts.get(folded) ?? 0) + 1);
    }
    if (counts.size > 0) parts.push(`${name}: ${[...counts].map(([l, n]) => `${n}x ${l}`).join(' | ')}`);
  }
  return parts.length > 0 ? `; broker warnings ${parts.join('; ')}` : '; no broker warnings';
};

describeHa('HA: the hub and SDK systems over two master/slave groups (netns, kill -9)', () => {
  let cluster: TestCluster | undefined;
  let hub: Proc | undefined;
  const cities: Proc[] = [];
  let dataDir = '';
  const HTTP = 'http://127.0.0.1:18080';

  beforeAll(async () => {
    cluster = await startCluster({ netns: `rts-hh${process.pid}`, group: 'rts-hh-test' });
    dataDir = mkdtempSync(join(tmpdir(), 'rts-ha-hub-'));
  }, 240000);

  afterAll(async () => {
    for (const c of cities) await c.kill().catch(() => undefined);
    await hub?.kill().catch(() => undefined);
    await cluster?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }, 120000);

  const discovery = (rebalance: string) => `multicast://239.255.2.3:6155?group=rts-hh-test&interface=127.0.0.1&rebalance=${rebalance}`;

  const startHubProc = async (): Promise<Proc> => {
    const child = inNs(cluster!.netns, [join(repoRoot, 'src', 'bootstrap', 'main.ts')], {
      RTS_BROKER_DISCOVERY: discovery('always'),
      RTS_DATA_DIR: dataDir,
      RTS_HTTP_PORT: '18080',
      RTS_LOG_LEVEL: 'info',
      RTS_SHUTDOWN_GRACE_MS: '2000',
      RTS_UPLINK_PREFETCH: '50',
      // Plain JSON bodies: this test is about delivery, not message security.
      RTS_MESSAGE_SECURITY: 'off',
      // Access control is another test's subject; this one drives the hub's HTTP API without tokens.
      RTS_AUTH: 'off',
    });
    const proc = new Proc('hub', child);
    await proc.next((l) => l.msg === 'telemed-rts listening', 90000, 'listening');
    return proc;
  };

  /** The broker port the hub is on now (its last connected/failover line). */
  const hubPort = (): number => {
    const last = [...hub!.lines].reverse().find((l) => l.event === 'amqp.connected' || l.event === 'amqp.failover');
    return Number(String(last?.endpoint ?? last?.to).split(':').pop());
  };

  const http = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> => {
    const r = await cities[0]!.ask(`http ${method} ${HTTP}${path}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`, 'http');
    if (r.ev === 'error') throw new Error(String(r.message));
    return { status: r.status as number, body: r.body as string };
  };

  it('kill -9 of masters, hub SIGKILL + restart, a fifth node: every registration exactly once, every system gets every change', async () => {
    const t0 = Date.now();
    const c = cluster!;
    hub = await startHubProc();
    const systems = ['city-a', 'city-b'];
    for (const systemId of systems) {
      const proc = new Proc(systemId, inNs(c.netns, [join(repoRoot, 'scripts', 'cluster', 'ha-city.ts'), JSON.stringify({ systemId, discovery: discovery('off') })]));
      cities.push(proc);
      await proc.next((l) => l.ev === 'ready', 90000, 'ready');
    }
    for (const systemId of systems) {
      const r = await http('POST', '/systems', { id: systemId, name: `City ${systemId}`, area: 'Hubei' });
      expect([200, 201]).toContain(r.status);
    }
    for (const city of cities) city.send('join');
    for (const systemId of systems) {
      for (let i = 0; i < 300; i++) {
        const r = await http('GET', `/systems/${systemId}`);
        if (r.status === 200 && (JSON.parse(r.body) as { status: string }).status === 'joined') break;
        await sleep(200);
      }
    }
    for (const city of cities) city.send(`stream ${rate}`);
    const streamStart = Date.now();
    await sleep(3000);
    // Each entry with the seconds since streaming began: lost ids (sent `rate` a second) can then be matched to events.
    const timeline: string[] = [`setup ${streamStart - t0} ms`];
    const mark = (entry: string) => timeline.push(`${entry} @${((Date.now() - streamStart) / 1000).toFixed(1)} s`);

    // kill -9 the master the hub is on, then the other group's master.
    for (let round = 0; round < rounds; round++) {
      for (let k = 0; k < 2; k++) {
        const port = hubPort();
        const group = k === 0 ? groupOf(nodeOfPort(port)) : groupOf(nodeOfPort(port)) === 'g1' ? 'g2' : 'g1';
        const since = hub.lines.length;
        const result = await c.killMaster(group);
        const failover = k === 0 ? await hub.next((l) => l.event === 'amqp.failover', 20000, `hub failover after killing ${result.killed}`, since) : undefined;
        mark(`kill ${result.killed} (takeover ${result.takeoverMs} ms${failover ? `, hub failover ${String(failover.pauseMs)} ms to ${String(failover.to)}` : ''})`);
        await sleep(2500);
      }
    }

    // The hub process SIGKILLed mid-stream, restarted on the same data directory.
    const before = (await cities[0]!.ask('status', 'status')).registered as number;
    const firstHubLines = hub.lines;
    await hub.kill();
    const down = Date.now();
    await sleep(2000);
    hub = await startHubProc();
    mark(`hub SIGKILL + restart ${Date.now() - down} ms`);
    await sleep(2000);
    expect((await cities[0]!.ask('status', 'status')).registered as number).toBeGreaterThan(before);

    // A fifth node at runtime: discovered and used by the hub without a restart (rebalance=always).
    const sinceStart = hub.lines.length;
    await c.startNode('g3a');
    await hub.next((l) => l.event === 'amqp.discovery' && l.kind === 'added' && l.endpoint === '127.0.0.1:5705', 90000, 'discovery of g3a', sinceStart);
    await hub.next((l) => (l.event === 'amqp.failover' && l.to === '127.0.0.1:5705') || (l.event === 'amqp.connected' && l.endpoint === '127.0.0.1:5705'), 20000, 'hub on g3a', sinceStart);
    const acceptedOn = (text: string) => Number(/rts_uplink_accepted_total\{queue="uplink"\} (\d+)/.exec(text)?.[1] ?? 0);
    // Uplink reaches the hub on g3a once the other groups' bridges to it forward to its consumer: how soon depends on
    // when they found g3a (multicast) and on the machine's load, so this waits for it (at most 30 s) rather than
    // asserting a latency, and the timeline says how long it took.
    const m1 = acceptedOn((await http('GET', '/metrics')).body);
    const onG3a = Date.now();
    let m2 = m1;
    for (let i = 0; i < 120 && m2 <= m1; i++) {
      await sleep(250);
      m2 = acceptedOn((await http('GET', '/metrics')).body);
    }
    expect(hubPort()).toBe(5705);
    expect(m2).toBeGreaterThan(m1);
    mark(`g3a started, discovered and used by the hub (first uplink there after ${Date.now() - onG3a} ms)`);

    // Graceful stop: the dead packet removes it at once.
    const sinceStop = hub.lines.length;
    const stopAt = c.signalStop('g3a');
    const removed = await hub.next((l) => l.event === 'amqp.discovery' && l.kind === 'removed' && l.endpoint === '127.0.0.1:5705', 10000, 'removal of g3a', sinceStop);
    expect(removed.reason).toBe('dead');
    const removalMs = (typeof removed.time === 'number' ? removed.time : Date.parse(String(removed.time))) - stopAt;
    expect(removalMs).toBeLessThan(1500);
    mark(`g3a stopped: removed after ${removalMs} ms`);
    await sleep(2000);

    // Once more: kill -9 the master the hub is on now (it left g3a when g3a stopped).
    {
      await hub.next((l) => l.event === 'amqp.failover' && l.to !== '127.0.0.1:5705', 20000, 'hub off g3a', sinceStop);
      const since = hub.lines.length;
      const result = await c.killMaster(groupOf(nodeOfPort(hubPort())));
      const failover = await hub.next((l) => l.event === 'amqp.failover', 20000, `hub failover after killing ${result.killed}`, since);
      mark(`kill ${result.killed} (takeover ${result.takeoverMs} ms, hub failover ${String(failover.pauseMs)} ms to ${String(failover.to)})`);
      await sleep(2500);
    }

    // Stop streaming; bring g3a back so what was forwarded to it (uplink for the hub) flows again; drain.
    for (const city of cities) await city.ask('pause', 'paused', 240000);
    mark('streaming paused');
    await c.startNode('g3a');
    const reports = async () => Promise.all(cities.map((city) => city.ask('report', 'report')));
    let final = await reports();
    const missing = () =>
      final.map((r, i) => {
        const other = final[1 - i]!;
        const got = new Set(r.upsertedIds as string[]);
        return (other.registeredIds as string[]).filter((local) => !got.has(`${String(other.systemId)}:${local}`)).length;
      });
    for (let i = 0; i < 120 && missing().some((n) => n > 0); i++) {
      await sleep(1000);
      final = await reports();
    }
    // The hub ends connected. A scrape can fall into a reconnect in progress (the broker that came back, a link
    // moving), so it is read again until it shows the connection up, for at most 20 s.
    let metricsText = (await http('GET', '/metrics')).body;
    for (let i = 0; i < 40 && !/rts_amqp_connected\{role="hub"\} 1/.test(metricsText); i++) {
      await sleep(500);
      metricsText = (await http('GET', '/metrics')).body;
    }
    const failedSends = final.reduce((n, r) => n + (r.failed as number), 0);
    const registered = final.map((r) => (r.registeredIds as string[]).length);

    // Stop the hub, then read its event store.
    const hubDone = hub.exited;
    hub.child.kill('SIGTERM');
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([hubDone, new Promise((r) => (grace = setTimeout(r, 15000)))]);
    clearTimeout(grace);
    await hub.kill();
    const store = SqliteEventStore.open({ file: join(dataDir, 'telemed.sqlite') });
    const perExpert = new Map<string, number>();
    try {
      for (let after = 0n, i = 0; i < 10000; i++) {
        const batch = await store.readAll({ after, maxCount: 1000 });
        if (batch.length === 0) break;
        for (const e of batch) {
          if (e.type === 'ExpertRegistered') perExpert.set(e.streamName, (perExpert.get(e.streamName) ?? 0) + 1);
          after = e.globalPosition;
        }
      }
    } finally {
      await store.close();
    }
    let lost = 0;
    let duplicates = 0;
    const lostIds: string[] = [];
    for (const r of final) {
      const missingHere: number[] = [];
      for (const local of r.registeredIds as string[]) {
        const n = perExpert.get(expertStreamName(String(r.systemId), local)) ?? 0;
        if (n === 0) missingHere.push(Number(local.slice(1)));
        if (n > 1) duplicates += n - 1;
      }
      lost += missingHere.length;
      // Which ones, as ranges of the sequence (x1 was sent first, about `stream` per second): when they were sent.
      if (missingHere.length > 0) lostIds.push(`${String(r.systemId)} ${idRanges(missingHere)} of x1-x${String(r.sent)}`);
    }
    // What the hub dead-lettered (both its processes), by reason without its figures: a message whose delivery count
    // reached the limit across the failovers is dead-lettered, not handled, and counted as lost above.
    const deadLettered = new Map<string, number>();
    for (const l of [...firstHubLines, ...hub.lines].filter((l) => l.msg === 'uplink message dead-lettered')) {
      const reason = String(l.reason).replace(/\d+/g, 'N');
      deadLettered.set(reason, (deadLettered.get(reason) ?? 0) + 1);
    }
    // Missing registrations that the hub did not dead-letter: left on a broker, or gone? What each node's queues
    // still hold (browsed, nothing taken), while the cluster is still up.
    const leftOnBrokers =
      lost > 0
        ? await c.queueCounts([5701, 5702, 5703, 5704, 5705], ['rts.uplink', 'rts.dlq', 'ActiveMQ.DLQ']).catch((error: Error) => `not counted: ${error.message}`)
        : 'not counted';
    // And what the brokers warned about (each node's log, numbers folded so alike lines count together).
    const brokerWarnings = lost > 0 ? brokerLogWarnings(c.dir) : '';
    const hubFailovers = Number(/rts_amqp_failovers_total\{role="hub"\} (\d+)/.exec(metricsText)?.[1] ?? 0);
    console.log(
      `ha-hub: ${timeline.join('; ')}; registered ${registered.join('+')}, ExpertRegistered events ${[...perExpert.values()].reduce((a, b) => a + b, 0)}, ` +
        `lost ${lost}${lost > 0 ? ` [${lostIds.join('; ')}]` : ''} (dead-lettered ${JSON.stringify(Object.fromEntries(deadLettered))}; on the brokers ${leftOnBrokers}${brokerWarnings}), duplicate events ${duplicates}, downlink missing ${missing().join('+')}, raw downlink deliveries ${final.map((r) => r.rawDeliveries).join('+')} ` +
        `(distinct ${final.map((r) => r.downlink).join('+')}), failed sends ${failedSends}, hub failovers since restart ${hubFailovers}, ` +
        `client failovers ${final.map((r) => (r.failovers as unknown[]).length).join('+')}, total ${Math.round((Date.now() - t0) / 1000)} s`,
    );
    expect(failedSends).toBe(0);
    expect(lost).toBe(0);
    expect(duplicates).toBe(0);
    expect(perExpert.size).toBe(registered.reduce((a, b) => a + b, 0));
    expect(missing()).toEqual([0, 0]);
    expect(registered.every((n) => n > 100)).toBe(true);
    expect(metricsText).toMatch(/rts_amqp_connected\{role="hub"\} 1/);
    expect(metricsText).toMatch(/rts_amqp_failover_pause_seconds_bucket\{role="hub",le="3"\} \d+/);
    expect(metricsText).toMatch(/rts_http_requests_total\{method="GET",route="\/metrics",status="200"\} \d+/);
    expect(metricsText).not.toMatch(/city-a:|x\d+"/);
  }, Math.max(600000, rounds * 30000 + 300000));
});
