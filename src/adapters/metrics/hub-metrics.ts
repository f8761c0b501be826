// The hub's own metrics besides the AMQP connection's (failover.ts): uplink settlement outcomes and HTTP requests.
//
// Labels are fixed vocabularies only: an outcome, a reason CODE (never the free text after it, which may quote
// a payload), an HTTP method, a route PATTERN (/experts/:id, never the URL) and a status code. No message id,
// expert id or anything about a patient ever becomes a label. One exception, by design: the downlink queues' depth
// is per `system`, the id of a system the hub knows (registered by an operator: SYSTEM_ID_PATTERN, never one that
// looks like a CPR number; as many series as connected systems, tens), because which city falls behind is the point.
import type { DownlinkLag } from '../../application/downlink/downlink-lag';
import type { ConsumerOutcomeEvent } from '../amqp/queue-consumer';
import type { DepthSample, DepthUnknownReason } from '../messaging/dead-letter-depth';
import type { DownlinkDepths } from '../messaging/downlink-queue-depth';
import type { LinkLostReason } from '../messaging/uplink-attachment';
import type { MetricsRegistry } from './registry';

/**
 * The code of a settlement reason: RtsError codes and parse failures already start with one (`bad_schema: ...`,
 * `unknown_system`); QueueConsumer's own reasons are mapped to fixed words. Anything else is `other`.
 */
export function reasonCode(reason: string): string {
  const text = reason.trim();
  if (/^retry limit \(\d+\) reached/.test(text)) return 'retry_limit';
  if (/^max attempts exceeded/.test(text)) return 'max_attempts';
  if (/^handler timed out/.test(text)) return 'handler_timeout';
  if (/^handler threw/.test(text)) return 'handler_error';
  if (/^transient failure/.test(text)) return 'transient';
  if (/^body is not an AMQP value string/.test(text)) return 'bad_body';
  const code = /^([a-z][a-z0-9_]{0,40})(?::|$)/.exec(text);
  return code ? code[1]! : 'other';
}

/** Counts the uplink consumer's outcomes; returns the `onOutcome` observer. */
export function uplinkOutcomeRecorder(metrics: MetricsRegistry | undefined, queueKind = 'uplink'): (event: ConsumerOutcomeEvent) => void {
  if (!metrics) return () => undefined;
  const accepted = metrics.counter('rts_uplink_accepted_total', 'Uplink messages processed and accepted', ['queue']).zero({ queue: queueKind });
  const retried = metrics.counter('rts_uplink_retried_total', 'Uplink messages handed back to the broker for another attempt, by reason code', ['queue', 'reason']);
  const dead = metrics.counter('rts_uplink_dead_lettered_total', 'Uplink messages moved to the dead letter queue, by reason code', ['queue', 'reason']);
  const deadFailed = metrics.counter('rts_uplink_dead_letter_failed_total', 'Dead-letter copies the broker did not take (the message comes back)', ['queue']).zero({ queue: queueKind });
  const stale = metrics.counter('rts_uplink_stale_total', 'Handler results dropped because their delivery belonged to a lost connection', ['queue']).zero({ queue: queueKind });
  const deferred = metrics.counter('rts_uplink_deferred_total', 'Uplink messages handed back uncounted because the hub could not handle anything (its store unavailable), by reason code', ['queue', 'reason']);
  return (event) => {
    const queue = queueKind;
    switch (event.kind) {
      case 'accepted':
        accepted.inc({ queue });
        break;
      case 'retried':
        retried.inc({ queue, reason: reasonCode(event.reason) });
        break;
      case 'dead-lettered':
        dead.inc({ queue, reason: reasonCode(event.reason) });
        break;
      case 'dead-letter-failed':
        deadFailed.inc({ queue });
        break;
      case 'stale':
        stale.inc({ queue });
        break;
      case 'deferred':
        deferred.inc({ queue, reason: reasonCode(event.reason) });
        break;
    }
  };
}

/** Counts resends of the hub's own sends (downlink, replays) after a failover or a refused transfer. */
export function sendRetryRecorder(metrics: MetricsRegistry | undefined, kind: string): (event: { reason: string }) => void {
  if (!metrics) return () => undefined;
  const counter = metrics.counter('rts_amqp_send_retries_total', 'Sends attempted again (same message id) after a lost or refused transfer', ['kind', 'reason']);
  return (event) => counter.inc({ kind, reason: /^[a-z-]{1,20}$/.test(event.reason) ? event.reason : 'other' });
}

/**
 * Downlink messages held for systems without a valid encryption key (application/downlink/held-downlinks.ts):
 * held by this process (by reason), released by it, and held but not yet released (this process's view after
 * its last release pass). Plain totals: the other metrics never label by system either.
 */
export function heldDownlinkRecorder(metrics: MetricsRegistry | undefined): Readonly<{ held(reason: string): void; released(count: number): void; pending(count: number): void }> {
  if (!metrics) return { held: () => undefined, released: () => undefined, pending: () => undefined };
  const held = metrics.counter('rts_downlink_held_total', 'Downlink messages held because their system had no valid encryption key (no_encryption_key) or had earlier ones held (behind_held)', ['reason']).zero({ reason: 'no_encryption_key' }, { reason: 'behind_held' });
  const released = metrics.counter('rts_downlink_held_released_total', 'Held downlink messages released (sent once the system had a valid key, or dropped as undeliverable)');
  const pending = metrics.gauge('rts_downlink_held_pending', 'Held downlink messages not yet released, over all systems');
  pending.set({}, 0);
  return {
    held: (reason) => held.inc({ reason: reason === 'no_encryption_key' || reason === 'behind_held' ? reason : 'other' }),
    released: (count) => released.inc({}, count),
    pending: (count) => pending.set({}, count),
  };
}

/**
 * rts_downlink_stalled{publisher}: 1 while the publisher is behind and its stored checkpoint stands still
 * (DownlinkLagMonitor), in every hub process: at a standby it means no process gets that downlink out.
 */
export function downlinkStallRecorder(metrics: MetricsRegistry | undefined, publishers: readonly string[]): (publisher: string, stalled: boolean) => void {
  if (!metrics) return () => undefined;
  const gauge = metrics.gauge('rts_downlink_stalled', "Whether the downlink publisher makes no progress (1): events wait, and neither its stored checkpoint moved nor (in the process that publishes) a message of it was accepted for RTS_DOWNLINK_STALL_AFTER_MS; reported by every hub process, publishing or standing by", ['publisher']);
  const show = (publisher: string, stalled: boolean) => gauge.set({ publisher }, stalled ? 1 : 0);
  for (const publisher of publishers) show(publisher, false);
  return show;
}

/**
 * How far the downlink publishers are behind the store (application/downlink/downlink-lag.ts), by publisher: a fixed
 * name (`directory`, `consultations`), nothing else. Reported by every hub process from the stored checkpoints, whether
 * it publishes or stands by (so with none publishing it grows at each); 0 before the first sample and at stop. `rts_downlink_lag_events` only where positions count events (not on EventStoreDB).
 */
export function downlinkLagRecorder(
  metrics: MetricsRegistry | undefined,
  options: Readonly<{ publishers: readonly string[]; positionsCountEvents: boolean }>,
): (publisher: string, lag: DownlinkLag | null) => void {
  if (!metrics) return () => undefined;
  const events = options.positionsCountEvents
    ? metrics.gauge('rts_downlink_lag_events', "Events appended after the downlink publisher's stored checkpoint: what it has yet to go through (0: at the head); every hub process reads the shared checkpoint, publishing or standing by", ['publisher'])
    : undefined;
  const seconds = metrics.gauge('rts_downlink_lag_seconds', 'How long ago the first event the downlink publisher has yet to go through was recorded (0: at the head); every hub process reads the shared checkpoint, publishing or standing by', ['publisher']);
  const show = (publisher: string, lag: DownlinkLag | null) => {
    events?.set({ publisher }, lag?.events == null ? 0 : Number(lag.events));
    seconds.set({ publisher }, lag?.seconds ?? 0);
  };
  for (const publisher of options.publishers) show(publisher, null);
  return show;
}

/** The results a reading of the dead letter queue can count besides `ok` (`not_connected` is no reading: nothing was asked). */
const READING_FAILURES: readonly Exclude<DepthUnknownReason, 'not_connected' | 'store_unavailable'>[] = ['no_answer', 'refused', 'unexpected_reply', 'connection_lost'];
/** The same for the downlink queues, whose reading first asks the hub's store for the systems. */
const DOWNLINK_READING_FAILURES: readonly Exclude<DepthUnknownReason, 'not_connected'>[] = [...READING_FAILURES, 'store_unavailable'];

/**
 * Uplink links found gone, by how: `detached` (the broker detached it), `session_ended` (the broker ended its
 * session), `missing` (no event at all: only the hub's own check saw it; above 0 means a case the events miss).
 * The hub attaches a new one each time (uplink-attachment.ts).
 */
export function uplinkLinkLostRecorder(metrics: MetricsRegistry | undefined): (reason: LinkLostReason) => void {
  if (!metrics) return () => undefined;
  const reasons: readonly LinkLostReason[] = ['detached', 'session_ended', 'missing'];
  const lost = metrics
    .counter('rts_uplink_link_lost_total', "Times the uplink consumer's link was found gone and a new one attached, by how: detached, session_ended, missing (only the hub's check saw it)", ['reason'])
    .zero(...reasons.map((reason) => ({ reason })));
  return (reason) => lost.inc({ reason });
}

/**
 * The dead letter queue's depth as the broker the hub is connected to counts it (messaging/dead-letter-depth.ts):
 * `rts_dead_letters` only while the last reading succeeded on the current connection (no sample while not connected,
 * after a failover until the new broker answered, or on a broker without the statistics plugin: never a stale
 * figure); `rts_dead_letters_read_timestamp_seconds`, when the depth was last read (kept: alert on its age); and the
 * readings by result, a fixed word. No label carries a queue name, a message or anything a sender wrote.
 */
export function deadLetterDepthRecorder(metrics: MetricsRegistry | undefined, startedAtMs: number = Date.now()): (sample: DepthSample) => void {
  if (!metrics) return () => undefined;
  const depth = metrics.gauge('rts_dead_letters', 'Messages on the dead letter queue, as the broker this hub is connected to counts them (no sample while unknown)');
  const readAt = metrics.gauge('rts_dead_letters_read_timestamp_seconds', "When the depth of the dead letter queue was last read from the broker (Unix time; the hub's start until the first reading)");
  // From the start: without a sample `time() - ...` is nothing and the alert on its age never fired for a hub that
  // has not read the depth once since it started (its broker away, or without the statistics plugin from day one).
  readAt.set({}, startedAtMs / 1000);
  const readings = metrics.counter('rts_dead_letters_readings_total', 'Readings of the dead letter queue depth, by result: ok, no_answer (no statistics plugin?), refused, unexpected_reply, connection_lost', ['result']).zero(
    ...['ok', ...READING_FAILURES].map((result) => ({ result })),
  );
  return (sample) => {
    if (sample.depth !== null) {
      depth.set({}, sample.depth);
      readAt.set({}, sample.at / 1000);
      readings.inc({ result: 'ok' });
      return;
    }
    depth.remove();
    if (sample.reason !== 'not_connected') readings.inc({ result: sample.reason });
  };
}

/**
 * Each known system's downlink queue as the broker the hub is connected to counts it (messaging/downlink-queue-depth.ts):
 * `rts_downlink_queue_depth{system}` and `rts_downlink_oldest_message_age_seconds{system}` only while the last reading
 * succeeded on the current connection (the same rules as rts_dead_letters), and only for the systems that reading
 * listed: a system the hub no longer knows is dropped. Beside them, as for the dead letter queue, when the figures
 * were last read (kept while unknown: alert on its age) and the readings by result, so that figures gone missing are
 * seen: an alert on the depth alone never fires while there is none.
 */
export function downlinkQueueDepthRecorder(metrics: MetricsRegistry | undefined, startedAtMs: number = Date.now()): (sample: DepthSample<DownlinkDepths>) => void {
  if (!metrics) return () => undefined;
  const depth = metrics.gauge('rts_downlink_queue_depth', "Messages waiting on each known system's downlink queue, as the broker this hub is connected to counts them (no sample while unknown)", ['system']);
  const age = metrics.gauge('rts_downlink_oldest_message_age_seconds', "How long the first message waiting on each known system's downlink queue has been there, by the broker's clock (0: none waits; no sample while unknown)", ['system']);
  const readAt = metrics.gauge('rts_downlink_queue_depth_read_timestamp_seconds', "When the downlink queues' depths were last read (Unix time; the hub's start until the first reading)");
  readAt.set({}, startedAtMs / 1000); // from the start, as rts_dead_letters_read_timestamp_seconds
  const readings = metrics
    .counter('rts_downlink_queue_depth_readings_total', "Readings of the downlink queues' depths, by result: ok, no_answer (no statistics plugin?), refused, unexpected_reply, connection_lost, store_unavailable (the hub's store did not list its systems)", ['result'])
    .zero(...['ok', ...DOWNLINK_READING_FAILURES].map((result) => ({ result })));
  let shown = new Set<string>();
  return (sample) => {
    if (sample.depth !== null) {
      readAt.set({}, sample.at / 1000);
      readings.inc({ result: 'ok' });
    } else if (sample.reason !== 'not_connected') {
      readings.inc({ result: sample.reason });
    }
    const now = sample.depth === null ? new Map() : sample.depth;
    for (const system of shown) {
      if (now.has(system)) continue;
      depth.remove({ system });
      age.remove({ system });
    }
    shown = new Set(now.keys());
    for (const [system, d] of now) {
      depth.set({ system }, d.messages);
      if (d.oldestMessageAgeSeconds === null) age.remove({ system });
      else age.set({ system }, d.oldestMessageAgeSeconds);
    }
  };
}
