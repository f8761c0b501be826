import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DateTime } from 'luxon';
import pino from 'pino';
import { DATA_FILES } from '../../src/adapters/system/data-dir';
import type { Container } from 'inversify';
import { sha256Hex } from '../../src/application/ids';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientKeyStore } from '../../src/application/ports/patient-data-protection';
import type { Projector } from '../../src/application/projector';
import type { TeleMedService } from '../../src/application/telemed';
import type { XdsBackend } from '../../src/application/xds-backend';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, openContainer } from '../../src/bootstrap/container';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { createTeleObservation } from '../../src/domain/monitoring/tele-observation';
import { tempDataDir } from '../support/hub-process';

/**
 * The SQLite registry keeps its rows' readings and times in clear (the file is the hub's own, mode 0600, erased rows
 * overwritten). Its rows held the document's plain SHA-256 too: the HL7 document is the hub's fixed rendering of the
 * time, the values and the CPR number, so a copy of telemed.sqlite alone gave every patient's CPR number back by
 * trying the numbers of a birth year (~5 s each). Now the row holds the event's keyed digest; the plain SHA-256 is
 * taken of the content where a document is served (ETag, XDS's hash). A file an older build wrote is mended once at
 * open.
 */
const CPR = '251248-1234';

type Row = { unique_id: string; hash: string };

const closeContainer = async (c: Container): Promise<void> => {
  await c.get<Projector>(TOKENS.Projector).stop();
  await c.get<EventStore>(TOKENS.EventStore).close();
  await c.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
};

describe('SQLite registry: no plain document hash in the events file', () => {
  const data = tempDataDir('wt-keyed-hash-');
  afterAll(() => data.remove());
  const file = join(data.dir, DATA_FILES.events);
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_PSEUDONYM_SECRET: 'cd'.repeat(32) });
  const now = DateTime.now().toUTC().startOf('second');
  const reading = (systolic: number, diastolic: number, minutes: number) =>
    createTeleObservation({ patientId: CPR, systolic, diastolic, measuredAt: now.minus({ minutes }).toISO()! }, now);
  /** The files' bytes as text: the events file and its WAL. */
  const fileText = (): string => [file, `${file}-wal`].map((f) => { try { return readFileSync(f).toString('latin1'); } catch { return ''; } }).join('');
  const served: Record<string, string> = {}; // uniqueId -> the plain SHA-256 of the document served

  it('rows hold the keyed digest their events hold; the served entry the content\'s SHA-256, which the files do not hold', async () => {
    const warnings: string[] = [];
    const c = await openContainer(config, pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }));
    try {
      const telemed = c.get<TeleMedService>(TOKENS.TeleMed);
      const xds = c.get<XdsBackend>(TOKENS.Xds);
      const first = await telemed.record(reading(131, 82, 30), { observationId: 'keyed-1' });
      await telemed.record(reading(127, 79, 20), { observationId: 'keyed-2' });
      const corrected = await telemed.correct(first.uniqueId, reading(133, 84, 30), { correctionId: 'keyed-fix' });
      await c.get<Projector>(TOKENS.Projector).catchUp();
      for (const e of await xds.retrieveDocumentSet(parseCpr(CPR), now.minus({ hours: 1 }), now.plus({ seconds: 1 }))) served[e.entry.uniqueId] = e.entry.hash;
      const old = await xds.retrieveDocument(first.uniqueId);
      served[first.uniqueId] = old.entry.hash;
      expect(Object.keys(served)).toHaveLength(3);
      expect(Object.keys(served)).toContain(corrected.uniqueId);
      for (const [uniqueId, hash] of Object.entries(served)) {
        const { content, entry } = await xds.retrieveDocument(uniqueId);
        expect(hash).toBe(sha256Hex(content));
        expect(entry.hash).toBe(hash);
      }
    } finally {
      await closeContainer(c);
    }
    expect(warnings.filter((w) => w.includes('keyed digest'))).toEqual([]); // a new file: nothing to mend
    const db = new Database(file, { readonly: true });
    try {
      const rows = db.prepare('SELECT unique_id, hash FROM registry_entries').all() as Row[];
      const events = new Map(
        (db.prepare("SELECT stream_name, data FROM events WHERE type = 'DocumentSubmitted'").all() as { stream_name: string; data: string }[]).map((e) => [
          e.stream_name.slice('document-'.length),
          (JSON.parse(e.data) as { hash: string }).hash,
        ]),
      );
      expect(rows.map((r) => r.unique_id).sort()).toEqual(Object.keys(served).sort());
      for (const r of rows) {
        expect(r.hash).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
        expect(r.hash).toBe(events.get(r.unique_id));
      }
    } finally {
      db.close();
    }
    const text = fileText();
    for (const hash of Object.values(served)) expect(text.includes(hash)).toBe(false);
  });

  it("a file an older build wrote (the plain SHA-256 in its rows) is mended once at open, said in a warning, and the old cells leave the files", async () => {
    // The older build's rows: the plain SHA-256 written back, and the mend not yet recorded.
    const db = new Database(file);
    try {
      const set = db.prepare('UPDATE registry_entries SET hash = ? WHERE unique_id = ?');
      for (const [uniqueId, hash] of Object.entries(served)) set.run(hash, uniqueId);
      db.prepare("DELETE FROM registry_migrations WHERE name = 'keyed-hashes'").run();
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    expect(Object.values(served).every((hash) => fileText().includes(hash))).toBe(true);

    const warnings: string[] = [];
    const c = await openContainer(config, pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }));
    try {
      // Served as before: the ETag is the content's SHA-256.
      const xds = c.get<XdsBackend>(TOKENS.Xds);
      for (const [uniqueId, hash] of Object.entries(served)) expect((await xds.retrieveDocument(uniqueId)).entry.hash).toBe(hash);
      const mended = warnings.map((w) => JSON.parse(w) as { rows?: number; msg: string }).filter((w) => w.msg.includes('keyed digest'));
      expect(mended.map((w) => w.rows)).toEqual([3]);
    } finally {
      await closeContainer(c);
    }
    const text = fileText();
    for (const hash of Object.values(served)) expect(text.includes(hash)).toBe(false);

    // Once: the next open finds it done and says nothing.
    const again: string[] = [];
    const c2 = await openContainer(config, pino({ level: 'warn' }, { write: (line: string) => void again.push(line) }));
    await c2.get<XdsBackend>(TOKENS.Xds).retrieveDocument(Object.keys(served)[0]!);
    await closeContainer(c2);
    expect(again.filter((w) => w.includes('keyed digest'))).toEqual([]);
  });

  it('rows a rolled-back build wrote after the mend (its projector or rebuild put the plain SHA-256 back) are mended at the next open', async () => {
    // A build before 30aa637 opening the store again (format 3 is readable from 1) writes plain hashes into the rows
    // it projects; the mend's record in registry_migrations stays as this build left it.
    const [uniqueId, hash] = Object.entries(served)[0]!;
    const db = new Database(file);
    try {
      expect(db.prepare("SELECT count(*) FROM registry_migrations WHERE name = 'keyed-hashes'").pluck().get()).toBe(1);
      db.prepare('UPDATE registry_entries SET hash = ? WHERE unique_id = ?').run(hash, uniqueId);
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    expect(fileText().includes(hash)).toBe(true);
    const warnings: string[] = [];
    const c = await openContainer(config, pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) }));
    try {
      expect((await c.get<XdsBackend>(TOKENS.Xds).retrieveDocument(uniqueId)).entry.hash).toBe(hash);
    } finally {
      await closeContainer(c);
    }
    const mended = warnings.map((w) => JSON.parse(w) as { rows?: number; msg: string }).filter((w) => w.msg.includes('keyed digest'));
    expect(mended.map((w) => w.rows)).toEqual([1]);
    expect(fileText().includes(hash)).toBe(false);
  });
});
