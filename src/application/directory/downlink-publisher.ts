import { readCoveredPage } from '../covered-page';
import { BackgroundDrain } from '../drain-loop';
import type { CheckpointStore, DownlinkOutbox } from '../ports/downlink-outbox';
import type { EventStore, RecordedEvent } from '../ports/event-store';
import { systemJoinedAt, type SystemRow } from '../projections/directory-projection';
import type { DirectoryLogger } from './directory-projector';
import type { DirectoryReadModel } from './directory-read-model';
import { DOWNLINK_EVENT_TYPES, needsDirectory, planDownlinkLazily, type DownlinkMessage } from './downlink-planner';

/**
 * The downlink publisher: a checkpointed subscription to the event store that sends what `planDownlink` plans
 * for each directory event through a `DownlinkOutbox` (part B: AMQP), never inline after a commit.
 *
 *   const publisher = new DownlinkPublisher({ store, directory, projector, outbox, checkpoints });
 *   await publisher.catchUp();   // send everything up to the store's head (single-flight)
 *   publisher.start(); ...; await publisher.stop();   // follow the store in the background
 *
 * At-least-once: the checkpoint moves past an event (`checkpoints.set(name, position)`) only once every message
 * planned for it and for every event before it was accepted (`send` must resolve only once the broker holds the
 * message). A crash or a failed send means the events from the stored checkpoint are planned and sent again, with
 * the same message ids, so receivers dedupe.
 *
 * Pipelined: the messages of a page's events are handed to the outbox in store order without waiting for the
 * broker's accept of the one before, up to `concurrency` messages in flight (default 64). Waiting for each accept
 * (a broker journal write) and a checkpoint per event capped the downlink at 1 / (that round trip): on a busy
 * machine ~3 messages a second, below a modest uplink rate (soak finding 3, bench/downlink-lag.js). The outbox
 * sends to one queue over one link in call order, so messages about one expert to one system still leave, and are
 * stored, in the order of their revisions; only after a failed send may a resent older copy follow a newer one (as
 * after any resend: receivers keep the highest revision).
 *
 * The plan needs the directory as of the event: before planning, the read model is caught up (`projector`) to
 * at least the events in hand; joined systems are taken as of the event's position, and a join's snapshot uses
 * `expertsAsOf(position)`, so a model that has moved further does not change what is planned.
 */
export type DownlinkPublisherDependencies = Readonly<{
  store: EventStore;
  directory: DirectoryReadModel;
  projector: { catchUp(): Promise<void> };
  outbox: DownlinkOutbox;
  checkpoints: CheckpointStore;
  /** Name of the checkpoint (default 'downlink'). */
  name?: string;
  /** Events read per batch. */
  batchSize?: number;
  /** Messages in flight at once (sent, the broker's accept not yet in), across the events of a page (default 64). */
  concurrency?: number;
  snapshotBatchSize?: number;
  logger?: DirectoryLogger;
  /**
   * Within a page, the checkpoint is stored past the events whose messages (and all before them) were accepted at
   * most this often (default 1000 ms; 0: at each such event). A page of 200 events fanned out to 80 systems is 16,000
   * messages and can take minutes: with the checkpoint stored at its end only, every standby hub process (which sees
   * the stored checkpoint, not this process's sends) reported the downlink stalled until the page ended.
   */
  checkpointEveryMs?: number;
  /** Milliseconds of a monotonic clock, for `checkpointEveryMs` (default performance.now). */
  nowMs?: () => number;
}>;

export class DownlinkPublisher extends BackgroundDrain {
  private readonly name: string;
  private sentCount = 0;

  constructor(private readonly deps: DownlinkPublisherDependencies) {
    super(deps.logger, { failed: 'downlink publishing failed; retrying from the checkpoint', recovered: 'downlink publishing works again' });
    this.name = deps.name ?? 'downlink';
  }

  protected async waitForWork(): Promise<unknown> {
    return this.deps.store.waitForAppend(await this.deps.checkpoints.get(this.name), 1000);
  }

  /** The stored checkpoint: every event up to it was gone through (its messages accepted). Read for the lag metric. */
  checkpoint(): Promise<bigint> {
    return this.deps.checkpoints.get(this.name);
  }

  /** Messages sent by this instance (resends included). */
  get sent(): number {
    return this.sentCount;
  }

  /** To the head, or until stop() asks it to end (after its current event); it sends each event's messages as it goes. */
  protected async drain(): Promise<boolean> {
    let checkpoint = await this.deps.checkpoints.get(this.name);
    for (;;) {
      // Only the events it plans for: on a store of uploads the rest is nearly everything (see readCoveredPage).
      const { events, through } = await readCoveredPage(this.deps.store, checkpoint, this.deps.batchSize ?? 200, DOWNLINK_EVENT_TYPES);
      if (through <= checkpoint) return true;
      if (events.length > 0) {
        const last = events[events.length - 1]!.globalPosition;
        if ((await this.deps.directory.checkpoint()) < last) await this.deps.projector.catchUp();
        const systems = await this.deps.directory.listSystemRows();
        const sent = await this.sendPage(events, systems);
        if (sent.failure) throw sent.failure.error;
        // stop() waits for the messages in flight; the rest is sent on the next start. Callers of catchUp() are
        // released too (reported as served), as before: during a stop nothing should keep the publisher sending.
        if (sent.stoppedAfter !== undefined) {
          if (sent.stoppedAfter > checkpoint) await this.deps.checkpoints.set(this.name, sent.stoppedAfter);
          return true;
        }
      }
      // The page's events, those without messages, and the other events the page covered: one checkpoint per page.
      checkpoint = through;
      await this.deps.checkpoints.set(this.name, checkpoint);
    }
  }

  /**
   * Plans each event of the page in store order and hands its messages to the outbox as it goes, at most
   * `concurrency` unaccepted at a time; resolves once every message handed over has settled. On a failed send it
   * hands over nothing more and reports the first failure, after the checkpoint is moved past the events whose
   * messages (and all before them) were accepted; at stop() it ends after the event in hand (`stoppedAfter`: the
   * position every message up to which was accepted).
   */
  private async sendPage(events: readonly RecordedEvent[], systems: readonly SystemRow[]): Promise<{ failure?: { error: unknown }; stoppedAfter?: bigint }> {
    const limit = Math.max(1, this.deps.concurrency ?? 64);
    const inFlight = new Set<Promise<void>>();
    // Per event, in store order: messages not yet accepted, and whether all of them were handed over (they are made
    // as they go: a join's can be hundreds of thousands). Done events at the front move the checkpoint.
    const open: { position: bigint; pending: number; planned: boolean }[] = [];
    let failure: { error: unknown } | undefined;
    let done: bigint | undefined;
    const settleFront = (): void => {
      while (open.length > 0 && open[0]!.planned && open[0]!.pending === 0) done = open.shift()!.position;
    };
    // Progress within a long page, stored now and then (checkpointEveryMs): the standbys see the stored checkpoint only.
    const nowMs = this.deps.nowMs ?? (() => performance.now());
    const everyMs = this.deps.checkpointEveryMs ?? 1000;
    let storedAt = nowMs();
    let stored: bigint | undefined;
    const storeProgress = async (): Promise<void> => {
      settleFront();
      if (failure || done === undefined || done === stored || nowMs() - storedAt < everyMs) return;
      stored = done;
      storedAt = nowMs();
      // Best effort: the page's end stores it (and fails) anyway if the store is away.
      await this.deps.checkpoints.set(this.name, done).catch(() => undefined);
    };
    for (const event of events) {
      if (failure) break;
      const messages = await this.plan(event, systems);
      const entry = { position: event.globalPosition, pending: 0, planned: false };
      open.push(entry);
      for (const m of messages) {
        while (inFlight.size >= limit && !failure) {
          await Promise.race(inFlight);
          await storeProgress();
        }
        if (failure) break;
        entry.pending += 1;
        const sending = this.deps.outbox.send(m.queue, m.envelope).then(
          () => {
            this.sentCount++;
            entry.pending -= 1;
          },
          (error: unknown) => {
            failure ??= { error };
          },
        );
        const tracked = sending.finally(() => inFlight.delete(tracked));
        inFlight.add(tracked);
      }
      if (!failure) entry.planned = true;
      await storeProgress();
      if (this.stopRequested) break;
    }
    await Promise.all(inFlight);
    settleFront();
    if (failure) {
      if (done !== undefined) await this.deps.checkpoints.set(this.name, done).catch(() => undefined);
      return { failure };
    }
    if (this.stopRequested) return { stoppedAfter: done ?? events[0]!.globalPosition - 1n };
    return {};
  }

  /** The event's messages, made as they are taken (planDownlinkLazily). */
  private async plan(event: RecordedEvent, systems: readonly SystemRow[]): Promise<Iterable<DownlinkMessage>> {
    const joinedSystems = systems.filter((s) => systemJoinedAt(s, event.globalPosition)).map((s) => ({ systemId: s.systemId, downlinkQueue: s.downlinkQueue }));
    const directory = needsDirectory(event) ? await this.deps.directory.expertsAsOf(event.globalPosition) : undefined;
    const joiner = event.type === 'SystemJoined' ? systems.find((s) => s.systemId === (event.data as { systemId?: unknown }).systemId) : undefined;
    const rejoin = joiner?.joinedPosition != null && joiner.joinedPosition < event.globalPosition;
    const retired = rejoin ? await this.deps.directory.retiredAsOf(event.globalPosition) : undefined;
    return planDownlinkLazily(event, { joinedSystems, directory, rejoin, retired }, { snapshotBatchSize: this.deps.snapshotBatchSize });
  }
}
