import { randomUUID } from 'node:crypto';
import type { EventContext, Sender } from 'rhea';
import { endLink, type AmqpConnection } from '../amqp/connection';

/**
 * One request to ActiveMQ's statistics plugin (<statisticsBrokerPlugin/>, rendered by scripts/activemq/broker.sh and
 * scripts/cluster/cluster.sh), as the dead letter queue's and the downlink queues' depths are read.
 *
 * A dynamic receiver (ActiveMQ makes it a temporary queue) for the replies, and one non-durable request with a 10 s TTL
 * to `ActiveMQ.Statistics.Destination.<name or wildcard>` whose reply-to is that temporary queue. The plugin answers
 * with one map per queue the name matches (`rts.downlink.>`: every downlink queue the broker has; its `size` is the
 * queue's own message count: no browse, the same cost at 10 or 100,000 messages), then, as asked by the
 * `...List.End.With.Null` property, an empty map. A name that matches no queue is the empty map alone. Asked with
 * `...Include.First.Message.Timestamp`, each map also has `firstMessageTimestamp` (the broker's arrival time of the
 * queue's first message; the plugin browses one message per queue for it) where the queue holds one; the reply's
 * creation time is the broker's clock when it answered, so an age needs no clock shared with the broker.
 *
 * A broker without the plugin takes the request as a message for an ordinary queue of that name and never answers:
 * the request ends after `timeoutMs` as `no_answer` (it expires there by its TTL, non-persistent, so the broker drops
 * it rather than dead-lettering it). A hub account the broker refuses the request to is `refused`.
 */
export const STATISTICS_DESTINATION_PREFIX = 'ActiveMQ.Statistics.Destination.';
export const STATISTICS_END_WITH_NULL = 'ActiveMQ.Statistics.Destination.List.End.With.Null';
export const STATISTICS_FIRST_MESSAGE_TIMESTAMP = 'ActiveMQ.Statistics.Destination.Include.First.Message.Timestamp';

/**
 * Why no depth could be read: a fixed word each (logged, and the reason the depth gauges are absent). All but
 * `store_unavailable` are the broker's; that one is the hub's own store, which could not list the systems whose
 * downlink queues are to be read (the broker was not asked).
 */
export type DepthUnknownReason = 'not_connected' | 'no_answer' | 'refused' | 'unexpected_reply' | 'connection_lost' | 'store_unavailable';

export class DepthUnknownError extends Error {
  constructor(
    readonly reason: DepthUnknownReason,
    detail: string,
  ) {
    super(detail);
    this.name = 'DepthUnknownError';
  }
}

export type StatisticsMap = Readonly<Record<string, unknown>>;

/**
 * What the broker answered: its maps (the end of the list left out), whether the end came (false: the time ran out
 * after at least one map, as from a plugin without the end-of-list property), and the broker's clock when it
 * answered (ms; null when the replies carried none).
 */
export type StatisticsAnswer = Readonly<{ maps: readonly StatisticsMap[]; ended: boolean; brokerNow: number | null }>;

export type StatisticsRequest = Readonly<{ destination: string; timeoutMs: number; firstMessageTimestamp?: boolean }>;

const isMap = (body: unknown): body is StatisticsMap => body !== null && typeof body === 'object' && !Array.isArray(body) && !Buffer.isBuffer(body) && !(body instanceof Date);

/** Asks once (see above); rejects with a DepthUnknownError. */
export function requestStatistics(connection: AmqpConnection, request: StatisticsRequest): Promise<StatisticsAnswer> {
  if (!connection.isConnected()) return Promise.reject(new DepthUnknownError('not_connected', 'the hub is not connected to the message broker'));
  const correlationId = randomUUID();
  return new Promise<StatisticsAnswer>((resolve, reject) => {
    let sender: Sender | undefined;
    const maps: StatisticsMap[] = [];
    let brokerNow: number | null = null;
    let done = false;
    const end = (outcome: { ended: boolean } | { error: DepthUnknownError }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      connection.off('disconnected', onLost);
      connection.off('closed', onClosed);
      const connected = connection.isConnected();
      if (sender) endLink(sender, connected);
      endLink(receiver, connected, session);
      if ('error' in outcome) reject(outcome.error);
      else resolve({ maps, ended: outcome.ended, brokerNow });
    };
    const onLost = () => end({ error: new DepthUnknownError('connection_lost', 'the connection to the message broker was lost during the reading') });
    // Closed by the hub (its stop): ended now, not at the timeout, which held a stopped hub's process for its 5 s.
    const onClosed = () => end({ error: new DepthUnknownError('connection_lost', 'the connection to the message broker was closed during the reading') });
    const timer = setTimeout(
      () =>
        end(
          maps.length > 0
            ? { ended: false }
            : { error: new DepthUnknownError('no_answer', `the broker did not answer the statistics request within ${request.timeoutMs} ms (is its statisticsBrokerPlugin enabled?)`) },
        ),
      request.timeoutMs,
    );
    connection.once('disconnected', onLost);
    connection.once('closed', onClosed);
    const refused = (what: string) => (context: EventContext) => {
      const e = (context.receiver ?? context.sender)?.error as { condition?: string; description?: string } | undefined;
      end({ error: new DepthUnknownError('refused', `the broker refused the statistics ${what}: ${[e?.condition, e?.description].filter(Boolean).join(': ') || 'no reason given'}`) });
    };
    // On a session of its own, ended with the reading (as the dead letter browse does): nothing of a reading stays
    // on the session the uplink consumer and the senders share, whatever the broker does to its links.
    const session = connection.raw.create_session();
    session.begin();
    const receiver = session.open_receiver({ source: { dynamic: true } as never, autoaccept: true, credit_window: 100 });
    receiver.on('receiver_error', refused('reply queue'));
    receiver.on('message', (context: EventContext) => {
      const message = context.message;
      if (!message || (message.correlation_id !== undefined && message.correlation_id !== correlationId)) return;
      const body = message.body as unknown;
      if (!isMap(body)) {
        end({ error: new DepthUnknownError('unexpected_reply', 'the statistics reply was not a map') });
        return;
      }
      const created = message.creation_time as unknown;
      if (created instanceof Date && Number.isFinite(created.getTime())) brokerNow = created.getTime();
      if (Object.keys(body).length === 0) end({ ended: true });
      else maps.push(body);
    });
    receiver.once('receiver_open', (context: EventContext) => {
      const replyTo = context.receiver?.source?.address;
      if (typeof replyTo !== 'string' || replyTo.length === 0) {
        end({ error: new DepthUnknownError('refused', 'the broker gave the reply queue no address') });
        return;
      }
      sender = session.open_sender({ target: { address: `${STATISTICS_DESTINATION_PREFIX}${request.destination}` }, autosettle: true });
      sender.on('sender_error', refused('request'));
      sender.on('rejected', () => end({ error: new DepthUnknownError('refused', 'the broker rejected the statistics request') }));
      sender.once('sendable', () => {
        if (done) return;
        sender!.send({
          body: '',
          durable: false,
          ttl: Math.max(request.timeoutMs, 10_000),
          reply_to: replyTo,
          correlation_id: correlationId,
          application_properties: { [STATISTICS_END_WITH_NULL]: true, ...(request.firstMessageTimestamp ? { [STATISTICS_FIRST_MESSAGE_TIMESTAMP]: true } : {}) },
        });
      });
    });
  });
}

/** A count in a statistics map (ActiveMQ sends longs; rhea may give a bigint), or null when it is none. */
export const countIn = (map: StatisticsMap, key: string): number | null => {
  const raw = map[key];
  const value = typeof raw === 'bigint' ? Number(raw) : raw;
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : null;
};
