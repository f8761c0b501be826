import { statfsSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { UnavailableError } from '../../../domain/shared/errors';

/**
 * SQLite's result codes that say the file cannot be written now, not that what was written is wrong: the disk is
 * full or failing (the kernel may have remounted it read-only), or another process held the lock past the busy
 * timeout. SQLite rolled the write back, and the same write can succeed later, so it
 * becomes UnavailableError 'storage_unavailable': 503 with Retry-After over HTTP, a retry (not a dead letter) over
 * AMQP. Corruption (SQLITE_CORRUPT, SQLITE_NOTADB) is not among them: retrying does not mend it.
 */
const STORAGE_CODES = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|NOMEM)(_|$)/;

export const STORAGE_UNAVAILABLE = 'storage_unavailable';

/** The UnavailableError for a storage failure (its SQLite code kept as `cause`), else undefined. */
export const asStorageFailure = (error: unknown): UnavailableError | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !STORAGE_CODES.test(code)) return undefined;
  const failure = new UnavailableError(STORAGE_UNAVAILABLE, `the hub cannot store data now (${code}: disk full, failing or locked); the write did not happen; retry later`);
  (failure as { cause?: unknown }).cause = error;
  return failure;
};

/** How much room the disk must have again before a full store tries a write of its own (the stores' probeWrites). */
export const PROBE_FREE_BYTES = 1024 * 1024;

/** Bytes free to this process on the file system of `file` (Infinity when not a file, or not known). */
export const freeBytesBeside = (file: string): number => {
  if (file === ':memory:' || file === '') return Infinity;
  try {
    const fs = statfsSync(dirname(file));
    return fs.bavail * fs.bsize;
  } catch {
    return Infinity;
  }
};

/**
 * An error of opening a store's file, naming the file (its name only: a path may name a person or a host) and
 * keeping SQLite's code for whoever tells errors apart by it. A damaged file said "file is not a database" and
 * nothing more, whether it was the events' or the keys', which must be restored together.
 */
export const namedOpenFailure = (file: string, error: unknown): unknown => {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return error;
  const damaged = /^SQLITE_(NOTADB|CORRUPT)/.test(code);
  const named = new Error(
    `${basename(file)}: ${(error as Error).message} (${code})${damaged ? ": the file is damaged or not the hub's: restore the data directory from its backup (rts restore; the stores and the secrets together)" : ''}`,
    { cause: error },
  );
  (named as { code?: string }).code = code;
  return named;
};
