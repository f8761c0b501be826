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
