import { HUB_KEYS_FILE_NAME } from '../crypto/hub-keys';

/**
 * What the embedded profile keeps in its data directory (RTS_DATA_DIR), by file name. One list, so that the
 * container that creates these files and the backup that copies them cannot drift apart.
 */
export const DATA_FILES = {
  /** The event store, with the registry, directory and consultation projections in the same file. */
  events: 'telemed.sqlite',
  /** Each patient's data key (crypto-shredding); without it the sealed documents cannot be opened. */
  patientKeys: 'patient-keys.sqlite',
  /** The HMAC secret of the pseudonymous patient keys; without it no patient's data can be found. */
  pseudonymSecret: 'pseudonym.secret',
  /** The HS256 secret of the embedded profile's bearer tokens. */
  authSecret: 'auth.secret',
  /** The hub's own message keys (JOSE). */
  hubKeys: HUB_KEYS_FILE_NAME,
  /** Held by the running hub process (data-dir-lock.ts); not part of a backup. */
  hubLock: 'hub.lock',
  /**
   * Present while `rts backup` or `rts restore` writes into a directory (data-dir-backup.ts), and left behind by one
   * that was killed: a hub or library refuses such a directory (embedded-store-lock.ts).
   */
  inProgress: '.rts-in-progress',
  /**
   * Written by `rts restore` into the directory it restores (data-dir-backup.ts), and removed only by the operator's
   * `rts restore --done` once the erasures made after the backup are repeated: until then a hub with a broker
   * configured refuses to start there (restored-data-dir.ts), since it would send those patients' texts at once.
   */
  restored: 'restored-from-backup.json',
} as const;

/** The SQLite files among them, in the order a backup takes them (see backupDataDir). */
export const DATA_DATABASES = [DATA_FILES.events, DATA_FILES.patientKeys] as const;

/** The small files copied as they are. */
export const DATA_SECRETS = [DATA_FILES.pseudonymSecret, DATA_FILES.authSecret, DATA_FILES.hubKeys] as const;
