// The README's worked example (`npm run example:city`, examples/city-system.ts) against the real broker and a hub
// as it runs by default: access control on and message security on. The example registers its system with an
// operator's token (the local development login when it is given none), joins with its experts, and prints what
// the hub sends on its downlink. Until this test, the example had only been run against hubs with access control
// off, and against a default hub it stopped at POST /systems with a 401.
// jose (the hub's tokens) ships as ESM only: hand jest the module as Node loads it (as the access tests do).
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { existsSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RunningHub } from '../../src/bootstrap/main';
import { startBroker, type TestBroker } from '../support/activemq';
import { runChild, type ChildRun } from '../support/children';
import { getJson, postJson, startInProcessHub, tempDir, until } from './hub-support';

jest.setTimeout(180_000);

const ROOT = resolve(__dirname, '..', '..');
const DEFAULTS = { RTS_MESSAGE_SECURITY: 'jose', RTS_AUTH: 'on' };

/** The example as `npm run example:city` runs it, in its own working directory (it keeps its keys in ./data). */
const runExample = (cwd: string, args: string[], env: Record<string, string> = {}): Promise<ChildRun> =>
  runChild(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), join(ROOT, 'examples', 'city-system.ts'), ...args], {
    cwd,
    env: { ...process.env, RTS_TOKEN: '', ...env },
  });

/** The example listening until Ctrl-C (`--listen 0`), stopped with SIGINT once its output shows what the test waits for. */
const runExampleUntil = (cwd: string, args: string[], seen: (out: string) => boolean): Promise<ChildRun> =>
  runChild(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), join(ROOT, 'examples', 'city-system.ts'), ...args, '--listen', '0'], {
    cwd,
    env: { ...process.env, RTS_TOKEN: '' },
    interruptWhen: seen,
  });

/** A hub's uplink counter from GET /metrics, summed over its labels. */
const uplinkCounter = async (hubUrl: string, headers: Record<string, string>, name: 'accepted' | 'dead_lettered'): Promise<number> => {
  const res = await fetch(new URL('/metrics', hubUrl), { headers });
  if (res.status !== 200) throw new Error(`GET /metrics: HTTP ${res.status}`);
  const text = await res.text();
  return [...text.matchAll(new RegExp(`^rts_uplink_${name}_total\\{[^}]*\\} (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
};

const snapshotExperts = (out: string): number =>
  [...out.matchAll(/^< snapshot \d+\/\d+: (\d+) experts$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);

describe('the worked example (examples/city-system.ts) against a hub with its default security', () => {
  let broker: TestBroker;
  let hub: RunningHub;
  let data: { dir: string; remove(): void };
  let work: { dir: string; remove(): void };
  let operator: Record<string, string>;

  beforeAll(async () => {
    broker = await startBroker();
    data = tempDir('rts-city-example-hub-');
    work = tempDir('rts-city-example-');
    hub = await startInProcessHub(broker, data.dir, { env: DEFAULTS });
    const login = await postJson<{ token?: string }>(hub.url, '/auth/dev-login', { role: 'operator' });
    operator = { authorization: `Bearer ${login.body.token}` };
  });

  afterAll(async () => {
    await hub?.stop();
    await broker?.destroy();
    data?.remove();
    work?.remove();
  });

  it('registers, joins and is sent the directory: a second city receives the first one\'s experts', async () => {
    const a = await runExampleUntil(work.dir, ['--url', broker.url, '--hub', hub.url, '--system', 'city-a', '--experts', '600'], (out) => /^< joined the hub as city-a$/m.test(out));
    if (a.code !== 0) throw new Error(`city-a exited ${a.code}\nstdout:\n${a.out}\nstderr:\n${a.err}`);
    expect(a.out).toMatch(/^> join: request \+ 2 batches \(600 experts\)/m);
    expect(a.out).toMatch(/^< joined the hub as city-a$/m);
    // Its key pairs are kept for the next run, private to the user, and outside the hub's default data directory.
    const keyFile = join(work.dir, 'city-keys', 'city-a.keys.json');
    expect(existsSync(keyFile)).toBe(true);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(statSync(join(work.dir, 'city-keys')).mode & 0o777).toBe(0o700);
    expect(existsSync(join(work.dir, 'data'))).toBe(false);

    await until('city-a joined', async () => (await getJson(hub.url, '/systems/city-a', operator)).body.status === 'joined');
    // The expert it registered, changed and retired is gone; its 600 stay.
    await until('city-a-new retired', async () => (await getJson(hub.url, '/experts/city-a:city-a-new', operator)).body.status === 'retired');

    const b = await runExampleUntil(work.dir, ['--url', broker.url, '--hub', hub.url, '--system', 'city-b', '--experts', '10'], (out) => /^< joined the hub as city-b$/m.test(out) && snapshotExperts(out) >= 600);
    if (b.code !== 0) throw new Error(`city-b exited ${b.code}\nstdout:\n${b.out}\nstderr:\n${b.err}`);
    expect(b.out).toMatch(/^< joined the hub as city-b$/m);
    expect(snapshotExperts(b.out)).toBe(600);

    // A second run of the same system (its keys file exists, the system is registered) repeats the join harmlessly:
    // its six messages (join request, two batches, the extra expert's three) are all taken as repeats.
    // It runs from keys an earlier version left in ./data: they are moved, not replaced by new ones.
    const keysBefore = readFileSync(keyFile, 'utf8');
    mkdirSync(join(work.dir, 'data'));
    renameSync(keyFile, join(work.dir, 'data', 'city-a.keys.json'));
    const acceptedBefore = await uplinkCounter(hub.url, operator, 'accepted');
    const again = await runExample(work.dir, ['--url', broker.url, '--hub', hub.url, '--system', 'city-a', '--experts', '600', '--listen', '1']);
    if (again.code !== 0) throw new Error(`city-a again exited ${again.code}\nstdout:\n${again.out}\nstderr:\n${again.err}`);
    expect(again.out).toMatch(/^moved this system's keys from data\/city-a\.keys\.json to city-keys\/city-a\.keys\.json$/m);
    expect(readFileSync(keyFile, 'utf8')).toBe(keysBefore);
    expect(existsSync(join(work.dir, 'data', 'city-a.keys.json'))).toBe(false);
    expect((await getJson(hub.url, '/systems/city-a/keys', operator)).body.items).toHaveLength(2);
    expect((await getJson(hub.url, '/experts/city-a:city-a-new', operator)).body).toMatchObject({ status: 'retired', revision: 3 });
    await until('the rerun handled', async () => (await uplinkCounter(hub.url, operator, 'accepted')) >= acceptedBefore + 6);
    // Nothing of the three runs was refused: the rerun's messages were repeats, not a retired expert registered anew.
    expect(await uplinkCounter(hub.url, operator, 'accepted')).toBe(acceptedBefore + 6);
    expect(await uplinkCounter(hub.url, operator, 'dead_lettered')).toBe(0);
    expect((await getJson(hub.url, '/dead-letters?limit=10', operator)).body.count).toBe(0);
  });

  it('refused without an operator\'s token: says which token is needed, exits 1, and nothing is sent', async () => {
    const expired = await runExample(work.dir, ['--url', broker.url, '--hub', hub.url, '--system', 'city-c', '--experts', '1', '--listen', '0'], { RTS_TOKEN: 'not-a-token' });
    expect(expired.code).toBe(1);
    expect(expired.err).toContain('the hub refused to register city-c (HTTP 401)');
    expect(expired.err).toContain('RTS_TOKEN');
    expect(expired.err).not.toMatch(/\n\s+at /);
    expect(expired.out).not.toContain('> join');

    const patient = await postJson<{ token?: string }>(hub.url, '/auth/dev-login', { role: 'patient', patient: '251248-1234' });
    const forbidden = await runExample(work.dir, ['--url', broker.url, '--hub', hub.url, '--system', 'city-c', '--experts', '1', '--listen', '0', '--token', String(patient.body.token)]);
    expect(forbidden.code).toBe(1);
    expect(forbidden.err).toContain('(HTTP 403)');
    expect((await getJson(hub.url, '/systems/city-c', operator)).status).toBe(404);
  });

  it('with no token and a hub whose development login is off: says so, exits 1', async () => {
    const other = tempDir('rts-city-example-nodev-');
    const strict = await startInProcessHub(broker, other.dir, { env: { ...DEFAULTS, RTS_AUTH_DEV_LOGIN: 'off', RTS_UPLINK_QUEUE: 'rts.uplink.strict' } });
    try {
      const run = await runExample(work.dir, ['--url', broker.url, '--hub', strict.url, '--system', 'city-d', '--experts', '1', '--listen', '0']);
      expect(run.code).toBe(1);
      expect(run.err).toContain('no operator token: set RTS_TOKEN or --token');
      expect(run.err).not.toMatch(/\n\s+at /);
    } finally {
      await strict.stop();
      other.remove();
    }
  });
});
