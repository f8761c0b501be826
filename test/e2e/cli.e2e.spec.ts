import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { freePort, startHub, tempDataDir, type HubProcess } from '../support/hub-process';

/**
 * The built `rts` (dist/adapters/cli/main.js, the package's bin) against the built hub on a real port: the
 * seed's two stories as a patient lives them, plus the ways it can go wrong and the exit code of each.
 */
const CLI = resolve(__dirname, '..', '..', 'dist', 'adapters', 'cli', 'main.js');
const CPR = '251248-1234';

type CliResult = Readonly<{ code: number; stdout: string; stderr: string }>;

const TOKEN_JS = resolve(__dirname, '..', '..', 'dist', 'bootstrap', 'token.js');

const rts = (args: string[], env: Record<string, string> = {}): Promise<CliResult> => node(CLI, args, env);

/** `stdin`: written to the program's stdin, which is then closed (else it stays open and empty). */
const node = (script: string, args: string[], env: Record<string, string> = {}, stdin?: string): Promise<CliResult> =>
  new Promise((done) => {
    const child = execFile(process.execPath, [script, ...args], { env: { ...process.env, NO_COLOR: '1', TZ: 'UTC', LC_ALL: 'C.UTF-8', TERM: 'xterm-256color', COLUMNS: '80', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      done({ code, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });

/** An instant `daysAgo` days before now at hh:mm UTC, as ISO with offset (the hub refuses the future). */
const daysAgoAt = (daysAgo: number, hh: number, mm: number): string => {
  const d = new Date();
  d.setUTCDate(d.getUTCDate() - daysAgo);
  d.setUTCHours(hh, mm, 0, 0);
  return d.toISOString().replace(/\.000Z$/, 'Z');
};

describe('rts against the running hub', () => {
  const data = tempDataDir('rts-cli-e2e-');
  let hub: HubProcess;
  let env: Record<string, string>;

  beforeAll(async () => {
    hub = await startHub({ dataDir: data.dir });
    env = { RTS_URL: hub.url };
  });

  afterAll(async () => {
    await hub?.stop();
    data.remove();
  });

  const week = [
    { at: daysAgoAt(6, 7, 30), systolic: 138, diastolic: 88 },
    { at: daysAgoAt(5, 7, 45), systolic: 131, diastolic: 84 },
    { at: daysAgoAt(3, 8, 0), systolic: 126, diastolic: 70 },
    { at: daysAgoAt(2, 19, 15), systolic: 142, diastolic: 91 },
    { at: daysAgoAt(1, 7, 5), systolic: 122, diastolic: 76 },
  ];

  it('uploads a week of readings (story 1)', async () => {
    for (const r of week) {
      const res = await rts(['upload', '--patient', CPR, '--systolic', String(r.systolic), '--diastolic', String(r.diastolic), '--at', r.at], env);
      expect(res).toMatchObject({ code: 0, stderr: '' });
      expect(res.stdout).toMatch(new RegExp(`^Uploaded: ${r.systolic}/${r.diastolic} mmHg at [^\\n]*\\d\\nDocument id: 2\\.25\\.\\d+\\n$`));
    }
  });

  it('reviews the last week: a table of every reading and a chart of both series (story 2)', async () => {
    const res = await rts(['review', '--patient', CPR, '--url', hub.url], { RTS_URL: 'http://127.0.0.1:1' });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const lines = res.stdout.split('\n');
    for (const r of week) {
      const when = r.at.slice(0, 16).replace('T', ' '); // TZ=UTC: local time is UTC
      const row = lines.find((l) => l.includes(when));
      expect(row).toBeDefined();
      expect(row).toMatch(new RegExp(`${r.systolic} mmHg\\s+${r.diastolic} mmHg$`));
    }
    expect(res.stdout).toContain(`${week.length} readings`);
    const plot = lines.filter((l) => /^\s*\d+ ┤/.test(l)).join('\n');
    expect((plot.match(/▲/g) ?? []).length).toBe(week.length);
    expect((plot.match(/▼/g) ?? []).length).toBe(week.length);
    expect(res.stdout).toContain('▲ systolic  ▼ diastolic');
    expect(res.stdout).toContain('mmHg');
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
    expect(res.stdout).not.toMatch(/\x1b\[/); // no colour codes
    // A screen reader's terminal: TERM=dumb, 40 columns, through a pipe (COLUMNS), the chart left out: every line
    // fits, ASCII only, and the summary says what the chart would have shown.
    const narrow = await rts(['review', '--patient', CPR, '--no-chart'], { ...env, TERM: 'dumb', COLUMNS: '40' });
    expect(narrow).toMatchObject({ code: 0, stderr: '' });
    const narrowLines = narrow.stdout.split('\n');
    expect(narrowLines.filter((l) => l.length > 40)).toEqual([]);
    expect(narrow.stdout).toMatch(/^[\x20-\x7e\n]*$/);
    expect(narrow.stdout).toContain(`\nSystolic: lowest 122, highest 142 mmHg\nDiastolic: lowest 70, highest 91 mmHg\nLatest: 122/76 mmHg on ${week[4]!.at.slice(0, 16).replace('T', ' ')}\n`);
    expect(narrow.stdout).not.toMatch(/systolic {2}D diastolic/);
  });

  it('says "already stored" when the same --id is uploaded again', async () => {
    const args = ['upload', '--patient', CPR, '--systolic', '129', '--diastolic', '79', '--at', daysAgoAt(0, 0, 1), '--id', 'meter-42:0001'];
    const first = await rts(args, env);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^Uploaded: /);
    const again = await rts(args, env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/already stored/i);
    expect(again.stdout).toContain(first.stdout.match(/^Document id: (2\.25\.\d+)$/m)![1]!);
  });

  it('exits 3 with the hub\'s own message when the hub refuses the reading', async () => {
    const res = await rts(['upload', '--patient', CPR, '--systolic', '70', '--diastolic', '90'], env);
    expect(res.code).toBe(3);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain('The observation has implausible values');
    expect(res.stderr).toContain('  - --systolic: must be above the diastolic pressure\n    The systolic pressure is the higher number');
    expect(res.stderr).not.toContain(CPR);
    expect(res.stderr).not.toMatch(/\n\s+at /); // no stack
  });

  it('names the flag, not the JSON field, of a time in the future, and says what to do', async () => {
    const res = await rts(['upload', '--patient', CPR, '--systolic', '120', '--diastolic', '80', '--at', '2099-01-01T10:00:00Z'], env);
    expect(res).toMatchObject({ code: 3, stdout: '' });
    expect(res.stderr).toContain('  - --at: lies in the future\n    Give the time you measured, or leave --at out (the time is then now).\n');
    expect(res.stderr).not.toContain('measuredAt');
  });

  it('exits 2 on a malformed CPR number without sending anything', async () => {
    const before = hub.output().length;
    const res = await rts(['upload', '--patient', '2512481234', '--systolic', '126', '--diastolic', '70'], env);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/--patient must be a CPR number of the form ddmmyy-ssss/);
    expect(res.stderr).not.toContain('2512481234');
    await new Promise((r) => setTimeout(r, 200));
    expect(hub.output().slice(before)).not.toContain('"request"');
  });

  it('reviews the longest span the help offers, --days 366, against the real hub', async () => {
    // The hub's own `to` is its now plus a second; a `from` 366 days back by this clock made 366 days and a second.
    const res = await rts(['review', '--patient', CPR, '--url', hub.url, '--days', '366']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(Number(/^(\d+) readings, average/m.exec(res.stdout)?.[1])).toBeGreaterThanOrEqual(week.length);
  });

  it('lists a reading the hub just accepted with a time a few minutes ahead (the hub takes up to 5)', async () => {
    const cpr = '020380-1234';
    const ahead = new Date(Math.floor(Date.now() / 60_000) * 60_000 + 4 * 60_000).toISOString().replace(/\.000Z$/, 'Z');
    const stored = await rts(['upload', '--patient', cpr, '--systolic', '131', '--diastolic', '82', '--at', ahead], env);
    expect(stored.code).toBe(0);
    const res = await rts(['review', '--patient', cpr, '--days', '1'], env);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^1 reading, average 131\/82 mmHg$/m);
  });

  it('says a CPR number born in the future is refused as such (it was "lies before the patient\'s date of birth" even without --at)', async () => {
    const res = await rts(['upload', '--patient', '010137-5234', '--systolic', '126', '--diastolic', '70'], env);
    expect(res.code).toBe(3);
    expect(res.stderr).toContain('  - --patient: the birth date in this CPR number lies in the future\n');
    expect(res.stderr).not.toContain('date of birth');
  });

  it('exits 4 with a clear message when nothing listens at the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const res = await rts(['review', '--patient', CPR, '--url', url]);
    expect(res.code).toBe(4);
    expect(res.stderr).toBe(`rts: cannot reach the hub at ${url}: connection refused (is the hub running?)\n`);
  });

  it('exits 4, never 0, when the other end takes the connection and closes it without an answer (upload and review, 5 times each)', async () => {
    // A proxy with nothing behind it: fetch's promise was left unsettled with an empty event loop, and node exited
    // 0 with no word in 19 of 20 tries, so a script took the reading as stored.
    const server = createServer((socket) => socket.destroy());
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (let i = 0; i < 5; i++) {
        for (const args of [['upload', '--patient', CPR, '--systolic', '120', '--diastolic', '80'], ['review', '--patient', CPR]]) {
          const res = await rts([...args, '--url', url]);
          expect({ args: args[0], code: res.code, said: res.stderr.length > 0 }).toEqual({ args: args[0], code: 4, said: true });
          // The reading may have got through before the close: the id to send it again with, so it is stored once.
          if (args[0] === 'upload') expect(res.stderr).toMatch(/Run the same command again with --id rts-[0-9a-f-]{36}: it is stored only once/);
        }
      }
    } finally {
      server.close();
    }
  });

  it('rts dlq gets past access control: the development login as an operator, or a token minted with token.js', async () => {
    // This hub has no broker, so past access control the answer is its 503; a 401 would mean no token was sent.
    const local = await rts(['dlq', 'list'], env);
    expect(local.code).toBe(5);
    expect(local.stderr).toContain('the hub runs without a message broker');
    const refused = await rts(['dlq', 'list'], { ...env, RTS_TOKEN: 'not-a-token' });
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain('(HTTP 401, unauthenticated)');
    expect(refused.stderr).toContain("dead letters need an operator's token: set RTS_TOKEN");
    // A token minted with the hub's secret, as the README says: accepted.
    const minted = await node(TOKEN_JS, ['--role', 'operator'], { RTS_DATA_DIR: data.dir });
    expect(minted.code).toBe(0);
    const operator = await rts(['dlq', 'list'], { ...env, RTS_TOKEN: minted.stdout.trim() });
    expect(operator.code).toBe(5);
    expect(operator.stderr).toContain('the hub runs without a message broker');
    // A patient's minted token is not an operator's.
    const patient = await node(TOKEN_JS, ['--role', 'patient', '--patient', CPR], { RTS_DATA_DIR: data.dir });
    const forbidden = await rts(['dlq', 'list'], { ...env, RTS_TOKEN: patient.stdout.trim() });
    expect(forbidden.code).toBe(3);
    expect(forbidden.stderr).toContain('(HTTP 403, forbidden)');
  });

  it('takes the CPR number off the command line: --patient - from stdin, or RTS_PATIENT; token.js too', async () => {
    const at = daysAgoAt(0, 0, 3);
    const sent = await node(CLI, ['upload', '--patient', '-', '--systolic', '133', '--diastolic', '83', '--at', at, '--id', 'stdin-0001'], env, `${CPR}\n`);
    expect(sent).toMatchObject({ code: 0, stderr: '' });
    expect(sent.stdout).toMatch(/^Uploaded: 133\/83 mmHg/);
    // A patient's token from token.js, the CPR number on its stdin: it names the patient by key, and the hub lets it
    // read that patient's readings (RTS_PATIENT) and no one else's.
    const minted = await node(TOKEN_JS, ['--role', 'patient', '--patient', '-'], { RTS_DATA_DIR: data.dir }, `${CPR}\n`);
    expect(minted).toMatchObject({ code: 0, stderr: '' });
    const token = minted.stdout.trim();
    expect(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')).not.toMatch(/251248|2512481234/);
    const own = await rts(['review', '--days', '2'], { ...env, RTS_TOKEN: token, RTS_PATIENT: CPR });
    expect(own).toMatchObject({ code: 0, stderr: '' });
    expect(own.stdout).toContain('133');
    const other = await rts(['review'], { ...env, RTS_TOKEN: token, RTS_PATIENT: '010203-2345' });
    expect(other.code).toBe(3);
    expect(other.stderr).toContain('(HTTP 403, forbidden)');
    // Nothing on stdin: a usage error that says so, nothing sent.
    const empty = await node(CLI, ['review', '--patient', '-'], env, '');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('--patient -: stdin held no CPR number');
  });

  it('rts export: the patient\'s own data into a new file of mode 0600 (CPR number on stdin); refusals and a hub that is down as exit codes', async () => {
    const out = tempDataDir('rts-cli-export-');
    try {
      const file = join(out.dir, 'export.json');
      const res = await node(CLI, ['export', '--patient', '-', '--out', file], env, `${CPR}\n`);
      expect(res).toMatchObject({ code: 0, stdout: '' });
      expect(res.stderr).toMatch(/^Exported \d+ readings, 0 consultations, \d+ audit entries to the file given with --out \(mode 0600\)\.\n$/);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const exported = JSON.parse(readFileSync(file, 'utf8'));
      expect(exported).toMatchObject({ format: 'telemed-rts/patient-export', formatVersion: 1, patient: { cpr: CPR }, erasure: null });
      // Every reading this file's tests uploaded for the patient, as the hub stores them.
      for (const r of week) expect(exported.observations).toContainEqual(expect.objectContaining({ measuredAt: r.at, systolic: { value: r.systolic, unit: 'mmHg' }, status: 'current' }));
      // Written once: a second export to the same file is refused before anything is sent.
      const again = await node(CLI, ['export', '--patient', '-', '--out', file], env, `${CPR}\n`);
      expect(again.code).toBe(2);
      // A number the hub holds nothing of: its problem, exit 3; nothing listens: exit 4.
      const unknown = await rts(['export', '--patient', '150381-6613'], env);
      expect(unknown.code).toBe(3);
      expect(unknown.stderr).toContain('(HTTP 404, unknown_patient)');
      expect(unknown.stderr).not.toContain('150381-6613');
      const url = `http://127.0.0.1:${await freePort()}`;
      const down = await rts(['export', '--patient', CPR, '--url', url]);
      expect(down).toMatchObject({ code: 4, stdout: '', stderr: `rts: cannot reach the hub at ${url}: connection refused (is the hub running?)\n` });
    } finally {
      out.remove();
    }
  });

  it('answers --help and --version from the built program', async () => {
    const help = await rts(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Exit codes:');
    const version = await rts(['--version']);
    expect(version).toMatchObject({ code: 0, stdout: 'rts 0.1.0\n' });
  });

  it('Ctrl-C while an upload waits for its answer: exit 130, saying it may be stored and how to send it again', async () => {
    // Takes the connection, never answers; the request's first bytes say the upload is waiting (a fixed delay sent
    // the signal before a loaded machine had started the program, whose default action then ended it).
    let requested: () => void = () => undefined;
    const waiting = new Promise<void>((r) => (requested = r));
    const silent = createServer((socket) => socket.once('data', () => requested()));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const interrupted = await new Promise<CliResult>((done) => {
        const child = spawn(process.execPath, [CLI, 'upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70', '--url', url], { stdio: ['ignore', 'pipe', 'pipe'] });
        let stderr = '';
        child.stderr!.on('data', (d) => (stderr += d));
        void waiting.then(() => child.kill('SIGINT'));
        child.on('close', (code) => done({ code: code ?? -1, stdout: '', stderr }));
      });
      expect(interrupted.code).toBe(130);
      expect(interrupted.stderr).toContain('interrupted while waiting for the hub\'s answer: the reading may be stored');
      expect(interrupted.stderr).toMatch(/Run the same command again with --id rts-[0-9a-f-]{36}/);
    } finally {
      silent.close();
    }
  });

  it('says so when it cannot write its output (stdout on a full device), not a silent exit 1', async () => {
    const full = await new Promise<CliResult>((done) => {
      const out = openSync('/dev/full', 'w');
      const child = spawn(process.execPath, [CLI, '--help'], { stdio: ['ignore', out, 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      child.on('close', (code) => {
        closeSync(out);
        done({ code: code ?? -1, stdout: '', stderr });
      });
    });
    expect(full).toEqual({ code: 1, stdout: '', stderr: 'rts: cannot write the output (ENOSPC)\n' });
  });
});
