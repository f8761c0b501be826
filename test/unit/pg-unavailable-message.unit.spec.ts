// What a PostgreSQL store says when it cannot be reached: every caller gets it, readers too (a projection catching
// up, a query), so it must not tell a reader that its "last write" may be lost; it did say so, and read-only
// projections logged it.
import { asPgUnavailable } from '../../src/adapters/event-store/postgres/sql';
import { UnavailableError } from '../../src/domain/shared/errors';

describe('asPgUnavailable', () => {
  it('is storage_unavailable with the reason and the retry advice, and claims no write of its own', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const failure = asPgUnavailable(refused) as UnavailableError;
    expect(failure).toBeInstanceOf(UnavailableError);
    expect(failure.code).toBe('storage_unavailable');
    expect(failure.message).toMatch(/^the hub cannot reach its database now \(ECONNREFUSED\); try again later/);
    expect(failure.message).toMatch(/may or may not be stored/);
    expect(failure.message).not.toMatch(/the last write/);
    expect((failure as { cause?: unknown }).cause).toBe(refused);
  });

  it('leaves other errors alone', () => {
    const unique = Object.assign(new Error('duplicate key'), { code: '23505' });
    expect(asPgUnavailable(unique)).toBe(unique);
  });
});
