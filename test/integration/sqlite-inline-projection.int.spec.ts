import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { DateTime } from 'luxon';
import pino from 'pino';
import { SqliteEventStore, type SqliteInlineProjection } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { SqliteRegistry } from '../../src/adapters/registry/sqlite-registry';
import type { NewEvent, RecordedEvent } from '../../src/application/ports/event-store';
import type { PatientErasure } from '../../src/application/patient-erasure';
import type { PatientKeys } from '../../src/application/ports/patient-keys';
import { ProjectionBehind, type Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, buildContainer } from '../../src/bootstrap/container';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { timeInterval } from '../../src/domain/monitoring/time-interval';
import { tempDataDir } from '../support/hub-process';

/**
 * Inline projections on the SQLite store: the registry rows of an upload are written in the append's own
 * transaction, and the background projector only catches up what the inline path declined.
 */

const event = (type = 'Happened', data: Record<string, unknown> = {}): NewEvent => ({ id: randomUUID(), type, data: { ...data } });

/** Records what it is given and writes a row of its own, so a rollback of its savepoint can be seen. */
const recorder = (decide: (events: readonly RecordedEvent[]) => boolean | 'throw' = () => true) => {
  const calls: { events: readonly RecordedEvent[]; from: bigint; to: bigint }[] = [];
  const errors: unknown[] = [];
  let db: SqliteEventStore['database'] | undefined;
  const projection: SqliteInlineProjection = {
    eventTypes: new Set(['Wanted']),
    applyInline(events, from, to) {
      calls.push({ events, from, to });
      db!.prepare('INSERT INTO inline_writes (upto) VALUES (?)').run(to);
      const decision = decide(events);
      if (decision === 'throw') throw new Error('projection bug');
      return decision;
    },
    onError: (error) => errors.push(error),
  };
  return {
    calls,
    errors,
    attach(store: SqliteEventStore) {
      db = store.database;
      db.exec('CREATE TABLE inline_writes (upto INTEGER NOT NULL)');
      store.addInlineProjection(projection);
    },
    writes: () => db!.prepare('SELECT upto FROM inline_writes ORDER BY upto').pluck().all() as number[],
  };
};

describe('SqliteEventStore inline projections', () => {
  it('get exactly the batch: positions (from, to], only their event types, data as stored, inside the commit', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      await store.appendToStream('before', [event()]);
      const r = recorder();
      r.attach(store);
      const appends = await Promise.all([
        store.appendToStream('a', [event('Wanted', { n: 1, nested: { x: [1, 2] } }), event('Other')]),
        store.appendToStream('b', [event('Wanted', { n: 2 })]),
      ]);
      expect(store.stats()).toMatchObject({ inlineApplied: 1, inlineDeclined: 0 });
      expect(r.calls).toHaveLength(1); // one batch, one call
      const [call] = r.calls;
      expect(call!.from).toBe(1n);
      expect(call!.to).toBe(4n);
      expect(appends.map((a) => a.lastGlobalPosition)).toEqual([3n, 4n]);
      expect(call!.events.map((e) => [e.streamName, e.streamVersion, e.globalPosition, e.type, e.data])).toEqual([
        ['a', 0n, 2n, 'Wanted', { n: 1, nested: { x: [1, 2] } }],
        ['b', 0n, 4n, 'Wanted', { n: 2 }],
      ]);
      // What it was given equals what a reader gets back from the store.
      const stored = await store.readAll({ after: 1n, maxCount: 10 });
      expect(call!.events).toEqual(stored.filter((e) => e.type === 'Wanted'));
      expect(r.writes()).toEqual([4]); // its own write committed with the batch
    } finally {
      await store.close();
    }
  });

  it('leave out an append that failed in the batch, also a one-event append whose INSERT fails (no savepoint of its own)', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      // A trigger makes the INSERT of one event fail after every check before it has passed.
      store.database.exec(`CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.type = 'Poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END`);
      const r = recorder();
      r.attach(store);
      const results = await Promise.allSettled([
        store.appendToStream('ok-1', [event('Wanted', { n: 1 })]),
        store.appendToStream('bad', [event('Poison')]),
        store.appendToStream('half', [event('Wanted', { n: 2 }), event('Poison')]),
        store.appendToStream('ok-2', [event('Wanted', { n: 3 })]),
      ]);
      expect(results.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled']);
      expect(store.stats().commits).toBe(1);
      expect(r.calls[0]!.events.map((e) => e.data['n'])).toEqual([1, 3]);
      expect((await store.readStream('bad')).currentVersion).toBeNull();
      expect((await store.readStream('half')).currentVersion).toBeNull();
      const all = await store.readAll({ after: 0n, maxCount: 10 });
      expect(all.map((e) => [e.streamName, e.globalPosition])).toEqual([
        ['ok-1', 1n],
        ['ok-2', 2n],
      ]);
      expect(r.calls[0]).toMatchObject({ from: 0n, to: 2n });
    } finally {
      await store.close();
    }
  });

  it('a projection that throws loses only its own writes; the appends commit and the error is reported', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      let fail = true;
      const r = recorder(() => (fail ? 'throw' : true));
      r.attach(store);
      await expect(store.appendToStream('s', [event('Wanted')])).resolves.toMatchObject({ lastGlobalPosition: 1n });
      expect(r.errors).toHaveLength(1);
      expect(r.writes()).toEqual([]); // rolled back to its savepoint
      expect(store.stats()).toMatchObject({ inlineApplied: 0, inlineDeclined: 1 });
      fail = false;
      await store.appendToStream('s', [event('Wanted')]);
      expect(r.writes()).toEqual([2]);
      expect((await store.readStream('s')).currentVersion).toBe(1n);
    } finally {
      await store.close();
    }
  });

  it('are not called for a batch that appended nothing new (repeats only)', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      const r = recorder();
      r.attach(store);
      const e = event('Wanted');
      await store.appendToStream('s', [e]);
      await expect(store.appendToStream('s', [e])).resolves.toMatchObject({ idempotent: true });
      expect(r.calls).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});

describe('SqliteRegistry rows', () => {
  const submittedAt = (position: bigint, uniqueId: string, systolic: number, replaces: string | null = null): RecordedEvent => ({
    id: randomUUID(),
    type: 'DocumentSubmitted',
    streamName: `document-${uniqueId}`,
    streamVersion: 0n,
    globalPosition: position,
    recordedAt: '2026-11-30T00:00:00Z',
    data: {
      uniqueId, patientKey: 'pk-1', repositoryUniqueId: '2.25.1', observationId: null, creationTime: '2026-11-30T00:00:00Z',
      serviceStartTime: '2026-11-29T10:00:00Z', serviceStopTime: '2026-11-29T10:00:00Z', mimeType: 'text/xml', hash: 'a'.repeat(64),
      size: 10, replaces, content: '<ClinicalDocument/>', summary: { systolic, diastolic: 70 },
    },
    metadata: {},
  });

  it('a second submission of a uniqueId changes nothing, also after the row was deprecated', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      const registry = new SqliteRegistry(store);
      const rows = () => store.database.prepare('SELECT unique_id, status, systolic, replaced_by FROM registry_entries ORDER BY unique_id').all();
      await registry.apply([submittedAt(1n, '2.25.7', 120)], 1n);
      await registry.apply([submittedAt(2n, '2.25.8', 118, '2.25.7'), {
        id: randomUUID(), type: 'DocumentDeprecated', streamName: 'document-2.25.7', streamVersion: 1n, globalPosition: 3n,
        recordedAt: '2026-11-30T00:00:00Z', data: { uniqueId: '2.25.7', replacedBy: '2.25.8', deprecatedAt: '2026-11-30T00:00:00Z' }, metadata: {},
      }], 3n);
      const before = rows();
      expect(before).toEqual([
        { unique_id: '2.25.7', status: 'Deprecated', systolic: 120, replaced_by: '2.25.8' },
        { unique_id: '2.25.8', status: 'Approved', systolic: 118, replaced_by: null },
      ]);
      await registry.apply([submittedAt(4n, '2.25.7', 150), submittedAt(5n, '2.25.8', 151)], 5n);
      expect(rows()).toEqual(before);
      expect(await registry.checkpoint()).toBe(5n);
    } finally {
      await store.close();
    }
  });
  it('refuses a page read before a reset (ProjectionBehind), applying nothing', async () => {
    const store = SqliteEventStore.open({ file: ':memory:' });
    try {
      const registry = new SqliteRegistry(store);
      await registry.apply([submittedAt(1n, '2.25.7', 120)], 1n);
      await registry.reset();
      await expect(registry.apply([submittedAt(2n, '2.25.8', 121)], 2n, 1n)).rejects.toBeInstanceOf(ProjectionBehind);
      expect(await registry.checkpoint()).toBe(0n);
      expect(await registry.get('2.25.8')).toBeNull();
      await registry.apply([submittedAt(1n, '2.25.7', 120), submittedAt(2n, '2.25.8', 121)], 2n, 0n);
      expect((await registry.get('2.25.8'))?.uniqueId).toBe('2.25.8');
    } finally {
      await store.close();
    }
  });

  it('forgets a patient out of the file and the WAL; with a long reader on the file it says the WAL was left', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rts-forget-'));
    const file = join(dir, 'telemed.sqlite');
    const store = SqliteEventStore.open({ file });
    try {
      const registry = new SqliteRegistry(store);
      const real = Buffer.alloc(8);
      real.writeDoubleBE(133.7);
      const bytes = () => [file, `${file}-wal`].map((f) => readFileSync(f));
      await registry.apply([submittedAt(1n, '2.25.7', 133.7)], 1n);
      expect(bytes().some((b) => b.includes(real))).toBe(true);
      expect(await registry.forgetPatient('pk-1')).toBe(true);
      for (const b of bytes()) expect(b.includes(real)).toBe(false);

      await registry.apply([submittedAt(2n, '2.25.8', 133.7)], 2n);
      const reader = new BetterSqlite3(file, { readonly: true });
      reader.exec('BEGIN');
      reader.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get();
      try {
        expect(await registry.forgetPatient('pk-1')).toBe(false); // rows gone, old frames left to the WAL's wrap
        expect(store.database.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get()).toBe(0);
      } finally {
        reader.exec('COMMIT');
        reader.close();
      }
      await store.appendToStream('after', [{ id: randomUUID(), type: 'Happened', data: {} }]); // the writer goes on
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('forgets a patient also out of the copies that earlier updates of their rows left (corrections deprecating rows)', async () => {
    // An UPDATE frees the row's old cell, and a page split moves cells; without secure_delete on the connection the
    // old bytes stayed in the pages' free space, readings included, after the erasure had deleted the rows themselves
    // (found by a crypto review: 9 patients' rows interleaved, half of one patient's corrected, then erased).
    const dir = mkdtempSync(join(tmpdir(), 'rts-forget-updated-'));
    const file = join(dir, 'telemed.sqlite');
    const store = SqliteEventStore.open({ file });
    try {
      const registry = new SqliteRegistry(store);
      const victimValue = (i: number) => 100 + i / 7; // a double no other row holds
      const valueBytes = (v: number) => {
        const b = Buffer.alloc(8);
        b.writeDoubleBE(v);
        return b;
      };
      const ofPatient = (event: RecordedEvent, patientKey: string): RecordedEvent => ({ ...event, data: { ...event.data, patientKey } });
      let position = 0n;
      for (let i = 0; i < 40; i++) {
        const batch: RecordedEvent[] = [];
        for (let p = 0; p < 8; p++) batch.push(ofPatient(submittedAt(++position, `2.25.${p + 1}00${i}`, 120), `pk-other-${p}`));
        batch.push(submittedAt(++position, `2.25.900${i}`, victimValue(i)));
        await registry.apply(batch, position);
      }
      for (let i = 0; i < 40; i += 2) {
        const replacement = `2.25.910${i}`;
        await registry.apply([submittedAt(++position, replacement, 150, `2.25.900${i}`), {
          id: randomUUID(), type: 'DocumentDeprecated', streamName: `document-2.25.900${i}`, streamVersion: 1n, globalPosition: ++position,
          recordedAt: '2026-11-30T00:00:00Z', data: { uniqueId: `2.25.900${i}`, replacedBy: replacement, deprecatedAt: '2026-11-30T00:00:00Z' }, metadata: {},
        }], position);
      }
      expect(store.database.prepare("SELECT COUNT(*) FROM registry_entries WHERE patient_key = 'pk-1' AND status = 'Deprecated'").pluck().get()).toBe(20);
      expect(await registry.forgetPatient('pk-1')).toBe(true);
      const files = [file, `${file}-wal`].map((f) => readFileSync(f));
      const left = Array.from({ length: 40 }, (_, i) => victimValue(i)).filter((v) => files.some((b) => b.includes(valueBytes(v))));
      expect(left).toEqual([]);
      expect(store.database.prepare('SELECT COUNT(*) FROM registry_entries').pluck().get()).toBe(320);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the TeleMed registry kept inline (container wiring)', () => {
  const now = DateTime.utc();
  const reading = (patientId: string, systolic: number, minutesAgo: number) =>
    createTeleObservation({ patientId, systolic, diastolic: 70, measuredAt: now.minus({ minutes: minutesAgo }).toISO()! }, now);
  const week = timeInterval(now.minus({ days: 7 }), now.plus({ minutes: 1 }));

  const open = (dir: string, env: Record<string, string> = {}) => {
    const c = buildContainer(loadConfig({ RTS_DATA_DIR: dir, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32), ...env }), pino({ level: 'silent' }));
    const store = c.get(SqliteEventStore);
    const telemed = c.get<TeleMedService>(TOKENS.TeleMed);
    const projector = c.get<Projector>(TOKENS.Projector);
    const patientKeys = c.get<PatientKeys>(TOKENS.PatientKeys);
    const db = store.database;
    const rows = () => db.prepare('SELECT unique_id, patient_key, status, systolic, replaced_by FROM registry_entries ORDER BY unique_id').all();
    const checkpoint = () => db.prepare(`SELECT position FROM projection_checkpoints WHERE name = 'registry'`).pluck().get() as number | undefined;
    const head = () => db.prepare('SELECT MAX(global_position) FROM events').pluck().get() as number;
    const close = async () => {
      await projector.stop();
      await store.close();
    };
    return { c, store, telemed, projector, patientKeys, rows, checkpoint, head, close };
  };

  /** A hub on a fresh data directory, closed and removed afterwards. */
  const withHub = async (fn: (hub: ReturnType<typeof open>) => Promise<void>, env: Record<string, string> = {}) => {
    const data = tempDataDir('rts-inline-');
    const hub = open(data.dir, env);
    try {
      await fn(hub);
    } finally {
      await hub.close();
      data.remove();
    }
  };

  it('writes the rows in the upload’s own commit: no projection transaction, checkpoint at the head, as a rebuild gives', async () => {
    await withHub(async (hub) => {
      // The projector is not started and nothing queries: only the inline path can have written the rows.
      const uploads = await Promise.all(Array.from({ length: 40 }, (_, i) => hub.telemed.record(reading(i % 2 ? '251248-1234' : '010203-2345', 110 + i, 60 + i))));
      const corrected = await hub.telemed.correct(uploads[0]!.uniqueId, reading('010203-2345', 99, 60), { correctionId: 'c-1' });
      expect(hub.rows()).toHaveLength(41);
      expect(hub.checkpoint()).toBe(hub.head());
      expect(hub.store.stats().inlineDeclined).toBe(0);
      expect(hub.store.stats().commits).toBe(hub.store.stats().inlineApplied); // every write transaction was an append batch
      const inline = hub.rows();
      expect(inline).toContainEqual(expect.objectContaining({ unique_id: uploads[0]!.uniqueId, status: 'Deprecated', replaced_by: corrected.uniqueId }));
      expect(inline).toContainEqual(expect.objectContaining({ unique_id: corrected.uniqueId, status: 'Approved', systolic: 99 }));

      await hub.projector.rebuild(); // the same rows from the events alone
      expect(hub.rows()).toEqual(inline);
      const answer = await hub.telemed.getObservationsFor(parseCpr('251248-1234'), week);
      expect(answer).toHaveLength(20);
    });
  });

  it('an erased patient gets no registry row again, though another process on the store still held their key', async () => {
    // The privacy audit's case: hub 2 erases; hub 1, whose key cache still holds the patient's key (for up to 60 s),
    // takes two more uploads and projects them. Their readings came back in the registry, in clear, for good.
    const data = tempDataDir('rts-inline-');
    const one = open(data.dir);
    const two = open(data.dir);
    try {
      const cpr = parseCpr('150381-6613');
      await one.telemed.record(reading('150381-6613', 130, 50));
      await one.telemed.record(reading('010203-2345', 121, 50));
      await two.c.get<PatientErasure>(TOKENS.PatientErasure).erase(cpr, { by: 'dpo' });
      await two.projector.catchUp();
      await one.telemed.record(reading('150381-6613', 177, 20)); // sealed with hub 1's cached key
      await one.telemed.record(reading('150381-6613', 170, 10));
      await one.projector.catchUp();
      await two.projector.catchUp();
      const key = one.patientKeys.keyFor(cpr);
      expect(one.rows().filter((r) => (r as { patient_key: string }).patient_key === key)).toEqual([]);
      expect(one.rows()).toHaveLength(1); // the other patient's
      // No reading through either hub: none, or the patient is unknown or erased.
      for (const hub of [one, two]) {
        const answer = await hub.telemed.getObservationsFor(cpr, week).then((r) => r.length, (e: { code?: string }) => e.code);
        expect([0, 'unknown_patient', 'patient_erased']).toContain(answer);
      }
      // A rebuild replays the erasure and gives the same.
      await one.projector.rebuild();
      expect(one.rows().filter((r) => (r as { patient_key: string }).patient_key === key)).toEqual([]);
    } finally {
      await one.close();
      await two.close();
      data.remove();
    }
  });

  it('a background apply of events read before an inline batch neither moves the checkpoint back nor rewrites rows', async () => {
    await withHub(async (hub) => {
      const first = await hub.telemed.record(reading('251248-1234', 120, 30));
      // What a background projector could have read when the checkpoint was still 0 ...
      const stale = await hub.store.readAll({ after: 0n, maxCount: 10 });
      // ... while inline batches moved on and deprecated the first document.
      await hub.telemed.correct(first.uniqueId, reading('251248-1234', 119, 30), { correctionId: 'c-2' });
      const head = hub.head();
      const before = hub.rows();
      const registry = hub.c.get<{ apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> }>(TOKENS.Registry);
      await registry.apply(stale, stale[stale.length - 1]!.globalPosition);
      expect(hub.checkpoint()).toBe(head);
      expect(hub.rows()).toEqual(before);
      expect(before).toContainEqual(expect.objectContaining({ unique_id: first.uniqueId, status: 'Deprecated' }));
    });
  });

  it('declines while the checkpoint is behind (as during a rebuild), and resumes once the projector caught up', async () => {
    const data = tempDataDir('rts-inline-');
    let hub = open(data.dir);
    try {
      await hub.telemed.record(reading('251248-1234', 120, 30));
      await hub.close();

      // The checkpoint behind the head (as during a rebuild): the inline path must decline until caught up.
      hub = open(data.dir);
      hub.store.database.prepare(`UPDATE projection_checkpoints SET position = 0 WHERE name = 'registry'`).run();
      await hub.telemed.record(reading('251248-1234', 121, 20));
      expect(hub.store.stats()).toMatchObject({ inlineApplied: 0, inlineDeclined: 1 });
      expect(hub.rows()).toHaveLength(1); // the second row is not there yet
      await hub.projector.catchUp();
      expect(hub.rows()).toHaveLength(2);
      expect(hub.checkpoint()).toBe(hub.head());
      await hub.telemed.record(reading('251248-1234', 122, 10));
      expect(hub.store.stats()).toMatchObject({ inlineApplied: 1, inlineDeclined: 1 });
      expect(hub.rows()).toHaveLength(3);
    } finally {
      await hub.close();
      data.remove();
    }
  });

  it('declines a batch with a document whose key is not in memory; the projector opens it from the key store', async () => {
    // A key cache of one: of two patients uploading at once, the first one's key is gone from memory by the time
    // their batch commits (as for a document appended by another hub process on the same files).
    await withHub(async (hub) => {
      await Promise.all([hub.telemed.record(reading('251248-1234', 120, 30)), hub.telemed.record(reading('010203-2345', 118, 40))]);
      expect(hub.store.stats().inlineDeclined).toBeGreaterThanOrEqual(1);
      expect(hub.rows().length).toBeLessThan(2);
      await hub.projector.catchUp();
      expect(hub.rows()).toHaveLength(2);
      expect(hub.checkpoint()).toBe(hub.head());
    }, { RTS_PATIENT_KEY_CACHE_SIZE: '1' });
  });

  it('two connections on one file, each keeping the registry inline: every row once, checkpoint at the head', async () => {
    const data = tempDataDir('rts-inline-');
    const a = open(data.dir);
    const b = open(data.dir);
    try {
      const uploads = await Promise.all(
        Array.from({ length: 30 }, (_, i) => (i % 2 ? a : b).telemed.record(reading(i % 3 ? '251248-1234' : '010203-2345', 100 + i, 90 - i))),
      );
      expect(new Set(uploads.map((u) => u.uniqueId)).size).toBe(30);
      // Each connection's batches were applied inline (the other's commits keep the checkpoint at the head).
      expect(a.store.stats().inlineApplied).toBeGreaterThan(0);
      expect(b.store.stats().inlineApplied).toBeGreaterThan(0);
      expect(a.store.stats().inlineDeclined + b.store.stats().inlineDeclined).toBe(0);
      expect(a.rows()).toHaveLength(30);
      expect(a.checkpoint()).toBe(a.head());
      await a.projector.catchUp(); // nothing left to do
      expect(a.rows()).toHaveLength(30);
    } finally {
      await a.close();
      await b.close();
      data.remove();
    }
  });

  it('leaves an erasure to the projector, which forgets the rows; later uploads are inline again', async () => {
    await withHub(async (hub) => {
      await hub.telemed.record(reading('251248-1234', 120, 30));
      await hub.telemed.record(reading('010203-2345', 125, 30));
      const erasure = hub.c.get<PatientErasure>(TOKENS.PatientErasure);
      await erasure.erase(parseCpr('251248-1234'), { by: 'test' });
      const erasedKey = hub.patientKeys.keyFor(parseCpr('251248-1234'));
      expect(hub.rows().map((r) => (r as { patient_key: string }).patient_key)).not.toContain(erasedKey);
      expect(hub.rows()).toHaveLength(1);
      const declined = hub.store.stats().inlineDeclined;
      expect(declined).toBeGreaterThanOrEqual(1); // the PatientErased batch
      await hub.telemed.record(reading('010203-2345', 126, 20));
      expect(hub.store.stats().inlineDeclined).toBe(declined);
      expect(hub.rows()).toHaveLength(2);
      await expect(hub.telemed.record(reading('251248-1234', 121, 10))).rejects.toMatchObject({ code: 'patient_erased' });
    });
  });
});

