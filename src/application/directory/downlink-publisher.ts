import { readCoveredPage } from '../covered-page';
import { BackgroundDrain } from '../drain-loop';
import type { CheckpointStore, DownlinkOutbox } from '../ports/downlink-outbox';
import type { EventStore, RecordedEvent } from '../ports/event-store';
import { systemJoinedAt, type SystemRow } from '../projections/directory-projection';
import type { DirectoryLogger } from './directory-projector';
import type { DirectoryReadModel } from './directory-read-model';
import { DOWNLINK_EVENT_TYPES, needsDirectory, planDownlink, type DownlinkMessage } from './downlink-planner';

/**
 * The downlink publisher: a checkpointed subscription to the event store that sends what `planDownlink` plans
 * for each directory event through a `DownlinkOutbox` (part B: AMQP), never inline after a commit.
 *
 *   const publisher = new DownlinkPublisher({ store, directory, projector, outbox, checkpoints });
 *   await publisher.catchUp();   // send everything up to the store's head (single-flight)
 *   publisher.start(); ...; await publisher.stop();   // follow the store in the background
 *
 * At-least-once: for each event, every planned message is sent (up to `concurrency` at a time; `send` must
 * resolve only once the broker holds the message), then the checkpoint moves past the event
 * (`checkpoints.set(name, position)`). A crash or a failed send means the event is planned and sent again from
 * the stored checkpoint, with the same message ids, so receivers dedupe. Events are handled in store order and
 * one at a time, so messages about one expert to one system leave in the order of their revisions.
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
  /** Sends in flight at once for one event. */
  concurrency?: number;
  snapshotBatchSize?: number;
  logger?: DirectoryLogger;
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
        for (const event of events) {
          const messages = await this.plan(event, systems);
          if (messages.length > 0) {
            await this.sendAll(messages);
            await this.deps.checkpoints.set(this.name, event.globalPosition);
          }
          // stop() waits for the event in hand; the rest is sent on the next start. Callers of catchUp() are
          // released too (reported as served), as before: during a stop nothing should keep the publisher sending.
          if (this.stopRequested) return true;
        }
      }
      // Events without messages, and the other events the page covered, move the checkpoint once per page.
      checkpoint = through;
      await this.deps.checkpoints.set(this.name, checkpoint);
    }
  }

  private async plan(event: RecordedEvent, systems: readonly SystemRow[]): Promise<readonly DownlinkMessage[]> {
    const joinedSystems = systems.filter((s) => systemJoinedAt(s, event.globalPosition)).map((s) => ({ systemId: s.systemId, downlinkQueue: s.downlinkQueue }));
    const directory = needsDirectory(event) ? await this.deps.directory.expertsAsOf(event.globalPosition) : undefined;
    const joiner = event.type === 'SystemJoined' ? systems.find((s) => s.systemId === (event.data as { systemId?: unknown }).systemId) : undefined;
    const rejoin = joiner?.joinedPosition != null && joiner.joinedPosition < event.globalPosition;
    return planDownlink(event, { joinedSystems, directory, rejoin }, { snapshotBatchSize: this.deps.snapshotBatchSize });
  }

  private async sendAll(messages: readonly DownlinkMessage[]): Promise<void> {
    const limit = Math.max(1, this.deps.concurrency ?? 64);
    let next = 0;
    let failure: { error: unknown } | null = null;
    const worker = async (): Promise<void> => {
      while (next < messages.length && !failure) {
        const m = messages[next++]!;
        try {
          await this.deps.outbox.send(m.queue, m.envelope);
          this.sentCount++;
        } catch (error) {
          failure ??= { error };
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, messages.length) }, worker));
    if (failure) throw (failure as { error: unknown }).error;
  }
}
