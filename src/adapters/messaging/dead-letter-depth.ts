import type { Message } from 'rhea';
import type { AmqpConnection } from '../amqp/connection';
import { DepthUnknownError, requestStatistics } from './broker-statistics';
import { DepthMonitor, type DepthMonitorDependencies } from './depth-monitor';

export { DepthUnknownError, STATISTICS_DESTINATION_PREFIX, STATISTICS_END_WITH_NULL, type DepthUnknownReason } from './broker-statistics';
export type { DepthSample } from './depth-monitor';

/**
 * How many messages are on the dead letter queue, as the broker the hub is connected to counts them: one request to
 * `ActiveMQ.Statistics.Destination.<queue>` (broker-statistics.ts). A dead letter queue the broker does not have yet
 * is the end of the list alone: 0.
 */

/** One statistics reply, parsed: the depth of `queue`, the end of the list, or something else. */
export type StatisticsReply = { kind: 'size'; size: number } | { kind: 'end' } | { kind: 'other' };

/** Pure: what a reply of the statistics plugin says about `queue` (its body an AMQP map, as ActiveMQ sends a JMS MapMessage). */
export function parseStatisticsReply(message: Pick<Message, 'body'>, queue: string): StatisticsReply {
  const body = message.body as unknown;
  if (body === null || typeof body !== 'object' || Array.isArray(body) || Buffer.isBuffer(body)) return { kind: 'other' };
  const map = body as Record<string, unknown>;
  if (Object.keys(map).length === 0) return { kind: 'end' };
  if (map.destinationName !== `queue://${queue}`) return { kind: 'other' };
  const size = typeof map.size === 'bigint' ? Number(map.size) : map.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return { kind: 'other' };
  return { kind: 'size', size };
}

export type DeadLetterDepthReaderOptions = Readonly<{ queue: string; timeoutMs?: number }>;

/** Reads the depth once per call (see above); rejects with a DepthUnknownError. */
export class AmqpDeadLetterDepthReader {
  private readonly timeoutMs: number;

  constructor(
    private readonly connection: AmqpConnection,
    private readonly options: DeadLetterDepthReaderOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 5_000;
  }

  async read(): Promise<number> {
    const queue = this.options.queue;
    const answer = await requestStatistics(this.connection, { destination: queue, timeoutMs: this.timeoutMs });
    let size: number | null = null;
    for (const map of answer.maps) {
      const reply = parseStatisticsReply({ body: map }, queue);
      if (reply.kind !== 'size') throw new DepthUnknownError('unexpected_reply', 'the statistics reply was not a map with the dead letter queue and its size');
      size = reply.size;
    }
    // No end of the list: a broker that sent the queue's figure but no end (an older plugin without the end-of-list property).
    return size ?? 0;
  }
}

/** The dead letter queue's depth, read on a schedule (DepthMonitor), with its own log wording. */
export class DeadLetterDepthMonitor extends DepthMonitor<number> {
  constructor(deps: Omit<DepthMonitorDependencies<number>, 'wording'> & Readonly<{ queue: string }>) {
    const { queue, ...rest } = deps;
    super({ ...rest, wording: { what: 'the dead letter queue', metric: 'rts_dead_letters', readme: 'The depth of the dead letter queue', context: { queue } } });
  }
}
