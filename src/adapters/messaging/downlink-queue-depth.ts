import type { AmqpConnection } from '../amqp/connection';
import { DepthUnknownError, countIn, requestStatistics, type StatisticsAnswer } from './broker-statistics';
import { DepthMonitor, type DepthMonitorDependencies } from './depth-monitor';

/**
 * How far behind each system is: the messages waiting on its downlink queue as the broker the hub is connected to
 * counts them, and how long the first of them has waited. One statistics request per reading, whatever the number of
 * systems: `ActiveMQ.Statistics.Destination.rts.downlink.>` answers with a map per downlink queue the broker has
 * (broker-statistics.ts). Only systems the hub knows are reported, each by its system id: a queue of another name
 * (one a sender made up, `rts.downlink.x.y`) is passed over, and a known system whose queue the broker does not have
 * (nothing sent to it yet, or a broker that lost it) has 0 waiting.
 */
export type DownlinkQueueDepth = Readonly<{
  messages: number;
  /** Seconds the first waiting message has been on the queue, by the broker's clock (0 when none waits; null: not told). */
  oldestMessageAgeSeconds: number | null;
  /** Receivers attached to the queue now (0: the system is not taking its downlink); null: not told. */
  consumers: number | null;
}>;
/** By system id. */
export type DownlinkDepths = ReadonlyMap<string, DownlinkQueueDepth>;
export type KnownSystem = Readonly<{ systemId: string; downlinkQueue: string }>;

/**
 * The wildcard that covers every queue named `<prefix><system id>`: ActiveMQ's wildcards match whole `.` segments, so
 * the prefix up to its last `.`, then `>` (`rts.downlink.` -> `rts.downlink.>`; `city-` -> `>`, every queue).
 */
export const statisticsPatternFor = (prefix: string): string => `${prefix.slice(0, prefix.lastIndexOf('.') + 1)}>`;

/**
 * The statistics requests one reading makes, each with the systems its answer covers: the prefix's wildcard for the
 * systems under it, first; then, for systems registered under an earlier RTS_DOWNLINK_QUEUE_PREFIX (their queue keeps
 * the name it was registered with, and their downlink still goes there), one wildcard per earlier prefix. Usually one
 * request; one more per earlier prefix still in use.
 */
export function statisticsRequestsFor(pattern: string, systems: readonly KnownSystem[]): ReadonlyMap<string, readonly KnownSystem[]> {
  const covers = (p: string, s: KnownSystem) => s.downlinkQueue.startsWith(p.slice(0, -1));
  const requests = new Map<string, KnownSystem[]>();
  for (const system of systems) {
    const p = covers(pattern, system) ? pattern : statisticsPatternFor(system.downlinkQueue);
    requests.set(p, [...(requests.get(p) ?? []), system]);
  }
  // The prefix's own first.
  return new Map([...requests].sort(([a], [b]) => Number(b === pattern) - Number(a === pattern)));
}

/**
 * Pure: the depths of the known systems' queues in the plugin's answer to `pattern`. A system whose queue lies outside
 * the pattern is left out: the answer cannot say its depth (statisticsRequestsFor asks for it with another pattern).
 */
export function downlinkDepthsFrom(answer: StatisticsAnswer, systems: readonly KnownSystem[], pattern: string): DownlinkDepths {
  const covered = pattern.slice(0, -1);
  const byQueue = new Map(systems.filter((s) => s.downlinkQueue.startsWith(covered)).map((s) => [`queue://${s.downlinkQueue}`, s.systemId]));
  const depths = new Map<string, DownlinkQueueDepth>([...byQueue.values()].map((id) => [id, { messages: 0, oldestMessageAgeSeconds: 0, consumers: 0 }]));
  for (const map of answer.maps) {
    const systemId = typeof map.destinationName === 'string' ? byQueue.get(map.destinationName) : undefined;
    if (systemId === undefined) continue;
    const messages = countIn(map, 'size');
    if (messages === null) throw new DepthUnknownError('unexpected_reply', 'a statistics reply of a downlink queue had no size');
    const first = countIn(map, 'firstMessageTimestamp');
    const age = messages === 0 ? 0 : first !== null && answer.brokerNow !== null ? Math.max(0, answer.brokerNow - first) / 1000 : null;
    depths.set(systemId, { messages, oldestMessageAgeSeconds: age, consumers: countIn(map, 'consumerCount') });
  }
  return depths;
}

export type DownlinkDepthReaderOptions = Readonly<{
  /** RTS_DOWNLINK_QUEUE_PREFIX. */
  prefix: string;
  /** The systems the hub knows now (the directory's rows). */
  systems: () => Promise<readonly KnownSystem[]>;
  timeoutMs?: number;
}>;

/** Reads every known system's downlink depth once per call; rejects with a DepthUnknownError. */
export class AmqpDownlinkDepthReader {
  readonly pattern: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: DownlinkDepthReaderOptions,
  ) {
    this.pattern = statisticsPatternFor(options.prefix);
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  async read(): Promise<DownlinkDepths> {
    // Listed before the broker is asked: a system registered meanwhile is read the next time, never shown at 0 for a
    // queue the answer did not cover.
    const systems = await this.options.systems().catch((error: unknown) => {
      throw new DepthUnknownError('store_unavailable', `the hub could not list its systems: ${(error as Error).message}`);
    });
    const depths = new Map<string, DownlinkQueueDepth>();
    for (const [pattern, covered] of statisticsRequestsFor(this.pattern, systems)) {
      const answer = await requestStatistics(this.connection, { destination: pattern, timeoutMs: this.timeoutMs, firstMessageTimestamp: true });
      // Without the end of the list the answer may lack queues: a system left out would read as 0.
      if (!answer.ended) throw new DepthUnknownError('no_answer', `the broker did not end its list of downlink queues within ${this.timeoutMs} ms`);
      for (const [systemId, depth] of downlinkDepthsFrom(answer, covered, pattern)) depths.set(systemId, depth);
    }
    // In the order the hub lists its systems, whichever request answered for them.
    return new Map(systems.flatMap((s) => (depths.has(s.systemId) ? [[s.systemId, depths.get(s.systemId)!] as const] : [])));
  }
}

/** The downlink queues' depths, read on a schedule (DepthMonitor), with their own log wording. */
export class DownlinkDepthMonitor extends DepthMonitor<DownlinkDepths> {
  constructor(deps: Omit<DepthMonitorDependencies<DownlinkDepths>, 'wording'> & Readonly<{ pattern: string }>) {
    const { pattern, ...rest } = deps;
    super({ ...rest, wording: { what: 'the downlink queues', metric: 'rts_downlink_queue_depth', readme: 'How far behind each system is', context: { queues: pattern } } });
  }
}
