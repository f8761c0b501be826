import {
  ANY,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  type AllStreamRecordedEvent,
  type AppendExpectedRevision,
  type CurrentRevision,
  type Position,
  type ReadPosition,
} from '@eventstore/db-client';
import { ExpectedVersionConflictError, type ExpectedVersion, type RecordedEvent } from '../../../application/ports/event-store';

/**
 * Pure mappings between the port and EventStoreDB's client types, kept apart from the adapter so they are tested
 * without a server (test/unit/esdb-mapping.unit.spec.ts).
 *
 * Versions: both sides count stream revisions from 0, so a bigint maps to itself; the three keywords map to the
 * client's constants of the same meaning.
 *
 * Positions: ESDB places an event in $all at {commit, prepare}, two byte offsets in its transaction log. The port
 * has one bigint, and we use the commit position. For everything written through the gRPC API (no explicit
 * transactions, which only the legacy TCP API could write) every event has its own commit position, strictly
 * increasing in commit order, and commit == prepare, so {c, c} rebuilds the full position exactly and the mapping
 * is lossless. Caveats: (1) a database that holds legacy explicit transactions has events sharing one commit
 * position; resuming from {c, c} could then skip or repeat events of that transaction; (2) positions are byte
 * offsets, so they have large gaps and are not comparable across databases (a restore or a copy to another
 * cluster renumbers them: checkpoints must be reset with the data); (3) ESDB reads $all forwards *inclusive* of
 * the start position, so the adapter drops events at or below the checkpoint itself.
 */

export function toEsdbExpectedRevision(expected: ExpectedVersion): AppendExpectedRevision {
  switch (expected) {
    case 'any':
      return ANY;
    case 'no_stream':
      return NO_STREAM;
    case 'stream_exists':
      return STREAM_EXISTS;
    default:
      if (expected < 0n) throw new RangeError(`expected version ${expected} is negative`);
      return expected;
  }
}

export function fromEsdbExpectedRevision(revision: AppendExpectedRevision): ExpectedVersion {
  switch (revision) {
    case ANY:
      return 'any';
    case NO_STREAM:
      return 'no_stream';
    case STREAM_EXISTS:
      return 'stream_exists';
    default:
      return revision;
  }
}

/** ESDB's "current revision" (a bigint, or no_stream) as the port's current version (null: no stream). */
export function fromEsdbCurrentRevision(revision: CurrentRevision | undefined): bigint | null {
  return typeof revision === 'bigint' ? revision : null;
}

/** WrongExpectedVersionError (or anything carrying its actualVersion) as the port's one conflict error. */
export function toConflictError(
  error: { readonly actualVersion?: CurrentRevision },
  streamName: string,
  expected: ExpectedVersion,
): ExpectedVersionConflictError {
  return new ExpectedVersionConflictError(streamName, expected, fromEsdbCurrentRevision(error.actualVersion));
}

/** Where to start reading $all for "events after checkpoint `after`" (inclusive: drop the event at `after`). */
export function toReadPosition(after: bigint): ReadPosition {
  return after <= 0n ? START : { commit: after, prepare: after };
}

/** The port's global position of an event in $all: its commit position. */
export function toGlobalPosition(position: Position): bigint {
  return position.commit;
}

/** System streams and system events ($-prefixed: $stats-*, $settings, $> links, $metadata, ...) stay hidden. */
export function isSystemEvent(event: { readonly streamId: string; readonly type: string }): boolean {
  return event.streamId.startsWith('$') || event.type.startsWith('$');
}

/**
 * A recorded ESDB event as the port's RecordedEvent, or null for what the port never shows: system events, and
 * events that are not JSON objects (written by something other than this adapter). The server sends the log
 * position with stream reads too; `commitPosition` (of the resolved event) is the fallback if it ever does not.
 */
export function toRecordedEvent(
  event: Pick<AllStreamRecordedEvent, 'id' | 'type' | 'streamId' | 'revision' | 'created' | 'isJson' | 'data' | 'metadata'> & {
    position?: Position | undefined;
  },
  commitPosition?: bigint,
): RecordedEvent | null {
  if (isSystemEvent(event) || !event.isJson || !isJsonObject(event.data)) return null;
  return {
    id: event.id,
    type: event.type,
    data: event.data,
    metadata: isJsonObject(event.metadata) ? event.metadata : {},
    streamName: event.streamId,
    streamVersion: event.revision,
    globalPosition: event.position ? toGlobalPosition(event.position) : (commitPosition ?? 0n),
    recordedAt: event.created.toISOString(),
  };
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}
