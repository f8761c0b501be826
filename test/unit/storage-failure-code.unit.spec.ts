import { asStorageFailure } from '../../src/adapters/event-store/sqlite/storage-failure';

/**
 * Only a string code is read as SQLite's: a code that merely turns into 'SQLITE_FULL' as a string (an array, an
 * object with toString) is not a storage failure. Mutation testing found storage-failure.unit.spec.ts passing
 * with the string check gone (its non-string code, 13, never stringifies to a storage code).
 */
describe('asStorageFailure: a code that is not a string', () => {
  it('is not a storage failure, even when it stringifies to one', () => {
    expect(asStorageFailure({ code: ['SQLITE_FULL'] })).toBeUndefined();
    expect(asStorageFailure({ code: { toString: () => 'SQLITE_IOERR' } })).toBeUndefined();
    expect(asStorageFailure({ code: 'SQLITE_FULL' })).toBeDefined();
  });
});
