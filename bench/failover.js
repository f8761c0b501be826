#!/usr/bin/env node
// Failover pause benchmark (issue 6): the longest gap in accepted sends after a group master is killed (kill -9),
// p50/p99 over many kills, for our client (multicast discovery + AmqpConnection failover + RetryingSender, AMQP)
// and ActiveMQ's own Java failover transport (failover:(tcp://...) over OpenWire, activemq-client), both running
// INSIDE the cluster's network namespace in the same run against the same cluster, persistent sends at the same
// rate.
//
//   sudo node bench/failover.js          (mvn -q -f bench/failover/java/pom.xml package first; npm run bench:failover does both)
//
// Kills alternate g1, g2. For each kill, each producer that was connected to the killed group's master at the
// kill counts one sample: its longest gap between two accepted sends that ends in [kill, next kill or kill + 20 s]
// (at least 100 ms when it saw none that long). A producer on the other group is not affected and gives no sample.
//
// Env: RTS_BENCH_KILLS [12] kills, RTS_BENCH_PAUSE_S [7] seconds between kills, RTS_BENCH_RATE [100] sends/s per
// producer. Needs root (ip netns) and the ActiveMQ the cluster script provisions.
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const { mkdtempSync, rmSync, existsSync } = require('node:fs');
const { tmpdir, cpus, totalmem } = require('node:os');
const { join, resolve } = require('node:path');
const { createInterface } = require('node:readline');

const repo = resolve(__dirname, '..');
const script = join(repo, 'scripts', 'cluster', 'cluster.sh');
const jar = join(repo, 'bench', 'failover', 'java', 'target', 'failover-producer.jar');
const kills = Math.max(1, Math.min(100, Number(process.env.RTS_BENCH_KILLS ?? 12)));
const pauseS = Math.max(3, Math.min(60, Number(process.env.RTS_BENCH_PAUSE_S ?? 7)));
const rate = Math.max(1, Math.min(1000, Number(process.env.RTS_BENCH_RATE ?? 100)));
if (process.getuid?.() !== 0) {
  console.error('bench/failover: needs root (ip netns)');
  process.exit(1);
}
if (!existsSync(jar)) {
  console.error(`bench/failover: build the Java producer first: mvn -q -f bench/failover/java/pom.xml package`);
  process.exit(1);
}
const netns = `rts-fb${process.pid}`;
const group = 'rts-bench';
const dir = mkdtempSync(join(tmpdir(), 'rts-fb-'));
const env = { ...process.env, RTS_HA_NETNS: netns, RTS_HA_DIR: dir, RTS_HA_GROUP: group, RTS_HA_HEAP: '192m' };
const cluster = (...args) => execFileSync('bash', [script, ...args], { env, encoding: 'utf8', timeout: 240000 });
const procs = [];
let cleaned = false;
const cleanup = () => {
  if (cleaned) return;
  cleaned = true;
  for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGKILL');
  try {
    cluster('down');
  } catch {
    /* best effort */
  }
  rmSync(dir, { recursive: true, force: true });
};
// Whatever ends this process (an error, a closed stdout), the namespace and its JVMs go with it.
process.on('exit', cleanup);
process.stdout.on('error', () => undefined);
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function start(name, command, args) {
  const child = spawn('ip', ['netns', 'exec', netns, command, ...args], { cwd: repo, stdio: ['pipe', 'pipe', 'pipe'] });
  const p = { name, child, lines: [] };
  createInterface({ input: child.stdout }).on('line', (text) => {
    try {
      p.lines.push(JSON.parse(text));
    } catch {
      /* not ours */
    }
  });
  child.stderr.on('data', (d) => {
    if (process.env.BENCH_VERBOSE) process.stderr.write(`[${name}] ${d}`);
  });
  procs.push(p);
  return p;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const waitFor = async (p, ev, ms) => {
  for (let i = 0; i < ms / 100; i++) {
    if (p.lines.some((l) => l.ev === ev)) return;
    if (p.child.exitCode !== null) break;
    await sleep(100);
  }
  throw new Error(`${p.name}: no ${ev}`);
};
// port -> group: AMQP 5700+n, OpenWire 61600+n; n = 2*(g-1) + 1|2
const groupOfPort = (port) => {
  const n = port >= 61600 ? port - 61600 : port - 5700;
  return `g${Math.ceil(n / 2)}`;
};
const whereAt = (p, t) => {
  let uri;
  for (const l of p.lines) if (l.ev === 'where' && l.t <= t) uri = l.uri;
  const port = Number(/:(\d+)/.exec(String(uri ?? '').replace(/^\w+:\/\//, ''))?.[1]);
  return Number.isFinite(port) ? groupOfPort(port) : undefined;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] : NaN;
};

async function main() {
  const started = Date.now();
  console.log(cluster('up').trim().split('\n').pop());
  const ours = start('ours', process.execPath, ['-r', './test/support/ts-register.js', 'bench/failover/node-producer.ts', JSON.stringify({ group, rate, queue: 'rts.bench.failover.ours', window: 20, warmUp: process.env.RTS_BENCH_WARMUP !== '0' })]);
  const urls = [1, 2, 3, 4].map((n) => `tcp://127.0.0.1:${61600 + n}`).join(',');
  const failoverUrl = `failover:(${urls})?randomize=true&initialReconnectDelay=50&maxReconnectDelay=1000&useExponentialBackOff=true`;
  const java = start('java', 'java', ['-Xmx128m', '-XX:+UseSerialGC', '-jar', jar, failoverUrl, String(rate), 'rts.bench.failover.java']);
  await Promise.all([waitFor(ours, 'ready', 90000), waitFor(java, 'ready', 90000)]);
  await sleep(3000);
  const killAt = [];
  for (let i = 0; i < kills; i++) {
    const g = `g${(i % 2) + 1}`;
    const before = Date.now();
    const output = cluster('kill-master', g);
    const line = output.trim().split('\n').pop();
    // cluster.sh prints `killed <node> at=<ms>`: the moment of the kill -9 itself.
    const t = Number(/killed \S+ at=(\d+)/.exec(output)?.[1] ?? before);
    killAt.push({ g, t, line });
    console.log(`kill ${i + 1}/${kills}: ${line}; ours on ${whereAt(ours, t) ?? '?'}, java on ${whereAt(java, t) ?? '?'}`);
    await sleep(pauseS * 1000);
  }
  for (const p of [ours, java]) p.child.stdin.write('stop\n');
  await Promise.all([waitFor(ours, 'report', 60000), waitFor(java, 'report', 60000)]);
  const samples = { ours: [], java: [] };
  const details = [];
  killAt.forEach((k, i) => {
    const until = Math.min(k.t + 20000, killAt[i + 1]?.t ?? Infinity);
    for (const p of [ours, java]) {
      if (whereAt(p, k.t) !== k.g) continue;
      // Gaps that end after this kill and before the next one (the next kill's gap starts before that kill, at
      // the last accepted send, but ends after it): each gap belongs to one kill only.
      const gaps = p.lines.filter((l) => l.ev === 'gap' && l.to >= k.t && l.to < until);
      const longest = gaps.reduce((a, b) => (b.ms > (a?.ms ?? 0) ? b : a), undefined);
      samples[p.name].push(Math.max(100, longest?.ms ?? 0));
      const lost = p.lines.find((l) => l.ev === 'interrupted' && l.t >= k.t - 50 && l.t < until);
      const back = p.lines.find((l) => l.ev === 'where' && l.t >= k.t && l.t < until);
      details.push(`${p.name}@kill${i + 1}: gap ${longest?.ms ?? '<100'} ms (ends kill+${longest ? longest.to - k.t : '?'}), lost at kill+${lost ? lost.t - k.t : '?'}, connected at kill+${back ? back.t - k.t : '?'} to ${back?.uri ?? '?'}`);
    }
  });
  if (process.env.BENCH_DETAILS) for (const d of details) console.log(d);
  const takeovers = killAt.map((k) => Number(/ms=(\d+)/.exec(k.line)?.[1])).filter(Number.isFinite);
  const rep = (p) => p.lines.find((l) => l.ev === 'report');
  const summary = (name) => `${name}: n=${samples[name].length} p50 ${pct(samples[name], 0.5)} ms p99 ${pct(samples[name], 0.99)} ms max ${Math.max(...samples[name])} ms [${samples[name].join(', ')}]`;
  console.log(`takeover (kill -> new master's port) ms: p50 ${pct(takeovers, 0.5)} p99 ${pct(takeovers, 0.99)}`);
  console.log(summary('ours'));
  console.log(summary('java'));
  const ratio = pct(samples.ours, 0.99) / pct(samples.java, 0.99);
  console.log(`ratio p99 ours/java ${ratio.toFixed(2)}; p50 ${(pct(samples.ours, 0.5) / pct(samples.java, 0.5)).toFixed(2)}`);
  console.log(`ours report ${JSON.stringify(rep(ours))}; java report ${JSON.stringify(rep(java))}`);
  console.log(`machine: ${cpus().length} CPU (${cpus()[0]?.model ?? '?'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB; node ${process.version}; ${kills} kills, ${rate}/s each; run ${Math.round((Date.now() - started) / 1000)} s`);
}

main()
  .catch((error) => {
    console.error(`bench/failover: ${error.stack ?? error}`);
    process.exitCode = 1;
  })
  .finally(cleanup);
