'use strict';
/**
 * The hub's start on the embedded default: from spawning `node dist/bootstrap/main.js` on an empty data directory to
 * its first 200 from GET /health, and its resident memory then. Baseline in the same run, alternating: the HTTP
 * floor (bench/http-floor-server.js: Node.js and the project's fastify with one route, nothing else), started and
 * timed the same way. With `--other-dist DIR`, a second build of the hub (e.g. main's, built elsewhere) alternates
 * too, so two builds are compared on the same noisy machine.
 *
 *   npm run build && node bench/start.js [--rounds 9] [--other-dist /path/to/other/dist]
 *
 * Reports medians over rounds; the ratio hub / floor says what the hub's own start costs over a bare server.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const L = require('./lib');

const args = L.parseArgs();
const rounds = Number(args.rounds ?? 9);
const otherDist = typeof args['other-dist'] === 'string' ? path.resolve(args['other-dist']) : null;

const rssKb = (pid) => {
  const line = fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return line ? Number(line.split(/\s+/)[1]) : Number.NaN;
};

/** Spawns `script`, polls /health every 5 ms; resolves { ms, rssMiB } at the first 200, then stops the process. */
const timeStart = async (script) => {
  const dataDir = L.tempDir('start');
  const port = await L.freePort();
  const t0 = L.nowNs();
  const child = spawn(process.execPath, [script], {
    cwd: L.ROOT,
    env: { ...process.env, RTS_DATA_DIR: dataDir, RTS_HTTP_PORT: String(port), RTS_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const agent = new (require('node:http').Agent)({ keepAlive: false });
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${script} exited during start:\n${stderr}`);
      const ok = await L.request(agent, { port, method: 'GET', path: '/health' }).then((r) => r.status === 200, () => false);
      if (ok) {
        const ms = L.msSince(t0);
        return { ms, rssMiB: rssKb(child.pid) / 1024 };
      }
      if (L.msSince(t0) > 30_000) throw new Error(`${script} did not answer /health within 30 s:\n${stderr}`);
      await L.sleep(5);
    }
  } finally {
    child.kill('SIGTERM');
    await exited;
    L.rmrf(dataDir);
  }
};

const main = async () => {
  const subjects = [
    { name: 'hub', script: path.join(L.DIST, 'bootstrap', 'main.js') },
    ...(otherDist ? [{ name: 'hub (other build)', script: path.join(otherDist, 'bootstrap', 'main.js') }] : []),
    { name: 'floor (fastify alone)', script: path.join(__dirname, 'http-floor-server.js') },
  ];
  console.log(`start bench  rounds=${rounds}${otherDist ? `  other build: ${otherDist}` : ''}`);
  console.log(`machine: ${JSON.stringify(L.machine())}`);
  console.log(`machine now: ${L.fmtPressure(L.pressure())}`);
  // One start of each first, not counted: the page cache holds the modules for every timed start alike.
  for (const s of subjects) await timeStart(s.script);
  const results = new Map(subjects.map((s) => [s.name, { ms: [], rss: [] }]));
  for (let r = 0; r < rounds; r++) {
    // Alternating, each round in another order, so a drift of the machine does not favour one subject.
    const order = r % 2 === 0 ? subjects : [...subjects].reverse();
    for (const s of order) {
      const { ms, rssMiB } = await timeStart(s.script);
      results.get(s.name).ms.push(ms);
      results.get(s.name).rss.push(rssMiB);
    }
  }
  const floor = L.median(results.get('floor (fastify alone)').ms);
  console.log('\nsubject                | start ms (median) | min - max     | RSS MiB (median) | / floor');
  const summary = {};
  for (const s of subjects) {
    const { ms, rss } = results.get(s.name);
    const m = L.median(ms);
    summary[s.name] = { medianMs: m, minMs: Math.min(...ms), maxMs: Math.max(...ms), medianRssMiB: L.median(rss) };
    console.log(
      `${s.name.padEnd(22)} | ${L.fmt(m, 0).padStart(17)} | ${`${L.fmt(Math.min(...ms), 0)} - ${L.fmt(Math.max(...ms), 0)}`.padEnd(13)} | ${L.fmt(L.median(rss), 1).padStart(16)} | ${L.fmt(m / floor, 2)}`,
    );
  }
  if (otherDist) console.log(`\nhub / other build: start ${L.fmt(summary.hub.medianMs / summary['hub (other build)'].medianMs, 3)}, RSS ${L.fmt(summary.hub.medianRssMiB / summary['hub (other build)'].medianRssMiB, 3)}`);
  console.log(`machine at the end: ${L.fmtPressure(L.pressure())}`);
  const out = path.join(__dirname, 'results', `start-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify({ rounds, otherDist, machine: L.machine(), summary, raw: Object.fromEntries(results) }, null, 2));
  console.log(`results: ${path.relative(L.ROOT, out)}`);
};

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
