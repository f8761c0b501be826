import { mayHoldCprDigits } from '../../domain/monitoring/cpr-like';
import { ConflictError, NotFoundError, UnavailableError, ValidationError } from '../../domain/shared/errors';
import type { DirectoryReadModel } from './directory-read-model';
import type { Clock } from '../ports/clock';
import type { EventStore } from '../ports/event-store';
import type { IdGenerator } from '../ports/id-generator';
import { sha256Hex } from '../ids';

/**
 * Operators' work on the dead letter queue: list, inspect, replay, discard. The queue itself is behind a port
 * (`DeadLetterQueue`, on AMQP in src/adapters/messaging/dead-letters.ts); this use case finds the message,
 * replays it to the queue it came from or discards it, and records each in the event store:
 *
 *   stream  `dead-letter-<envelopeId>` (or `dead-letter-<deadLetterId>` when the body had no readable id)
 *   event   DeadLetterReplayed { deadLetterId, envelopeId, at, by, reason, sourceQueue, deadLetterReason,
 *                                attempts, replayCount, moved }
 *   event   DeadLetterDiscarded { deadLetterId, envelopeId, deadLetterIds, at, by, reason, sourceQueue,
 *                                 deadLetterReason, attempts, replayCount, removed }   (never the body)
 *   stream  `dead-letter-<deadLetterId>` of each discarded copy, when that is another stream:
 *   event   DeadLetterDiscardLinked { deadLetterId, recordedIn, eventId }: where its DeadLetterDiscarded is, so that the
 *           copy's own id (the one `GET /dead-letters` lists) finds the record once the message is gone
 *
 * A dead letter is found by its own id (`rts_dlq_id`, given by the hub when it dead-lettered the message), by
 * our envelope id, or by the broker's message id as the browse shows it. Errors: NotFoundError
 * 'dead_letter_not_found'; DeadLetterDiscardedError 'dead_letter_discarded' (not on the queue, and the last thing
 * recorded for that id is a discard: 410 over HTTP, with the record); ConflictError 'dead_letter_without_source' (no
 * x-dlq-source-queue), 'dead_letter_not_selectable' (no id of the form that selects: not expected, as every dead letter
 * has a content id), 'dead_letter_taken' (it was on the queue, but another request, a replay or a discard, took it
 * off meanwhile: nothing was done); ValidationError 'replay_target_refused' (below); UnavailableError
 * 'service_unavailable' when the hub runs without a broker.
 *
 * A replay and a discard of the same message race on the broker: both take it off the queue by the same selector,
 * and the broker hands it to one of them only. A discard records its event while the broker holds the message for
 * it, and removes the message only once the event is stored (a failed append leaves it a dead letter); a replay
 * records its event after the move, as before.
 *
 * Where a replay may go. The hub's broker account may write to any queue, while a system's account may send to the
 * dead letter queue (client-side dead-lettering), so x-dlq-source-queue is whatever that system wrote. A replay
 * therefore goes only to a queue the hub itself consumes or delivers to (ReplayTargets): the uplink queue, or the
 * downlink queue of a registered system. Any other source queue (an invented one, the dead letter queue itself, the
 * downlink queue of a system that is not registered) is refused and the message stays on the dead letter queue.
 */
export type DeadLetter = Readonly<{
  /**
   * The dead letter's own id (rts_dlq_id), else the envelope id, else the message id its sender set: the first of them
   * of the form an id takes here (DEAD_LETTER_ID_FORM), else its content id.
   */
  id: string;
  deadLetterId: string | null;
  envelopeId: string | null;
  brokerMessageId: string | null;
  /**
   * An id made from what the message holds (its body and application properties: identical messages share it), for
   * one that carries no id of that form. `c-` and 24 letters: no digits, so never mistaken for a CPR number.
   */
  contentId: string;
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

/**
 * How a replay or discard picks its message(s) on the queue: by the hub's dead letter id (`rts_dlq_id`), by the
 * envelope id (the `messageId` property), for a message that carries neither by the message id its sender set
 * (`brokerMessageId`: the adapter turns it into the broker's own selector), and for one without any of them by its
 * content id (`contentId`: no selector can match it; the adapter looks through the queue).
 */
export type ReplaySelection = Readonly<{ property: 'rts_dlq_id' | 'messageId' | 'brokerMessageId' | 'contentId'; value: string }>;

export interface DeadLetterQueue {
  /** Browse (without consuming) up to `limit` messages, oldest first. */
  browse(limit: number): Promise<readonly DeadLetter[]>;
  /**
   * Take the messages matching `selection` off the dead letter queue, each sent back to `sourceQueue` first
   * (durable, accepted by the broker) and only then removed; resolves with the ones moved.
   */
  moveBack(selection: ReplaySelection, sourceQueue: string, max: number): Promise<readonly DeadLetter[]>;
  /**
   * Take the messages matching `selection` off the dead letter queue for good, by the same means as moveBack.
   * `record` is called with the ones found while the broker holds them for this call alone (a concurrent moveBack
   * or remove does not get them); they are removed only once it resolved, and left on the queue when it throws.
   * Resolves with the ones removed: none when no message matches (any more).
   */
  remove(selection: ReplaySelection, max: number, record: (found: readonly DeadLetter[]) => Promise<void>): Promise<readonly DeadLetter[]>;
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

export type DeadLetterDiscarded = Readonly<{
  type: 'DeadLetterDiscarded';
  data: {
    /** The copy addressed (as in a replay's event: only a UUID is stored, see deadLetterStreamName). */
    deadLetterId: string | null;
    envelopeId: string | null;
    /** The copies taken off the queue (by envelope id: every copy of that message), those whose id is a UUID. */
    deadLetterIds: string[];
    at: string;
    /** Who discarded: the caller's authenticated subject over HTTP (a token's sub). */
    by: string;
    /** Why, in the caller's words (required; never a CPR number). */
    reason: string;
    /** The source queue and the dead-lettering reason as the message carried them; null where they could hold a CPR number. */
    sourceQueue: string | null;
    deadLetterReason: string | null;
    attempts: number | null;
    replayCount: number;
    removed: number;
  };
}>;

/** In the stream of a discarded copy's own id, when its DeadLetterDiscarded is in another one (its envelope's). */
export type DeadLetterDiscardLinked = Readonly<{ type: 'DeadLetterDiscardLinked'; data: { deadLetterId: string | null; recordedIn: string; eventId: string } }>;

export type DiscardRecord = DeadLetterDiscarded['data'] & Readonly<{ recordedIn: string }>;

/**
 * The id asked for is no longer on the dead letter queue, and the last thing recorded for it is a discard: 410 over
 * HTTP, with the record. The message does not name who discarded it (it may reach a log); the record does.
 */
export class DeadLetterDiscardedError extends NotFoundError {
  constructor(readonly record: DiscardRecord) {
    super('dead_letter_discarded', `the dead letter was discarded at ${record.at} and is no longer on the dead letter queue (the discard record says by whom and why)`);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/**
 * The stream of a dead letter's replays: `dead-letter-<id>` for a UUID (an envelope id, the hub's own dead letter
 * id), else `dead-letter-h<32 hex of its SHA-256>`. The envelope id of a dead letter can be the sender's `messageId`
 * property, which the hub never checked against the envelope it opened: a CPR number there became a stream name.
 */
export const deadLetterStreamName = (id: string): string => `dead-letter-${UUID.test(id) ? id : `h${sha256Hex(id).slice(0, 32)}`}`;
/** An id stored in a replay's or discard's event only when it is a UUID (see deadLetterStreamName). */
export const uuidOrNull = (id: string | null): string | null => (id !== null && UUID.test(id) ? id : null);
/**
 * What the sender may have set (x-dlq-source-queue, x-dlq-reason: a client-side dead-lettering system writes them),
 * kept in a discard's event only when it cannot hold a CPR number (mayHoldCprDigits, the views' check: dropping it
 * costs only a hint in the event, which outlives erasure).
 */
const withoutCprDigits = (value: string | null): string | null => (value !== null && !mayHoldCprDigits(value) ? value : null);

/** Most dead letters one browse looks through to find one by id. */
export const MAX_BROWSE = 10_000;
export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;
/** The form of an id that addresses a dead letter (and goes into a selector): others are not used. */
export const DEAD_LETTER_ID_FORM = /^[A-Za-z0-9._:-]{1,200}$/;
const ID = DEAD_LETTER_ID_FORM;

export type ReplayInput = Readonly<{ by: string; note?: string; reason?: string }>;
export type ReplayResult = Readonly<{ deadLetter: DeadLetter; moved: number; sourceQueue: string; event: DeadLetterReplayed['data']; streamName: string }>;
export type DiscardInput = Readonly<{ by: string; reason: string }>;
export type DiscardResult = Readonly<{ deadLetter: DeadLetter; removed: number; event: DeadLetterDiscarded['data']; streamName: string }>;
/** Most copies of one message a replay or discard by envelope id takes off the queue at once. */
export const MAX_COPIES = 100;

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

/**
 * The dead letters as operators see them: of copies with the same dead letter id (rts_dlq_id) and the same body, the
 * first (the oldest) only. The hub chooses that id from the original delivery, so a copy it sent again (the broker's
 * accept of the first was lost, the hub restarted before it settled the original) is the same dead letter; the body
 * too must be the same, as anyone who may write to the dead letter queue may write any id.
 */
export const oneEach = (deadLetters: readonly DeadLetter[]): DeadLetter[] => {
  const seen = new Map<string, string[]>();
  return deadLetters.filter((d) => {
    if (d.deadLetterId === null) return true;
    const bodies = seen.get(d.deadLetterId);
    if (!bodies) {
      seen.set(d.deadLetterId, [d.body]);
      return true;
    }
    if (bodies.includes(d.body)) return false;
    bodies.push(d.body);
    return true;
  });
};

export const matchesDeadLetter = (d: DeadLetter, id: string): boolean => d.deadLetterId === id || d.envelopeId === id || d.brokerMessageId === id || d.id === id;

/**
 * Whether the envelope id is the message's `messageId` application property, which a selector can match. One read
 * from the body only (a sender that set no such property) cannot be selected: a take by it found nothing and answered
 * dead_letter_taken, as if another request had taken the message.
 */
const envelopeIdIsProperty = (d: DeadLetter): boolean => {
  const read = d.applicationProperties.rts_envelope_id;
  return read === undefined ? d.applicationProperties.messageId === d.envelopeId : read === d.envelopeId;
};

export const replaySelectionOf = (d: DeadLetter): ReplaySelection | null => {
  if (d.deadLetterId !== null && ID.test(d.deadLetterId)) return { property: 'rts_dlq_id', value: d.deadLetterId };
  if (d.envelopeId !== null && ID.test(d.envelopeId) && envelopeIdIsProperty(d)) return { property: 'messageId', value: d.envelopeId };
  if (d.brokerMessageId !== null && ID.test(d.brokerMessageId)) return { property: 'brokerMessageId', value: d.brokerMessageId };
  if (ID.test(d.contentId)) return { property: 'contentId', value: d.contentId };
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
    return (await this.listPage(limit)).items;
  }

  /** The oldest `limit` dead letters, and whether more are on the queue (one more is browsed to tell). */
  async listPage(limit = DEFAULT_LIST_LIMIT): Promise<Readonly<{ items: readonly DeadLetter[]; more: boolean }>> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
      throw new ValidationError('invalid_request', `limit must be 1..${MAX_LIST_LIMIT}`, [{ path: 'query.limit', message: `must be 1..${MAX_LIST_LIMIT}` }]);
    }
    // Copies of one dead letter are one (oneEach): a browse they shortened is made again, longer by as many.
    for (let want = limit + 1; ; ) {
      const browsed = await this.queue().browse(want);
      const items = oneEach(browsed);
      const queueHasMore = browsed.length >= want;
      if (items.length > limit || !queueHasMore || want >= MAX_BROWSE) return { items: items.slice(0, limit), more: items.length > limit || queueHasMore };
      want = Math.min(MAX_BROWSE, want + (browsed.length - items.length));
    }
  }

  /**
   * One dead letter on the queue. Not there: DeadLetterDiscardedError when the last thing recorded for the id is a
   * discard (410 over HTTP), else NotFoundError 'dead_letter_not_found'.
   */
  async get(id: string): Promise<DeadLetter> {
    const queue = this.queue();
    if (!ID.test(id)) throw new NotFoundError('dead_letter_not_found', 'no dead letter has this id');
    const found = (await queue.browse(MAX_BROWSE)).find((d) => matchesDeadLetter(d, id));
    if (found) return found;
    const discarded = await this.discardOf(id);
    if (discarded) throw new DeadLetterDiscardedError(discarded);
    throw new NotFoundError('dead_letter_not_found', 'no dead letter has this id');
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
    const moved = await queue.moveBack(selectionFor(id, deadLetter), sourceQueue, MAX_COPIES);
    if (moved.length === 0) throw taken();
    const event: DeadLetterReplayed['data'] = {
      deadLetterId: uuidOrNull(deadLetter.deadLetterId),
      envelopeId: uuidOrNull(deadLetter.envelopeId),
      at: this.deps.clock.now().toUTC().toISO()!,
      by: input.by,
      note: input.note ?? null,
      reason: input.reason ?? null,
      sourceQueue,
      // The sender's x-dlq-reason may hold anything, and a replay event outlives an erasure: as in a discard's.
      deadLetterReason: withoutCprDigits(deadLetter.reason),
      attempts: deadLetter.attempts,
      replayCount: deadLetter.replayCount + 1,
      moved: moved.length,
    };
    const streamName = streamOf(deadLetter);
    await this.deps.store.appendToStream(streamName, [{ id: this.deps.ids.uuid(), type: 'DeadLetterReplayed', data: event, metadata: { operator: input.by } }], { expectedVersion: 'any' });
    return { deadLetter, moved: moved.length, sourceQueue, event, streamName };
  }

  /**
   * Take a dead letter off the queue for good (no source queue needed: garbage may name none) and record it as
   * DeadLetterDiscarded in the stream its replays go to, never with its body. The event is stored while the broker
   * holds the message for this call, and the message removed only after: a failed append leaves it a dead letter.
   * By the same selection as a replay: the copy, or by envelope id every copy of the message.
   */
  async discard(id: string, input: DiscardInput): Promise<DiscardResult> {
    const queue = this.queue();
    const deadLetter = await this.get(id);
    const selection = selectionFor(id, deadLetter);
    const streamName = streamOf(deadLetter);
    let event: DeadLetterDiscarded['data'] | undefined;
    const removed = await queue.remove(selection, MAX_COPIES, async (found) => {
      const eventId = this.deps.ids.uuid();
      const metadata = { operator: input.by };
      const recorded: DeadLetterDiscarded['data'] = {
        deadLetterId: uuidOrNull(deadLetter.deadLetterId),
        envelopeId: uuidOrNull(deadLetter.envelopeId),
        // Once each: the copies of one dead letter (a copy sent again after a lost accept) share it.
        deadLetterIds: [...new Set(found.map((d) => uuidOrNull(d.deadLetterId)).filter((d): d is string => d !== null))],
        at: this.deps.clock.now().toUTC().toISO()!,
        by: input.by,
        reason: input.reason,
        sourceQueue: withoutCprDigits(deadLetter.sourceQueue),
        deadLetterReason: withoutCprDigits(deadLetter.reason),
        attempts: deadLetter.attempts,
        replayCount: deadLetter.replayCount,
        removed: found.length,
      };
      // The links first: one left behind by a failed append of the record points at no record and finds nothing.
      const linked = new Set<string>([streamName]);
      for (const copy of found) {
        if (copy.deadLetterId === null || !ID.test(copy.deadLetterId)) continue;
        const own = deadLetterStreamName(copy.deadLetterId);
        if (linked.has(own)) continue;
        linked.add(own);
        const link: DeadLetterDiscardLinked['data'] = { deadLetterId: uuidOrNull(copy.deadLetterId), recordedIn: streamName, eventId };
        await this.deps.store.appendToStream(own, [{ id: this.deps.ids.uuid(), type: 'DeadLetterDiscardLinked', data: link, metadata }], { expectedVersion: 'any' });
      }
      await this.deps.store.appendToStream(streamName, [{ id: eventId, type: 'DeadLetterDiscarded', data: recorded, metadata }], { expectedVersion: 'any' });
      event = recorded;
    });
    if (removed.length === 0 || event === undefined) throw taken();
    return { deadLetter, removed: removed.length, event, streamName };
  }

  /**
   * The discard recorded for an id (a copy's own id, or an envelope id), when the last thing recorded for it is a
   * discard: a message replayed after an earlier copy of it was discarded is not discarded.
   */
  async discardOf(id: string): Promise<DiscardRecord | null> {
    if (!ID.test(id)) return null;
    const own = deadLetterStreamName(id);
    const last = [...(await this.deps.store.readStream(own)).events].reverse().find((e) => OUTCOMES.has(e.type));
    if (!last || last.type === 'DeadLetterReplayed') return null;
    if (last.type === 'DeadLetterDiscarded') return { ...(last.data as DeadLetterDiscarded['data']), recordedIn: own };
    const link = last.data as DeadLetterDiscardLinked['data'];
    const record = (await this.deps.store.readStream(link.recordedIn)).events.find((e) => e.id === link.eventId && e.type === 'DeadLetterDiscarded');
    return record ? { ...(record.data as DeadLetterDiscarded['data']), recordedIn: link.recordedIn } : null;
  }

  /** What was recorded for one message (by envelope id or dead letter id): its replays and discards. */
  async history(id: string): Promise<Readonly<{ replays: readonly DeadLetterReplayed['data'][]; discards: readonly DeadLetterDiscarded['data'][] }>> {
    if (!ID.test(id)) return { replays: [], discards: [] };
    const { events } = await this.deps.store.readStream(deadLetterStreamName(id));
    return {
      // Replays recorded before their deadLetterReason was checked for CPR numbers are shown the same way.
      replays: events
        .filter((e) => e.type === 'DeadLetterReplayed')
        .map((e) => e.data as DeadLetterReplayed['data'])
        .map((r) => ({ ...r, deadLetterReason: withoutCprDigits(r.deadLetterReason) })),
      discards: events.filter((e) => e.type === 'DeadLetterDiscarded').map((e) => e.data as DeadLetterDiscarded['data']),
    };
  }

  /** The recorded replays of one message (by envelope id or dead letter id). */
  async replays(id: string): Promise<readonly DeadLetterReplayed['data'][]> {
    return (await this.history(id)).replays;
  }
}

const OUTCOMES = new Set(['DeadLetterReplayed', 'DeadLetterDiscarded', 'DeadLetterDiscardLinked']);

/** The stream a message's replays and discards are recorded in. */
const streamOf = (d: DeadLetter): string => deadLetterStreamName(d.envelopeId ?? d.deadLetterId ?? d.id);

/**
 * What a replay or discard takes off the queue: by the id the hub gave this copy when it has one (exactly this
 * message), else by the envelope id when it is the `messageId` property (every copy of that message: the consumer
 * dedupes by envelope id, so moving them all back is safe, and discarding one copy of a message while keeping another
 * would not be what was asked), else, for a message put on the dead letter queue by someone else without either, by
 * the message id its sender set (every message with that id, as by envelope id), else by its content id (every
 * message with the same content).
 */
const selectionFor = (id: string, deadLetter: DeadLetter): ReplaySelection => {
  const byEnvelope = id === deadLetter.envelopeId && id !== deadLetter.deadLetterId && envelopeIdIsProperty(deadLetter);
  const selection = byEnvelope ? replaySelectionOf({ ...deadLetter, deadLetterId: null }) : replaySelectionOf(deadLetter);
  if (!selection) {
    throw new ConflictError(
      'dead_letter_not_selectable',
      'the dead letter has no id to select it by (no dead letter id, envelope id, message id or content id of the form A-Z a-z 0-9 . _ : -), so it cannot be taken off the queue selectively',
    );
  }
  return selection;
};

/** Found by the browse a moment ago, gone when taken: another request's replay or discard got it first. */
const taken = (): ConflictError =>
  new ConflictError(
    'dead_letter_taken',
    'the dead letter was on the queue a moment ago, but another request (a replay or a discard) took it off meanwhile: nothing was done by this one; look it up again to see what was recorded',
  );
