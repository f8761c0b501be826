import type { Logger } from 'pino';
import { DeadLetterService, hubReplayTargets } from '../application/directory/dead-letter-operations';
import type { Clock } from '../application/ports/clock';
import type { EventStore } from '../application/ports/event-store';
import type { PatientDataProtection } from '../application/ports/patient-data-protection';
import type { IdGenerator } from '../application/ports/id-generator';
import { SoleProcessLease, type PublishingLease } from '../application/ports/publishing-lease';
import { BrokerGatedLease } from '../application/broker-gated-lease';
import { PublishingGate } from '../application/publishing-gate';
import { AmqpConnection, AmqpLoginRefusedError } from '../adapters/amqp/connection';
import { DurableSender } from '../adapters/amqp/durable-sender';
import type { ConsumerOutcomeEvent } from '../adapters/amqp/queue-consumer';
import { describeEndpoints } from '../adapters/messaging/amqp-broker-url';
import { AmqpHubOutbox } from '../adapters/messaging/amqp-hub-outbox';
import type { HubMessageCodec } from '../adapters/messaging/hub-codec';
import { BROKER_CURSOR_DUPLICATE_SELECTOR, BROKER_OTHER_DEAD_LETTER_SELECTOR, brokerDeadLetterQueueFor, createBrokerDeadLetterMover, createUplinkConsumer, deadLetterIdOf, uplinkTraceOf, type UplinkConsumerOptions, type UplinkLike } from '../adapters/messaging/amqp-uplink-consumer';
import { UplinkAttachment } from '../adapters/messaging/uplink-attachment';
import { UplinkDeferralLog } from '../adapters/messaging/uplink-deferral-log';
import { AmqpDeadLetterQueue } from '../adapters/messaging/dead-letters';
import { AmqpDeadLetterDepthReader, DeadLetterDepthMonitor, type DepthSample } from '../adapters/messaging/dead-letter-depth';
import { AmqpDownlinkDepthReader, DownlinkDepthMonitor, type DownlinkDepths, type DownlinkQueueDepth } from '../adapters/messaging/downlink-queue-depth';
import { AmqpRefusalNotices } from '../adapters/messaging/refusal-notices';
import type { UplinkAuditTrail } from '../adapters/messaging/uplink-audit';
import type { MessagingConfig } from './config';
import type { DirectoryModule } from './directory-module';
import type { ConsultationModule } from './consultation-module';
import { FATAL_CLOSE_RETRY_MS, REFUSED_LOGIN_RETRY_MS, openHubBroker } from './broker-connection';
import type { MetricsRegistry } from '../adapters/metrics/registry';
import { uplinkOutcomeRecorder } from '../adapters/metrics/hub-metrics';
import { deadLetterDepthRecorder, downlinkQueueDepthRecorder, downlinkLagRecorder, downlinkStallRecorder, heldDownlinkRecorder, uplinkLinkLostRecorder } from '../adapters/metrics/hub-metrics';
import { DownlinkLagMonitor, countingSends } from '../application/downlink/downlink-lag';
import { HeldDownlinks } from '../application/downlink/held-downlinks';
import { HeldDownlinkReleaser } from '../application/downlink/held-downlink-releaser';

/**
 * The hub's side of the broker, composed: one AMQP connection (failover over the configured endpoints), the
 * uplink consumer (hubs are stateless competing consumers on the shared uplink queue), the downlink publishers
 * with an AMQP outbox (from the modules' durable checkpoints), and the dead letter operations. The publishers run
 * only while this process holds the publishing lease: on a PostgreSQL store shared by several hub processes one
 * of them publishes and the others stand by, taking over when it stops or dies. Without a broker (`messaging`
 * null) only the dead letter service exists, answering 503.
 *
 * Downlink messages for a system without a valid encryption key are held in the store (HeldDownlinks, shared by
 * both publishers through the outbox) and sent in order by the HeldDownlinkReleaser once it has one; the releaser
 * starts and stops with the publishers, so it runs in every hub process that publishes.
 *
 * The uplink consumer sends 'consultation.refused' notices itself (refusal-notices.ts), in every hub process that
 * consumes, whether or not it publishes: a notice answers the message in hand before it is dead-lettered. It goes
 * through the same outbox (codec, size check, durable send), never held: a system without a valid key gets none.
 *
 *   const messaging = await startHubMessaging({ messaging, directory, store, clock, ids, logger });
 *   registerDeadLetterRoutes(app, { deadLetters: messaging.deadLetters });
 *   await messaging.stop();   // consumer (drains its handlers), publisher, senders, connection; not the store
 */
export type HubMessagingDependencies = Readonly<{
  messaging: MessagingConfig | null;
  directory: DirectoryModule;
  store: EventStore;
  clock: Clock;
  ids: IdGenerator;
  logger: Logger;
  /** Replaces the directory's uplink handler (tests inject failures). */
  uplink?: UplinkLike;
  /** consultation.* uplink goes to its handleUplink; its downlink publisher shares the outbox. */
  consultations?: Pick<ConsultationModule, 'handleUplink' | 'correlationIdOf' | 'patientKeysOf' | 'downlinkPublisher'>;
  /** Message bodies: JOSE or plain JSON (message-security.ts); default plain JSON. */
  codec?: HubMessageCodec;
  /** Seals the texts of consultation messages held for a system without a valid key (held-downlinks.ts). */
  protection: PatientDataProtection;
  /**
   * The hub's audit trail (the one the HTTP side records in, security-module.ts): every consultation.* uplink message's
   * final outcome is recorded there before the message is settled (amqp-uplink-consumer.ts, uplink-audit.ts).
   */
  audit?: UplinkAuditTrail;
  /** Connection state, failovers and uplink outcomes go here (the hub's /metrics). */
  metrics?: MetricsRegistry;
  /** Whether the store's positions count its events (not EventStoreDB's log offsets): the lag metric in events. Default true. */
  positionsCountEvents?: boolean;
  /** Whether this process runs the downlink publishers now (default: always, as on a store one process opens). */
  publishingLease?: PublishingLease;
  /** How often the downlink lag is sampled (default 5000 ms; tests sample faster). */
  downlinkLagEveryMs?: number;
  /**
   * How long the start waits for the broker and the consumer's attach (default 5000 ms). A broker that does not
   * answer by then does not stop the hub: messaging attaches in the background whenever it does, meanwhile the
   * HTTP API serves everything that does not need the broker (uploads, queries, the directory) and the dead-letter
   * routes answer 503.
   */
  connectTimeoutMs?: number;
}>;

export type HubMessaging = Readonly<{
  deadLetters: DeadLetterService;
  connected(): boolean;
  /** For /health: connected, disconnected, or login_refused (the broker refused the hub's credentials last). */
  brokerState(): 'connected' | 'disconnected' | 'login_refused';
  /** For /health: whether the uplink consumer's link is attached now (it re-attaches by itself after an outage). */
  consuming(): boolean;
  /** For /health: whether this process runs the downlink publishers now (holds the publishing lease). */
  publishing(): boolean;
  /**
   * For /health: the publishers that are behind the store and whose stored checkpoint has not moved (nor, in the
   * process that publishes, a message of theirs been accepted) for RTS_DOWNLINK_STALL_AFTER_MS. Sampled in every
   * hub process, publishing or not: at a standby a stall means no process gets that downlink out.
   */
  stalledPublishers(): readonly string[];
  /**
   * For GET /systems: the system's downlink queue as the broker now connected counted it at the last reading (`readAt`),
   * or null while that is not known (not connected, a failover not yet read, a broker without the statistics plugin).
   */
  downlinkQueueDepth(systemId: string): (DownlinkQueueDepth & Readonly<{ readAt: string }>) | null;
  stop(): Promise<void>;
}>;

/** How long a stop lets the downlink publishers finish the message in hand while the broker is connected. */
const PUBLISH_STOP_WAIT_MS = 5_000;

export const startHubMessaging = async (deps: HubMessagingDependencies): Promise<HubMessaging> => {
  const { messaging, logger } = deps;
  if (!messaging) {
    // Not "(embedded profile)": hubs on PostgreSQL without a broker log this too.
    logger.info('no RTS_BROKER_URL: running without messaging (no uplink consumer, no downlink publishers)');
    return {
      deadLetters: new DeadLetterService({ queue: null, store: deps.store, clock: deps.clock, ids: deps.ids, replayTargets: { resolve: async () => null } }),
      connected: () => false,
      brokerState: () => 'disconnected',
      consuming: () => false,
      publishing: () => false,
      stalledPublishers: () => [],
      downlinkQueueDepth: () => null,
      stop: async () => undefined,
    };
  }
  const log = logger.child({ component: 'messaging' });
  const broker = await openHubBroker(messaging, { logger: log, metrics: deps.metrics });
  const connection = broker.connection;
  // Each part of the hub listens on its one connection (failover metrics, senders, the consumer, this file, the two
  // depth monitors) and each reading or browse under way adds a `disconnected` listener: with both depth readings
  // under way Node's default of 10 was passed (a MaxListenersExceededWarning on stderr). 32 keeps the warning for a
  // real leak (one listener per reading, never removed).
  connection.setMaxListeners(32);
  // One line per change of state, not one per reconnect attempt (one a second while the broker is down).
  let up = false;
  // The refusal of the last attempt, if it was refused; logged once until the hub is let in.
  let refused: AmqpLoginRefusedError | undefined;
  // A close the hub does not retry at once (it tries again every 10 s): logged once until it is connected again.
  let closedFatally = false;
  connection.on('connected', (e) => {
    up = true;
    refused = undefined;
    closedFatally = false;
    log.info({ broker: `${e.endpoint.host}:${e.endpoint.port}`, connections: e.connectionCount }, 'connected to the broker');
  });
  connection.on('disconnected', (e) => {
    if (up) log.warn({ broker: e.endpoint && `${e.endpoint.host}:${e.endpoint.port}`, reconnecting: e.reconnecting, err: e.error?.message }, 'broker connection lost');
    up = false;
  });
  connection.on('error', (error) => {
    if (!(error instanceof AmqpLoginRefusedError)) {
      // The AMQP condition too (amqp:not-allowed, ...): the description alone did not say which it was.
      const condition = (error as { condition?: unknown }).condition;
      if (!closedFatally) log.error({ err: error.message, ...(typeof condition === 'string' ? { condition } : {}), retryInMs: FATAL_CLOSE_RETRY_MS }, 'broker connection failed (the hub tries again every 10 s)');
      closedFatally = true;
      return;
    }
    if (refused === undefined) {
      log.error(
        { err: error.message, retryInMs: REFUSED_LOGIN_RETRY_MS },
        error.username === undefined
          ? 'the broker refused the hub: it requires a login; set RTS_BROKER_USERNAME and RTS_BROKER_PASSWORD (the hub tries again every 10 s)'
          : "the broker refused the hub's login: RTS_BROKER_USERNAME and RTS_BROKER_PASSWORD must name an account the broker has (the hub tries again every 10 s)",
      );
    }
    refused = error;
  });

  const downlinkSender = broker.downlinkSender();
  const operatorSender = broker.replaySender();
  const heldMetrics = heldDownlinkRecorder(deps.metrics);
  const held = new HeldDownlinks({ store: deps.store, clock: deps.clock, logger: log, onHeld: heldMetrics.held, onReleased: heldMetrics.released, protection: deps.protection });
  const outbox = new AmqpHubOutbox(downlinkSender, deps.codec, log, held);
  // Registered systems only (the directory caught up first: a system registered a moment ago is one), to the queue
  // the directory names for them.
  const refusals = new AmqpRefusalNotices({
    outbox,
    isRegistered: async (systemId) => {
      await deps.directory.projector.catchUp();
      return (await deps.directory.readModel.getSystem(systemId)) !== null;
    },
    queueFor: (systemId) => deps.directory.service.downlinkQueueFor(systemId),
    now: () => deps.clock.now().toUTC().toISO()!,
    logger: log,
  });
  const releaser = new HeldDownlinkReleaser({ held, store: deps.store, prepare: (queue, envelope) => outbox.prepare(queue, envelope), logger: log, onPending: heldMetrics.pending });
  // Each publisher's messages the broker accepted, counted: its progress within a page (countingSends).
  const directorySends = countingSends(outbox);
  const consultationSends = countingSends(outbox);
  const publisher = deps.directory.downlinkPublisher(directorySends.outbox);
  // Each message it sends recorded in the audit trail under the case's patients (consultation-downlink.ts).
  const consultationPublisher = deps.consultations?.downlinkPublisher(consultationSends.outbox, deps.audit);
  // How far behind they are: the stored checkpoints (shared by the hub processes on a PostgreSQL store), sampled in
  // every process whether it publishes or not, so a deployment where no process publishes (the lock left with an
  // orphaned session, every hub standing by) shows a growing lag and a stall at each hub (/metrics, /health). Before,
  // only the publishing process sampled: with none publishing every hub said lag 0, stalled 0. Reading a checkpoint
  // is one SELECT (PostgreSQL) or a prepared read (SQLite): it takes no lease and writes nothing.
  const lagging = [
    { name: 'directory', checkpoint: () => publisher.checkpoint(), sent: directorySends.sent },
    ...(consultationPublisher ? [{ name: 'consultations', checkpoint: () => consultationPublisher.checkpoint(), sent: consultationSends.sent }] : []),
  ];
  const positionsCountEvents = deps.positionsCountEvents ?? true;
  const showStall = downlinkStallRecorder(deps.metrics, lagging.map((p) => p.name));
  const lag = new DownlinkLagMonitor({
    store: deps.store,
    clock: deps.clock,
    publishers: lagging,
    positionsCountEvents,
    onSample: downlinkLagRecorder(deps.metrics, { publishers: lagging.map((p) => p.name), positionsCountEvents }),
    stallAfterMs: messaging.downlinkStallAfterMs,
    ...(deps.downlinkLagEveryMs !== undefined ? { everyMs: deps.downlinkLagEveryMs } : {}),
    onStall: (publisher, stall) => {
      showStall(publisher, stall !== null);
      // Also at the hub's stop: nothing of this process is stalled then.
      if (stall === null) log.info({ publisher }, 'the downlink publisher is no longer stalled');
      else {
        const fields = { publisher, lagEvents: stall.lag.events === null ? undefined : Number(stall.lag.events), lagSeconds: Math.round(stall.lag.seconds), stillForSeconds: Math.round(stall.stillForSeconds) };
        // A standby sees the stored checkpoint only, not another process's sends (see README "A publisher that makes no progress").
        if (gate.publishing())
          log.warn({ ...fields, publishing: true }, 'the downlink publisher makes no progress: events wait to be sent, its checkpoint has not moved and the broker accepted none of its messages (README: "A publisher that makes no progress")');
        else
          log.warn(
            { ...fields, publishing: false },
            'the downlink publisher makes no progress and this hub process stands by: events wait to be sent and the stored checkpoint has not moved, so no hub process gets this downlink out unless the one publishing is still sending the many messages of one event (README: "A publisher that makes no progress")',
          );
      }
    },
  });
  // While the store is down every message in flight is handed back, again and again: one warning per 10 s with the
  // count, and one line when messages are accepted again (as the other loops log an outage; uplink-deferral-log.ts).
  const deferrals = new UplinkDeferralLog(log);
  const onOutcome = (event: ConsumerOutcomeEvent): void => {
    broker.onUplinkOutcome(event);
    logOutcome(event);
  };
  const logOutcome = (event: ConsumerOutcomeEvent): void => {
    if (event.kind === 'deferred') deferrals.deferred(event.reason, event.pauseMs);
    else if (event.kind === 'accepted') deferrals.accepted();
    // With its dead letter id (the hub's own UUID): the next step is `rts dlq show <deadLetterId>`. And the message's
    // own ids as the sender set them (uplinkTraceOf: never one that may hold a CPR number), as on its other lines:
    // without them a dead letter could be tied to the message a system asks about only by the time.
    if (event.kind === 'dead-lettered') log.warn({ ...uplinkTraceOf(event.copy), queue: event.queue, attempt: event.attempt, reason: event.reason, dlq: event.deadLetterQueue, deadLetterId: deadLetterIdOf(event.copy) }, 'uplink message dead-lettered');
    // One line at info per message refused for now (its first retry), as one per message handled; its later retries at
    // debug, and its dead letter at warn. All at info, a system that sent 2,000 changes of experts the hub does not
    // know wrote 8,000 retry lines (an outside review saw ~10,000 lines of the one flood with the dead letters').
    else if (event.kind === 'retried') {
      const fields = { ...(event.message ? uplinkTraceOf(event.message) : {}), queue: event.queue, attempt: event.attempt, reason: event.reason };
      if (event.attempt <= 1) log.info(fields, 'uplink message to be retried');
      else log.debug(fields, 'uplink message to be retried');
    }
    else if (event.kind === 'dead-letter-failed') log.error({ queue: event.queue, attempt: event.attempt, err: event.error.message }, 'dead-lettering failed; the message comes back');
  };
  // The consumer attaches once the broker first answers (no deadline); the publishers' sends wait for it
  // (RetryingSender) and their drains retry from their checkpoints, as after any outage. UplinkAttachment asks again
  // for a link the broker refused or ended, and replaces one gone without a word (uplink-attachment.ts).
  const consuming = () => ({ broker: broker.describe(), uplink: messaging.uplinkQueue, dlq: messaging.deadLetterQueue, prefetch: messaging.uplinkPrefetch, maxAttempts: messaging.uplinkMaxAttempts });
  let stopped = false;
  // 1 while this hub consumes the uplink queue (connected and its link attached; rhea re-attaches after an outage).
  const consumingGauge = deps.metrics?.gauge('rts_uplink_consuming', 'Whether this hub consumes the uplink queue now (1) or not (0)');
  const uplinkConsumer = (queue: string, more: Pick<UplinkConsumerOptions, 'onOutcome' | 'selector' | 'deadLetterSourceQueue'> & Partial<Pick<UplinkConsumerOptions, 'prefetch'>>) => (hooks: { onDetached(error: Error): void; onAttached(): void }) =>
    createUplinkConsumer(connection, {
      queue,
      deadLetterQueue: messaging.deadLetterQueue,
      uplink: deps.uplink ?? deps.directory.uplink,
      maxAttempts: messaging.uplinkMaxAttempts,
      prefetch: messaging.uplinkPrefetch,
      retryDelayBaseMs: messaging.uplinkRetryDelayMs,
      handlerTimeoutMs: messaging.uplinkHandlerTimeoutMs,
      ...more,
      ...hooks,
      routes: {
        ...(deps.consultations ? { consultations: deps.consultations, refusals } : {}),
        ...(deps.codec ? { codec: deps.codec } : {}),
        ...(deps.audit ? { audit: deps.audit, now: () => deps.clock.now().toJSDate().toISOString() } : {}),
        logger: log,
      },
    });
  const uplink = new UplinkAttachment({
    connection,
    newConsumer: uplinkConsumer(messaging.uplinkQueue, { onOutcome }),
    logger: log,
    describe: consuming,
    onConsuming: (yes) => consumingGauge?.set({}, yes ? 1 : 0),
    onLinkLost: uplinkLinkLostRecorder(deps.metrics),
  });
  // The broker's own dead letters of the uplink queue (DLQ.<uplink queue>, its individualDeadLetterStrategy): only
  // the copies ActiveMQ moved there as a duplicate paged in from its cursor, by a selector, which may be the only copy
  // of a message (README, "High availability"). They take the uplink's path: the same checks, the same dead letters
  // (to the hub's own queue, naming the uplink queue as their source so that a replay is allowed), idempotent by
  // envelope id. Counted as rts_uplink_*_total{queue="broker_dlq"}, each one read back logged at warn by its id. The
  // rest of that queue (expired messages, ones the broker gave up redelivering) is moved to the hub's own dead letter
  // queue by a second consumer (`moved`, below). On a broker without the strategy the queue stays empty.
  const brokerDlq = brokerDeadLetterQueueFor(messaging.uplinkQueue);
  const recoveredOutcome = uplinkOutcomeRecorder(deps.metrics, 'broker_dlq');
  const recovered = new UplinkAttachment({
    connection,
    newConsumer: uplinkConsumer(brokerDlq, {
      selector: BROKER_CURSOR_DUPLICATE_SELECTOR,
      deadLetterSourceQueue: messaging.uplinkQueue,
      // Rare copies: a small credit, not the uplink's.
      prefetch: Math.min(messaging.uplinkPrefetch, 10),
      onOutcome: (event) => {
        recoveredOutcome(event);
        if (event.kind === 'accepted') log.warn({ id: event.message ? uplinkTraceOf(event.message).id : undefined, queue: event.queue }, "uplink message read back from the broker's dead letter queue (a duplicate paged in from its cursor) and handled");
        // Its dead letters, retries and deferrals are logged as the uplink's (and counted under queue="broker_dlq" only).
        else logOutcome(event);
      },
    }),
    logger: log,
    name: `the read-back consumer of the broker's dead letters (${brokerDlq})`,
    describe: () => ({ ...consuming(), uplink: brokerDlq, selector: BROKER_CURSOR_DUPLICATE_SELECTOR }),
  });
  // The rest of the broker's dead letters there, by the complement selector: each moved to the hub's own dead letter
  // queue (reason broker_dead_lettered: ..., source queue the uplink's, so `rts dlq replay` sends it back there), where
  // the operators see it (`rts dlq`, rts_dead_letters). Left on the broker's queue, 200 of them ahead of a cursor
  // duplicate hid it from the read-back for good (ActiveMQ pages in maxPageSize=200 for a selector consumer). Counted as
  // rts_uplink_dead_lettered_total{queue="broker_dlq",reason="broker_dead_lettered"}, each logged at warn by its ids.
  const moved = new UplinkAttachment({
    connection,
    newConsumer: (hooks) =>
      createBrokerDeadLetterMover(connection, {
        queue: brokerDlq,
        deadLetterQueue: messaging.deadLetterQueue,
        uplinkQueue: messaging.uplinkQueue,
        prefetch: Math.min(messaging.uplinkPrefetch, 50),
        onOutcome: (event) => {
          recoveredOutcome(event);
          logOutcome(event);
        },
        ...hooks,
      }),
    logger: log,
    name: `the consumer that moves the broker's other dead letters (${brokerDlq}) to ${messaging.deadLetterQueue}`,
    describe: () => ({ ...consuming(), uplink: brokerDlq, selector: BROKER_OTHER_DEAD_LETTER_SELECTOR }),
  });
  connection.on('connected', () => uplink.show());
  connection.on('disconnected', () => uplink.show());
  const attached = uplink.start();
  void recovered.start();
  void moved.start();
  // The publishers and the releaser of held messages run while this process holds the publishing lease (one process at
  // a time on a shared store); the sampler of their lag runs in every process (above).
  const publishingGauge = deps.metrics?.gauge(
    'rts_downlink_publishing',
    'Whether this hub process publishes the downlink now (1) or stands by (0); on a shared store a sum over the hub processes of 0 means no process publishes',
  );
  publishingGauge?.set({}, 0);
  // A lease other processes compete for (PostgreSQL's) goes only to a process with a broker connection: one cut off
  // from every broker held it and stalled the downlink of the whole deployment (broker-gated-lease.ts).
  let lease: PublishingLease = deps.publishingLease ?? new SoleProcessLease();
  if (!(lease instanceof SoleProcessLease)) {
    const gated = new BrokerGatedLease(lease, { connected: () => connection.isConnected(), logger: log });
    connection.on('connected', () => gated.brokerChanged());
    connection.on('disconnected', () => gated.brokerChanged());
    lease = gated;
  }
  const gate = new PublishingGate({
    lease,
    publishers: [publisher, ...(consultationPublisher ? [consultationPublisher] : []), releaser],
    logger: log,
    onChange: (on) => {
      publishingGauge?.set({}, on ? 1 : 0);
      // Only the publishing process reports held messages: a standby's last value stayed, and a sum over the
      // processes counted them twice (an alert on it never cleared).
      if (!on) heldMetrics.pending(0);
    },
  });
  gate.start();
  lag.start();
  let waitTimer: NodeJS.Timeout | undefined;
  const inTime = await Promise.race([attached, new Promise<false>((resolve) => (waitTimer = setTimeout(() => resolve(false), deps.connectTimeoutMs ?? 5_000)))]);
  clearTimeout(waitTimer);
  if (inTime) log.info(consuming(), 'consuming uplink');
  else {
    log.warn(
      consuming(),
      refused
        ? 'the broker refused the hub\'s login: the hub serves HTTP now and starts consuming once the broker lets it in'
        : 'the broker does not answer yet: the hub serves HTTP now and starts consuming when it does',
    );
    void attached.then((ok) => ok && !stopped && log.info(consuming(), 'consuming uplink'));
  }

  const deadLetters = new DeadLetterService({
    queue: new AmqpDeadLetterQueue(connection, operatorSender, { queue: messaging.deadLetterQueue }),
    store: deps.store,
    clock: deps.clock,
    ids: deps.ids,
    replayTargets: hubReplayTargets({ uplinkQueue: messaging.uplinkQueue, systems: deps.directory.readModel, catchUp: () => deps.directory.projector.catchUp() }),
  });
  // rts_dead_letters: the queue's depth from the broker now connected (its statistics plugin), in every hub process.
  const depthReader = new AmqpDeadLetterDepthReader(connection, { queue: messaging.deadLetterQueue });
  const depth = new DeadLetterDepthMonitor({
    read: () => depthReader.read(),
    connection,
    everyMs: messaging.deadLetterDepthEveryMs,
    onSample: deadLetterDepthRecorder(deps.metrics, deps.clock.now().toMillis()),
    logger: log,
    queue: messaging.deadLetterQueue,
  });
  depth.start();
  // rts_downlink_queue_depth{system}: every known system's downlink queue, one statistics request per reading, on the
  // dead letter reading's schedule and rules; the last sample is kept for GET /systems.
  const downlinkDepthReader = new AmqpDownlinkDepthReader(connection, { prefix: messaging.downlinkQueuePrefix, systems: () => deps.directory.readModel.listSystemRows() });
  const recordDownlinkDepth = downlinkQueueDepthRecorder(deps.metrics, deps.clock.now().toMillis());
  let downlinkDepth: DepthSample<DownlinkDepths> = { depth: null, reason: 'not_connected' };
  const downlinkDepthMonitor = new DownlinkDepthMonitor({
    read: () => downlinkDepthReader.read(),
    connection,
    everyMs: messaging.deadLetterDepthEveryMs,
    onSample: (sample) => {
      downlinkDepth = sample;
      recordDownlinkDepth(sample);
    },
    logger: log,
    pattern: downlinkDepthReader.pattern,
  });
  downlinkDepthMonitor.start();

  let stopping: Promise<void> | null = null;
  return {
    deadLetters,
    connected: () => connection.isConnected(),
    brokerState: () => (connection.isConnected() ? 'connected' : refused ? 'login_refused' : 'disconnected'),
    consuming: () => uplink.consuming(),
    publishing: () => gate.publishing(),
    stalledPublishers: () => lag.stalled(),
    downlinkQueueDepth: (systemId) => {
      const sample = downlinkDepth;
      const found = sample.depth === null ? undefined : sample.depth.get(systemId);
      return found && 'at' in sample ? { ...found, readAt: new Date(sample.at).toISOString() } : null;
    },
    stop: () =>
      (stopping ??= (async () => {
        stopped = true;
        depth.stop();
        downlinkDepthMonitor.stop();
        // Handlers in flight finish (their events commit, their messages are settled); the rest is redelivered. The three
        // consumers at once: one after another, each waiting out its handlers and its link's close, a stop took up to
        // three times as long, and the two on DLQ.rts.uplink went on taking messages while the uplink drained.
        await Promise.all([uplink.stop(), recovered.stop(), moved.stop()]);
        // The publishers (and the releaser of held messages) end after the message in hand; its send waits for the
        // broker (up to 2 min). A broker that is not connected (never reached, login refused, gone) cannot take it:
        // closing the senders fails that send, and its event is published again from the checkpoint at the next
        // start (a held message stays held: released at the next start; receivers dedupe by message id).
        const publishersStopped = gate.stopPublishers();
        let waitTimer: NodeJS.Timeout | undefined;
        const brokerGone = new Promise<void>((resolve) => {
          if (!connection.isConnected()) return resolve();
          waitTimer = setTimeout(resolve, PUBLISH_STOP_WAIT_MS);
          connection.once('disconnected', () => resolve());
        });
        await Promise.race([publishersStopped, brokerGone]);
        clearTimeout(waitTimer);
        await downlinkSender.close();
        await operatorSender.close();
        await publishersStopped;
        await lag.stop();
        // Given up only now, so the process taking over does not send beside this one's last message.
        await gate.release();
        await broker.close();
        log.info('messaging stopped');
      })()),
  };
};
