jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import { runBackup } from '../../src/adapters/cli/backup';
import { runErasures } from '../../src/adapters/cli/erasures';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';
import { appendOldBuildConsultation } from '../support/old-build-consultation';

/**
 * The operator's way back after a disk loss, on the embedded store, with the hub as `npm start` composes it and
 * `rts` as the operator runs it: a backup is taken; then a patient of the backup and a patient new since are
 * erased; the disk is lost (the data directory is not used again: what survives is the hub's log, kept
 * elsewhere); the backup is restored, and the erased patient is back in it. `rts erasures apply`, with no CPR
 * number, erases them again from the log's "patient erased" lines: their readings answer 410, their data key is
 * in neither file of the key store, and the patient who was not erased keeps their readings. So is a consultation
 * whose texts the data protection officer erased by id (DELETE /consultations/{id}/content) after the backup: it is
 * in GET /erasures, the log and `rts erasures list`, and `apply` erases its texts again.
 */
const KEPT = '010203-2345';
const ERASED = '251248-1234';
const NEW_SINCE = '150381-6613';
/** A consultation of the backup whose texts are erased by id after it (no patient's erasure reaches it). */
const CONSULTATION = 'a1b2c3d4-0000-4000-8000-00000000c0de';
const KEPT_CONSULTATION = 'a1b2c3d4-0000-4000-8000-00000000beef';

const live = tempDataDir('rts-erase-restore-live-');
const out = tempDataDir('rts-erase-restore-out-');
const logFile = join(out.dir, 'hub.log');
const backupDir = join(out.dir, 'backup');
const restoredDir = join(out.dir, 'restored');

const start = (dir: string, logger = pino({ level: 'silent' }), env: Record<string, string> = {}): Promise<RunningHub> =>
  startHub(loadConfig({ RTS_DATA_DIR: dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH_DEV_LOGIN: 'on', ...env }), logger);

/**
 * Where the hub's broker would be: a port that counts the connections made to it (it speaks no AMQP, so a hub that
 * connects gets no further, and sends nothing).
 */
const countingBroker = async () => {
  const sockets: Socket[] = [];
  const server = createServer((socket) => void sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `amqp://127.0.0.1:${port}`,
    connections: () => sockets.length,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
};

const token = async (url: string, claims: Record<string, string>): Promise<string> => {
  const res = await fetch(`${url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claims) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
};
const call = async (url: string, method: string, path: string, bearer: string, body?: object) => {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as any };
};
const upload = async (url: string, patient: string, systolic: number) =>
  call(url, 'POST', '/observations', await token(url, { role: 'patient', patient }), { patientId: patient, systolic, diastolic: 70, observationId: `o-${[KEPT, ERASED, NEW_SINCE].indexOf(patient)}-${systolic}` });
const readings = async (url: string, patient: string) => call(url, 'GET', `/patients/${patient}/observations`, await token(url, { role: 'patient', patient }));
/** The consultation as its applicant system reads it (appendOldBuildConsultation's applicant is city-a). */
const consultation = async (url: string, id: string) => call(url, 'GET', `/consultations/${id}`, await token(url, { role: 'system', systemId: 'city-a' }));

const cli = async (run: (io: any) => Promise<number>, env: Record<string, string> = {}) => {
  let stdout = '';
  let stderr = '';
  const code = await run({ stdout: { write: (s: string) => ((stdout += s), true) }, stderr: { write: (s: string) => ((stderr += s), true) }, env });
  return { code, stdout, stderr };
};

/** The bytes of every file of a data directory (the databases, their WAL files). */
const filesOf = (dir: string): Buffer[] => readdirSync(dir).filter((f) => f.includes('sqlite')).map((f) => readFileSync(join(dir, f)));

afterAll(() => {
  live.remove();
  out.remove();
});

describe('repeating erasures on a restored backup (embedded store)', () => {
  let erasedKey = '';
  let newKey = '';
  let dataKey: Buffer;

  it('records erasures made after a backup where a lost disk does not take them: the answer, GET /erasures and the log', async () => {
    const seed = SqliteEventStore.open({ file: join(live.dir, DATA_FILES.events) });
    await appendOldBuildConsultation(seed, CONSULTATION, 1);
    await appendOldBuildConsultation(seed, KEPT_CONSULTATION, 2);
    await seed.close();
    const hub = await start(live.dir, pino({ level: 'info' }, pino.destination({ dest: logFile, sync: true })));
    try {
      expect((await upload(hub.url, KEPT, 121)).status).toBe(201);
      expect((await upload(hub.url, ERASED, 131)).status).toBe(201);
      expect((await cli((io) => runBackup('backup', ['--data-dir', live.dir, '--to', backupDir], io))).code).toBe(0);
      expect((await upload(hub.url, NEW_SINCE, 141)).status).toBe(201);

      const operator = await token(hub.url, { role: 'operator', sub: 'dpo' });
      // The CPR number in the body (POST /erasures), not in a URL a proxy would log.
      const erased = await call(hub.url, 'POST', '/erasures', operator, { patient: ERASED });
      expect(erased).toMatchObject({ status: 200, body: { erased: true, alreadyErased: false, known: true, patientKey: expect.stringMatching(/^p[0-9a-f]{32}$/) } });
      erasedKey = erased.body.patientKey;
      const contentErased = await call(hub.url, 'DELETE', `/consultations/${CONSULTATION}/content`, operator);
      expect(contentErased).toMatchObject({ status: 200, body: { erased: true, alreadyErased: false } });
      expect(await consultation(hub.url, CONSULTATION)).toMatchObject({ status: 200, body: { contentErased: true, clinicalQuestion: null } });
      newKey = (await call(hub.url, 'POST', '/erasures', operator, { patient: NEW_SINCE })).body.patientKey;
      const list = await call(hub.url, 'GET', '/erasures', operator);
      // In the order recorded, each with its kind; the consultation by its id (no personal data).
      expect(list.body).toEqual({
        count: 3,
        items: [
          { kind: 'patient', patientKey: erasedKey, erasedAt: erased.body.erasedAt },
          { kind: 'consultation', consultationId: CONSULTATION, erasedAt: contentErased.body.erasedAt },
          { kind: 'patient', patientKey: newKey, erasedAt: expect.any(String) },
        ],
      });
      writeFileSync(join(out.dir, 'erasures.json'), JSON.stringify(list.body));
      // As a build before kinds answered (and an operator saved): patients only, no kind.
      writeFileSync(
        join(out.dir, 'erasures-without-kind.json'),
        JSON.stringify({ count: 2, items: list.body.items.filter((i: { kind: string }) => i.kind === 'patient').map(({ kind: _kind, ...rest }: { kind: string }) => rest) }),
      );
    } finally {
      await hub.stop();
    }
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain(`"patientKey":"${erasedKey}"`);
    expect(log).toContain(`"consultationId":"${CONSULTATION}"`);
    // Pseudonymous keys only: no CPR number in the log.
    for (const cpr of [KEPT, ERASED, NEW_SINCE]) for (const form of [cpr, cpr.replace('-', '')]) expect(log).not.toContain(form);
    // The offline list of the (now stopped) data directory and of the log agree.
    const fromDir = await cli((io) => runErasures(['list', '--from', live.dir], io));
    const fromLog = await cli((io) => runErasures(['list', '--from', logFile], io));
    expect(fromDir.code).toBe(0);
    expect(fromLog.stdout).toBe(fromDir.stdout);
    expect(fromDir.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([
      { event: 'PatientErased', patientKey: erasedKey, erasedAt: expect.any(String) },
      { event: 'ConsultationContentErased', consultationId: CONSULTATION, erasedAt: expect.any(String) },
      { event: 'PatientErased', patientKey: newKey, erasedAt: expect.any(String) },
    ]);
    expect(fromDir.stderr).toBe("3 erasure(s) (2 of patients, 1 of consultations' content) recorded in the data directory\n");
    expect(fromLog.stderr).toMatch(/3 erasure\(s\) \(2 of patients, 1 of consultations' content\) recorded in the file \(\d+ other line\(s\) skipped\)/);
    // The saved GET /erasures answer lists the same.
    expect((await cli((io) => runErasures(['list', '--from', join(out.dir, 'erasures.json')], io))).stdout).toBe(fromDir.stdout);
    // The backup predates both.
    expect((await cli((io) => runErasures(['list', '--from', backupDir], io))).stdout).toBe('');

    // The log as journald keeps it (a prefix before each JSON line) reads the same.
    const journal = join(out.dir, 'journal.txt');
    writeFileSync(journal, log.split('\n').filter((l) => l !== '').map((l) => `Dec 01 19:33:03 host rts[123]: ${l}`).join('\n') + '\n');
    expect((await cli((io) => runErasures(['list', '--from', journal], io))).stdout).toBe(fromDir.stdout);
    // GET /erasures pages: one page that says more follow is refused; every page saved one per line is the whole.
    const saved = JSON.parse(readFileSync(join(out.dir, 'erasures.json'), 'utf8')) as { items: object[] };
    const pageOne = JSON.stringify({ count: 2, items: saved.items.slice(0, 2), next: '24' });
    const pageTwo = JSON.stringify({ count: 1, items: saved.items.slice(2) });
    writeFileSync(join(out.dir, 'page1.json'), pageOne);
    const cut = await cli((io) => runErasures(['apply', '--from', join(out.dir, 'page1.json'), '--url', 'http://127.0.0.1:9'], io));
    expect(cut.code).toBe(6);
    expect(cut.stderr).toMatch(/"next" \(24\) says more erasures follow/);
    writeFileSync(join(out.dir, 'pages.json'), `${pageOne}\n${pageTwo}\n`);
    expect((await cli((io) => runErasures(['list', '--from', join(out.dir, 'pages.json')], io))).stdout).toBe(fromDir.stdout);
  });

  it('restores the backup, the erased patient is back; rts erasures apply from the log erases them again, by key', async () => {
    const restore = await cli((io) => runBackup('restore', ['--from', backupDir, '--data-dir', restoredDir], io));
    expect(restore.code).toBe(0);
    expect(restore.stdout).toContain("rts erasures apply --from SOURCE");
    expect(restore.stdout).toContain(`rts restore --done --data-dir ${restoredDir}`);
    // Marked as restored: with a broker configured the hub refuses to start, before it connects (it would send the
    // downlink from the backup's checkpoint, expired offers and held messages with the texts erased after the backup).
    expect(existsSync(join(restoredDir, DATA_FILES.restored))).toBe(true);
    const broker = await countingBroker();
    try {
      for (const env of [{ RTS_BROKER_URL: broker.url }, { RTS_BROKER_DISCOVERY: 'multicast://default' }] as Record<string, string>[]) {
        const refused = start(restoredDir, pino({ level: 'silent' }), env);
        await expect(refused).rejects.toMatchObject({ name: 'ConfigError', problems: [expect.stringContaining(`RTS_DATA_DIR holds ${DATA_FILES.restored}`)] });
        await expect(refused).rejects.toThrow(`'rts restore --done --data-dir ${restoredDir}'`);
        await expect(refused).rejects.toThrow(`${Object.keys(env)[0]}: RTS_DATA_DIR holds`);
      }
      expect(broker.connections()).toBe(0);
    } finally {
      await broker.close();
    }
    const keys = new Database(join(restoredDir, 'patient-keys.sqlite'), { readonly: true });
    dataKey = (keys.prepare('SELECT data_key FROM patient_keys WHERE patient_key = ?').get(erasedKey) as { data_key: Buffer }).data_key;
    keys.close();
    expect(dataKey).toHaveLength(32); // the restored copy holds the erased patient's key again

    const hub = await start(restoredDir);
    try {
      expect(await readings(hub.url, ERASED)).toMatchObject({ status: 200, body: { count: 1 } }); // back from the backup
      expect(await consultation(hub.url, CONSULTATION)).toMatchObject({ status: 200, body: { contentErased: false, clinicalQuestion: 'Second opinion' } }); // its texts too
      const operator = await token(hub.url, { role: 'operator', sub: 'ops' });
      const applied = await cli((io) => runErasures(['apply', '--from', logFile, '--url', hub.url], io), { RTS_TOKEN: operator });
      expect(applied).toMatchObject({ code: 0, stderr: '' });
      expect(applied.stdout).toContain('Done: 3 erased now, 0 already erased here; 1 of them had nothing in this copy');
      expect(await consultation(hub.url, CONSULTATION)).toMatchObject({ status: 200, body: { contentErased: true, clinicalQuestion: null, summary: null } });
      expect(await consultation(hub.url, KEPT_CONSULTATION)).toMatchObject({ status: 200, body: { contentErased: false, clinicalQuestion: 'Second opinion' } });

      expect(await readings(hub.url, ERASED)).toMatchObject({ status: 410, body: { code: 'patient_erased' } });
      expect((await upload(hub.url, ERASED, 132)).status).toBe(410);
      // The patient new since the backup: nothing of theirs in this copy, and their uploads stay refused.
      expect((await upload(hub.url, NEW_SINCE, 142)).status).toBe(410);
      expect(await readings(hub.url, KEPT)).toMatchObject({ status: 200, body: { count: 1 } });
      // Idempotent: the same again (here from the saved GET /erasures answer) changes nothing.
      const again = await cli((io) => runErasures(['apply', '--from', join(out.dir, 'erasures.json'), '--url', hub.url], io), { RTS_TOKEN: operator });
      expect(again).toMatchObject({ code: 0, stderr: '' });
      // The repeat says what the erasures recorded: the patient new since the backup had nothing in this copy.
      expect(again.stdout).toContain('Done: 0 erased now, 3 already erased here; 1 of them had nothing in this copy');
      // A file saved from a build before kinds (items without kind) is read as patients' erasures.
      const withoutKind = await cli((io) => runErasures(['apply', '--from', join(out.dir, 'erasures-without-kind.json'), '--url', hub.url], io), { RTS_TOKEN: operator });
      expect(withoutKind).toMatchObject({ code: 0, stderr: '' });
      expect(withoutKind.stdout).toContain('2 erasure(s) recorded in the file; applying them');
      expect(withoutKind.stdout).toContain('Done: 0 erased now, 2 already erased here; 1 of them had nothing in this copy');
      // A consultation this copy does not have (requested after the backup): counted, not a failure.
      const later = join(out.dir, 'later-consultation.json');
      writeFileSync(later, JSON.stringify({ count: 1, items: [{ kind: 'consultation', consultationId: 'a1b2c3d4-0000-4000-8000-0000000f0f0f', erasedAt: '2026-12-01T10:00:00.000Z' }] }));
      const absent = await cli((io) => runErasures(['apply', '--from', later, '--url', hub.url], io), { RTS_TOKEN: operator });
      expect(absent).toMatchObject({ code: 0, stderr: '' });
      expect(absent.stdout).toContain('Done: 0 erased now, 0 already erased here; 1 consultation(s) not present in this copy');
      const listed = await call(hub.url, 'GET', '/erasures', operator);
      expect(listed.body.items.map((i: { patientKey?: string; consultationId?: string }) => i.patientKey ?? i.consultationId)).toEqual([erasedKey, CONSULTATION, newKey]); // repeated in the order recorded
      // The key is gone from both files of the key store (and every other file) while the hub still runs.
      for (const bytes of filesOf(restoredDir)) expect(bytes.includes(dataKey)).toBe(false);
    } finally {
      await hub.stop();
    }
    const keysAfter = new Database(join(restoredDir, 'patient-keys.sqlite'), { readonly: true });
    expect(keysAfter.prepare('SELECT data_key, erased_at IS NOT NULL AS erased FROM patient_keys WHERE patient_key = ?').get(erasedKey)).toEqual({ data_key: null, erased: 1 });
    keysAfter.close();
    const events = new Database(join(restoredDir, 'telemed.sqlite'), { readonly: true });
    expect(events.prepare('SELECT COUNT(*) FROM registry_entries WHERE patient_key = ?').pluck().get(erasedKey)).toBe(0);
    events.close();
  });

  it('starts with its broker on the restored directory once the operator cleared the marker (rts restore --done)', async () => {
    const done = await cli((io) => runBackup('restore', ['--done', '--data-dir', restoredDir], io));
    expect(done).toMatchObject({ code: 0, stderr: '' });
    expect(done.stdout).toMatch(/^Cleared restored-from-backup\.json \(the backup of .+\) from .+: a hub may start there with its broker now\.\n$/);
    expect(existsSync(join(restoredDir, DATA_FILES.restored))).toBe(false);
    // Once only: a second --done finds nothing to clear, and says so.
    const again = await cli((io) => runBackup('restore', ['--done', '--data-dir', restoredDir], io));
    expect(again).toMatchObject({ code: 2, stdout: '' });
    expect(again.stderr).toContain(`holds no ${DATA_FILES.restored}`);
    const broker = await countingBroker();
    try {
      const hub = await start(restoredDir, pino({ level: 'silent' }), { RTS_BROKER_URL: broker.url });
      try {
        // The broker side runs: the hub connects (and, this port answering no AMQP, gets no further).
        for (let i = 0; i < 300 && broker.connections() === 0; i++) await new Promise((r) => setTimeout(r, 100));
        expect(broker.connections()).toBeGreaterThan(0);
        expect((await fetch(`${hub.url}/health`)).status).toBe(200);
      } finally {
        await hub.stop();
      }
    } finally {
      await broker.close();
    }
  });

  it('refuses a source that is no record of erasures, and a damaged backup, before sending anything', async () => {
    const notJson = join(out.dir, 'notes.txt');
    writeFileSync(notJson, 'erase 251248-1234 please\n');
    const none = await cli((io) => runErasures(['apply', '--from', notJson, '--url', 'http://127.0.0.1:9'], io));
    // No erasure in a file that has lines: refused, not "Done" with exit 0 (the unreachable URL is never tried).
    expect(none).toMatchObject({ code: 6 });
    expect(none.stderr).toContain('no erasure was found in');
    expect(none.stderr).toContain('nothing was applied');
    expect((await cli((io) => runErasures(['apply', '--url', 'http://127.0.0.1:9'], io))).code).toBe(2);
    // A source named after a patient: the message says what is wrong without the CPR number its path holds.
    for (const [named, code] of [[join(out.dir, 'erasure-251248-1234.json'), 6], [join(out.dir, 'erasure-251248-1234'), 2]] as const) {
      if (named.endsWith('.json')) writeFileSync(named, 'erase 251248-1234 please\n');
      const refused = await cli((io) => runErasures(['list', '--from', named], io));
      expect(refused.code).toBe(code);
      expect(refused.stderr).toMatch(/\[redacted\]/);
      expect(refused.stderr).not.toContain('251248');
    }
    writeFileSync(join(backupDir, 'pseudonym.secret'), 'changed');
    expect((await cli((io) => runErasures(['list', '--from', backupDir], io))).code).toBe(6);
  });
});
