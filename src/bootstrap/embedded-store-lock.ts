import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BACKUP_MANIFEST } from '../adapters/backup/data-dir-backup';
import { DATA_FILES } from '../adapters/system/data-dir';
import { DataDirInUseError, lockDataDir, type DataDirLock } from '../adapters/system/data-dir-lock';
import { ConfigError, type Config } from './config';

/**
 * One process per embedded store, a hub or a library (data-dir-lock.ts): the held lock, or null for the shared
 * stores (PostgreSQL, EventStoreDB). Another process holding it is a ConfigError naming `setting`, the name the
 * caller knows the data directory by (RTS_DATA_DIR for the hub, dataDir for the library).
 *
 * A backup (a directory with its manifest, backup.json) is refused before anything is written into it: a hub or a
 * library opened on one ran on it and changed its files at once (the store's settings, the lock, the secrets it
 * lacked), and from then on the backup no longer matched its manifest, so `rts restore` and restoreDataDir refused
 * it as damaged: the copy kept to restore from was gone. A restore never writes the manifest into a data directory.
 */
export const lockEmbeddedStore = (config: Config, setting: string): DataDirLock | null => {
  if (config.RTS_EVENT_STORE !== 'sqlite') return null;
  if (existsSync(join(config.RTS_DATA_DIR, BACKUP_MANIFEST))) {
    // A backup never holds hub.lock (neither rts backup nor rts restore writes one): with it, a hub or library has run
    // here (a build before this check, or a backup copied over the directory by hand), the files no longer match the
    // manifest and "restore it" fails as damaged. Still refused (a hub started on a backup target while the backup ran
    // leaves one too), but told how to go on with the directory as what it is.
    const ranHere = existsSync(join(config.RTS_DATA_DIR, DATA_FILES.hubLock))
      ? ` It also holds ${DATA_FILES.hubLock}, so a hub or library has run on it: if it is a data directory (a backup copied into it by hand, then run on), move ${BACKUP_MANIFEST} out of it and start again (it no longer describes the files, and rts restore refuses it as damaged)`
      : '';
    throw new ConfigError([
      `${setting}: ${config.RTS_DATA_DIR} is a backup (it holds ${BACKUP_MANIFEST}), not a data directory: opened, its files would change and it would no longer restore. Restore it into a new directory (rts restore, or restoreDataDir) and open that one.${ranHere}`,
    ]);
  }
  let lock: DataDirLock;
  try {
    lock = lockDataDir(config.RTS_DATA_DIR);
  } catch (error) {
    // Said for both cases: a second openTeleMed on one dataDir in the same process was told of "another hub process".
    if (error instanceof DataDirInUseError) throw new ConfigError([`${setting}: ${error.message}: stop or close that one first, or give this one another ${setting}`]);
    throw error;
  }
  // Looked for once the lock is held (its file made first): a restore that claims the directory after that sees the
  // lock's file and gives way (claimEmptyDirectory), so one of the two always sees the other. A hub started on a
  // directory that `rts restore` was still writing ran on the files copied so far, generated the secrets not yet
  // copied, and the restore, meeting those, failed and deleted the directory under the running hub.
  if (existsSync(join(config.RTS_DATA_DIR, DATA_FILES.inProgress))) {
    lock.release();
    throw new ConfigError([
      `${setting}: ${DATA_FILES.inProgress} is in the data directory: rts restore (or rts backup) is writing into it, or was stopped before it finished. Wait for it to finish; if it was interrupted, delete the directory and run rts restore again`,
    ]);
  }
  return lock;
};
