#!/usr/bin/env node
// Uplink throughput: how fast a city system gets durable messages accepted by ActiveMQ, through our SDK versus two
// baselines in the same run on the same broker:
//   sdk   RtsClient.registerExpert (envelope built, zod-validated, JSON codec, durable send, resolves on accepted)
//   rhea  a bare rhea sender: same body size, same application-properties, durable, counted on accepted
//   java  ActiveMQ's own client world: a JMS producer on Qpid JMS (bench/uplink/java), PERSISTENT TextMessage,
//         JMS 2.0 async send with a CompletionListener (= accepted)
// All three keep at most INFLIGHT sends unsettled. Each round sends MESSAGES to a fresh queue per client; the
// clients take turns within a round; one warm-up round is discarded; medians over ROUNDS are reported.
//
//   npm run build && mvn -q -f bench/uplink/java/pom.xml package
//   node bench/uplink.js [--messages 5000] [--inflight 64] [--rounds 5] [--json out.json]
//
// The hub's end-to-end side (uplink consumer into the event store vs a bare rhea consumer's drain rate) is not
// measured here. Hook: the queues this run fills (bench.uplink.<client>.<round>.*) hold real expert.registered
// envelopes; a hub benchmark can require this module ({ startBroker, runSdk, runRhea, envelopeText }) to fill
// `rts.uplink` with N messages first, then time the hub's consumer draining it against a bare rhea receiver.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const JAR = path.join(ROOT, 'bench', 'uplink', 'java', 'target', 'uplink-producer.jar');

const args = (() => {
  const out = { messages: 5000, inflight: 64, rounds: 5, json: undefined, only: undefined };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    out[key] = key === 'json' || key === 'only' ? argv[i + 1] : Number(argv[i + 1]);
  }
  return out;
})();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => Math.round(x).toLocaleString('en-US');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => (s.destroy(), resolve(false)));
  });
}

/** The broker the tests use (scripts/activemq/broker.sh run): KahaDB with its default journal sync. */
async function startBroker(fixedPort) {
  const home = spawnSync('bash', [path.join(ROOT, 'scripts/activemq/provision.sh')], { encoding: 'utf8' });
  if (home.status !== 0) throw new Error(`provision.sh failed: ${home.stderr}`);
  const port = fixedPort ?? (await freePort());
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rts-bench-uplink-'));
  const log = fs.openSync(path.join(dataDir, 'broker.out'), 'a');
  const child = spawn('bash', [path.join(ROOT, 'scripts/activemq/broker.sh'), 'run'], {
    env: { ...process.env, RTS_ACTIVEMQ_HOME: home.stdout.trim().split('\n').pop(), RTS_BROKER_PORT: String(port), RTS_BROKER_DATA: dataDir, RTS_BROKER_HEAP: '1g', RTS_BROKER_NAME: 'rts-bench' },
    stdio: ['ignore', log, log],
  });
  const deadline = Date.now() + 60000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`broker did not start; see ${dataDir}/broker.out`);
    await sleep(100);
  }
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(15000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  process.once('exit', () => child.exitCode === null && child.kill('SIGKILL'));
  return { port, url: `amqp://127.0.0.1:${port}`, stop, pid: child.pid };
}

const profile = {
  name: 'Zhang Min',
  title: 'Chief physician',
  specialties: ['cardiology', 'hypertension'],
  location: { city: 'Chengdu', hospital: 'West China Hospital' },
  languages: ['zh', 'en'],
  availability: 'available',
};
/** The same envelope the SDK builds for registerExpert, for the baselines' body (same size). */
function envelopeText(i) {
  const id = randomUUID();
  return {
    id,
    text: JSON.stringify({ id, type: 'expert.registered', version: 1, systemId: 'bench-city', correlationId: id, time: new Date().toISOString(), payload: { localExpertId: `e-${i}`, profile } }),
  };
}
const props = (id) => ({ messageId: id, type: 'expert.registered', version: 1, systemId: 'bench-city', correlationId: id, contentType: 'application/json', codec: 'json' });

async function runSdk(url, queue, n, inflight) {
  const { RtsClient } = require(path.join(ROOT, 'dist', 'sdk'));
  const client = await RtsClient.connect({ systemId: 'bench-city', url, uplinkQueue: queue });
  let next = 0;
  const t0 = process.hrtime.bigint();
  const worker = async () => {
    while (next < n) {
      const i = next++;
      await client.registerExpert(`e-${i}`, profile);
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await client.close();
  return n / seconds;
}

function runRhea(port, queue, n, inflight) {
  const rhea = require(require.resolve('rhea', { paths: [ROOT] }));
  return new Promise((resolve, reject) => {
    const container = rhea.create_container({ id: `bench-rhea-${randomUUID().slice(0, 8)}` });
    const connection = container.connect({ host: '127.0.0.1', port, reconnect: false });
    const sender = connection.open_sender({ target: { address: queue }, snd_settle_mode: 0 });
    let sent = 0;
    let accepted = 0;
    let t0;
    const pump = () => {
      while (sent < n && sent - accepted < inflight && sender.sendable()) {
        const { id, text } = envelopeText(sent);
        sender.send({ body: text, durable: true, application_properties: props(id), message_id: id, correlation_id: id, subject: 'expert.registered' });
        sent += 1;
      }
    };
    sender.on('sendable', () => {
      t0 ??= process.hrtime.bigint();
      pump();
    });
    sender.on('accepted', () => {
      accepted += 1;
      if (accepted === n) {
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        connection.close();
        resolve(n / seconds);
      } else pump();
    });
    for (const bad of ['rejected', 'released', 'modified']) sender.on(bad, () => reject(new Error(`rhea baseline: ${bad}`)));
    connection.on('connection_error', (c) => reject(new Error(String(c.error))));
    connection.on('error', reject);
  });
}

function runJava(url, queue, n, inflight) {
  const bodyFile = path.join(os.tmpdir(), `rts-bench-uplink-body-${process.pid}.json`);
  fs.writeFileSync(bodyFile, envelopeText(0).text);
  // Round 0 warms the JIT up and is discarded; round 1 is measured.
  let r;
  try {
    r = spawnSync('java', ['-XX:+UseSerialGC', '-jar', JAR, url, queue, String(n), String(inflight), bodyFile, '2'], { encoding: 'utf8', timeout: 300000 });
  } finally {
    fs.rmSync(bodyFile, { force: true });
  }
  if (r.status !== 0) throw new Error(`java producer failed: ${r.stderr || r.stdout}`);
  const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
  return lines[1].rate;
}

async function main() {
  if (!fs.existsSync(path.join(ROOT, 'dist', 'sdk', 'index.js'))) throw new Error('dist/sdk missing: npm run build first');
  const withJava = fs.existsSync(JAR) && spawnSync('java', ['-version']).status === 0;
  if (!withJava) console.warn(`(no ${path.relative(ROOT, JAR)}: run mvn -q -f bench/uplink/java/pom.xml package; the Java baseline is skipped)`);
  const clients = ['sdk', 'rhea', ...(withJava ? ['java'] : [])].filter((c) => !args.only || args.only.split(',').includes(c));
  const broker = await startBroker();
  const rates = Object.fromEntries(clients.map((c) => [c, []]));
  try {
    const run = (client, round) => {
      const queue = `bench.uplink.${client}.${round}.${randomUUID().slice(0, 6)}`;
      if (client === 'sdk') return runSdk(broker.url, queue, args.messages, args.inflight);
      if (client === 'rhea') return runRhea(broker.port, queue, args.messages, args.inflight);
      return runJava(broker.url, queue, args.messages, args.inflight);
    };
    console.log(`uplink: ${args.messages} durable messages per round, ${args.inflight} in flight, ${args.rounds} rounds (+1 warm-up), ActiveMQ on ${broker.url}`);
    for (let round = 0; round <= args.rounds; round++) {
      const line = [];
      for (const client of clients) {
        const rate = await run(client, round);
        if (round > 0) rates[client].push(rate);
        line.push(`${client} ${fmt(rate)}/s`);
      }
      console.log(`${round === 0 ? 'warm-up' : `round ${round}`}: ${line.join('  ')}`);
    }
  } finally {
    await broker.stop();
  }
  const medians = Object.fromEntries(clients.map((c) => [c, median(rates[c])]));
  console.log('\nmedian msgs/s: ' + clients.map((c) => `${c} ${fmt(medians[c])}`).join(', '));
  const ratios = {};
  if (medians.sdk && medians.java) ratios['sdk/java'] = medians.sdk / medians.java;
  if (medians.sdk && medians.rhea) ratios['sdk/rhea'] = medians.sdk / medians.rhea;
  if (medians.java && medians.rhea) ratios['rhea/java'] = medians.rhea / medians.java;
  console.log('ratios: ' + Object.entries(ratios).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ') + (ratios['sdk/java'] !== undefined ? `  (aim: sdk/java >= 0.80: ${ratios['sdk/java'] >= 0.8 ? 'met' : 'NOT met'})` : ''));
  const result = { bench: 'uplink', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, args, rates, medians, ratios };
  if (args.json) fs.writeFileSync(args.json, JSON.stringify(result, null, 2));
  return result;
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
module.exports = { main, startBroker, runSdk, runRhea, runJava, envelopeText };
