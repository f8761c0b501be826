import { chmodSync, cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pino from 'pino';
import type { Container } from 'inversify';
import type { EventStore } from '../../src/application/ports/event-store';
import type { PatientKeyStore } from '../../src/application/ports/patient-data-protection';
import type { Projector } from '../../src/application/projector';
import { loadConfig } from '../../src/bootstrap/config';
import { TOKENS, openContainer } from '../../src/bootstrap/container';
import { tempDataDir } from '../support/hub-process';

/**
 * The documents e62c91f stored (test/fixtures/upgrade/e62c91f) have events holding the plain SHA-256; their registry
 * rows get a keyed digest of the document at start (keyPlainHashes), since beside the row's time and values in clear
 * the plain hash gave the CPR number back. Rows written after the start must not bring it back: a rebuild of the
 * registry (the library's rebuildRegistry) replays those events, and a stopped rebuild leaves its replacement table
 * in the file.
 */
const FIXTURE = join(__dirname, '..', 'fixtures', 'upgrade', 'e62c91f', 'data');

const closeContainer = async (c: Container): Promise<void> => {
  await c.get<Projector>(TOKENS.Projector).stop();
  await c.get<EventStore>(TOKENS.EventStore).close();
  await c.get<PatientKeyStore>(TOKENS.PatientKeyStore).close();
};

describe("SQLite registry: rows of an older build's documents keep a keyed digest", () => {
  const data = tempDataDir('rts-legacy-hash-');
  afterAll(() => data.remove());
  const file = join(data.dir, 'telemed.sqlite');
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_PSEUDONYM_SECRET: 'ab'.repeat(32) });
  let plainHashes: string[] = [];
  beforeAll(() => {
    cpSync(FIXTURE, data.dir, { recursive: true });
    for (const f of readdirSync(data.dir)) chmodSync(join(data.dir, f), 0o600);
    const db = new Database(file, { readonly: true });
    try {
      plainHashes = db.prepare("SELECT json_extract(data, '$.hash') FROM events WHERE type = 'DocumentSubmitted'").pluck().all() as string[];
    } finally {
      db.close();
    }
    expect(plainHashes.length).toBeGreaterThan(0);
    expect(plainHashes.filter((h) => h.startsWith('hmac-sha256:'))).toEqual([]);
  });
  const plainRows = (table: string): number => {
    const db = new Database(file, { readonly: true });
    try {
      return db.prepare(`SELECT count(*) FROM ${table} WHERE hash NOT LIKE 'hmac-sha256:%'`).pluck().get() as number;
    } finally {
      db.close();
    }
  };
  /** How often each plain hash is in the files' bytes outside its own event (which keeps it). */
  const outsideEvents = (): number[] => {
    const bytes = [file, `${file}-wal`].map((f) => { try { return readFileSync(f); } catch { return Buffer.alloc(0); } });
    return plainHashes.map((h) => bytes.reduce((n, b) => { let k = 0; for (let i = b.indexOf(h); i !== -1; i = b.indexOf(h, i + 1)) k++; return n + k; }, 0) - 1);
  };
  const silent = pino({ level: 'silent' });

  it('a rebuild of the registry gives the rows the keyed digest, not the plain SHA-256 their events hold', async () => {
    const c = await openContainer(config, silent);
    try {
      expect(plainRows('registry_entries')).toBe(0); // the start's mend
      await c.get<Projector>(TOKENS.Projector).rebuild();
      expect(plainRows('registry_entries')).toBe(0);
    } finally {
      await closeContainer(c);
    }
    expect(outsideEvents().filter((n) => n !== 0)).toEqual([]);
  });

  it("a stopped rebuild's replacement table holding an older build's rows is mended at the start too", async () => {
    const db = new Database(file);
    try {
      db.exec(`CREATE TABLE registry_entries_rebuild AS SELECT * FROM registry_entries; CREATE TABLE erased_patients_rebuild (patient_key TEXT PRIMARY KEY);`);
      const events = db.prepare("SELECT substr(stream_name, 10) AS unique_id, json_extract(data, '$.hash') AS hash FROM events WHERE type = 'DocumentSubmitted'").all() as { unique_id: string; hash: string }[];
      const set = db.prepare('UPDATE registry_entries_rebuild SET hash = ? WHERE unique_id = ?');
      for (const e of events) set.run(e.hash, e.unique_id);
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    expect(plainRows('registry_entries_rebuild')).toBeGreaterThan(0);
    const c = await openContainer(config, silent);
    await closeContainer(c);
    expect(plainRows('registry_entries_rebuild')).toBe(0);
    expect(outsideEvents().filter((n) => n !== 0)).toEqual([]);
  });
});
