// What the hub opens and writes with its defaults (the embedded profile, `npm start`), as a hospital's security
// review asks: one TCP listener on loopback, no connection out of the process (no telemetry, no update check, no
// DNS query), and files only in its data directory, each readable by its owner alone. The built program runs with a
// preload (test/support/network-spy.js) that records every listen, UDP bind, connect and DNS lookup it makes, while
// it is driven through a login, an upload, a search, its page and its metrics, then stopped.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { devToken, startHub } from '../support/hub-process';

const SPY = resolve(__dirname, '..', 'support', 'network-spy.js');

interface Seen {
  pid: number;
  kind: 'listen' | 'udp-bind' | 'connect' | 'dns';
  address?: string;
  port?: number;
  host?: string;
  path?: string;
  hostname?: string;
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'rts-footprint-'));
  for (const sub of ['data', 'home', 'tmp', 'cwd']) mkdirSync(join(dir, sub));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

it('with its defaults the hub listens on 127.0.0.1 only, connects nowhere, and writes only owner-only files in its data directory', async () => {
  const spyFile = join(dir, 'spy.jsonl');
  const hub = await startHub({
    dataDir: join(dir, 'data'),
    cwd: join(dir, 'cwd'),
    env: { HOME: join(dir, 'home'), TMPDIR: join(dir, 'tmp'), NODE_OPTIONS: `--require ${SPY}`, NETWORK_SPY_FILE: spyFile },
  });
  try {
    const token = await devToken(hub.url, { role: 'patient', patient: '251248-1234' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const upload = await fetch(`${hub.url}/observations`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ observationId: 'footprint-1', patientId: '251248-1234', systolic: 126, diastolic: 70 }),
    });
    expect(upload.status).toBe(201);
    const search = await fetch(`${hub.url}/observations/search`, { method: 'POST', headers, body: JSON.stringify({ patientId: '251248-1234' }) });
    expect(search.status).toBe(200);
    expect((await fetch(`${hub.url}/app/`)).status).toBe(200);
    const operator = await devToken(hub.url, { role: 'operator' });
    expect((await fetch(`${hub.url}/metrics`, { headers: { authorization: `Bearer ${operator}` } })).status).toBe(200);
  } finally {
    expect(await hub.stop()).toBe(0);
  }

  const seen = readFileSync(spyFile, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Seen); // the hub's and any process it started (NODE_OPTIONS is inherited)
  expect(seen.filter((e) => e.kind === 'listen')).toEqual([expect.objectContaining({ kind: 'listen', address: '127.0.0.1', port: hub.port })]);
  expect(seen.filter((e) => e.kind === 'udp-bind')).toEqual([]);
  expect(seen.filter((e) => e.kind === 'connect')).toEqual([]);
  // Node looks up the listen address even when it is a literal; an address literal sends no query.
  expect(seen.filter((e) => e.kind === 'dns' && e.hostname !== '127.0.0.1')).toEqual([]);

  const data = join(dir, 'data');
  const files = readdirSync(data).sort();
  expect(files).toEqual(['auth.secret', 'hub-keys.json', 'hub.lock', 'patient-keys.sqlite', 'pseudonym.secret', 'telemed.sqlite']);
  expect(files.filter((f) => (statSync(join(data, f)).mode & 0o777) !== 0o600)).toEqual([]);
  for (const elsewhere of ['home', 'tmp', 'cwd']) expect(readdirSync(join(dir, elsewhere))).toEqual([]);
});
