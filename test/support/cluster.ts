// The HA cluster of scripts/cluster/cluster.sh for tests: two master/slave groups of ActiveMQ inside a network
// namespace of their own, multicast discovery on its loopback only.
//
//   const cluster = await startCluster({ netns: `rts-ha-${process.pid}` });
//   await cluster.killMaster('g1');   // { killed: 'g1a', master: 'g1b', takeoverMs: 1700 }
//   await cluster.stop();             // JVMs stopped, namespace and state dir deleted (also on process exit)
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repoRoot = resolve(__dirname, '..', '..');
const script = join(repoRoot, 'scripts', 'cluster', 'cluster.sh');

export interface ClusterOptions {
  netns: string;
  /** Client discovery group (the OpenWire bridges use `<group>-net`). */
  group?: string;
  dir?: string;
  heap?: string;
  /** The nodes `up` starts [g1a g1b g2a g2b]. */
  nodes?: readonly string[];
  /** Every node's AMQP connector takes TLS only, with this PKCS12 keystore (RTS_HA_TLS_KEYSTORE). */
  tls?: Readonly<{ keystore: string; password: string }>;
  /** Broker accounts, a users file as broker.sh takes it (RTS_HA_USERS_FILE). */
  users?: string;
}

export interface NodeStatus {
  name: string;
  pid: number | undefined;
  role: 'master' | 'slave' | 'down';
  port: number;
}

export interface TestCluster {
  netns: string;
  group: string;
  dir: string;
  run(args: readonly string[], timeoutMs?: number): Promise<string>;
  status(): Promise<NodeStatus[]>;
  killMaster(group: string): Promise<{ killed: string; master: string; takeoverMs: number }>;
  startNode(name: string): Promise<void>;
  /** Sends SIGTERM to a node's JVM without waiting; returns the time it was sent. */
  signalStop(name: string): number;
  /**
   * The messages on some queues of the nodes at these ports, browsed inside the namespace (scripts/cluster/queue-counts.ts):
   * its JSON line, `[{ port, up, counts: { queue: n } }]`.
   */
  queueCounts(ports: readonly number[], queues: readonly string[]): Promise<string>;
  stop(): Promise<void>;
}

const active = new Set<ClusterOptions & { dir: string }>();
let hook = false;

export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'rts-ha-'));
  const group = options.group ?? 'default';
  const env = {
    ...process.env,
    RTS_HA_NETNS: options.netns,
    RTS_HA_DIR: dir,
    RTS_HA_GROUP: group,
    RTS_HA_HEAP: options.heap ?? '128m',
    ...(options.nodes ? { RTS_HA_NODES: options.nodes.join(' ') } : {}),
    ...(options.tls ? { RTS_HA_TLS_KEYSTORE: options.tls.keystore, RTS_HA_TLS_KEYSTORE_PASSWORD: options.tls.password } : {}),
    ...(options.users ? { RTS_HA_USERS_FILE: options.users } : {}),
  };
  const entry = { ...options, dir };
  active.add(entry);
  if (!hook) {
    hook = true;
    process.on('exit', () => {
      for (const c of active) {
        try {
          execFileSync('bash', [script, 'down'], { env: { ...process.env, RTS_HA_NETNS: c.netns, RTS_HA_DIR: c.dir }, stdio: 'ignore', timeout: 60000 });
        } catch {
          // best effort
        }
      }
    });
  }
  const run = (args: readonly string[], timeoutMs = 180000) =>
    new Promise<string>((resolveRun, reject) => {
      execFile('bash', [script, ...args], { env, timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`cluster.sh ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
        else resolveRun(stdout);
      });
    });
  const cluster: TestCluster = {
    netns: options.netns,
    group,
    dir,
    run,
    async status() {
      const out = await run(['status']);
      return out
        .trim()
        .split('\n')
        .map((line) => /^(\S+) pid=(\S+) role=(\S+) amqp=127\.0\.0\.1:(\d+)/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ name: m[1]!, pid: m[2] === '-' ? undefined : Number(m[2]), role: m[3] as NodeStatus['role'], port: Number(m[4]) }));
    },
    async killMaster(g) {
      const out = await run(['kill-master', g]);
      const m = /takeover (\S+) (\S+)->(\S+) ms=(\d+)/.exec(out);
      if (!m) throw new Error(`unexpected kill-master output: ${out}`);
      return { killed: m[2]!, master: m[3]!, takeoverMs: Number(m[4]) };
    },
    async startNode(name) {
      await run(['start-node', name]);
    },
    signalStop(name) {
      const pid = Number(readFileSync(join(dir, 'nodes', name, 'node.pid'), 'utf8').trim());
      const at = Date.now();
      process.kill(pid, 'SIGTERM');
      return at;
    },
    async queueCounts(ports, queues) {
      const out = await run(['exec', process.execPath, '-r', join(repoRoot, 'test', 'support', 'ts-register.js'), join(repoRoot, 'scripts', 'cluster', 'queue-counts.ts'), JSON.stringify({ ports, queues })], 120000);
      return out.trim();
    },
    async stop() {
      try {
        await run(['down'], 120000);
      } finally {
        active.delete(entry);
      }
    },
  };
  try {
    await run(['up']);
  } catch (error) {
    await cluster.stop().catch(() => undefined);
    throw error;
  }
  return cluster;
}

/** Group of a node name: g1a -> g1. AMQP port -> node name: 5701 -> g1a. */
export function groupOf(node: string): string {
  return node.slice(0, 2);
}
export function nodeOfPort(port: number): string {
  const n = port - 5700;
  if (n > 50) return `g${n - 50}c`;
  return `g${Math.ceil(n / 2)}${n % 2 === 1 ? 'a' : 'b'}`;
}
