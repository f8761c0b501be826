import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { PATIENT_KEY_PATTERN } from '../../application/ports/patient-keys';
import { PATIENT_ERASED } from '../../application/sealed-documents';
import { DATA_FILES } from '../system/data-dir';
import { BACKUP_MANIFEST, BackupError, verifyBackup } from './data-dir-backup';

/**
 * The erasures recorded somewhere other than the store a hub now runs on, so that they can be repeated on it
 * (PUT /erasures/{patientKey}) after a restore from a backup taken before them. The hub keeps no CPR numbers, so
 * a record of an erasure is a pseudonymous key and a time, and that is all read here:
 *
 * - a backup (checked against its manifest first) or a data directory: the PatientErased events of its
 *   `telemed.sqlite`, opened read-only (a running hub's directory may be read; nothing is written);
 * - a file: the answer of GET /erasures (`{items: [...]}`), or lines of JSON each with `event: "PatientErased"`,
 *   as `rts erasures list` prints them and as the hub logs an erasure (its "patient erased" line), so the hub's
 *   log, kept off the machine, is a record that outlives a lost disk. Other lines (the rest of a log) are skipped
 *   and counted.
 */
export type RecordedErasure = Readonly<{ patientKey: string; erasedAt: string }>;
export type ErasureSource = Readonly<{ kind: 'backup' | 'data_dir' | 'file'; erasures: readonly RecordedErasure[]; skippedLines: number }>;

const Erasure = z.object({ patientKey: z.string().regex(PATIENT_KEY_PATTERN), erasedAt: z.iso.datetime({ offset: true }) });
const LoggedErasure = Erasure.extend({ event: z.literal(PATIENT_ERASED) });
const ErasureList = z.object({ items: z.array(Erasure), next: z.string().nullish() });

/**
 * A file read from a source that cannot be the whole record: a GET /erasures page whose `next` says more follow
 * (no later page in the file), or a file in which no erasure was found at all although it has lines. Repeating
 * part of the record and saying "Done" left erased patients readable on the restored hub.
 */
export class IncompleteErasureRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IncompleteErasureRecordError';
  }
}

/** The erasures recorded in `source` (see above), oldest first as recorded, each key once. */
export const readRecordedErasures = (source: string): ErasureSource => {
  const path = resolve(source);
  if (!existsSync(path)) throw new BackupError('not_a_backup', `${path} does not exist`);
  if (statSync(path).isDirectory()) {
    const isBackup = existsSync(join(path, BACKUP_MANIFEST));
    if (isBackup) verifyBackup(path);
    const events = join(path, DATA_FILES.events);
    if (!existsSync(events)) throw new BackupError('not_a_backup', `${path} is neither a backup nor a data directory: it holds no ${DATA_FILES.events}`);
    return { kind: isBackup ? 'backup' : 'data_dir', erasures: unique(fromEventStore(events)), skippedLines: 0 };
  }
  const text = readFileSync(path, 'utf8');
  const erasures: RecordedErasure[] = [];
  let skippedLines = 0;
  // A GET /erasures answer (one page, pretty-printed or not), or several saved one after another, one per line.
  const pages: z.infer<typeof ErasureList>[] = [];
  const whole = ErasureList.safeParse(parseJson(text.trim()));
  if (whole.success) pages.push(whole.data);
  else {
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      // A log kept by journald or syslog has a prefix before each JSON line (`journalctl -u rts`): the JSON from
      // its first brace on.
      const json = parseJson(line.slice(Math.max(0, line.indexOf('{'))));
      const page = ErasureList.safeParse(json);
      if (page.success) {
        pages.push(page.data);
        continue;
      }
      const logged = LoggedErasure.safeParse(json);
      if (logged.success) erasures.push({ patientKey: logged.data.patientKey, erasedAt: logged.data.erasedAt });
      else skippedLines++;
    }
  }
  for (const page of pages) erasures.push(...page.items);
  if (pages.length > 0 && pages.every((p) => typeof p.next === 'string' && p.next !== '')) {
    const next = pages[pages.length - 1]!.next;
    throw new IncompleteErasureRecordError(
      `${path} holds ${pages.length === 1 ? 'a page' : `${pages.length} pages`} of GET /erasures whose "next" (${next}) says more erasures follow: save every page (GET /erasures?after=<next> until an answer has no next) into the file, then run this again`,
    );
  }
  if (erasures.length === 0 && skippedLines > 0) {
    throw new IncompleteErasureRecordError(
      `no erasure was found in ${path} (${skippedLines} line(s) of something else): give the hub's log as JSON lines (journald: journalctl -o cat), the output of 'rts erasures list', or GET /erasures answers`,
    );
  }
  return { kind: 'file', erasures: unique(erasures), skippedLines };
};

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** The first record of each key (a key is erased once; later records are repeats). */
const unique = (erasures: readonly RecordedErasure[]): RecordedErasure[] => {
  const seen = new Set<string>();
  return erasures.filter((e) => !seen.has(e.patientKey) && (seen.add(e.patientKey), true));
};

/** PatientErased events of an embedded store's file (the events table of sqlite/schema.ts), read-only. */
const fromEventStore = (file: string): RecordedErasure[] => {
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const rows = db.prepare('SELECT data FROM events WHERE type = ? ORDER BY global_position').pluck().all(PATIENT_ERASED) as string[];
    return rows.flatMap((data) => {
      const parsed = Erasure.safeParse(parseJson(data));
      return parsed.success ? [parsed.data] : [];
    });
  } finally {
    db.close();
  }
};
