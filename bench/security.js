#!/usr/bin/env node
// The cost of message security (issue 5): SDK uplink throughput with the JOSE codec (sign ES256 + encrypt
// ECDH-ES+A256KW/A256GCM per message) against the default JSON codec, in the same run, on the same broker, with
// the same envelope (expert.registered, ~450 bytes), durable, the same in-flight window. The clients take turns
// within each round; one warm-up round is discarded; medians over ROUNDS and their ratio are reported.
// Also, without the broker: CPU per message of the SDK's encode and of the hub's decode (decrypt, verify, parse),
// one message at a time, to say where the time goes.
//
//   npm run build && node bench/security.js [--messages 5000] [--inflight 64] [--rounds 5] [--json out.json]
'use strict';
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startBroker } = require('./uplink');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');

const args = (() => {
  const out = { messages: 5000, inflight: 64, rounds: 5, cpu: 2000, json: undefined };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    out[key] = key === 'json' ? argv[i + 1] : Number(argv[i + 1]);
  }
  return out;
})();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (x) => Math.round(x).toLocaleString('en-US');
const profile = {
  name: 'Zhang Min',
  title: 'Chief physician',
  specialties: ['cardiology', 'hypertension'],
  location: { city: 'Chengdu', hospital: 'West China Hospital' },
  languages: ['zh', 'en'],
  availability: 'available',
};

/** bench/uplink.js's runSdk with a codec: registerExpert n times, `inflight` at once, messages per second. */
async function runSdk(url, queue, n, inflight, codec) {
  const { RtsClient } = require(path.join(DIST, 'sdk'));
  const client = await RtsClient.connect({ systemId: 'bench-city', url, uplinkQueue: queue, ...(codec ? { codec } : {}) });
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

/** The hub's and the city's keys, and the codecs of both sides, as a deployment has them. */
async function parties() {
  const sdk = require(path.join(DIST, 'sdk'));
  const { JoseHubCodec, PlainHubCodec } = require(path.join(DIST, 'adapters', 'messaging', 'hub-codec'));
  const hubKeys = await sdk.generatePartyKeys('hub');
  const cityKeys = await sdk.generatePartyKeys('bench-city');
  const hubRegistry = new sdk.KeyRegistry();
  for (const k of [hubKeys, cityKeys]) {
    const pub = sdk.publicJwks(k);
    await hubRegistry.register(k.owner, pub.signing);
    await hubRegistry.register(k.owner, pub.encryption);
  }
  const hubPub = sdk.publicJwks(hubKeys);
  const cityCodec = await sdk.joseCodecFor({ keys: cityKeys, hubJwks: { keys: [hubPub.signing, hubPub.encryption] } });
  return { sdk, cityCodec, hubJose: new JoseHubCodec(hubKeys, hubRegistry), hubPlain: new PlainHubCodec() };
}

/** CPU per message (µs), one at a time: SDK encode (json vs jose) and hub decode (plain vs jose). */
async function cpuCost(p, n) {
  const envelope = () => {
    const id = randomUUID();
    return { id, type: 'expert.registered', version: 1, systemId: 'bench-city', correlationId: id, time: new Date().toISOString(), payload: { localExpertId: `e-${id.slice(0, 6)}`, profile } };
  };
  const time = async (fn) => {
    for (let i = 0; i < Math.min(200, n); i++) await fn(i); // warm-up
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await fn(i);
    return Number(process.hrtime.bigint() - t0) / 1e3 / n;
  };
  const ctx = { from: 'bench-city', to: 'hub', queue: 'rts.uplink' };
  const jsonBodies = Array.from({ length: n }, () => JSON.stringify(envelope()));
  const joseBodies = [];
  for (let i = 0; i < n; i++) joseBodies.push((await p.cityCodec.encode(envelope(), ctx)).body);
  const out = {
    encodeJson: await time(() => p.sdk.jsonCodec.encode(envelope(), ctx)),
    encodeJose: await time(() => p.cityCodec.encode(envelope(), ctx)),
    decodePlain: await time(async (i) => {
      const r = await p.hubPlain.decodeUplink(jsonBodies[i]);
      if (!r.ok) throw new Error(r.reason);
    }),
    decodeJose: await time(async (i) => {
      const r = await p.hubJose.decodeUplink(joseBodies[i]);
      if (!r.ok) throw new Error(r.reason);
    }),
    bodyBytesJson: Buffer.byteLength(jsonBodies[0]),
    bodyBytesJose: Buffer.byteLength(joseBodies[0]),
  };
  return out;
}

async function main() {
  if (!fs.existsSync(path.join(DIST, 'sdk', 'security.js'))) throw new Error('dist/sdk/security.js missing: npm run build first');
  const p = await parties();
  const cpu = await cpuCost(p, args.cpu);
  console.log(
    `CPU per message, one at a time (${args.cpu}): SDK encode json ${cpu.encodeJson.toFixed(1)} µs, jose ${cpu.encodeJose.toFixed(1)} µs; hub decode plain ${cpu.decodePlain.toFixed(1)} µs, jose ${cpu.decodeJose.toFixed(1)} µs; body ${cpu.bodyBytesJson} B json, ${cpu.bodyBytesJose} B jose`,
  );
  const broker = await startBroker();
  const clients = ['off', 'jose'];
  const rates = { off: [], jose: [] };
  try {
    console.log(`uplink: ${args.messages} durable messages per round, ${args.inflight} in flight, ${args.rounds} rounds (+1 warm-up), ActiveMQ on ${broker.url}`);
    for (let round = 0; round <= args.rounds; round++) {
      const line = [];
      for (const c of round % 2 === 0 ? clients : [...clients].reverse()) {
        const queue = `bench.security.${c}.${round}.${randomUUID().slice(0, 6)}`;
        const rate = await runSdk(broker.url, queue, args.messages, args.inflight, c === 'jose' ? p.cityCodec : undefined);
        if (round > 0) rates[c].push(rate);
        line.push(`${c} ${fmt(rate)}/s`);
      }
      console.log(`${round === 0 ? 'warm-up' : `round ${round}`}: ${line.join('  ')}`);
    }
  } finally {
    await broker.stop();
  }
  const medians = { off: median(rates.off), jose: median(rates.jose) };
  const ratio = medians.jose / medians.off;
  console.log(`\nmedian msgs/s: security off ${fmt(medians.off)}, jose ${fmt(medians.jose)}; ratio jose/off ${ratio.toFixed(2)}`);
  const result = { bench: 'security', date: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, args, cpuMicros: cpu, rates, medians, ratio };
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
module.exports = { main, runSdk, parties, cpuCost };
