import { createHash } from 'node:crypto';
import { AUTH_SECRET_MIN_HEX_DIGITS, secretTextProblem } from '../system/secret-text';
import { chmodSync, closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { DATA_DATABASES, DATA_FILES, DATA_SECRETS } from '../system/data-dir';
import { makeDirectory } from '../system/make-directory';

/**
 * Backup and restore of the embedded profile's data directory, safe while a hub runs on it.
 *
 * Backup. Each SQLite file is copied with `VACUUM INTO` from a connection of its own: one read transaction, so the
 * copy is the database as it was at one commit (WAL: the hub's writers go on meanwhile and are not blocked), and
 * only live pages are copied (an erased patient's key, overwritten in place, is not carried along in a free page).
 * The event store goes first and the key file after it. A key is committed before anything is sealed with it, so
 * every event in the copy finds its key in the later copy of the keys, unless the patient was erased in between:
 * then their key is gone from the copy while their rows are still in it, and their erasure must be run again after
 * a restore, as for every patient erased after the backup (restore says so). The secrets beside them (the
 * pseudonym secret: without it no patient's data can be found again) are copied as they are. Every file is made
 * 0600 before anything is written into it, fsynced, and listed with its size and SHA-256 in `backup.json`; the
 * SQLite copies are checked with `quick_check` before the backup is reported done.
 *
 * Restore. Only into a directory that does not exist or is empty (never over a data directory in use), and only
 * after every file has matched the manifest's hash. The files are written 0600 in a 0700 directory and fsynced.
 * The first file written is the marker `restored-from-backup.json` (the backup, its time, when it was restored):
 * the patients erased after the backup are back, and a hub with a broker would send their texts to city systems
 * at once, so it refuses to start there until `rts restore --done` (clearRestoredMarker) removes the marker once
 * the erasures are repeated. Written first, it is in every state a restore leaves: a restore that fails removes it
 * with the rest, and one killed leaves it beside `.rts-in-progress` (deleting that file by hand keeps it).
 *
 * Nothing here logs or returns personal data: the manifest holds file names, sizes, hashes, the events' head
 * position and a time.
 */

export const BACKUP_MANIFEST = 'backup.json';
export const BACKUP_FORMAT = 'telemed-rts-backup/1';

const Manifest = z.object({
  format: z.literal(BACKUP_FORMAT),
  createdAt: z.string().datetime({ offset: true }),
  /** The last event position in the copy of the event store. */
  eventsHead: z.number().int().nonnegative(),
  files: z
    .array(
      z.object({
        name: z.enum([...DATA_DATABASES, ...DATA_SECRETS] as [string, ...string[]]),
        bytes: z.number().int().nonnegative(),
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
      }),
    )
    .min(1),
  /**
   * The data directory copied held the marker of a restore not cleared (rts restore --done): the erasures made after
   * that earlier backup (its time; null: the marker did not say) are repeated in this backup neither. Its restore
   * carries that time on (RestoredMarker.erasuresNotRepeatedSince). Absent otherwise; builds before it ignore it.
   */
  restoredFrom: z.object({ backupCreatedAt: z.string().datetime({ offset: true }).nullable() }).optional(),
});
export type BackupManifest = z.infer<typeof Manifest>;

/** What went wrong, said so that an operator knows what to do; `code` tells the cases apart for scripts. */
export class BackupError extends Error {
  constructor(
    readonly code: 'no_data_dir' | 'no_event_store' | 'target_not_empty' | 'target_inside_data_dir' | 'not_a_backup' | 'damaged' | 'check_failed' | 'not_restored' | 'restore_unfinished',
    message: string,
  ) {
    super(message);
    this.name = 'BackupError';
  }
}

export type BackupResult = Readonly<{ manifest: BackupManifest; directory: string; missing: readonly string[] }>;

export type BackupOptions = Readonly<{
  now?: () => Date;
  /** Called after each file is in the backup (awaited before the next is taken): progress, or a test's step. */
  onCopied?: (file: BackupManifest['files'][number]) => void | Promise<void>;
  /** Called once the checks passed and the target is claimed, before the first file is copied. */
  onStart?: () => void | Promise<void>;
}>;

/**
 * Copy the data directory `dataDir` into `target` (created; it must not exist or must be empty). `missing` names
 * the secret files the data directory does not hold (set through configuration instead, e.g.
 * RTS_PSEUDONYM_SECRET): they are not in the backup and must be kept with it by other means.
 */
export const backupDataDir = async (dataDir: string, target: string, options: BackupOptions = {}): Promise<BackupResult> => {
  const source = resolve(dataDir);
  if (!isDirectory(source)) throw new BackupError('no_data_dir', `the data directory ${source} does not exist`);
  if (!existsSync(join(source, DATA_FILES.events))) {
    throw new BackupError(
      'no_event_store',
      `${source} holds no ${DATA_FILES.events}: this is not the data directory of a hub on the embedded store (with RTS_EVENT_STORE=postgres, back up the database with pg_dump, and this directory's secret files with it)`,
    );
  }
  // A backup inside the directory it copies shares its disk and its fate, takes the store's own space, and would be
  // copied into the next backup: a subdirectory of the data directory was taken (the directory itself was not).
  if (isWithin(realPathOf(resolve(target)), realPathOf(source))) {
    throw new BackupError('target_inside_data_dir', `${resolve(target)} lies inside the data directory ${source}: keep the backup on another disk, or at least outside the data directory`);
  }
  const missing: string[] = [];
  let manifest: BackupManifest | undefined;
  const directory = await intoEmptyDirectory(resolve(target), async (directory) => {
    await options.onStart?.();
    const files: BackupManifest['files'] = [];
    const copied = async (name: string): Promise<void> => {
      const file = describe(directory, name);
      files.push(file);
      await options.onCopied?.(file);
    };
    let eventsHead = 0;
    // The time of the backup is when its copy of the events begins, not when the last file is written: restore
    // tells to erase again the patients erased after it, and one erased while a large store was copied counts.
    const createdAt = (options.now ?? (() => new Date()))().toISOString();
    // Read before the events are copied: a marker cleared meanwhile still leaves it said (the safe side).
    const marker = restoredMarkerOf(source);
    const restoredFrom = marker === null ? undefined : { backupCreatedAt: earliestOf(marker) };
    for (const name of DATA_DATABASES) {
      const from = join(source, name);
      if (!existsSync(from)) continue; // no key file yet: no patient has a key
      const to = join(directory, name);
      snapshot(from, to);
      const head = checkDatabase(to, name === DATA_FILES.events);
      if (name === DATA_FILES.events) eventsHead = head;
      await copied(name);
    }
    for (const name of DATA_SECRETS) {
      const from = join(source, name);
      if (!existsSync(from)) {
        missing.push(name);
        continue;
      }
      copyPrivately(from, join(directory, name));
      const problem = secretFileProblem(name, readFileSync(join(directory, name), 'utf8'));
      if (problem !== null) {
        throw new BackupError('damaged', `${name} in the data directory ${problem}: a restore of this backup could not start. Put it back from an earlier backup first (see README, "Disk")`);
      }
      await copied(name);
    }
    manifest = { format: BACKUP_FORMAT, createdAt, eventsHead, files, ...(restoredFrom ? { restoredFrom } : {}) };
    writePrivately(join(directory, BACKUP_MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  });
  return { manifest: manifest!, directory, missing };
};

/** What `rts restore` leaves in the data directory it restored (see above); no personal data. */
export const RESTORED_FORMAT = 'telemed-rts-restored/1';
export type RestoredMarker = Readonly<{
  format: typeof RESTORED_FORMAT;
  backup: string;
  backupCreatedAt: string;
  eventsHead: number;
  restoredAt: string;
  /**
   * A backup of a directory restored before and not cleared (BackupManifest.restoredFrom): the erasures are not
   * repeated since this earlier time (null: unknown), not only since backupCreatedAt. Absent otherwise.
   */
  erasuresNotRepeatedSince?: string | null;
}>;

/** Since when a marked directory's erasures are not repeated, as far as its marker says (null: it does not). */
const earliestOf = (marker: Partial<RestoredMarker>): string | null =>
  marker.erasuresNotRepeatedSince === null
    ? null
    : typeof marker.erasuresNotRepeatedSince === 'string'
      ? marker.erasuresNotRepeatedSince
      : typeof marker.backupCreatedAt === 'string'
        ? marker.backupCreatedAt
        : null;

/** The time after which a restore of this backup must repeat erasures: its own, or that of the restore it copied (null: unknown). */
export const erasuresToRepeatSince = (manifest: BackupManifest): string | null => (manifest.restoredFrom ? manifest.restoredFrom.backupCreatedAt : manifest.createdAt);

/** Check the backup in `backupDir` against its manifest, then write its files into `dataDir` (see above). */
export const restoreDataDir = async (backupDir: string, dataDir: string, options: Pick<BackupOptions, 'now'> = {}): Promise<BackupManifest> => {
  const from = resolve(backupDir);
  const manifest = verifyBackup(from);
  await intoEmptyDirectory(resolve(dataDir), (directory) => {
    const marker: RestoredMarker = {
      format: RESTORED_FORMAT,
      backup: from,
      backupCreatedAt: manifest.createdAt,
      eventsHead: manifest.eventsHead,
      restoredAt: (options.now ?? (() => new Date()))().toISOString(),
      ...(manifest.restoredFrom ? { erasuresNotRepeatedSince: manifest.restoredFrom.backupCreatedAt } : {}),
    };
    writePrivately(join(directory, DATA_FILES.restored), `${JSON.stringify(marker, null, 2)}\n`);
    syncPath(directory);
    for (const { name } of manifest.files) copyPrivately(join(from, name), join(directory, name));
    for (const { name } of manifest.files) if ((DATA_DATABASES as readonly string[]).includes(name)) checkDatabase(join(directory, name), false);
  });
  return manifest;
};

/**
 * The marker `rts restore` left in `dataDir` (null when there is none), as far as it can be read: a marker that is
 * there but damaged still marks the directory as restored ({}), it only says less.
 */
export const restoredMarkerOf = (dataDir: string): Partial<RestoredMarker> | null => {
  const file = join(dataDir, DATA_FILES.restored);
  if (!existsSync(file)) return null;
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as Partial<RestoredMarker>) : {};
  } catch {
    return {};
  }
};

/**
 * `rts restore --done`: remove the marker from a restored data directory once the operator has repeated the erasures
 * made after the backup; what it said. Refused (nothing removed) where there is no marker, or while a restore still
 * writes into the directory (or was killed there).
 */
export const clearRestoredMarker = (dataDir: string): Partial<RestoredMarker> => {
  const directory = resolve(dataDir);
  if (existsSync(join(directory, DATA_FILES.inProgress))) {
    throw new BackupError('restore_unfinished', `${directory} holds ${DATA_FILES.inProgress}: a restore is writing into it, or was stopped before it finished (then delete the directory and restore again)`);
  }
  const marker = restoredMarkerOf(directory);
  if (marker === null) throw new BackupError('not_restored', `${directory} holds no ${DATA_FILES.restored}: it is not a directory rts restore wrote, or it was cleared already`);
  rmSync(join(directory, DATA_FILES.restored));
  syncPath(directory);
  return marker;
};

/** The manifest of the backup in `backupDir`, once every file it lists has its size and hash. */
export const verifyBackup = (backupDir: string): BackupManifest => {
  const file = join(backupDir, BACKUP_MANIFEST);
  if (!existsSync(file)) throw new BackupError('not_a_backup', `${backupDir} is not a backup: it has no ${BACKUP_MANIFEST}`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // There, but not JSON: a backup whose manifest was cut short or changed (exit 6), not a wrong directory (exit 2).
    throw new BackupError('damaged', `${file} cannot be read as JSON: the backup is damaged`);
  }
  const parsed = Manifest.safeParse(raw);
  if (!parsed.success) throw new BackupError('not_a_backup', `${file} is not a telemed-rts backup manifest (${BACKUP_FORMAT})`);
  const manifest = parsed.data;
  if (!manifest.files.some((f) => f.name === DATA_FILES.events)) throw new BackupError('not_a_backup', `${file} lists no ${DATA_FILES.events}`);
  for (const { name, bytes, sha256 } of manifest.files) {
    const path = join(backupDir, name);
    if (!existsSync(path)) throw new BackupError('damaged', `${name} is missing from the backup`);
    const actual = describe(backupDir, name);
    if (actual.bytes !== bytes || actual.sha256 !== sha256) throw new BackupError('damaged', `${name} does not match the backup's manifest: it was changed or damaged since the backup`);
  }
  return manifest;
};

// ---- the parts ----

const isDirectory = (path: string): boolean => existsSync(path) && statSync(path).isDirectory();

/**
 * `fill` writes into `path`, a 0700 directory that is new or was empty (anything else is refused: nothing is ever
 * written over). If it fails, what it wrote is removed again (and the directory, when it was made here), so a
 * second try finds it as the first did. Then the directory's new entries are made durable.
 */
const intoEmptyDirectory = async (path: string, fill: (directory: string) => void | Promise<void>): Promise<string> => {
  const { existed, made } = claimEmptyDirectory(path);
  try {
    await fill(path);
    rmSync(join(path, IN_PROGRESS));
  } catch (error) {
    if (existed) for (const entry of readdirSync(path)) rmSync(join(path, entry), { recursive: true, force: true });
    else removeWithMadeParents(path, made);
    throw error;
  }
  syncPath(path);
  return path;
};

/** `path`, and then the parents made for it up to `made`, each only while it is empty (another may write there). */
const removeWithMadeParents = (path: string, made: string): void => {
  rmSync(path, { recursive: true, force: true });
  for (let dir = dirname(path); made !== path && dir.length >= made.length && dir !== dirname(dir); dir = dirname(dir)) {
    try {
      if (readdirSync(dir).length > 0) break;
      rmdirSync(dir);
    } catch {
      break;
    }
    if (dir === made) break;
  }
};

/**
 * Held in a directory while a backup or restore writes into it; created exclusively, so only one can. A hub or
 * library refuses to open a data directory that holds it (embedded-store-lock.ts).
 */
const IN_PROGRESS = DATA_FILES.inProgress;

/**
 * `path` as an empty 0700 directory this process alone writes into: new (made with any missing parents; `made` is
 * the first directory made) or empty. Claimed with a file only one process can create, so a second backup into
 * the same directory at the same moment is refused before it writes anything. (Both used to pass the check, and
 * each one's cleanup deleted the other's files.)
 */
export const claimEmptyDirectory = (path: string): { existed: boolean; made: string } => {
  const refused = (why: string) => new BackupError('target_not_empty', `${path} ${why}: give a new or empty directory (nothing is ever written over)`);
  const existed = existsSync(path);
  let made = path;
  if (existed) {
    if (!statSync(path).isDirectory()) throw new BackupError('target_not_empty', `${path} exists and is not a directory`);
    if (readdirSync(path).length > 0) throw refused('is not empty');
  } else {
    made = makeDirectory(dirname(path)) ?? path;
    try {
      mkdirSync(path, { mode: 0o700 });
    } catch (error) {
      if ((error as { code?: string }).code === 'EEXIST') throw refused('was made by another process at the same moment');
      throw error;
    }
  }
  try {
    closeSync(openSync(join(path, IN_PROGRESS), 'wx', 0o600));
  } catch (error) {
    if ((error as { code?: string }).code === 'EEXIST') throw refused('is being written by another backup or restore');
    throw error;
  }
  // A hub started on the directory between the check above and the claim (its hub.lock is its first file): it did
  // not see the claim, so it is this one that gives way. (A hub that starts later sees the claim and refuses.)
  // Otherwise a restore whose copy then met the hub's own files failed, and its cleanup deleted the running hub's
  // data directory.
  const others = readdirSync(path).filter((entry) => entry !== IN_PROGRESS);
  if (others.length > 0) {
    rmSync(join(path, IN_PROGRESS), { force: true });
    throw refused('was written to by another process (a hub started on it?) at the same moment');
  }
  chmodSync(path, 0o700);
  return { existed, made };
};

/** An empty 0600 file, so what is written into it is never readable by others, not even for a moment. */
const createPrivately = (path: string): void => {
  closeSync(openSync(path, 'wx', 0o600));
  chmodSync(path, 0o600);
};

const writePrivately = (path: string, text: string): void => {
  createPrivately(path);
  writeFileSync(path, text);
  syncPath(path);
};

const copyPrivately = (from: string, to: string): void => {
  createPrivately(to);
  copyFileSync(from, to);
  chmodSync(to, 0o600);
  syncPath(to);
};

/**
 * The database in `from` as of one commit, into the new file `to` (VACUUM INTO; SQLite does not fsync it). A
 * read-only connection: the backup never writes to the data directory, whether the hub runs or not.
 */
const snapshot = (from: string, to: string): void => {
  createPrivately(to); // VACUUM INTO writes into an empty file and keeps its mode
  const db = new BetterSqlite3(from, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare('VACUUM INTO ?').run(to);
  } finally {
    db.close();
  }
  syncPath(to);
};

/** quick_check of a copy; for the event store also its head position (the copy is opened read-only). */
const checkDatabase = (path: string, events: boolean): number => {
  const db = new BetterSqlite3(path, { readonly: true, fileMustExist: true });
  try {
    const result = db.pragma('quick_check', { simple: true });
    if (result !== 'ok') throw new BackupError('check_failed', `the copy of ${path} failed SQLite's quick_check: ${String(result).slice(0, 200)}`);
    return events ? Number(db.prepare('SELECT COALESCE(MAX(global_position), 0) FROM events').pluck().get()) : 0;
  } finally {
    db.close();
  }
};

const describe = (directory: string, name: string): BackupManifest['files'][number] => {
  const path = join(directory, name);
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  let bytes = 0;
  try {
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) {
      hash.update(buffer.subarray(0, n));
      bytes += n;
    }
  } finally {
    closeSync(fd);
  }
  return { name, bytes, sha256: hash.digest('hex') };
};

/** fsync of a file, or of a directory (its entries: the new files' names); a read-only descriptor does on Linux. */
const syncPath = (path: string): void => {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
};

/** The real path of `path`, through symlinks, also when it does not exist yet (its nearest existing parent's). */
const realPathOf = (path: string): string => {
  try {
    return realpathSync(path);
  } catch {
    const parent = dirname(path);
    return parent === path ? path : join(realPathOf(parent), basename(path));
  }
};

/** Whether `path` is `dir` or lies below it (`dir/..snap` does: only a first segment that is `..` leads out). */
const isWithin = (path: string, dir: string): boolean => {
  const rel = relative(dir, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
};

/** Why a copied secret file is not one a hub could start from, or null (the start's own checks, bootstrap/secret.ts). */
const secretFileProblem = (name: string, text: string): string | null => {
  if (name !== DATA_FILES.hubKeys) return secretTextProblem(text, name === DATA_FILES.authSecret ? AUTH_SECRET_MIN_HEX_DIGITS : 32);
  try {
    const parsed = JSON.parse(text) as { owner?: unknown };
    return typeof parsed === 'object' && parsed !== null && typeof parsed.owner === 'string' ? null : 'is not the key file a hub writes';
  } catch {
    return text.trim().length === 0 ? 'is empty' : 'is not JSON';
  }
};
