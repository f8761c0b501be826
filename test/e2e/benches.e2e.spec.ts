// Every benchmark under bench/ still runs, at a size that takes seconds: each is a plain script against dist/ that no
// compiler checks, and one broke unseen (ingest.js's in-process subject threw from 9a44b1e, when the library began
// to refuse an observation's unknown fields, until e200c38). What a bench measures is not asserted here (never a
// timed test): only that it ends with exit 0 and prints or writes its figures, each a finite positive number.
// The benches that start an ActiveMQ broker or a hub over AMQP start their own, on free ports (bench/lib.js);
// bench/uplink.js and bench/failover.js need a Maven build of their Java clients and are left out, and backup.js
// needs query.js's 1M-observation store.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const TIMEOUT_MS = 240_000;

const runBench = (script: string, args: string[]): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(process.execPath, [join(ROOT, 'bench', script), ...args], { cwd: ROOT, timeout: TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NODE_ENV: 'production' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`node bench/${script} ${args.join(' ')}: ${error.message}\n${stderr.slice(-4000)}\n${stdout.slice(-4000)}`));
      else resolve(stdout);
    });
  });

const expectPositive = (...values: number[]): void => {
  for (const value of values) {
    expect(Number.isFinite(value)).toBe(true);
    expect(value).toBeGreaterThan(0);
  }
};

/** The number a bench printed after `label`, which must be there, finite and above 0 (thousands separated by commas). */
const figure = (output: string, label: RegExp): number => {
  const match = label.exec(output);
  if (!match?.[1]) throw new Error(`no figure for ${label} in:\n${output.slice(-3000)}`);
  const value = Number(match[1].replace(/,/g, ''));
  expectPositive(value);
  return value;
};

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-benches-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Summary = { summary: { name: string; ackedObsPerSec: number; baselineObsPerSec: number; ratioAcked: number }[] };
const expectSubjects = (file: string, names: RegExp[]): void => {
  const { summary } = JSON.parse(readFileSync(file, 'utf8')) as Summary;
  expect(summary.map((s) => s.name)).toEqual(names.map((n) => expect.stringMatching(n)));
  for (const s of summary) expectPositive(s.ackedObsPerSec, s.baselineObsPerSec, s.ratioAcked);
};

describe('the benchmarks run (small sizes; figures not judged)', () => {
  it(
    'ingest.js: in-process and HTTP against the raw SQLite baseline',
    async () => {
      const json = join(dir, 'ingest.json');
      await runBench('ingest.js', ['--n', '400', '--http-n', '300', '--http-concurrency', '8', '--rounds', '1', '--json', json]);
      expectSubjects(json, [/^in-process/, /^HTTP c=8/]);
    },
    TIMEOUT_MS,
  );

  it(
    'ingest-postgres.js: in-process and HTTP against raw PostgreSQL inserts',
    async () => {
      const json = join(dir, 'ingest-postgres.json');
      await runBench('ingest-postgres.js', ['--n', '200', '--n-serial', '50', '--concurrency', '8', '--http-concurrency', '8', '--http-n', '150', '--rounds', '1', '--json', json]);
      const { summary } = JSON.parse(readFileSync(json, 'utf8')) as { summary: { name: string; ackedObsPerSec: number; ratioLock: number }[] };
      expect(summary.map((s) => s.name)).toEqual(['in-process c=8', 'HTTP c=8']);
      for (const s of summary) expectPositive(s.ackedObsPerSec, s.ratioLock);
    },
    TIMEOUT_MS,
  );

  it.each([['postgres'], ['sqlite']])(
    'rebuild.js --store %s: a registry rebuild beside the live one, and the reset as before, while queries run',
    async (store) => {
      const json = join(dir, `rebuild-${store}.json`);
      await runBench('rebuild.js', ['--store', store, '--n', '300', '--patients', '50', '--rounds', '1', '--idle-ms', '300', '--json', json]);
      type Seen = { eventsPerSecond: number; queries: number; p99: number; misses: number };
      const { results } = JSON.parse(readFileSync(json, 'utf8')) as { results: { idle: { p99: number }; beside: Seen; reset: Seen }[] };
      expect(results).toHaveLength(1);
      const [round] = results;
      expectPositive(round!.idle.p99, round!.beside.eventsPerSecond, round!.beside.queries, round!.beside.p99, round!.reset.eventsPerSecond);
      expect(round!.beside.misses).toBe(0); // no query read a half-replayed registry
    },
    TIMEOUT_MS,
  );

  it(
    'query.js: the service against the direct SELECT',
    async () => {
      const out = await runBench('query.js', ['--patients', '20', '--readings', '50', '--queries', '200', '--warmup', '20', '--rebuild']);
      figure(out, /direct SELECT\s+([\d.,]+)/);
    },
    TIMEOUT_MS,
  );

  it.each([
    ['tokens.js', ['--tokens', '200', '--rounds', '1'], /CPU us\/token project \/ jose\+KeyObject: ([\d.]+)/],
    ['writer-thread.js', ['--n', '1000', '--rounds', '1'], /direct\/raw ([\d.]+)/],
    ['audit-index.js', ['--rounds', '1', '--batches', '5', '--events', '2000', '--reps', '2'], /without the index median ([\d.]+) ms/],
    ['ordered-by-key.js', ['--messages', '2000', '--experts', '50', '--rounds', '1'], /with OrderedByKey ([\d.]+) µs\/msg/],
    ['start.js', ['--rounds', '1'], /^hub\s+\|\s+([\d,]+)/m],
  ] as const)(
    '%s',
    async (script, args, label) => {
      figure(await runBench(script, [...args]), label);
    },
    TIMEOUT_MS,
  );

  it(
    'hub-e2e.js: the hub consuming the uplink against a bare rhea consumer, on its own broker',
    async () => {
      const out = await runBench('hub-e2e.js', ['--messages', '300', '--rounds', '1']);
      figure(out, /ratio hub\/rhea ([\d.]+)/);
    },
    TIMEOUT_MS,
  );

  it(
    'security.js: the SDK uplink with JOSE against without, on its own broker',
    async () => {
      const out = await runBench('security.js', ['--messages', '300', '--rounds', '1']);
      figure(out, /ratio jose\/off ([\d.]+)/);
    },
    TIMEOUT_MS,
  );
});
