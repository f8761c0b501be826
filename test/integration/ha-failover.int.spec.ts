// High availability against real brokers and real kill -9 (issue 6, part A): two ActiveMQ groups (master/slave
// on shared KahaDB) inside a network namespace, clients that find the masters by multicast discovery and fail
// over across them. Needs root (ip netns); skipped with one line otherwise.
//
// The clients run inside the namespace (scripts/cluster/ha-client.ts, spawned with `ip netns exec`): a producer
// streaming durable messages through RetryingSender and a consumer (QueueConsumer) deduping on our message id.
import { join, resolve } from 'node:path';
import { startCluster, groupOf, nodeOfPort, type TestCluster } from '../support/cluster';
import { netnsSupport, spawnInNetns } from '../support/netns';
import { Proc } from '../support/netns-proc';

const repoRoot = resolve(__dirname, '..', '..');
const support = netnsSupport();
if (!support.ok) console.log(`ha-failover: skipped (${support.reason}; needs root and ip netns)`);
const describeHa = support.ok ? describe : describe.skip;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const portOf = (endpoint: unknown) => Number(String(endpoint).split(':').pop());

describeHa('HA: multicast-discovered failover across two master/slave groups (netns, kill -9)', () => {
  let cluster: TestCluster | undefined;
  let client: Proc | undefined;

  beforeAll(async () => {
    cluster = await startCluster({ netns: `rts-ha-t${process.pid}`, group: 'rts-ha-test' });
  }, 240000);

  afterAll(async () => {
    await client?.kill().catch(() => undefined);
    await cluster?.stop();
  }, 120000);

  it('kills masters under load: 0 lost; a fifth node is discovered and used; a stopped node is gone at once', async () => {
    const c = cluster!;
    const child = spawnInNetns(
      c.netns,
      process.execPath,
      ['-r', join(repoRoot, 'test', 'support', 'ts-register.js'), join(repoRoot, 'scripts', 'cluster', 'ha-client.ts'), JSON.stringify({ group: c.group, rate: 100, queue: 'rts.ha.failover' })],
      { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    client = new Proc('ha-client', child);
    const cl = client;
    const status = () => cl.ask('status', 'status', 10000);
    await cl.next((l) => l.ev === 'ready', 90000, 'ready');
    await sleep(2000);

    // Kill the master the producer is on, then the consumer's, then the producer's again.
    const takeovers: number[] = [];
    for (let i = 0; i < 3; i++) {
      const s = await status();
      const port = portOf(i % 2 === 0 ? s.producer : s.consumer);
      const group = groupOf(nodeOfPort(port));
      const since = cl.lines.length;
      const result = await c.killMaster(group);
      takeovers.push(result.takeoverMs);
      // The clients on the killed broker move on (to the other group at once, or to the new master).
      await cl.next((l) => l.ev === 'log' && l.event === 'amqp.failover', 15000, `failover after killing ${result.killed}`, since);
      const before = (await status()).accepted as number;
      await sleep(2500);
      const after = await status();
      expect(after.producerConnected).toBe(true);
      expect(after.accepted as number).toBeGreaterThan(before);
    }

    // A fifth node at runtime: discovered, and the producer moves to it without a restart.
    cl.send('rebalance on');
    const sinceStart = cl.lines.length;
    await c.startNode('g3a');
    await cl.next((l) => l.ev === 'discovery' && l.kind === 'added' && l.endpoint === '127.0.0.1:5705', 90000, 'discovery of g3a', sinceStart);
    await cl.next((l) => l.ev === 'connected' && l.role === 'producer' && l.endpoint === '127.0.0.1:5705', 15000, 'producer on g3a', sinceStart);
    const onG3 = (await status()).accepted as number;
    await sleep(2000);
    const s3 = await status();
    expect(s3.producer).toBe('127.0.0.1:5705');
    expect(s3.accepted as number).toBeGreaterThan(onG3);
    cl.send('rebalance off');

    // Graceful stop: the dead packet removes it from the live set at once (no 5 s expiry).
    const sinceStop = cl.lines.length;
    const stopAt = c.signalStop('g3a');
    const removed = await cl.next((l) => l.ev === 'discovery' && l.kind === 'removed' && l.endpoint === '127.0.0.1:5705', 10000, 'removal of g3a', sinceStop);
    expect(removed.reason).toBe('dead');
    const removalMs = (removed.t as number) - stopAt;
    expect(removalMs).toBeLessThan(1000);
    // g3a took messages until it stopped; one it accepted and had not yet forwarded to the consumer's group waits in
    // its store (a CI run lost 1 of 2,840 here under load, once). That is the network of brokers' store and forward:
    // nothing is lost, it is delivered when the node is back. So the node comes back before the count, and the
    // count covers it.
    // stop-node waits for the JVM to exit (start-node passes over a node whose process is still alive).
    await c.run(['stop-node', 'g3a'], 60000);
    const sinceRestart = cl.lines.length;
    await c.startNode('g3a');
    await cl.next((l) => l.ev === 'discovery' && l.kind === 'added' && l.endpoint === '127.0.0.1:5705', 90000, 'g3a back', sinceRestart);
    await sleep(2000);

    cl.send('stop');
    const report = await cl.next((l) => l.ev === 'report', 90000, 'report');
    const failovers = report.failovers as { producer: Array<{ pauseMs: number }>; consumer: Array<{ pauseMs: number }> };
    console.log(
      `ha-failover: takeover ms [${takeovers.join(', ')}]; dead-packet removal ${removalMs} ms; ` +
        `accepted ${String(report.accepted)}, received ${String(report.received)}, lost ${String(report.lost)}, ` +
        `duplicate deliveries (deduped) ${String(report.duplicates)}, resends ${String(report.retries)}; ` +
        `client failover pauses ms producer [${failovers.producer.map((f) => f.pauseMs).join(', ')}] ` +
        `consumer [${failovers.consumer.map((f) => f.pauseMs).join(', ')}]; ` +
        `accept gaps >=300ms [${(report.gaps as Array<{ ms: number }>).map((g) => g.ms).join(', ')}]` +
        (report.lost ? `; lost by accepting broker ${JSON.stringify(report.lostOn)}, e.g. ${JSON.stringify(report.lostSample)}` : ''),
    );
    expect(report.lost).toBe(0);
    expect(report.failedSends).toBe(0);
    expect(report.accepted as number).toBeGreaterThan(1000);
    expect(String(report.metrics)).toMatch(/rts_amqp_failovers_total\{role="producer"\} [1-9]/);
    expect(String(report.metrics)).toMatch(/rts_amqp_failover_pause_seconds_count\{role="consumer"\} [1-9]/);
    expect(String(report.metrics)).toMatch(/rts_amqp_connected\{role="producer"\} 1/);
  }, 240000);
});
