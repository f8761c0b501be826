import { asStorageFailure } from '../../src/adapters/event-store/sqlite/storage-failure';
import { UnavailableError } from '../../src/domain/shared/errors';

const sqliteError = (code: string) => Object.assign(new Error('database says no'), { code });

describe('asStorageFailure: which SQLite errors mean "cannot write now"', () => {
  it.each(['SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_IOERR_WRITE', 'SQLITE_IOERR_FSYNC', 'SQLITE_READONLY', 'SQLITE_BUSY', 'SQLITE_BUSY_SNAPSHOT', 'SQLITE_CANTOPEN'])(
    '%s: UnavailableError storage_unavailable, the cause kept',
    (code) => {
      const error = sqliteError(code);
      const failure = asStorageFailure(error);
      expect(failure).toBeInstanceOf(UnavailableError);
      expect(failure).toMatchObject({ code: 'storage_unavailable', kind: 'unavailable', cause: error });
      expect(failure!.message).toContain(code);
      expect(failure!.message).not.toContain('database says no');
    },
  );

  it.each(['SQLITE_CONSTRAINT_UNIQUE', 'SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_ERROR', 'SQLITE_FULLNESS', 'ENOSPC'])('%s: not a storage failure (left as it is)', (code) => {
    expect(asStorageFailure(sqliteError(code))).toBeUndefined();
  });

  it('leaves anything without a string code alone', () => {
    expect(asStorageFailure(new Error('x'))).toBeUndefined();
    expect(asStorageFailure(null)).toBeUndefined();
    expect(asStorageFailure({ code: 13 })).toBeUndefined();
  });
});
