import {
  ExpectedVersionConflictError,
  IdempotencyViolationError,
  type AppendResult,
  type ExpectedVersion,
  type NewEvent,
} from '../../application/ports/event-store';

/**
 * The rules of appendToStream that do not depend on the store: every adapter applies them in the same order,
 * inside its write transaction, so the contract suite sees one behaviour.
 *
 *   1. validate the batch (not empty, no id twice);
 *   2. idempotency: look up the ids; all stored in this stream at consecutive versions → report what is stored;
 *      some stored → IdempotencyViolationError (checked before the expected version, so a retry whose expected
 *      version has gone stale is still recognised as a retry);
 *   3. expected version against the stream's current version;
 *   4. write at current + 1 ...
 */

/** Where an event id is already stored, if it is. */
export type StoredEventIdentity = Readonly<{ streamName: string; streamVersion: bigint; globalPosition: bigint }>;

export function validateAppend(streamName: string, events: readonly NewEvent[]): void {
  if (streamName.length === 0) throw new TypeError('appendToStream: the stream name is empty');
  if (events.length === 0) throw new TypeError(`appendToStream: no events to append to stream ${streamName}`);
  const seen = new Set<string>();
  for (const event of events) {
    if (typeof event.id !== 'string' || event.id.length === 0) throw new TypeError('appendToStream: an event has no id');
    if (seen.has(event.id)) throw new IdempotencyViolationError(streamName, event.id);
    seen.add(event.id);
  }
}

/**
 * Decide from the stored identities of the batch's ids (same order as the batch, undefined when not stored)
 * whether the append is new, a repeat, or a reuse of ids.
 */
export function idempotencyOutcome(
  streamName: string,
  events: readonly NewEvent[],
  stored: readonly (StoredEventIdentity | undefined)[],
): 'new' | AppendResult {
  if (stored.every((s) => s === undefined)) return 'new';
  const first = stored[0];
  const isRepeat =
    first !== undefined &&
    stored.length === events.length &&
    stored.every((s, i) => s !== undefined && s.streamName === streamName && s.streamVersion === first.streamVersion + BigInt(i));
  if (!isRepeat) {
    const reused = events[stored.findIndex((s) => s !== undefined)];
    throw new IdempotencyViolationError(streamName, reused?.id ?? '');
  }
  const last = stored[stored.length - 1] as StoredEventIdentity;
  return { nextExpectedVersion: last.streamVersion, lastGlobalPosition: last.globalPosition, idempotent: true };
}

/** Throws ExpectedVersionConflictError unless `current` (null: no stream) satisfies `expected`. */
export function checkExpectedVersion(streamName: string, expected: ExpectedVersion, current: bigint | null): void {
  const ok =
    expected === 'any' ||
    (expected === 'no_stream' && current === null) ||
    (expected === 'stream_exists' && current !== null) ||
    (typeof expected === 'bigint' && current === expected);
  if (!ok) throw new ExpectedVersionConflictError(streamName, expected, current);
}

/** Data and metadata are stored as JSON; every adapter (in-memory too) round-trips them through it. */
export function toJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError('event data and metadata must be JSON objects');
  return json;
}
