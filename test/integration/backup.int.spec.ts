import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DateTime } from 'luxon';
import pino from 'pino';
import { BackupError, backupDataDir, claimEmptyDirectory, restoreDataDir, verifyBackup } from '../../src/adapters/backup/data-dir-backup';
import { runBackup } from '../../src/adapters/cli/backup';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { loadConfig } from '../../src/bootstrap/config';
import { openTeleMed } from '../../src/bootstrap/library';
import { refuseBrokerOnRestoredDataDir } from '../../src/bootstrap/restored-data-dir';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { timeInterval } from '../../src/domain/monitoring/time-interval';
import { tempDataDir } from '../support/hub-process';

/**
 * backupDataDir's order, with the real container on SQLite files: a patient who is new between the copy of the
 * first database and the copy of the second (their key stored, then their upload) must be wholly in the backup or
 * wholly out of it. Events first, keys second keeps them out (their key may be in it, unused); the other order would
 * restore their upload without the key that opens it.
 */
describe('backupDataDir / restoreDataDir (integration)', () => {
  const now = DateTime.utc();
  const week = timeInterval(now.minus({ days: 7 }), now.plus({ minutes: 1 }));
  const reading = (patientId: string, systolic: number) =>
    createTeleObservation({ patientId, systolic, diastolic: 70, measuredAt: now.minus({ minutes: 5 }).toISO()! }, now);

  const open = (dir: string) => {
    // No RTS_PSEUDONYM_SECRET: the secret is generated into the data directory, as `npm start` does.
    const c = buildContainer(loadConfig({ RTS_DATA_DIR: dir }), pino({ level: 'silent' }));
    const store = c.get(SqliteEventStore);
    const projector = c.get<Projector>(TOKENS.Projector);
    return {
      telemed: c.get<TeleMedService>(TOKENS.TeleMed),
      xds: c.get<XdsBackend>(TOKENS.Xds),
      close: async () => {
        await projector.stop();
        await store.close();
      },
    };
  };

  const data = tempDataDir('rts-backup-int-');
  const out = tempDataDir('rts-backup-int-out-');
  afterAll(() => {
    data.remove();
    out.remove();
  });

  it('takes the events before the keys, so a patient new in between is not restored without their key', async () => {
    const hub = open(data.dir);
    const EARLY = '251248-1234';
    const BETWEEN = '010190-2345';
    const early = await hub.telemed.record(reading(EARLY, 126));
    let between: string | undefined;
    const copied: string[] = [];
    const target = join(out.dir, 'b');
    const before = Date.now();
    let eventsCopiedAt = 0;
    const result = await backupDataDir(data.dir, target, {
      onCopied: async ({ name }) => {
        if (name === 'telemed.sqlite') eventsCopiedAt = Date.now();
        copied.push(name);
        // Between the two databases: a new patient's key is stored, then their upload appended.
        if (copied.length === 1) between = (await hub.telemed.record(reading(BETWEEN, 131))).uniqueId;
      },
    });
    await hub.close();
    expect(between).toBeDefined();
    expect(copied.slice(0, 2)).toEqual(['telemed.sqlite', 'patient-keys.sqlite']);
    expect(copied).toContain('pseudonym.secret');
    expect(result.missing).not.toContain('pseudonym.secret');
    expect(verifyBackup(target)).toEqual(result.manifest);
    // The backup's time is when its copy of the events began, not when it ended (after the upload in between).
    const createdAt = Date.parse(result.manifest.createdAt);
    expect(createdAt).toBeGreaterThanOrEqual(before - 1);
    expect(createdAt).toBeLessThanOrEqual(eventsCopiedAt);

    const restoredDir = join(out.dir, 'restored');
    await restoreDataDir(target, restoredDir);
    const restored = open(restoredDir);
    try {
      // The early patient: found by CPR number (the pseudonym secret came along), reading and document intact.
      const found = await restored.telemed.getObservationsFor(parseCpr(EARLY), week);
      expect(found.map((o) => [o.uniqueId, o.systolic.value])).toEqual([[early.uniqueId, 126]]);
      expect((await restored.xds.retrieveDocument(early.uniqueId)).content).toContain(`<id extension="${EARLY}"/>`);
      // The patient new in between: not in the backup at all (their upload came after the events were copied).
      await expect(restored.telemed.getObservationsFor(parseCpr(BETWEEN), week)).rejects.toMatchObject({ code: 'unknown_patient' });
      await expect(restored.xds.retrieveDocument(between!)).rejects.toMatchObject({ code: 'document_not_found' });
    } finally {
      await restored.close();
    }
  });

  it('leaves nothing behind when it cannot finish', async () => {
    const target = join(out.dir, 'failing');
    await expect(
      backupDataDir(data.dir, target, {
        onCopied: () => {
          throw new Error('disk full (simulated)');
        },
      }),
    ).rejects.toThrow('disk full (simulated)');
    expect(existsSync(target)).toBe(false);
    // Nor the parents it made for a target deeper down.
    await expect(backupDataDir(data.dir, join(out.dir, 'p', 'q', 'deep'), { onCopied: () => Promise.reject(new Error('disk full (simulated)')) })).rejects.toThrow('disk full');
    expect(existsSync(join(out.dir, 'p'))).toBe(false);
    await expect(restoreDataDir(join(out.dir, 'nothing-here'), join(out.dir, 'r2'))).rejects.toBeInstanceOf(BackupError);
    expect(readdirSync(out.dir).sort()).toEqual(['b', 'restored']);
  });

  it('refuses to back up an empty or damaged secret or key file (no restore could start from it), and leaves nothing', async () => {
    const copy = tempDataDir('rts-backup-damaged-');
    try {
      for (const name of ['telemed.sqlite', 'patient-keys.sqlite', 'pseudonym.secret', 'auth.secret', 'hub-keys.json']) {
        if (existsSync(join(data.dir, name))) copyFileSync(join(data.dir, name), join(copy.dir, name));
      }
      for (const [name, damaged, problem] of [
        ['pseudonym.secret', '', 'is empty'],
        ['auth.secret', 'abc', 'is not a secret the hub wrote'],
        ['hub-keys.json', '', 'is empty'],
        ['hub-keys.json', '{"keys":[]}', 'is not the key file a hub writes'],
      ] as const) {
        const before = existsSync(join(copy.dir, name)) ? readFileSync(join(copy.dir, name)) : null;
        writeFileSync(join(copy.dir, name), damaged);
        const target = join(out.dir, `damaged-${name}`);
        await expect(backupDataDir(copy.dir, target)).rejects.toMatchObject({ code: 'damaged', message: expect.stringContaining(`${name} in the data directory ${problem}`) });
        expect(existsSync(target)).toBe(false);
        if (before === null) rmSync(join(copy.dir, name));
        else writeFileSync(join(copy.dir, name), before);
      }
    } finally {
      copy.remove();
    }
  });

  it('refuses a target inside the data directory (also through a symlink), and writes nothing there', async () => {
    const before = readdirSync(data.dir).sort();
    // `..snap` is a name inside it, not its parent: relative() gives '..snap', which a test for '..' took as outside.
    for (const target of [join(data.dir, 'sub'), join(data.dir, 'a', 'b'), data.dir, join(data.dir, '..snap'), join(data.dir, '...', 'x')]) {
      await expect(backupDataDir(data.dir, target)).rejects.toMatchObject({ code: 'target_inside_data_dir' });
    }
    const link = join(out.dir, 'link-to-data');
    symlinkSync(data.dir, link);
    await expect(backupDataDir(data.dir, join(link, 'sub'))).rejects.toMatchObject({ code: 'target_inside_data_dir' });
    rmSync(link);
    expect(readdirSync(data.dir).sort()).toEqual(before);
  });

  it('claims its directory: a second backup into it at the same moment is refused and touches nothing', async () => {
    // Two `rts backup --to same` at once both passed the emptiness check, and each one's cleanup deleted the
    // other's files (4 runs in 90). The claim is a file created exclusively.
    for (const existing of [false, true]) {
      const target = join(out.dir, existing ? 'claimed-empty' : 'claimed-new');
      if (existing) mkdirSync(target);
      expect(claimEmptyDirectory(target)).toMatchObject({ existed: existing });
      expect(() => claimEmptyDirectory(target)).toThrow(BackupError);
      expect(readdirSync(target)).toEqual(['.rts-in-progress']);
      rmSync(target, { recursive: true });
    }
    // The claim is gone once a backup is done.
    const done = join(out.dir, 'done');
    await backupDataDir(data.dir, done);
    expect(readdirSync(done)).not.toContain('.rts-in-progress');
    expect(() => verifyBackup(done)).not.toThrow();
    rmSync(done, { recursive: true });
  });
});

describe('the marker rts restore leaves (restored-from-backup.json)', () => {
  it('names the backup, 0600; a restore that fails takes it away with the rest', async () => {
    const data = tempDataDir('rts-restore-marker-');
    const out = tempDataDir('rts-restore-marker-out-');
    try {
      const c = buildContainer(loadConfig({ RTS_DATA_DIR: data.dir }), pino({ level: 'silent' }));
      await c.get<Projector>(TOKENS.Projector).stop();
      await c.get(SqliteEventStore).close();
      const backup = join(out.dir, 'b');
      const { manifest } = await backupDataDir(data.dir, backup);
      const restored = join(out.dir, 'r');
      await restoreDataDir(backup, restored, { now: () => new Date('2026-12-07T08:00:00.000Z') });
      const marker = join(restored, DATA_FILES.restored);
      expect(JSON.parse(readFileSync(marker, 'utf8'))).toEqual({
        format: 'telemed-rts-restored/1',
        backup,
        backupCreatedAt: manifest.createdAt,
        eventsHead: manifest.eventsHead,
        restoredAt: '2026-12-07T08:00:00.000Z',
      });
      expect(statSync(marker).mode & 0o777).toBe(0o600);
      expect(readdirSync(restored)).not.toContain(DATA_FILES.inProgress);
      // A backup whose event store passes its manifest but not SQLite's check: the restore fails after the marker and
      // the copies were written, and removes them all (marker too), as it does with every file it wrote.
      const bad = join(out.dir, 'bad');
      mkdirSync(bad);
      for (const { name } of manifest.files) copyFileSync(join(backup, name), join(bad, name));
      writeFileSync(join(bad, DATA_FILES.events), 'not a database');
      const files = manifest.files.map((f) => (f.name === DATA_FILES.events ? { ...f, bytes: 14, sha256: createHash('sha256').update('not a database').digest('hex') } : f));
      writeFileSync(join(bad, 'backup.json'), JSON.stringify({ ...manifest, files }));
      const failed = join(out.dir, 'failed');
      await expect(restoreDataDir(bad, failed)).rejects.toMatchObject({ code: 'SQLITE_NOTADB' });
      expect(existsSync(failed)).toBe(false);
    } finally {
      data.remove();
      out.remove();
    }
  });
});

describe('a backup of a restored data directory whose marker is not cleared', () => {
  // A nightly rts backup runs while the restored hub waits for rts erasures apply: the erasures made after the first
  // backup are repeated in neither. Before, a restore of that second backup told to repeat only those made after it,
  // and its marker named its time alone: the patients erased between the two backups stayed back, unsaid.
  it('carries the first backup\'s time on: its restore tells to repeat the erasures made after that', async () => {
    const data = tempDataDir('rts-backup-of-restored-');
    const out = tempDataDir('rts-backup-of-restored-out-');
    try {
      const c = buildContainer(loadConfig({ RTS_DATA_DIR: data.dir }), pino({ level: 'silent' }));
      await c.get<Projector>(TOKENS.Projector).stop();
      await c.get(SqliteEventStore).close();
      const first = join(out.dir, 'b1');
      await backupDataDir(data.dir, first, { now: () => new Date('2026-12-01T02:00:00.000Z') });
      const restored = join(out.dir, 'r1');
      await restoreDataDir(first, restored);
      let stdout = '';
      let stderr = '';
      const io = { stdout: { write: (t: string) => ((stdout += t), true) }, stderr: { write: (t: string) => ((stderr += t), true) }, env: {}, now: () => new Date('2026-12-05T02:00:00.000Z') };
      expect(await runBackup('backup', ['--data-dir', restored, '--to', join(out.dir, 'b2')], io)).toBe(0);
      expect(stderr).toContain(`${DATA_FILES.restored} (the backup of 2026-12-01T02:00:00.000Z)`);
      expect(verifyBackup(join(out.dir, 'b2'))).toMatchObject({ createdAt: '2026-12-05T02:00:00.000Z', restoredFrom: { backupCreatedAt: '2026-12-01T02:00:00.000Z' } });
      stdout = '';
      expect(await runBackup('restore', ['--from', join(out.dir, 'b2'), '--data-dir', join(out.dir, 'r2')], io)).toBe(0);
      expect(stdout).toContain('Patients erased after 2026-12-01T02:00:00.000Z are back in it');
      expect(JSON.parse(readFileSync(join(out.dir, 'r2', DATA_FILES.restored), 'utf8'))).toMatchObject({ backupCreatedAt: '2026-12-05T02:00:00.000Z', erasuresNotRepeatedSince: '2026-12-01T02:00:00.000Z' });
      // The hub's refusal names the earlier time too.
      expect(() => refuseBrokerOnRestoredDataDir(loadConfig({ RTS_DATA_DIR: join(out.dir, 'r2'), RTS_BROKER_URL: 'amqp://127.0.0.1:18799' }))).toThrow('restored from one of 2026-12-01T02:00:00.000Z');
      // Cleared, the directory's next backup is an ordinary one again.
      expect(await runBackup('restore', ['--done', '--data-dir', join(out.dir, 'r2')], io)).toBe(0);
      stderr = '';
      expect(await runBackup('backup', ['--data-dir', join(out.dir, 'r2'), '--to', join(out.dir, 'b3')], io)).toBe(0);
      expect(stderr).not.toContain(DATA_FILES.restored);
      expect(verifyBackup(join(out.dir, 'b3'))).not.toHaveProperty('restoredFrom');
    } finally {
      data.remove();
      out.remove();
    }
  });
});

describe('a data directory that rts restore is writing', () => {
  // A hub started (systemd restarting it, say) on the directory a slow restore was still writing ran on the files
  // copied so far and generated the secrets not copied yet; the restore then met those, failed, and its cleanup
  // deleted the directory under the running hub, which answered 503 to every write from then on.
  it('is not opened by a hub or library (claim-race.unit.spec.ts: a restore gives way to a hub that began first)', async () => {
    const dirs = tempDataDir('rts-restore-in-progress-');
    try {
      const restoring = join(dirs.dir, 'restoring');
      claimEmptyDirectory(restoring);
      await expect(openTeleMed({ dataDir: restoring })).rejects.toMatchObject({ name: 'ConfigError', problems: [expect.stringContaining('dataDir: .rts-in-progress is in the data directory')] });
      expect(readdirSync(restoring).sort()).toEqual(['.rts-in-progress', 'hub.lock']);
    } finally {
      dirs.remove();
    }
  });
});

describe('rts restore of a backup without the pseudonym secret', () => {
  it('says to start the hub with the same RTS_PSEUDONYM_SECRET, which the backup could not hold', async () => {
    const data = tempDataDir('rts-backup-nosecret-');
    const out = tempDataDir('rts-backup-nosecret-out-');
    try {
      const c = buildContainer(loadConfig({ RTS_DATA_DIR: data.dir, RTS_PSEUDONYM_SECRET: 'cd'.repeat(32) }), pino({ level: 'silent' }));
      await c.get<TeleMedService>(TOKENS.TeleMed).record(createTeleObservation({ patientId: '251248-1234', systolic: 120, diastolic: 70, measuredAt: DateTime.utc().minus({ minutes: 5 }).toISO()! }, DateTime.utc()));
      await c.get<Projector>(TOKENS.Projector).stop();
      await c.get(SqliteEventStore).close();
      let err = '';
      const io = { stdout: { write: () => true }, stderr: { write: (s: string) => ((err += s), true) }, env: {} };
      expect(await runBackup('backup', ['--data-dir', data.dir, '--to', join(out.dir, 'b')], io)).toBe(0);
      err = '';
      expect(await runBackup('restore', ['--from', join(out.dir, 'b'), '--data-dir', join(out.dir, 'r')], io)).toBe(0);
      expect(err).toContain('the backup holds no pseudonym.secret');
      expect(err).toContain('RTS_PSEUDONYM_SECRET');
      expect(err).not.toContain('cd'.repeat(32));
    } finally {
      data.remove();
      out.remove();
    }
  });
});
