// The network of brokers lets a message follow its consumer however often the consumer moves (cluster.sh's
// networkConnector, the configuration scripts/cluster/README.md gives for production). Five groups of one node in
// a network namespace, a full mesh by multicast: 100 messages sent to g1a; a consumer that settles nothing moves
// g2a -> g3a -> g4a (its demand pulls the messages after it, one hop each); then one that accepts, on g5a, must get
// all 100 and leave every queue empty.
//
// With the mesh's earlier `networkTTL="3"` (message and consumer TTL 3) the messages that had made three hops stayed
// on g4a for good: 0 to 48 of the 100 reached g5a in four runs of this scenario, none of the rest ever did. A hub
// whose broker died often enough under load can leave its uplink behind that way (ha-hub's two losses, 50 and 54
// registrations that the brokers took and the hub neither stored nor dead-lettered, had that signature). AMQ-4607: in a mesh, consumerTTL 1 (every broker is one hop from every other) and no messageTTL
// limit (a message may have to follow its consumer any number of times; loops are stopped by the broker path and by
// the replay rule, which sends a message back only where no local consumer is).
//
// Needs root and ip netns; skipped with one line otherwise.
import { join, resolve } from 'node:path';
import { startCluster, type TestCluster } from '../support/cluster';
import { netnsSupport } from '../support/netns';

const repoRoot = resolve(__dirname, '..', '..');
const step = join(repoRoot, 'test', 'fixtures', 'cluster', 'mesh-hops.js');
const support = netnsSupport();
if (!support.ok) console.log(`ha-mesh-hops: skipped (${support.reason}; needs root and ip netns)`);
const describeHa = support.ok ? describe : describe.skip;

const NODES = ['g1a', 'g2a', 'g3a', 'g4a', 'g5a'] as const;
const PORT: Record<(typeof NODES)[number], number> = { g1a: 5701, g2a: 5703, g3a: 5705, g4a: 5707, g5a: 5709 };
const N = 100;

describeHa('HA: a message follows its consumer across the network of brokers, hop after hop', () => {
  let cluster: TestCluster | undefined;

  beforeAll(async () => {
    cluster = await startCluster({ netns: `rts-mh${process.pid}`, group: 'rts-mh-test', nodes: NODES, heap: '96m' });
  }, 240000);

  afterAll(async () => {
    await cluster?.stop();
  }, 120000);

  const run = async (...args: string[]): Promise<Record<string, number | string>> => {
    const out = await cluster!.run(['exec', process.execPath, step, ...args], 60000);
    const result = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | string>;
    if (typeof result.error === 'string') throw new Error(`mesh-hops ${args.join(' ')}: ${result.error}`);
    return result;
  };

  it('100 messages sent to g1a reach a consumer that moved g2a -> g3a -> g4a -> g5a, none left behind', async () => {
    const c = cluster!;
    expect(await run('send', String(PORT.g1a), String(N))).toEqual({ sent: N });
    // Each hold waits for its first message, which also waits out the bridges forming by multicast.
    const held: number[] = [];
    for (const node of ['g2a', 'g3a', 'g4a'] as const) held.push((await run('hold', String(PORT[node]), '2500')).held as number);
    const { drained } = await run('drain', String(PORT.g5a), String(N), '30000');
    const left = await c.queueCounts(NODES.map((n) => PORT[n]), ['rts.mesh']);
    console.log(`ha-mesh-hops: held on g2a, g3a, g4a ${held.join(', ')}; drained on g5a ${String(drained)} of ${N}; left ${left}`);
    // Each consumer got messages: the demand moved them along (else the scenario tested nothing).
    expect(held.every((n) => n > 0)).toBe(true);
    expect(drained).toBe(N);
    const counts = JSON.parse(left) as { port: number; up: boolean; counts?: Record<string, number | string> }[];
    expect(counts.map((n) => ({ port: n.port, up: n.up, left: n.counts?.['rts.mesh'] }))).toEqual(NODES.map((n) => ({ port: PORT[n], up: true, left: 0 })));
  }, 240000);
});
