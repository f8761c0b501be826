import { ANY, NO_STREAM, START, STREAM_EXISTS } from '@eventstore/db-client';
import {
  fromEsdbCurrentRevision,
  fromEsdbExpectedRevision,
  isSystemEvent,
  toConflictError,
  toEsdbExpectedRevision,
  toGlobalPosition,
  toReadPosition,
  toRecordedEvent,
} from '../../src/adapters/event-store/esdb/esdb-mapping';
import { ExpectedVersionConflictError, type ExpectedVersion } from '../../src/application/ports/event-store';

describe('EventStoreDB mapping: expected versions', () => {
  it.each<[ExpectedVersion, unknown]>([
    [0n, 0n],
    [41n, 41n],
    [(1n << 62n) + 7n, (1n << 62n) + 7n],
    ['no_stream', NO_STREAM],
    ['stream_exists', STREAM_EXISTS],
    ['any', ANY],
  ])('%p maps to %p and back', (port, esdb) => {
    expect(toEsdbExpectedRevision(port)).toBe(esdb);
    expect(fromEsdbExpectedRevision(toEsdbExpectedRevision(port))).toBe(port);
  });

  it('refuses a negative revision instead of sending it', () => {
    expect(() => toEsdbExpectedRevision(-1n)).toThrow(RangeError);
  });

  it('maps the current revision: a bigint is the version, no_stream is null', () => {
    expect(fromEsdbCurrentRevision(5n)).toBe(5n);
    expect(fromEsdbCurrentRevision(0n)).toBe(0n);
    expect(fromEsdbCurrentRevision(NO_STREAM)).toBeNull();
    expect(fromEsdbCurrentRevision(undefined)).toBeNull();
  });

  it('turns WrongExpectedVersionError into the port’s conflict error with the actual version', () => {
    const error = toConflictError({ actualVersion: 3n }, 'consultation-1', 1n);
    expect(error).toBeInstanceOf(ExpectedVersionConflictError);
    expect(error).toMatchObject({ streamName: 'consultation-1', expected: 1n, actual: 3n, code: 'expected_version_conflict' });
    expect(toConflictError({ actualVersion: NO_STREAM }, 's', 'stream_exists').actual).toBeNull();
  });
});

describe('EventStoreDB mapping: positions', () => {
  it('uses the commit position as the global position', () => {
    expect(toGlobalPosition({ commit: 1_334_634n, prepare: 1_334_634n })).toBe(1_334_634n);
  });

  it('starts $all at the beginning for checkpoint 0, else at {commit, prepare} = the checkpoint', () => {
    expect(toReadPosition(0n)).toBe(START);
    expect(toReadPosition(-5n)).toBe(START);
    expect(toReadPosition(987_654n)).toEqual({ commit: 987_654n, prepare: 987_654n });
  });

  it('round-trips a position through the checkpoint (commit == prepare for gRPC-written events)', () => {
    const position = { commit: 2_000_123n, prepare: 2_000_123n };
    expect(toReadPosition(toGlobalPosition(position))).toEqual(position);
  });
});

describe('EventStoreDB mapping: recorded events', () => {
  const base = {
    id: '5b1f6f3e-0c1a-4d0b-9d7e-3a1f0e2b4c5d',
    type: 'ObservationRecorded',
    streamId: 'series-abc',
    revision: 4n,
    created: new Date('2017-05-10T14:00:00.123Z'),
    isJson: true as const,
    data: { systolic: 120 },
    metadata: { correlationId: 'c-1' },
    position: { commit: 5000n, prepare: 5000n },
  };

  it('maps a JSON event to the port’s RecordedEvent', () => {
    expect(toRecordedEvent(base)).toEqual({
      id: base.id,
      type: 'ObservationRecorded',
      data: { systolic: 120 },
      metadata: { correlationId: 'c-1' },
      streamName: 'series-abc',
      streamVersion: 4n,
      globalPosition: 5000n,
      recordedAt: '2017-05-10T14:00:00.123Z',
    });
  });

  it('defaults missing metadata to {} and falls back to the resolved commit position', () => {
    const event = toRecordedEvent({ ...base, metadata: undefined, position: undefined }, 777n);
    expect(event?.metadata).toEqual({});
    expect(event?.globalPosition).toBe(777n);
  });

  it('hides system events and streams, and events that are not JSON objects', () => {
    expect(isSystemEvent({ streamId: '$stats-127.0.0.1:2113', type: '$statsCollected' })).toBe(true);
    expect(isSystemEvent({ streamId: 'series-abc', type: '$>' })).toBe(true);
    expect(isSystemEvent({ streamId: '$$series-abc', type: '$metadata' })).toBe(true);
    expect(isSystemEvent({ streamId: 'series-abc', type: 'ObservationRecorded' })).toBe(false);
    expect(toRecordedEvent({ ...base, type: '$metadata' })).toBeNull();
    expect(toRecordedEvent({ ...base, streamId: '$settings' })).toBeNull();
    expect(toRecordedEvent({ ...base, isJson: false as never, data: new Uint8Array([1]) as never })).toBeNull();
    expect(toRecordedEvent({ ...base, data: [1, 2] as never })).toBeNull();
  });
});
