import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import { ConfigError } from '../../src/bootstrap/config';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { SEALED_PREFIX } from '../../src/application/ports/patient-data-protection';
import { createTeleObservation, openTeleMed, parseCpr } from '../../src';

/**
 * The embedded key store and the events it opens belong together. An empty or missing patient-keys.sqlite beside
 * sealed events started a healthy hub whose every document answered 500 and whose next upload made the patient a new
 * key; an events file lost beside a key file full of keys started a hub with no data. Both stop the open, naming the
 * file, and a data directory whose keys were all erased (tombstones) still opens.
 */
let dataDir: string;
beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'rts-keys-beside-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

const A = '251248-1234';
const storeOne = async (): Promise<void> => {
  const rts = await openTeleMed({ dataDir });
  try {
    const now = DateTime.utc();
    await rts.telemed.processAndStore(createTeleObservation({ patientId: A, systolic: 130, diastolic: 80, measuredAt: now.minus({ minutes: 5 }) }, now));
  } finally {
    await rts.close();
  }
};
const openError = async (): Promise<unknown> => {
  try {
    const rts = await openTeleMed({ dataDir });
    await rts.close();
    return null;
  } catch (error) {
    return error;
  }
};

it('refuses an empty or missing key file beside sealed events, naming it, and creates none', async () => {
  await storeOne();
  for (const damage of ['empty', 'missing'] as const) {
    const keys = join(dataDir, 'patient-keys.sqlite');
    rmSync(`${keys}-wal`, { force: true });
    rmSync(`${keys}-shm`, { force: true });
    if (damage === 'empty') writeFileSync(keys, '');
    else rmSync(keys, { force: true });
    const error = await openError();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([expect.stringMatching(damage === 'empty' ? /^patient-keys\.sqlite in the data directory \(RTS_DATA_DIR, the library's dataDir\): holds no keys, but the event store holds data sealed/ : /^patient-keys\.sqlite in the data directory \(RTS_DATA_DIR, the library's dataDir\): is missing/)]);
    expect(existsSync(keys)).toBe(damage === 'empty');
  }
});

it('refuses a missing or new, empty events file beside a key file holding keys, and creates none', async () => {
  await storeOne();
  for (const suffix of ['', '-wal', '-shm']) rmSync(join(dataDir, `telemed.sqlite${suffix}`), { force: true });
  const error = await openError();
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^telemed\.sqlite in the data directory \(RTS_DATA_DIR, the library's dataDir\): holds no events, but patient-keys\.sqlite beside it holds patients' keys/)]);
  expect(existsSync(join(dataDir, 'telemed.sqlite'))).toBe(false);
  writeFileSync(join(dataDir, 'telemed.sqlite'), '');
  expect(((await openError()) as ConfigError).problems).toEqual([expect.stringMatching(/^telemed\.sqlite in the data directory .*: holds no events/)]);
});

it("refuses a key file older than the events (last week's backup): it lacks the keys of the newest documents", async () => {
  await storeOne();
  const old = readFileSync(join(dataDir, 'patient-keys.sqlite'));
  const rts = await openTeleMed({ dataDir });
  const now = DateTime.utc();
  await rts.telemed.processAndStore(createTeleObservation({ patientId: '010203-2345', systolic: 131, diastolic: 81, measuredAt: now.minus({ minutes: 4 }) }, now));
  await rts.close();
  for (const suffix of ['-wal', '-shm']) rmSync(join(dataDir, `patient-keys.sqlite${suffix}`), { force: true });
  writeFileSync(join(dataDir, 'patient-keys.sqlite'), old);
  const error = await openError();
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).problems).toEqual([expect.stringMatching(/^patient-keys\.sqlite in the data directory .*: lacks the keys of the newest documents or consultations \(an older copy, or another data directory's\)/)]);
});

it("refuses a key file without the key of the newest consultation's sealed texts (their key is the consultation's own)", async () => {
  await storeOne();
  const store = SqliteEventStore.open({ file: join(dataDir, 'telemed.sqlite') });
  await store.appendToStream('consultation-c-1', [{ id: randomUUID(), type: 'ConsultationRequested', data: { consultationId: 'c-1', clinicalQuestion: `${SEALED_PREFIX}x`, summary: '' } }]);
  await store.close();
  expect(((await openError()) as ConfigError).problems).toEqual([expect.stringMatching(/^patient-keys\.sqlite in the data directory .*: lacks the keys of the newest documents or consultations/)]);
});

it('says a damaged key file is damaged (not "holds no keys"), naming it', async () => {
  await storeOne();
  for (const suffix of ['-wal', '-shm']) rmSync(join(dataDir, `patient-keys.sqlite${suffix}`), { force: true });
  writeFileSync(join(dataDir, 'patient-keys.sqlite'), randomBytes(8192));
  expect(await openError()).toMatchObject({ code: 'SQLITE_NOTADB', message: expect.stringMatching(/^patient-keys\.sqlite: file is not a database/) });
});

it('opens a data directory as ever: new, reopened, and with every patient erased (the key rows are tombstones)', async () => {
  expect(await openError()).toBeNull();
  await storeOne();
  expect(await openError()).toBeNull();
  const rts = await openTeleMed({ dataDir });
  await rts.erasePatient(parseCpr(A), { by: 'dpo' });
  await rts.close();
  expect(await openError()).toBeNull();
});
