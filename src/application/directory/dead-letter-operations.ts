import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../../domain/shared/errors';
import type { DirectoryReadModel } from './directory-read-model';
import type { Clock } from '../ports/clock';
import type { EventStore } from '../ports/event-store';
import type { IdGenerator } from '../ports/id-generator';
import { sha256Hex } from '../ids';

/**
 * Operators' work on the dead letter queue: list, inspect, replay. The queue itself is behind a port
 * (`DeadLetterQueue`, on AMQP in src/adapters/messaging/dead-letters.ts); this use case finds the message,
 * replays it to the queue it came from, and records every replay in the event store:
 *
 *   stream  `dead-letter-<envelopeId>` (or `dead-letter-<deadLetterId>` when the body had no readable id)
 *   event   DeadLetterReplayed { deadLetterId, envelopeId, at, by, reason, sourceQueue, deadLetterReason,
 *                                attempts, replayCount, moved }
 *
 * A dead letter is found by its own id (`rts_dlq_id`, given by the hub when it dead-lettered the message), by
 * our envelope id, or by the broker's message id as the browse shows it. Errors: NotFoundError
 * 'dead_letter_not_found'; ConflictError 'dead_letter_without_source' (no x-dlq-source-queue),
 * 'dead_letter_not_selectable' (neither our id nor an envelope id: cannot be taken off the queue selectively);
 * ValidationError 'replay_target_refused' (below); UnavailableError 'service_unavailable' when the hub runs without
 * a broker.
 *
 * Where a replay may go. The hub's broker account may write to any queue, while a system's account may send to the
 * dead letter queue (client-side dead-lettering), so x-dlq-source-queue is whatever that system wrote. A replay
 * therefore goes only to a queue the hub itself consumes or delivers to (ReplayTargets): the uplink queue, or the
 * downlink queue of a registered system. Any other source queue (an invented one, the dead letter queue itself, the
 * downlink queue of a system that is not registered) is refused and the message stays on the dead letter queue.
 */
export type DeadLetter = Readonly<{
  /** The dead letter's own id (rts_dlq_id), else the envelope id, else the broker's message id. */
  id: string;
  deadLetterId: string | null;
  envelopeId: string | null;
  brokerMessageId: string | null;
  type: string | null;
  systemId: string | null;
  correlationId: string | null;
  reason: string | null;
  sourceQueue: string | null;
  attempts: number | null;
  deadLetteredAt: string | null;
  /** How often this message was replayed from a dead letter queue before (x-replay-count). */
  replayCount: number;
  body: string;
  applicationProperties: Readonly<Record<string, unknown>>;
}>;

export type ReplaySelection = Readonly<{ property: 'rts_dlq_id' | 'messageId'; value: string }>;

export interface DeadLetterQueue {
  /** Browse (without consuming) up to `limit` messages, oldest first. */
  browse(limit: number): Promise<readonly DeadLetter[]>;
  /**
   * Take the messages matching `selection` off the dead letter queue, each sent back to `sourceQueue` first
   * (durable, accepted by the broker) and only then removed; resolves with the ones moved.
   */
  moveBack(selection: ReplaySelection, sourceQueue: string, max: number): Promise<readonly DeadLetter[]>;
}

/** Re-exported where it was first defined (it is the shared errors' now). */
export { UnavailableError };

export type DeadLetterReplayed = Readonly<{
  type: 'DeadLetterReplayed';
  data: {
    deadLetterId: string | null;
    envelopeId: string | null;
    at: string;
    /** Who replayed: the caller's authenticated subject over HTTP (a token's sub), not a name they typed. */
    by: string;
    /** What the caller wrote about who asked (the HTTP body's `by`), when given; absent in replays before 2026-12. */
    note?: string | null;
    reason: string | null;
    sourceQueue: string;
    deadLetterReason: string | null;
    attempts: number | null;
    replayCount: number;
    moved: number;
  };
}>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * The stream of a dead letter's replays: `dead-letter-<id>` for a UUID (an envelope id, the hub's own dead letter
 * id), else `dead-letter-h<32 hex of its SHA-256>`. The envelope id of a dead letter can be the sender's `messageId`
 * property, which the hub never checked against the envelope it opened: a CPR number there became a stream name.
 */
export const deadLetterStreamName = (id: string): string => `dead-letter-${UUID.test(id) ? id : `h${sha256Hex(id).slice(0, 32)}`}`;
/** An id stored in a replay's event only when it is a UUID (see deadLetterStreamName). */
const uuidOrNull = (id: string | null): string | null => (id !== null && UUID.test(id) ? id : null);

/** Most dead letters one browse looks through to find one by id. */
export const MAX_BROWSE = 10_000;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;
const ID = /^[A-Za-z0-9._:-]{1,200}$/;

export type ReplayInput = Readonly<{ by: string; note?: string; reason?: string }>;
export type ReplayResult = Readonly<{ deadLetter: DeadLetter; moved: number; sourceQueue: string; event: DeadLetterReplayed['data']; streamName: string }>;

/** What the hub uses a queue for: its uplink queue, or the downlink queue of one registered system. */
export type ReplayTarget = Readonly<{ kind: 'uplink' } | { kind: 'downlink'; systemId: string }>;

export interface ReplayTargets {
  /** What the hub uses `queue` for, or null: the hub neither consumes it nor delivers to it. */
  resolve(queue: string): Promise<ReplayTarget | null>;
}

/**
 * The hub's replay targets: `uplinkQueue`, and each registered system's downlink queue as the directory recorded it
 * at registration (the queue the downlink publisher writes to).
 */
export const hubReplayTargets = (deps: Readonly<{ uplinkQueue: string; systems: Pick<DirectoryReadModel, 'listSystemRows'>; catchUp?: () => Promise<void> }>): ReplayTargets => ({
  async resolve(queue) {
    if (queue === deps.uplinkQueue) return { kind: 'uplink' };
    await deps.catchUp?.();
    const system = (await deps.systems.listSystemRows()).find((s) => s.downlinkQueue === queue);
    return system ? { kind: 'downlink', systemId: system.systemId } : null;
  },
});

export type DeadLetterServiceDependencies = Readonly<{
  /** null: the hub runs without a broker; every call answers UnavailableError. */
  queue: DeadLetterQueue | null;
  store: EventStore;
  clock: Clock;
  ids: IdGenerator;
  /** The only queues a replay may write to. */
  replayTargets: ReplayTargets;
}>;

export const matchesDeadLetter = (d: DeadLetter, id: string): boolean => d.deadLetterId === id || d.envelopeId === id || d.brokerMessageId === id || d.id === id;

export const replaySelectionOf = (d: DeadLetter): ReplaySelection | null => {
  if (d.deadLetterId !== null && ID.test(d.deadLetterId)) return { property: 'rts_dlq_id', value: d.deadLetterId };
  if (d.envelopeId !== null && ID.test(d.envelopeId)) return { property: 'messageId', value: d.envelopeId };
  return null;
};

export class DeadLetterService {
  constructor(private readonly deps: DeadLetterServiceDependencies) {}

  get available(): boolean {
    return this.deps.queue !== null;
  }

  private queue(): DeadLetterQueue {
    if (!this.deps.queue) throw new UnavailableError('service_unavailable', 'the hub runs without a message broker (RTS_BROKER_URL is not set)');
    return this.deps.queue;
  }

  async list(limit = DEFAULT_LIST_LIMIT): Promise<readonly DeadLetter[]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new ValidationError('invalid_request', `limit must be 1..${MAX_LIST_LIMIT}`, [{ path: 'query.limit', message: `must be 1..${MAX_LIST_LIMIT}` }]);
    }
    return this.queue().browse(limit);
  }

  async get(id: string): Promise<DeadLetter> {
    const queue = this.queue();
    if (!ID.test(id)) throw new NotFoundError('dead_letter_not_found', 'no dead letter has this id');
    const found = (await queue.browse(MAX_BROWSE)).find((d) => matchesDeadLetter(d, id));
    if (!found) throw new NotFoundError('dead_letter_not_found', 'no dead letter has this id');
    return found;
  }

  async replay(id: string, input: ReplayInput): Promise<ReplayResult> {
    const queue = this.queue();
    const deadLetter = await this.get(id);
    const sourceQueue = deadLetter.sourceQueue;
    if (!sourceQueue) throw new ConflictError('dead_letter_without_source', 'the dead letter does not record the queue it came from (x-dlq-source-queue)');
    if (!(await this.deps.replayTargets.resolve(sourceQueue))) {
      throw new ValidationError(
        'replay_target_refused',
        "the dead letter's source queue (x-dlq-source-queue) is not one the hub replays to: only its uplink queue and registered systems' downlink queues; the message stays on the dead letter queue",
        [{ path: 'applicationProperties.x-dlq-source-queue', message: 'not the uplink queue nor a registered system\'s downlink queue' }],
      );
    }
    // By the id the hub gave this copy when it has one (exactly this message), else by the envelope id (every
    // copy of that message: the consumer dedupes by envelope id, so moving them all back is safe).
    const byEnvelope = id === deadLetter.envelopeId && id !== deadLetter.deadLetterId;
    const selection = byEnvelope ? replaySelectionOf({ ...deadLetter, deadLetterId: null }) : replaySelectionOf(deadLetter);
    if (!selection) {
      throw new ConflictError('dead_letter_not_selectable', 'the dead letter has neither a dead letter id nor an envelope id, so it cannot be taken off the queue selectively');
    }
    const moved = await queue.moveBack(selection, sourceQueue, 100);
    if (moved.length === 0) throw new NotFoundError('dead_letter_not_found', 'the dead letter is no longer on the queue (replayed meanwhile?)');
    const event: DeadLetterReplayed['data'] = {
      deadLetterId: uuidOrNull(deadLetter.deadLetterId),
      envelopeId: uuidOrNull(deadLetter.envelopeId),
      at: this.deps.clock.now().toUTC().toISO()!,
      by: input.by,
      note: input.note ?? null,
      reason: input.reason ?? null,
      sourceQueue,
      deadLetterReason: deadLetter.reason,
      attempts: deadLetter.attempts,
      replayCount: deadLetter.replayCount + 1,
      moved: moved.length,
    };
    const streamName = deadLetterStreamName(deadLetter.envelopeId ?? deadLetter.deadLetterId ?? deadLetter.id);
    await this.deps.store.appendToStream(streamName, [{ id: this.deps.ids.uuid(), type: 'DeadLetterReplayed', data: event, metadata: { operator: input.by } }], { expectedVersion: 'any' });
    return { deadLetter, moved: moved.length, sourceQueue, event, streamName };
  }

  /** The recorded replays of one message (by envelope id or dead letter id). */
  async replays(id: string): Promise<readonly DeadLetterReplayed['data'][]> {
    if (!ID.test(id)) return [];
    const { events } = await this.deps.store.readStream(deadLetterStreamName(id));
    return events.filter((e) => e.type === 'DeadLetterReplayed').map((e) => e.data as DeadLetterReplayed['data']);
  }
}
