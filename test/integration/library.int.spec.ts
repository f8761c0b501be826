import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { DateTime } from 'luxon';
import Database from 'better-sqlite3';
import { Client } from 'pg';
import { backupDataDir, buildDocument, ConfigError, createTeleObservation, lastDays, loadConfig, openTeleMed, parseCpr, restoreDataDir, startHub, timeInterval, verifyBackup } from '../../src';
import { sha256Hex, uuidToOid, uuidV5 } from '../../src/application/ids';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { RtsError } from '../../src/domain/shared/errors';

/** The documented library entry point, used as a backend team would use it: no HTTP anywhere. */
describe('openTeleMed (library entry point)', () => {
  const now = DateTime.utc();
  const reading = (systolic: number, minutesAgo: number) =>
    createTeleObservation({ patientId: '251248-1234', systolic, diastolic: 70, measuredAt: now.minus({ minutes: minutesAgo }).toISO() }, now);

  it('backs up its data directory while open, and a copy restored elsewhere opens with the readings in it', async () => {
    const root = mkdtempSync(join(tmpdir(), 'rts-lib-backup-'));
    try {
      const rts = await openTeleMed({ dataDir: join(root, 'data') });
      const stored = await rts.telemed.processAndStore(reading(128, 20));
      const { manifest } = await backupDataDir(join(root, 'data'), join(root, 'backup'));
      await rts.close();
      expect(manifest.files.map((f) => f.name)).toEqual(expect.arrayContaining(['telemed.sqlite', 'patient-keys.sqlite', 'pseudonym.secret']));

      await restoreDataDir(join(root, 'backup'), join(root, 'restored'));
      const again = await openTeleMed({ dataDir: join(root, 'restored') });
      try {
        const week = await again.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
        expect(week.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[stored, 128]]);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('refuses to open a backup as its data directory (a hub too), so the backup still verifies and restores', async () => {
    const root = mkdtempSync(join(tmpdir(), 'rts-lib-open-backup-'));
    try {
      const rts = await openTeleMed({ dataDir: join(root, 'data') });
      await rts.telemed.processAndStore(reading(128, 20));
      await backupDataDir(join(root, 'data'), join(root, 'backup'));
      await rts.close();
      const files = readdirSync(join(root, 'backup')).sort();
      // Opened, the backup was written to at once (the store's settings, hub.lock, the secrets it lacked), and from then
      // on refused as damaged by verifyBackup, restoreDataDir and rts restore.
      const opening = openTeleMed({ dataDir: join(root, 'backup') });
      await expect(opening).rejects.toBeInstanceOf(ConfigError);
      await expect(opening).rejects.toMatchObject({ problems: [expect.stringMatching(/^dataDir: .* is a backup .*restoreDataDir/)] });
      const config = loadConfig({ RTS_DATA_DIR: join(root, 'backup'), RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent' });
      await expect(startHub(config)).rejects.toMatchObject({ problems: [expect.stringMatching(/^RTS_DATA_DIR: .* is a backup /)] });
      expect(readdirSync(join(root, 'backup')).sort()).toEqual(files);
      expect(() => verifyBackup(join(root, 'backup'))).not.toThrow();
      await restoreDataDir(join(root, 'backup'), join(root, 'restored'));
      const again = await openTeleMed({ dataDir: join(root, 'restored') });
      await again.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a data directory run on with a backup.json copied into it by hand is told to move it out, and then opens', async () => {
    const root = mkdtempSync(join(tmpdir(), 'rts-lib-stray-manifest-'));
    try {
      const dataDir = join(root, 'data');
      const rts = await openTeleMed({ dataDir });
      const stored = await rts.telemed.processAndStore(reading(128, 20));
      await backupDataDir(dataDir, join(root, 'backup'));
      await rts.close();
      // The manifest copied over a data directory that went on running (cp -a backup/. data/ by hand, an older build
      // started on it): "restore it" is refused as damaged, so the refusal must say how to go on.
      writeFileSync(join(dataDir, 'backup.json'), readFileSync(join(root, 'backup', 'backup.json')));
      await expect(restoreDataDir(dataDir, join(root, 'restored'))).rejects.toMatchObject({ code: 'damaged' });
      const opening = openTeleMed({ dataDir });
      await expect(opening).rejects.toMatchObject({ problems: [expect.stringMatching(/^dataDir: .* is a backup .* holds hub\.lock, so a hub or library has run on it: .*move backup\.json out of it/)] });
      const config = loadConfig({ RTS_DATA_DIR: dataDir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent' });
      await expect(startHub(config)).rejects.toMatchObject({ problems: [expect.stringMatching(/^RTS_DATA_DIR: .*move backup\.json out of it/)] });
      rmSync(join(dataDir, 'backup.json'));
      const again = await openTeleMed({ dataDir });
      try {
        expect((await again.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now))).map((o) => o.uniqueId)).toEqual([stored]);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('stores and queries on the embedded SQLite store, and survives reopening', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-'));
    try {
      let rts = await openTeleMed({ dataDir });
      const a = await rts.telemed.processAndStore(reading(126, 30));
      const b = await rts.telemed.processAndStore(reading(131, 10));
      expect(a).toMatch(/^2\.25\.\d+$/);
      expect(b).not.toBe(a);
      await rts.close();

      rts = await openTeleMed({ dataDir });
      const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => [o.uniqueId, o.systolic.value])).toEqual([
        [a, 126],
        [b, 131],
      ]);
      // The seed's retrieveDocumentSet returns the HL7 documents themselves.
      const docs = await rts.xds.retrieveDocumentSet(parseCpr('251248-1234'), now.minus({ days: 1 }), now.plus({ seconds: 1 }));
      expect(docs).toHaveLength(2);
      expect(docs[0]!.content).toContain('<id extension="251248-1234"/>');
      await rts.close();

      // The data directory holds the store and the pseudonym secret, and no file is named after the patient.
      expect(readdirSync(dataDir).join(' ')).not.toMatch(/251248/);
      expect(readFileSync(join(dataDir, 'pseudonym.secret'), 'utf8')).toMatch(/^[0-9a-f]{64}$/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('close() lets the calls in flight finish, then refuses later calls with an RtsError code closed', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-close-'));
    try {
      const rts = await openTeleMed({ dataDir });
      const inFlight = Array.from({ length: 300 }, (_, i) => rts.telemed.record(reading(100 + (i % 150), 1 + (i % 1000)), { observationId: `close-${i}` }));
      const closed = rts.close();
      const results = await Promise.allSettled(inFlight);
      await closed;
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      await rts.close(); // a second close is a no-op
      for (const late of [rts.telemed.processAndStore(reading(120, 5)), rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now)), rts.xds.retrieveDocument('2.25.1'), rts.rebuildRegistry()]) {
        await expect(late).rejects.toBeInstanceOf(RtsError);
        await expect(late).rejects.toMatchObject({ kind: 'unavailable', code: 'closed' });
      }
      await expect(rts.xds.correctDocument('2.25.1', {} as never, '')).rejects.toMatchObject({ code: 'closed' });

      const again = await openTeleMed({ dataDir });
      try {
        const stored = await again.telemed.getObservationsFor(parseCpr('251248-1234'), timeInterval(now.minus({ days: 1 }), now.plus({ seconds: 1 })));
        expect(stored).toHaveLength(300);
      } finally {
        await again.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('answers reads while another process holds the write lock (the registry is written with the uploads)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-lock-'));
    try {
      const rts = await openTeleMed({ dataDir });
      await Promise.all(Array.from({ length: 50 }, (_, i) => rts.telemed.record(reading(100 + i, 1 + i), { observationId: `lock-${i}` })));
      await new Promise((r) => setTimeout(r, 300));
      const other = new Database(join(dataDir, 'telemed.sqlite'));
      try {
        other.exec('BEGIN EXCLUSIVE');
        const started = Date.now();
        const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
        expect(week).toHaveLength(50);
        expect(Date.now() - started).toBeLessThan(1000); // not after waiting out the busy timeout
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
      await rts.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses a data directory another process holds (a hub or a library) with a ConfigError naming dataDir; after close it opens', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-held-'));
    try {
      const first = await openTeleMed({ dataDir });
      // The same process this time: said for both cases, and naming the library's setting.
      await expect(openTeleMed({ dataDir })).rejects.toMatchObject({
        name: 'ConfigError',
        problems: [expect.stringMatching(/^dataDir: the data directory is in use by another hub or library, in another process or in this one .*give this one another dataDir$/)],
      });
      await first.telemed.record(reading(120, 1), { observationId: 'held-1' });
      await first.close();
      const second = await openTeleMed({ dataDir });
      expect(await second.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now))).toHaveLength(1);
      await second.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses an empty dataDir with a ConfigError naming it, rather than opening ./data', async () => {
    await expect(openTeleMed({ dataDir: '' })).rejects.toMatchObject({ name: 'ConfigError', code: 'invalid_configuration', problems: [expect.stringMatching(/^dataDir: /)] });
    await expect(openTeleMed({ dataDir: '  ' })).rejects.toMatchObject({ code: 'invalid_configuration' });
  });

  it('opens the data directory when inMemory is false or undefined beside it (only inMemory: true is memory)', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-notmem-'));
    try {
      for (const [i, inMemory] of [false, undefined].entries()) {
        const rts = await openTeleMed({ dataDir, inMemory } as never);
        await rts.telemed.record(reading(120 + i, 1 + i), { observationId: `notmem-${i}` });
        await rts.close();
      }
      const again = await openTeleMed({ dataDir });
      expect(await again.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now))).toHaveLength(2);
      await again.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('says a data directory it cannot make, or a PostgreSQL host without an address, as a ConfigError naming the setting', async () => {
    const root = mkdtempSync(join(tmpdir(), 'rts-lib-open-'));
    try {
      writeFileSync(join(root, 'a-file'), '');
      for (const dataDir of [join(root, 'a-file'), join(root, 'a-file', 'data')]) {
        await expect(openTeleMed({ dataDir })).rejects.toMatchObject({ name: 'ConfigError', problems: [expect.stringMatching(/^dataDir: the data directory cannot be created or written \((EEXIST|ENOTDIR)\)/)] });
      }
      // A parent that refuses new entries: Node 20's recursive mkdir never returned there, and the open hung.
      await expect(openTeleMed({ dataDir: '/proc/rts-no-such/data' })).rejects.toMatchObject({ name: 'ConfigError', problems: [expect.stringMatching(/^dataDir: the data directory cannot be created or written \(ENOENT\)/)] });
      symlinkSync(join(root, 'gone', 'deeper'), join(root, 'dangling'));
      await expect(openTeleMed({ dataDir: join(root, 'dangling') })).rejects.toMatchObject({ name: 'ConfigError', problems: [expect.stringMatching(/^dataDir: .*\(E[A-Z]+\)/)] });
      const settings = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://rts:secret@no-such-host.invalid:5432/rts' } as const;
      const error = await openTeleMed({ dataDir: join(root, 'pg'), settings }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ name: 'ConfigError', problems: [expect.stringMatching(/^settings\.RTS_POSTGRES_URL: the database host \(no-such-host\.invalid:5432\)/)] });
      expect(String((error as Error).message)).not.toContain('secret');
      // A database that does not answer now: send it again later, as any call's storage_unavailable.
      const down = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://rts@127.0.0.1:1/rts' } as const;
      await expect(openTeleMed({ dataDir: join(root, 'pg'), settings: down })).rejects.toMatchObject({ kind: 'unavailable', code: 'storage_unavailable' });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('makes a new data directory and its files owner-only', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'rts-lib-mode-'));
    const dataDir = join(parent, 'nested', 'data');
    try {
      const rts = await openTeleMed({ dataDir });
      await rts.telemed.processAndStore(reading(126, 30));
      expect(statSync(dataDir).mode & 0o777).toBe(0o700);
      const files = readdirSync(dataDir);
      expect(files).toEqual(expect.arrayContaining(['telemed.sqlite', 'telemed.sqlite-wal', 'patient-keys.sqlite', 'pseudonym.secret']));
      for (const f of files) expect([f, statSync(join(dataDir, f)).mode & 0o777]).toEqual([f, 0o600]);
      await rts.close();
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('rebuilds the registry from the events to the same answers', async () => {
    const rts = await openTeleMed({ inMemory: true });
    const ids = [await rts.telemed.processAndStore(reading(120, 50)), await rts.telemed.processAndStore(reading(125, 40))];
    const corrected = await rts.telemed.correct(ids[0]!, reading(121, 50), { correctionId: 'fix-1' });
    const interval = timeInterval(now.minus({ hours: 2 }), now.plus({ minutes: 1 }));
    const before = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), interval);
    await rts.rebuildRegistry();
    const after = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), interval);
    expect(after).toEqual(before);
    expect(after.map((o) => o.uniqueId).sort()).toEqual([corrected.uniqueId, ids[1]].sort());
    await rts.close();
  });

  it('opens on PostgreSQL when the settings say so (events and registry in one schema)', async () => {
    const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `rts_lib_${process.pid}_${randomBytes(4).toString('hex')}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-pg-'));
    const settings = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'cd'.repeat(32) };
    const admin = new Client({ connectionString });
    await admin.connect();
    try {
      let rts = await openTeleMed({ dataDir, settings });
      const a = await rts.telemed.processAndStore(reading(128, 20));
      await rts.close();
      rts = await openTeleMed({ dataDir, settings });
      const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[a, 128]]);
      await rts.close();
      const { rows } = await admin.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1', [schema]);
      expect(rows.map((r: { table_name: string }) => r.table_name)).toEqual(expect.arrayContaining(['events', 'projection_checkpoints', 'registry_entries']));
      expect(readdirSync(dataDir)).toEqual([]); // nothing on disk: the secret was given, the store is PostgreSQL
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('refuses to open a store with another pseudonym secret than it was written with, or with none', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-secret-'));
    try {
      let rts = await openTeleMed({ dataDir });
      const stored = await rts.telemed.processAndStore(reading(131, 15));
      await rts.close();
      const generated = readFileSync(join(dataDir, 'pseudonym.secret'), 'utf8');

      // Another secret given: every patient would get a second key. Refused, naming the setting.
      await expect(openTeleMed({ dataDir, settings: { RTS_PSEUDONYM_SECRET: 'ef'.repeat(32) } })).rejects.toThrow(
        /RTS_PSEUDONYM_SECRET: this store's patients are keyed with another pseudonym secret than the RTS_PSEUDONYM_SECRET given/,
      );
      // The secret's file gone (a restore without it): refused, and no new secret is written in its place.
      rmSync(join(dataDir, 'pseudonym.secret'));
      await expect(openTeleMed({ dataDir })).rejects.toThrow(/RTS_PSEUDONYM_SECRET: not set, and there is no .*pseudonym\.secret, but this store's patients are keyed/);
      expect(readdirSync(dataDir)).not.toContain('pseudonym.secret');
      // No data file of its own (hub.lock, the process lock, holds nothing).
      expect(readdirSync(dataDir).filter((f) => !f.endsWith('-wal') && !f.endsWith('-shm') && f !== 'hub.lock').sort()).toEqual(['patient-keys.sqlite', 'telemed.sqlite']);

      // The right secret, as a setting this time: the reading is there under the same key.
      rts = await openTeleMed({ dataDir, settings: { RTS_PSEUDONYM_SECRET: generated } });
      const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => o.uniqueId)).toEqual([stored]);
      await rts.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('on PostgreSQL, a second process with another pseudonym secret is refused while the first goes on', async () => {
    const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
    const schema = `rts_lib_secret_${process.pid}_${randomBytes(4).toString('hex')}`;
    const dirs = [mkdtempSync(join(tmpdir(), 'rts-lib-pg-a-')), mkdtempSync(join(tmpdir(), 'rts-lib-pg-b-'))];
    const base = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema };
    const admin = new Client({ connectionString });
    await admin.connect();
    try {
      const first = await openTeleMed({ dataDir: dirs[0]!, settings: { ...base, RTS_PSEUDONYM_SECRET: 'a1'.repeat(32) } });
      const a = await first.telemed.processAndStore(reading(125, 10));
      // A second hub on the same schema that was not given the secret: refused before it makes one of its own.
      await expect(openTeleMed({ dataDir: dirs[1]!, settings: base })).rejects.toThrow(/RTS_PSEUDONYM_SECRET: not set, and there is no .*, but this store's patients are keyed/);
      expect(readdirSync(dirs[1]!)).toEqual([]);
      // Given another one: refused too.
      await expect(openTeleMed({ dataDir: dirs[1]!, settings: { ...base, RTS_PSEUDONYM_SECRET: 'b2'.repeat(32) } })).rejects.toThrow(
        /RTS_PSEUDONYM_SECRET: this store's patients are keyed with another pseudonym secret than the RTS_PSEUDONYM_SECRET given/,
      );
      // With the same secret it opens, and sees the first one's reading.
      const second = await openTeleMed({ dataDir: dirs[1]!, settings: { ...base, RTS_PSEUDONYM_SECRET: 'a1'.repeat(32) } });
      const week = await second.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => o.uniqueId)).toEqual([a]);
      await second.close();
      await first.close();
      const { rows } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".events WHERE stream_name = 'hub-pseudonym-secret'`);
      expect(rows[0].n).toBe(1);
    } finally {
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on PostgreSQL, a database it cannot reach throws storage_unavailable; sent again once it is back, stored once', async () => {
    const server = new URL(process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test');
    // A TCP relay in front of the real server, so the test can take the database away and bring it back.
    const sockets = new Set<Socket>();
    const relay = createServer((inbound) => {
      const outbound = connect(Number(server.port || 5432), server.hostname);
      for (const s of [inbound, outbound]) {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    const listen = (port: number) => new Promise<number>((resolve) => relay.listen(port, '127.0.0.1', () => resolve((relay.address() as AddressInfo).port)));
    const cut = async () => {
      await new Promise<void>((resolve) => {
        relay.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    };
    const port = await listen(0);
    const via = new URL(server.href);
    via.hostname = '127.0.0.1';
    via.port = String(port);
    const schema = `rts_lib_gone_${process.pid}_${randomBytes(4).toString('hex')}`;
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-pg-gone-'));
    const settings = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: via.href, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: 'ce'.repeat(32) };
    const admin = new Client({ connectionString: server.href });
    await admin.connect();
    const rts = await openTeleMed({ dataDir, settings });
    try {
      const first = await rts.telemed.record(reading(121, 40), { observationId: 'gone-1' });
      await cut();
      const failure = await rts.telemed.record(reading(122, 30), { observationId: 'gone-2' }).then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(RtsError);
      expect(failure).toMatchObject({ kind: 'unavailable', code: 'storage_unavailable' });
      expect(String((failure as Error).message)).toMatch(/cannot reach its database now/);
      await expect(rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now))).rejects.toMatchObject({ kind: 'unavailable', code: 'storage_unavailable' });

      await listen(port); // the database is back
      const again = await rts.telemed.record(reading(122, 30), { observationId: 'gone-2' });
      expect(await rts.telemed.record(reading(122, 30), { observationId: 'gone-2' })).toMatchObject({ uniqueId: again.uniqueId });
      const week = await rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now));
      expect(week.map((o) => o.uniqueId).sort()).toEqual([first.uniqueId, again.uniqueId].sort());
    } finally {
      await rts.close().catch(() => undefined);
      await cut().catch(() => undefined);
      await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await admin.end();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('erases a patient in memory: reads and uploads answer patient_erased, other patients stay', async () => {
    const rts = await openTeleMed({ inMemory: true });
    await rts.telemed.processAndStore(reading(126, 30));
    const other = createTeleObservation({ patientId: '010203-2345', systolic: 140, diastolic: 80, measuredAt: now.minus({ minutes: 5 }).toISO() }, now);
    await rts.telemed.processAndStore(other);
    const first = await rts.erasePatient(parseCpr('251248-1234'), { by: 'dpo' });
    expect(first.alreadyErased).toBe(false);
    expect((await rts.erasePatient(parseCpr('251248-1234'), { by: 'dpo' })).alreadyErased).toBe(true);
    await expect(rts.telemed.getObservationsFor(parseCpr('251248-1234'), lastDays(7, now))).rejects.toMatchObject({ code: 'patient_erased' });
    await expect(rts.telemed.processAndStore(reading(127, 1))).rejects.toMatchObject({ code: 'patient_erased' });
    expect(await rts.telemed.getObservationsFor(parseCpr('010203-2345'), lastDays(7, now))).toHaveLength(1);
    await rts.close();
  });

  it('erases a patient on the embedded store: no file of the data directory holds their key or readings once it is done', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-erase-sqlite-'));
    const secret = 'ab'.repeat(32);
    const cpr = parseCpr('251248-1234');
    const patientKey = new HmacPatientKeys(Buffer.from(secret, 'hex')).keyFor(cpr);
    // Every file SQLite keeps in the data directory (database, WAL, journal), as bytes on disk.
    const files = (): Buffer[] => readdirSync(dataDir).filter((f) => f.includes('sqlite')).map((f) => readFileSync(join(dataDir, f)));
    try {
      const rts = await openTeleMed({ dataDir, settings: { RTS_PSEUDONYM_SECRET: secret } });
      // Other patients' keys share the page: the erased key's cell is overwritten among live ones, not dropped with a page.
      for (let i = 0; i < 20; i++) {
        const someone = createTeleObservation({ patientId: `0102${String(10 + i)}-2345`, systolic: 140, diastolic: 80, measuredAt: now.minus({ minutes: 5 }).toISO() }, now);
        await rts.telemed.processAndStore(someone);
      }
      await rts.telemed.processAndStore(reading(131, 20));
      // A reading whose value is stored as an 8-byte REAL in the registry row: findable in the files' bytes.
      const fractional = createTeleObservation({ patientId: '251248-1234', systolic: 133.7, diastolic: 71.3, measuredAt: now.minus({ minutes: 15 }).toISO() }, now);
      await rts.telemed.processAndStore(fractional);
      const real = Buffer.alloc(8);
      real.writeDoubleBE(133.7);
      expect(await rts.telemed.getObservationsFor(cpr, lastDays(7, now))).toHaveLength(2);
      expect(files().some((b) => b.includes(real))).toBe(true); // the registry row, in the WAL or the file
      const keys = new Database(join(dataDir, 'patient-keys.sqlite'), { readonly: true });
      const dataKey = (keys.prepare('SELECT data_key FROM patient_keys WHERE patient_key = ?').get(patientKey) as { data_key: Buffer }).data_key;
      keys.close();
      expect(dataKey).toHaveLength(32);
      expect(files().some((b) => b.includes(dataKey))).toBe(true); // the scan finds the key while it exists

      expect(await rts.erasePatient(cpr, { by: 'dpo' })).toMatchObject({ patientKey, alreadyErased: false });
      await expect(rts.telemed.getObservationsFor(cpr, lastDays(7, now))).rejects.toMatchObject({ code: 'patient_erased' });
      expect(await rts.telemed.getObservationsFor(parseCpr('010210-2345'), lastDays(7, now))).toHaveLength(1);
      // Already true before the hub closes (no checkpoint or shutdown needed), and after.
      for (const bytes of files()) {
        expect(bytes.includes(dataKey)).toBe(false);
        expect(bytes.includes(real)).toBe(false); // the registry row is gone from the file and from old WAL frames
      }
      await rts.close();
      for (const bytes of files()) {
        expect(bytes.includes(dataKey)).toBe(false);
        expect(bytes.includes(Buffer.from('251248-1234'))).toBe(false);
        expect(bytes.includes(Buffer.from('value="131"'))).toBe(false);
        expect(bytes.includes(real)).toBe(false);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('erases a patient on PostgreSQL: no table file of the schema holds their data or their key once it is done', async () => {
    // A database of its own: VACUUM can only remove a row version that no running transaction of the same
    // database may still see, and other test files keep transactions open in theirs.
    const serverUrl = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
    const database = `rts_erase_${process.pid}_${randomBytes(4).toString('hex')}`;
    const server = new Client({ connectionString: serverUrl });
    await server.connect();
    await server.query(`CREATE DATABASE "${database}"`);
    const url = new URL(serverUrl);
    url.pathname = `/${database}`;
    const connectionString = url.toString();
    const schema = 'rts';
    const secret = 'ef'.repeat(32);
    const settings = { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: connectionString, RTS_POSTGRES_SCHEMA: schema, RTS_PSEUDONYM_SECRET: secret };
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-erase-pg-'));
    const admin = new Client({ connectionString });
    await admin.connect();
    const cpr = parseCpr('251248-1234');
    const patientKey = new HmacPatientKeys(Buffer.from(secret, 'hex')).keyFor(cpr);
    // What PostgreSQL has written to the files of the schema's tables and indexes (after a CHECKPOINT flushed them).
    const tableFiles = async (): Promise<Buffer[]> => {
      await admin.query('CHECKPOINT');
      const { rows: dir } = await admin.query<{ setting: string }>(`SELECT setting FROM pg_settings WHERE name = 'data_directory'`);
      const { rows } = await admin.query<{ path: string | null }>(
        `SELECT pg_relation_filepath(c.oid) AS path FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1`,
        [schema],
      );
      const paths = rows.map((r) => r.path).filter((p): p is string => p !== null);
      expect(paths.length).toBeGreaterThan(3);
      return paths.flatMap((p) => {
        try {
          return [readFileSync(join(dir[0]!.setting, p))];
        } catch {
          return []; // an empty relation has no file yet
        }
      });
    };
    try {
      const rts = await openTeleMed({ dataDir, settings });
      await rts.telemed.processAndStore(reading(131, 20));
      const other = createTeleObservation({ patientId: '010203-2345', systolic: 142, diastolic: 80, measuredAt: now.minus({ minutes: 5 }).toISO() }, now);
      await rts.telemed.processAndStore(other);
      const { rows: keyRows } = await admin.query<{ data_key: Buffer }>(`SELECT data_key FROM "${schema}".patient_keys WHERE patient_key = $1`, [patientKey]);
      const dataKey = keyRows[0]!.data_key;
      expect(dataKey).toHaveLength(32);
      const cprForms = [Buffer.from('251248-1234'), Buffer.from('2512481234')];
      const before = await tableFiles();
      expect(before.some((b) => b.includes(dataKey))).toBe(true); // the scan finds the key while it exists
      for (const bytes of before) for (const form of cprForms) expect(bytes.includes(form)).toBe(false); // sealed from the start

      const erased = await rts.erasePatient(cpr, { by: 'dpo' });
      expect(erased).toMatchObject({ patientKey, alreadyErased: false });
      await expect(rts.telemed.getObservationsFor(cpr, lastDays(7, now))).rejects.toMatchObject({ code: 'patient_erased' });
      expect(await rts.telemed.getObservationsFor(parseCpr('010203-2345'), lastDays(7, now))).toHaveLength(1);
      await rts.close();

      const { rows: tomb } = await admin.query(`SELECT data_key, erased_at FROM "${schema}".patient_keys WHERE patient_key = $1`, [patientKey]);
      expect(tomb).toEqual([{ data_key: null, erased_at: expect.any(Date) }]);
      const { rows: left } = await admin.query(`SELECT count(*)::int AS n FROM "${schema}".registry_entries WHERE patient_key = $1`, [patientKey]);
      expect(left[0].n).toBe(0);
      const { rows: events } = await admin.query<{ data: string }>(`SELECT data::text AS data FROM "${schema}".events WHERE event_type = 'DocumentSubmitted'`);
      expect(events).toHaveLength(2);
      for (const e of events) expect(e.data).not.toMatch(/systolic|value="131"|251248/);
      for (const bytes of await tableFiles()) {
        expect(bytes.includes(dataKey)).toBe(false);
        for (const form of cprForms) expect(bytes.includes(form)).toBe(false);
      }
    } finally {
      await admin.end();
      await server.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      await server.end();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('a correction sent without a correction id (embedded store)', () => {
  it("derives its ids from a digest keyed under the patient's key: after the erasure, no id or event names the new document's plain SHA-256", async () => {
    // The document is predictable from the patient's number, the time and the two values; its plain SHA-256 in the
    // replacement's uniqueId, the events' ids and their causationId (all of which outlive an erasure) gave the corrected
    // values back to anyone trying the plausible ones (found by a crypto review: 30,337 tries, 0.55 s).
    const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-correction-ids-'));
    const now = DateTime.utc();
    const measuredAt = now.minus({ hours: 2 }).startOf('second').toISO({ suppressMilliseconds: true });
    const observation = (systolic: number) => createTeleObservation({ patientId: '251248-1234', systolic, diastolic: 95, measuredAt }, now);
    try {
      const rts = await openTeleMed({ dataDir });
      let replacement: string;
      let plain: string;
      let uniqueId: string;
      try {
        ({ uniqueId } = await rts.telemed.record(observation(150)));
        const corrected = await rts.telemed.correct(uniqueId, observation(171));
        replacement = corrected.uniqueId;
        plain = sha256Hex(buildDocument(observation(171)).document);
        // A retry is the same correction.
        expect(await rts.telemed.correct(uniqueId, observation(171))).toMatchObject({ uniqueId: replacement, created: false });
        await rts.erasePatient(parseCpr('251248-1234'), { by: 'dpo' });
      } finally {
        await rts.close();
      }
      expect(replacement).not.toBe(uuidToOid(uuidV5(`correction/${uniqueId}/document/${plain}`)));
      const db = new Database(join(dataDir, 'telemed.sqlite'), { readonly: true });
      try {
        const events = db.prepare('SELECT event_id AS id, metadata FROM events').all() as { id: string; metadata: string }[];
        expect(events.length).toBeGreaterThan(2);
        expect(events.filter((e) => e.metadata.includes(plain))).toEqual([]);
        expect(events.map((e) => e.id)).not.toContain(uuidV5(`deprecate/${uniqueId}/document/${plain}/document-${uniqueId}/0`));
      } finally {
        db.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
