import { isConnectedSystemEvent, type ConnectedSystemEvent } from '../../domain/directory/connected-system';
import { EXPERT_EVENT_TYPES, changesExpert, isExpertEvent, type ExpertEvent } from '../../domain/directory/expert';
import type { RecordedEvent } from '../ports/event-store';
import type { ExpertView } from '../projections/directory-projection';
import {
  CONTRACT_VERSION,
  MAX_BATCH_EXPERTS,
  MAX_BATCH_JSON_BYTES,
  partitionExperts,
  downlinkMessageId,
  type DirectoryExpert,
  type DownlinkEnvelope,
  type DownlinkPayloads,
  type DownlinkType,
} from './directory-messages';

/**
 * PURE: which downlink messages one recorded directory event causes.
 *
 *   planDownlink(event, context, { snapshotBatchSize? }) -> readonly { queue, envelope }[]
 *   planDownlinkLazily(event, context, options) -> the same messages, in the same order, made as they are taken
 *   needsDirectory(event) -> whether `context.directory` must be filled for this event
 *
 * Rules (everything "as of the event": `context` describes the directory just after it)
 * - ExpertRegistered / ExpertProfileChanged -> 'directory.expert.upserted'; ExpertRetired ->
 *   'directory.expert.retired'; to every joined system except the expert's home system. Nothing while the home
 *   system has not joined: its experts go out when it joins. Nothing for an ExpertProfileChanged marked `unchanged`
 *   (a message that sent the profile the expert had; the event only records its id): the others hold that profile
 *   already. Its revision is then never sent: receivers keep the highest revision, so a gap is nothing to them.
 * - SystemJoined of J -> to J: 'system.joined' (confirmation) and 'directory.snapshot' in batches of
 *   `snapshotBatchSize` (every expert of the other joined systems; at least one batch, so an empty directory
 *   is announced too); to every other joined system: 'system.joined' (news) and, on J's first join, one
 *   'directory.expert.upserted' per expert of J. On a join again (`context.rejoin`) the others get the news only:
 *   J stayed joined meanwhile, so each expert its batches registered or changed already went out to them by its
 *   own event, once (a join retires no one); sending all of J's experts again re-sent every unchanged one, and the
 *   changed ones twice under other envelope ids. To J on a join again, after the snapshot: one
 *   'directory.expert.retired' per expert of the other joined systems retired at or before the event
 *   (`context.retired`). A join again is the full sync of a system that lost or restored an old copy of the
 *   directory: the snapshot lists only active experts, and a copy kept by the contract's rule (the highest revision
 *   per expert) kept an expert retired since as active for good, as no message about it came again.
 * - Anything else -> nothing.
 *
 * Message ids come from `downlinkMessageId(event.id, target, part)`, `time` is the event's recordedAt, and the
 * correlation id is the event's (else the event id): planning the same event again gives the same messages to the
 * same systems under the same ids, as the experts' membership as of the event is the same (`expertsAsOf` is by
 * position). A snapshot part's content is the experts' current profiles, though, and a part cut by size on a plan
 * again after a profile changed size may hold other experts: such a part's id names its first and last expert.
 */
export type JoinedSystem = Readonly<{ systemId: string; downlinkQueue: string }>;

export type DownlinkContext = Readonly<{
  /** Systems that had joined just after the event (a SystemJoined event includes its own system). */
  joinedSystems: readonly JoinedSystem[];
  /** For SystemJoined only (`needsDirectory`): every expert in the directory just after the event, by expert id. */
  directory?: readonly ExpertView[];
  /**
   * For SystemJoined only: the system had joined before this event (its first join is at an earlier position, which
   * never moves, so a re-plan after a restart decides the same).
   */
  rejoin?: boolean;
  /**
   * For SystemJoined on a join again only: the experts retired at or before the event (every system's; the planner
   * keeps the other joined systems'). Retired at or before a position that never moves: a re-plan decides the same.
   */
  retired?: readonly ExpertView[];
}>;

export type DownlinkMessage = Readonly<{ queue: string; envelope: DownlinkEnvelope }>;

export type PlanOptions = Readonly<{ snapshotBatchSize?: number; /** Most bytes of experts' JSON per snapshot part (MAX_BATCH_JSON_BYTES). */ snapshotPartBytes?: number }>;

/** The event types planDownlink sends messages for; its publisher reads only these. */
export const DOWNLINK_EVENT_TYPES: ReadonlySet<string> = new Set<string>([...EXPERT_EVENT_TYPES, 'SystemJoined' satisfies ConnectedSystemEvent['type']]);

export const needsDirectory = (event: Pick<RecordedEvent, 'type'>): boolean => event.type === 'SystemJoined';

/**
 * An expert of `expertsAsOf` as the directory shares it. A row retired after the planned event still carries its
 * last profile; the retirement (always the last event) took one revision, so the profile's revision is one less.
 * (One less may be the version of an `unchanged` event after the last change: the same profile, still below the
 * retirement's revision, so the retirement wins as it must.)
 */
export const toDirectoryExpert = (e: ExpertView): DirectoryExpert => ({
  expertId: e.expertId,
  homeSystemId: e.homeSystemId,
  profile: e.profile,
  revision: e.status === 'retired' ? e.revision - 1 : e.revision,
});

export const planDownlink = (event: RecordedEvent, context: DownlinkContext, options: PlanOptions = {}): readonly DownlinkMessage[] => [
  ...planDownlinkLazily(event, context, options),
];

/**
 * planDownlink's messages one at a time, in the same order, each made when asked for: the publisher takes them as
 * it sends them. Made all at once, the first join of a system of 10,000 experts with 80 joined systems was 790,000
 * envelopes (~400 MB) in the hub's memory, and blocked its event loop for the seconds it took (HTTP, AMQP
 * heartbeats, the lease), before the first of them was sent.
 */
export function* planDownlinkLazily(event: RecordedEvent, context: DownlinkContext, options: PlanOptions = {}): Generator<DownlinkMessage, void, undefined> {
  const correlationId = typeof event.metadata.correlationId === 'string' && event.metadata.correlationId.length > 0 ? event.metadata.correlationId : event.id;
  const message = <T extends DownlinkType>(target: JoinedSystem, type: T, payload: DownlinkPayloads[T], part?: string): DownlinkMessage => ({
    queue: target.downlinkQueue,
    envelope: {
      id: downlinkMessageId(event.id, target.systemId, part),
      type,
      version: CONTRACT_VERSION,
      systemId: target.systemId,
      correlationId,
      time: event.recordedAt,
      payload,
    } as DownlinkEnvelope,
  });

  if (isExpertEvent(event)) {
    const e = { type: event.type, data: event.data } as ExpertEvent;
    const home = e.data.homeSystemId;
    if (!context.joinedSystems.some((s) => s.systemId === home) || !changesExpert(e)) return;
    const revision = Number(event.streamVersion) + 1;
    const targets = context.joinedSystems.filter((s) => s.systemId !== home);
    for (const t of targets) {
      yield e.type === 'ExpertRetired'
        ? message(t, 'directory.expert.retired', { expertId: e.data.expertId, homeSystemId: home, revision })
        : message(t, 'directory.expert.upserted', { expertId: e.data.expertId, homeSystemId: home, profile: e.data.profile, revision });
    }
    return;
  }

  if (isConnectedSystemEvent(event) && event.type === 'SystemJoined') {
    const e = { type: event.type, data: event.data } as Extract<ConnectedSystemEvent, { type: 'SystemJoined' }>;
    const joinerId = e.data.systemId;
    const joiner: JoinedSystem = context.joinedSystems.find((s) => s.systemId === joinerId) ?? { systemId: joinerId, downlinkQueue: e.data.downlinkQueue };
    const others = context.joinedSystems.filter((s) => s.systemId !== joinerId);
    const joinedOthers = new Set(others.map((s) => s.systemId));
    const directory = context.directory ?? [];
    const news = { systemId: joinerId, name: e.data.name, area: e.data.area };

    const size = Math.max(1, Math.min(options.snapshotBatchSize ?? MAX_BATCH_EXPERTS, MAX_BATCH_EXPERTS));
    const snapshot = directory.filter((x) => joinedOthers.has(x.homeSystemId)).map(toDirectoryExpert);
    // Parts by count and by size: a part over the broker's message limit was never taken, and the publisher sent
    // it again forever, so no system got any downlink after it.
    const parts = partitionExperts(snapshot, size, options.snapshotPartBytes ?? MAX_BATCH_JSON_BYTES);
    const byCount = Math.max(1, Math.ceil(snapshot.length / size));
    const batchCount = Math.max(1, parts.length);
    // Part ids as before where the parts are the count's; where size cut them otherwise, ids of their own (a
    // receiver that got a part of the count's cut, before an upgrade, must not take a size part for it), naming the
    // part's first and last expert. The count's cut of the experts as of the event never moves, but the size cut
    // weighs their current profiles: planned again (a failed send, a restart mid-snapshot) after a profile changed
    // size, part i could hold other experts under the same id, and the receiver, which had taken part i, dropped it
    // as a repeat: an expert moved into it from the next part never reached the joiner (nor later, while unchanged).
    const byCountCut = batchCount === byCount && parts.every((p, j) => j === batchCount - 1 || p.length === size);
    const partId = (i: number): string => {
      if (byCountCut) return `snapshot/${i}`;
      const part = parts[i] ?? [];
      return `snapshot/${i}/${batchCount}/${part[0]?.expertId ?? ''}/${part[part.length - 1]?.expertId ?? ''}`;
    };
    yield message(joiner, 'system.joined', news);
    for (let i = 0; i < batchCount; i++) {
      yield message(joiner, 'directory.snapshot', { snapshotId: event.id, batchIndex: i, batchCount, experts: parts[i] ?? [] }, partId(i));
    }

    if (context.rejoin) {
      for (const x of context.retired ?? []) {
        if (x.status !== 'retired' || !joinedOthers.has(x.homeSystemId)) continue;
        yield message(joiner, 'directory.expert.retired', { expertId: x.expertId, homeSystemId: x.homeSystemId, revision: x.revision }, `retired/${x.expertId}`);
      }
    }

    const own = context.rejoin ? [] : directory.filter((x) => x.homeSystemId === joinerId).map(toDirectoryExpert);
    for (const t of others) {
      yield message(t, 'system.joined', news);
      for (const x of own) yield message(t, 'directory.expert.upserted', x, `expert/${x.expertId}`);
    }
  }
}
