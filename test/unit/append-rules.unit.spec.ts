import {
  checkExpectedVersion,
  idempotencyOutcome,
  toJson,
  validateAppend,
  type StoredEventIdentity,
} from '../../src/adapters/event-store/append-rules';
import { ExpectedVersionConflictError, IdempotencyViolationError, type NewEvent } from '../../src/application/ports/event-store';

/**
 * The append rules every adapter shares (append-rules.ts), pinned on their own: the contract suite sees them only
 * through a store, and some of their edges (an empty stream name, an id that is not a string, which id a reuse is
 * reported for) no contract test reaches. Found unpinned by mutation testing.
 */
const event = (id: string): NewEvent => ({ id, type: 'Happened', data: {} });
const at = (streamName: string, streamVersion: bigint, globalPosition: bigint): StoredEventIdentity => ({ streamName, streamVersion, globalPosition });
const thrown = (fn: () => unknown): unknown => {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
};

describe('validateAppend', () => {
  it('refuses an empty stream name, and an empty batch, with a TypeError', () => {
    expect(() => validateAppend('', [event('a')])).toThrow(TypeError);
    expect(() => validateAppend('s', [])).toThrow(TypeError);
    expect(() => validateAppend('s', [event('a')])).not.toThrow();
  });

  it('refuses an event whose id is empty or not a string, wherever it is in the batch', () => {
    expect(() => validateAppend('s', [event('a'), event('')])).toThrow(TypeError);
    expect(() => validateAppend('s', [event('a'), { ...event('b'), id: 7 as unknown as string }])).toThrow(TypeError);
    expect(() => validateAppend('s', [event('a'), { ...event('b'), id: undefined as unknown as string }])).toThrow(TypeError);
  });

  it('refuses an id twice in one batch with IdempotencyViolationError naming the stream and the id', () => {
    const error = thrown(() => validateAppend('s', [event('a'), event('b'), event('a')]));
    expect(error).toBeInstanceOf(IdempotencyViolationError);
    expect(error).toMatchObject({ streamName: 's', eventId: 'a' });
    expect(() => validateAppend('s', [event('a'), event('b'), event('c')])).not.toThrow();
  });
});

describe('idempotencyOutcome', () => {
  const batch = [event('a'), event('b'), event('c')];

  it('is new when no id is stored', () => {
    expect(idempotencyOutcome('s', batch, [undefined, undefined, undefined])).toBe('new');
  });

  it('reports a repeat (all ids stored in this stream at consecutive versions) with its last version and position', () => {
    expect(idempotencyOutcome('s', batch, [at('s', 4n, 10n), at('s', 5n, 12n), at('s', 6n, 20n)])).toEqual({
      nextExpectedVersion: 6n,
      lastGlobalPosition: 20n,
      idempotent: true,
    });
  });

  it('is a reuse when the stored versions are not consecutive, or not in the batch order', () => {
    expect(() => idempotencyOutcome('s', batch, [at('s', 4n, 10n), at('s', 6n, 12n), at('s', 7n, 20n)])).toThrow(IdempotencyViolationError);
    expect(() => idempotencyOutcome('s', batch, [at('s', 5n, 12n), at('s', 4n, 10n), at('s', 6n, 20n)])).toThrow(IdempotencyViolationError);
  });

  it('is a reuse when the ids are stored in another stream, even at consecutive versions', () => {
    expect(() => idempotencyOutcome('s', batch, [at('t', 0n, 1n), at('t', 1n, 2n), at('t', 2n, 3n)])).toThrow(IdempotencyViolationError);
    expect(() => idempotencyOutcome('s', batch, [at('s', 0n, 1n), at('t', 1n, 2n), at('s', 2n, 3n)])).toThrow(IdempotencyViolationError);
  });

  it('is a reuse when only some ids are stored, and names the first stored one', () => {
    const error = thrown(() => idempotencyOutcome('s', batch, [undefined, at('s', 3n, 9n), undefined]));
    expect(error).toBeInstanceOf(IdempotencyViolationError);
    expect(error).toMatchObject({ streamName: 's', eventId: 'b' });
    expect(thrown(() => idempotencyOutcome('s', batch, [at('s', 3n, 9n), undefined, undefined]))).toMatchObject({ eventId: 'a' });
  });
});

describe('checkExpectedVersion', () => {
  const ok = (expected: Parameters<typeof checkExpectedVersion>[1], current: bigint | null) => () => checkExpectedVersion('s', expected, current);

  it('any passes a missing and an existing stream', () => {
    expect(ok('any', null)).not.toThrow();
    expect(ok('any', 3n)).not.toThrow();
  });

  it('no_stream passes only a missing stream; stream_exists only an existing one (version 0 included)', () => {
    expect(ok('no_stream', null)).not.toThrow();
    expect(ok('no_stream', 0n)).toThrow(ExpectedVersionConflictError);
    expect(ok('stream_exists', 0n)).not.toThrow();
    expect(ok('stream_exists', null)).toThrow(ExpectedVersionConflictError);
  });

  it('an exact version passes only that version, and reports the expected and actual versions', () => {
    expect(ok(2n, 2n)).not.toThrow();
    expect(ok(0n, null)).toThrow(ExpectedVersionConflictError);
    expect(ok(2n, 1n)).toThrow(ExpectedVersionConflictError);
    expect(ok(2n, 3n)).toThrow(ExpectedVersionConflictError);
    expect(thrown(ok(2n, 3n))).toMatchObject({ streamName: 's', expected: 2n, actual: 3n });
  });
});

describe('toJson', () => {
  it('serialises JSON values and refuses what JSON.stringify turns into nothing', () => {
    expect(toJson({ a: [1, 'x', null] })).toBe('{"a":[1,"x",null]}');
    expect(() => toJson(undefined)).toThrow(TypeError);
    expect(() => toJson(() => 1)).toThrow(TypeError);
  });
});
