import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '../support/temp-dir';

/**
 * The hub on the embedded default loads neither node-postgres nor the EventStoreDB client (with gRPC): container.ts
 * loads those adapters when a store of theirs is opened. Loading them eagerly cost every start ~0.12 s and ~8 MB
 * (bench/start.js, alternating builds: 0.879x the start, 0.939x the memory; bench/README, "The hub's start").
 *
 * A child process (its own module cache) starts the hub on a fresh data directory, takes one upload and one query
 * (the paths that import the error mapping, problem.ts, which once imported the driver), and lists which of those
 * packages it has loaded; then it requires the PostgreSQL adapter's sql.ts, which must show up: the check itself
 * can see a loaded driver.
 */
const ROOT = resolve(__dirname, '..', '..');
const HEAVY = /node_modules[\\/](pg|@eventstore[\\/]db-client|@grpc[\\/]grpc-js)[\\/]/;

/** Runs `script(dataDir)` in a child (the TypeScript sources through ts-register) on a fresh directory: its stdout's JSON. */
const inChild = async <T>(script: (dataDir: string) => string): Promise<T> => {
  const data = tempDir('rts-start-modules-');
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), '-e', script(data.dir)], { cwd: ROOT, timeout: 60_000 });
    // The script's JSON comes last, after the hub's log lines (the shutdown's `audit anchor` line is written at
    // every level but silent).
    return JSON.parse(stdout.slice(stdout.lastIndexOf('\n') + 1)) as T;
  } finally {
    data.remove();
  }
};

const script = (dataDir: string): string => `
const root = ${JSON.stringify(ROOT)};
const { startHub } = require(root + '/src/bootstrap/main.ts');
const { loadConfig } = require(root + '/src/bootstrap/config.ts');
const heavy = () => [...new Set(Object.keys(require.cache).map((k) => (k.match(${HEAVY.toString()}) || [])[1]).filter(Boolean))].sort();
(async () => {
  const hub = await startHub(loadConfig({ RTS_DATA_DIR: ${JSON.stringify(dataDir)}, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'error', RTS_AUTH: 'off' }));
  const upload = await fetch(hub.url + '/observations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ patientId: '251248-1234', systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' } }) });
  const refused = await fetch(hub.url + '/observations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
  const query = await fetch(hub.url + '/patients/251248-1234/observations');
  const statuses = [upload.status, refused.status, query.status];
  const afterStart = heavy();
  await hub.stop();
  require(root + '/src/adapters/event-store/postgres/sql.ts');
  process.stdout.write(JSON.stringify({ statuses, afterStart, afterRequire: heavy() }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('the hub on the embedded store', () => {
  it('starts, stores and answers without loading node-postgres, gRPC or the EventStoreDB client', async () => {
    const result = await inChild<{ statuses: number[]; afterStart: string[]; afterRequire: string[] }>(script);
    expect(result.statuses).toEqual([201, 400, 200]);
    expect(result.afterStart).toEqual([]);
    expect(result.afterRequire).toContain('pg');
  }, 90_000);
});

/** The library (`openTeleMed`), in memory and on a data directory, one reading stored and read back; then the packages loaded. */
const libraryScript = (dataDir: string): string => `
const root = ${JSON.stringify(ROOT)};
const { openTeleMed, createTeleObservation, parseCpr, lastDays } = require(root + '/src/index.ts');
const { DateTime } = require('luxon');
const heavy = () => [...new Set(Object.keys(require.cache).map((k) => (k.match(${HEAVY.toString()}) || [])[1]).filter(Boolean))].sort();
(async () => {
  const counts = [];
  for (const options of [{ inMemory: true }, { dataDir: ${JSON.stringify(dataDir)} }]) {
    const rts = await openTeleMed(options);
    const now = DateTime.utc();
    await rts.telemed.processAndStore(createTeleObservation({ patientId: '251248-1234', systolic: { value: 126, unit: 'mmHg' }, diastolic: { value: 70, unit: 'mmHg' }, measuredAt: now.minus({ minutes: 1 }) }, now));
    counts.push((await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now))).length);
    await rts.close();
  }
  process.stdout.write(JSON.stringify({ counts, loaded: heavy() }));
})().catch((e) => { console.error(e); process.exit(1); });
`;

describe('the library on the embedded and the in-memory store', () => {
  it('stores and reads without loading node-postgres, gRPC or the EventStoreDB client', async () => {
    const result = await inChild<{ counts: number[]; loaded: string[] }>(libraryScript);
    expect(result.counts).toEqual([1, 1]);
    expect(result.loaded).toEqual([]);
  }, 90_000);
});

describe('the stores loaded when opened', () => {
  // The lazily loaded EventStoreDB adapter is found and run (not a module error) where no server answers: the
  // EventStoreDB suite itself runs only when EVENTSTORE_CONNECTION_STRING is given.
  it('opens EventStoreDB through its adapter, which reports the server it cannot reach', async () => {
    const { openStore } = await import('../../src/bootstrap/container');
    const { loadConfig } = await import('../../src/bootstrap/config');
    const { freePort } = await import('../support/hub-process');
    const port = await freePort();
    const config = loadConfig({ RTS_EVENT_STORE: 'eventstoredb', RTS_EVENTSTORE_CONNECTION_STRING: `esdb://127.0.0.1:${port}?tls=false&defaultDeadline=3000` });
    const error = await openStore(config).then(
      () => null,
      (e: unknown) => e as Error & { code?: unknown },
    );
    // The client's own refusal (gRPC UNAVAILABLE, its cause the refused connection): the adapter was loaded and ran.
    expect(error).toBeInstanceOf(Error);
    expect(error!.message).toMatch(/UNAVAILABLE.*ECONNREFUSED/s);
  }, 30_000);
});
