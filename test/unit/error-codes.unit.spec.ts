import { ExpectedVersionConflictError } from '../../src/application/ports/event-store';
import { ConflictError, ForbiddenError, NotFoundError, UnavailableError, ValidationError } from '../../src/domain/shared/errors';
import { codeAndStatusOf } from '../../src/adapters/errors/error-codes';
import { toProblem } from '../../src/adapters/http/problem';

/**
 * The code and status an AMQP handling's (and the library's) audit entry records for an error are the ones HTTP
 * answers the same error with: one vocabulary for both edges.
 */
describe('codeAndStatusOf', () => {
  const errors: [string, unknown, { code: string; status: number }][] = [
    ['a code of the catalogue keeps its own status', new ConflictError('consultation_not_accepted', 'x'), { code: 'consultation_not_accepted', status: 409 }],
    ['a forbidden step', new ForbiddenError('not_your_consultation', 'x'), { code: 'not_your_consultation', status: 403 }],
    ['a code of the catalogue whose status differs from its kind', new ValidationError('document_too_large', 'x'), { code: 'document_too_large', status: 413 }],
    ['a code outside the catalogue: its kind', new NotFoundError('no_such_thing_here', 'x'), { code: 'no_such_thing_here', status: 404 }],
    ['an unavailable store', new UnavailableError('audit_unavailable', 'x'), { code: 'audit_unavailable', status: 503 }],
    ['a version conflict', new ExpectedVersionConflictError('s', 0n, 1n), { code: 'concurrency_conflict', status: 409 }],
    ['PostgreSQL out of reach', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }), { code: 'storage_unavailable', status: 503 }],
    ['anything else', new TypeError('boom'), { code: 'internal_error', status: 500 }],
  ];

  it.each(errors)('%s', (_, error, expected) => {
    expect(codeAndStatusOf(error)).toEqual(expected);
    const { code, status } = toProblem(error, '');
    expect({ code, status }).toEqual(expected);
  });
});
