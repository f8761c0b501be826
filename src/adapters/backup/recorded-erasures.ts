import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { PATIENT_KEY_PATTERN } from '../../application/ports/patient-keys';
import { PATIENT_ERASED } from '../../application/sealed-documents';
import { consultationDataKey } from '../../application/consultation/sealed-consultations';
import { isExistingConsultationId, LEGACY_CONSULTATION_ID_RULE } from '../../domain/consultation/legacy-id';
import { DATA_FILES } from '../system/data-dir';
import { BACKUP_MANIFEST, BackupError, verifyBackup } from './data-dir-backup';

/**
 * The erasures recorded somewhere other than the store a hub now runs on, so that they can be repeated on it
 * (PUT /erasures/{patientKey}, DELETE /consultations/{id}/content) after a restore from a backup taken before them.
 * The hub keeps no CPR numbers, so a record of an erasure is a pseudonymous key (a patient's) or a consultation's id
 * (its content erased by id), and a time, and that is all read here:
 *
 * - a backup (checked against its manifest first) or a data directory: the PatientErased events of its
 *   `telemed.sqlite`, and its ConsultationContentErased events but those of a patient's erasure (repeating the
 *   patient's repeats them), opened read-only (a running hub's directory may be read; nothing is written); and the
 *   erased keys of its `patient-keys.sqlite` whose erasure its events do not hold. A backup copies the events
 *   before the keys, and an erasure appends its event before it deletes the key: a patient (or a consultation's
 *   content) erased while a backup copied its events is in that backup's key file only, and reading the events
 *   alone left them out, so an older backup restored and repaired "from a newer backup" served them again;
 * - a file: the answer of GET /erasures (`{items: [...]}`; an item without `kind`, as builds before 2026-12-02
 *   answered, is a patient's), or lines of JSON each with `event: "PatientErased"` or
 *   `event: "ConsultationContentErased"`, as `rts erasures list` prints them and as the hub logs an erasure (its
 *   "patient erased" and "consultation content erased" lines), so the hub's log, kept off the machine, is a record
 *   that outlives a lost disk. Other lines (the rest of a log) are skipped and counted.
 */
export type RecordedErasure =
  | Readonly<{ kind: 'patient'; patientKey: string; erasedAt: string }>
  | Readonly<{ kind: 'consultation'; consultationId: string; erasedAt: string }>;
export type ErasureSource = Readonly<{ kind: 'backup' | 'data_dir' | 'file'; erasures: readonly RecordedErasure[]; skippedLines: number }>;

const CONSULTATION_CONTENT_ERASED = 'ConsultationContentErased';
const erasedAt = z.iso.datetime({ offset: true });
const consultationId = z.string().refine(isExistingConsultationId, LEGACY_CONSULTATION_ID_RULE);
const PatientItem = z.object({ kind: z.literal('patient').optional(), patientKey: z.string().regex(PATIENT_KEY_PATTERN), erasedAt });
const ConsultationItem = z.object({ kind: z.literal('consultation'), consultationId, erasedAt });
/** An item of GET /erasures: a patient's (also without `kind`, as older builds answered) or a consultation's. */
const Erasure = z.union([ConsultationItem, PatientItem]);
const LoggedErasure = z.union([
  z.object({ event: z.literal(PATIENT_ERASED), patientKey: z.string().regex(PATIENT_KEY_PATTERN), erasedAt }),
  z.object({ event: z.literal(CONSULTATION_CONTENT_ERASED), consultationId, erasedAt }),
]);
const ErasureList = z.object({ items: z.array(Erasure), next: z.string().nullish() });

const recordOf = (e: z.infer<typeof Erasure> | z.infer<typeof LoggedErasure>): RecordedErasure =>
  'consultationId' in e ? { kind: 'consultation', consultationId: e.consultationId, erasedAt: e.erasedAt } : { kind: 'patient', patientKey: e.patientKey, erasedAt: e.erasedAt };

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
    const keys = join(path, DATA_FILES.patientKeys);
    return { kind: isBackup ? 'backup' : 'data_dir', erasures: unique([...fromEventStore(events), ...fromKeyStore(keys, events)]), skippedLines: 0 };
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
      if (logged.success) erasures.push(recordOf(logged.data));
      else skippedLines++;
    }
  }
  for (const page of pages) erasures.push(...page.items.map(recordOf));
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

/** The first record of each key or consultation (each is erased once; later records are repeats). */
const unique = (erasures: readonly RecordedErasure[]): RecordedErasure[] => {
  const seen = new Set<string>();
  const idOf = (e: RecordedErasure) => (e.kind === 'patient' ? `p/${e.patientKey}` : `c/${e.consultationId}`);
  return erasures.filter((e) => !seen.has(idOf(e)) && (seen.add(idOf(e)), true));
};

/**
 * PatientErased events, and ConsultationContentErased events but a patient's erasure's, of an embedded store's file
 * (the events table of sqlite/schema.ts), read-only, in the order recorded: what GET /erasures lists.
 */
const fromEventStore = (file: string): RecordedErasure[] => {
  const db = new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const rows = db.prepare('SELECT type, data FROM events WHERE type IN (?, ?) ORDER BY global_position').all(PATIENT_ERASED, CONSULTATION_CONTENT_ERASED) as { type: string; data: string }[];
    return rows.flatMap(({ type, data }) => {
      const json = parseJson(data) as Record<string, unknown> | undefined;
      if (type === CONSULTATION_CONTENT_ERASED) {
        if (json?.['cause'] === 'patient_erased') return [];
        const parsed = ConsultationItem.safeParse({ ...json, kind: 'consultation' });
        return parsed.success ? [recordOf(parsed.data)] : [];
      }
      const parsed = PatientItem.safeParse({ ...json, kind: 'patient' });
      return parsed.success ? [recordOf(parsed.data)] : [];
    });
  } finally {
    db.close();
  }
};

/**
 * The erasures a key file records by its tombstones (`erased_at` set), oldest first: a patient's by their key; a
 * consultation's, whose key is derived from its id, by the id of a request in the events `eventsFile` holds, unless
 * a patient of that request is erased too (repeating the patient's erasure repeats it). Read-only.
 */
const fromKeyStore = (keysFile: string, eventsFile: string): RecordedErasure[] => {
  if (!existsSync(keysFile)) return [];
  let rows: { patient_key: string; erased_at: string }[];
  const keys = new BetterSqlite3(keysFile, { readonly: true, fileMustExist: true });
  try {
    keys.pragma('busy_timeout = 5000');
    const hasTable = keys.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'patient_keys'").get() !== undefined;
    rows = hasTable ? (keys.prepare('SELECT patient_key, erased_at FROM patient_keys WHERE erased_at IS NOT NULL ORDER BY erased_at, patient_key').all() as typeof rows) : [];
  } finally {
    keys.close();
  }
  if (rows.length === 0) return [];
  const erasedAtOf = new Map(rows.map((r) => [r.patient_key, r.erased_at]));
  const patients = rows.flatMap((r) => {
    const parsed = PatientItem.safeParse({ kind: 'patient', patientKey: r.patient_key, erasedAt: r.erased_at });
    return parsed.success ? [recordOf(parsed.data)] : [];
  });
  const consultations: RecordedErasure[] = [];
  const events = new BetterSqlite3(eventsFile, { readonly: true, fileMustExist: true });
  try {
    events.pragma('busy_timeout = 5000');
    for (const { data } of events.prepare("SELECT data FROM events WHERE type = 'ConsultationRequested' ORDER BY global_position").all() as { data: string }[]) {
      const json = parseJson(data) as Record<string, unknown> | undefined;
      const id = json?.['consultationId'];
      if (typeof id !== 'string') continue;
      const erasedAt = erasedAtOf.get(consultationDataKey(id));
      if (erasedAt === undefined) continue;
      const patientKeys = json?.['patientKeys'];
      if (Array.isArray(patientKeys) && patientKeys.some((k) => typeof k === 'string' && erasedAtOf.has(k))) continue;
      const parsed = ConsultationItem.safeParse({ kind: 'consultation', consultationId: id, erasedAt });
      if (parsed.success) consultations.push(recordOf(parsed.data));
    }
  } finally {
    events.close();
  }
  return [...patients, ...consultations];
};
