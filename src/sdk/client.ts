// RtsClient: what a small-scale telemedicine system embeds to join the regional hub (the RTS paper's SDK):
// connect with reconnect and failover, send uplink messages with typed helpers, subscribe to its downlink queue
// with typed handlers, and leave the message format (and later its encryption) to the kit.
//
//   const client = await RtsClient.connect({ systemId: 'city-a', url: 'amqp://127.0.0.1:5673' });
//   await client.joinWithExperts(experts);                 // join request + batches (<= 500 experts, <= 384 KiB each), all accepted
//   await client.registerExpert('e-42', profile);          // resolves with the envelope id once the broker has it
//   await client.subscribe({ onExpertUpserted: async (m) => save(m.payload) });
//   await client.close();                                  // drains running handlers and pending sends
//
// Sending (at-least-once): every helper validates the envelope against the contract (a TypeError for a bad
// one: nothing is sent), encodes it with the codec and sends it durable; it resolves when the broker accepted
// it (ActiveMQ: stored). A transfer lost to a disconnect, or released by the broker, is sent again after the
// reconnect until `sendTimeoutMs` has passed; then the promise rejects with RtsSendError. A resend may reach the
// hub twice: the envelope id is the same, and the hub treats a repeat as a no-op. Pass `messageId` to make the
// envelope id deterministic across process restarts too (the same messageId gives the same envelope id).
//
// Receiving: a message is accepted only after its handler resolved; a handler that throws (or times out) hands
// the message back to the broker (modified, delivery-failed) and it comes again, up to `maxAttempts`, then it is
// dead-lettered. A message that cannot be decoded (bad JSON, breaks the contract, not addressed to us) is
// dead-lettered at once with the reason in application-property x-dlq-reason; it never reaches a handler and
// never blocks the queue. Envelope ids already processed are skipped (SeenStore; in memory by default, see
// seen-store.ts for what that does not cover).
//
// Refusals: every consultation message says it reads 'consultation.refused' (application property rts_accepts), so
// a consultation message the hub refuses for good (a retired candidate, a step the consultation's state does not
// allow) is answered on the downlink queue: onConsultationRefused, or accepted and logged at info without it.
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { uuidV5 } from '../application/ids';
import {
  AmqpConnection,
  DEFAULT_NON_FATAL_ERRORS,
  DurableSender,
  QueueConsumer,
  retryBackoff,
  SendError,
  type AmqpEndpoint,
  type AmqpSasl,
  type AmqpTls,
  type ConnectedEvent,
  type ConsumerOutcomeEvent,
  type DisconnectedEvent,
  type HandlerOutcome,
  type ReceivedMessage,
} from '../adapters/amqp';
import {
  CONTRACT_VERSION,
  MAX_BATCH_EXPERTS,
  parseDownlink,
  partitionExperts,
  serializeUplink,
  type DownlinkEnvelope,
  type DownlinkOf,
  type ExpertProfile,
  type UplinkEnvelope,
  type UplinkOf,
  type UplinkPayloads,
  type UplinkType,
  type UploadedExpert,
} from '../adapters/messaging/messages';
import { jsonCodec, type ApplicationProperties, type DecodeFailure, type MessageCodec } from './codec';
import { BoundedSeenStore, OncePerId, type SeenStore } from './seen-store';
import {
  isConsultationType,
  serializeConsultationUplink,
  type ConsultationDownlinkOf,
  type ConsultationUplinkEnvelope,
  type ConsultationUplinkPayloads,
  type ConsultationUplinkType,
} from '../adapters/messaging/consultation-messages';
import { parseHubDownlink, type HubDownlinkEnvelope } from '../adapters/messaging/hub-codec';
import { DLQ_ID, deadLetterIdFor, uplinkGroupId } from '../adapters/messaging/amqp-uplink-consumer';
import { consultationIdOf } from '../adapters/messaging/amqp-hub-outbox';
import { messageTraceOf } from '../adapters/messaging/message-trace';
import { loggableId } from '../domain/monitoring/cpr-like';
import { ACCEPTS_PROPERTY, REFUSED_TYPE } from '../adapters/messaging/refusal-notices';
import { openSdkDiscovery, type DiscoveryOption, type SdkDiscovery } from './discovery';

export const DEFAULT_UPLINK_QUEUE = 'rts.uplink';
export const DEFAULT_DOWNLINK_QUEUE_PREFIX = 'rts.downlink.';
export const DEFAULT_DEAD_LETTER_QUEUE = 'rts.dlq';

/** pino-compatible: `logger.warn({ ...fields }, 'message')`. Any method may be left out. */
export interface RtsLogger {
  debug?(fields: object, message: string): void;
  info?(fields: object, message: string): void;
  warn?(fields: object, message: string): void;
  error?(fields: object, message: string): void;
}

export interface RtsClientOptions {
  /** This system's id (2-32 characters of a-z 0-9 -), as the hub registered it. */
  systemId: string;
  /** Brokers to fail over across, in order. Give this or `url`. */
  endpoints?: readonly AmqpEndpoint[];
  /**
   * 'amqp://host:port', a comma-separated list of such URLs, an array of them, or ActiveMQ's
   * 'failover:(amqp://a:5673,amqp://b:5673)'. A user:password in the URL means SASL PLAIN.
   */
  url?: string | readonly string[];
  /** Default: SASL ANONYMOUS (as the hub logs in), unless the URL carries credentials; `{ mechanism: 'none' }` for no SASL layer. */
  sasl?: AmqpSasl;
  /**
   * For amqps:// brokers: `ca` (PEM) when the broker's certificate is not signed by a CA the system trusts; `cert`
   * and `key` when the broker asks for a client certificate. The broker's certificate is always verified.
   */
  tls?: AmqpTls;
  /** Default 'rts.uplink'. */
  uplinkQueue?: string;
  /** Default 'rts.downlink.<systemId>'. */
  downlinkQueue?: string;
  /** Where undecodable or repeatedly failing downlink messages go; default 'rts.dlq'. */
  deadLetterQueue?: string;
  /** Body encoding (default: JSON text). Message security plugs in here. */
  codec?: MessageCodec;
  logger?: RtsLogger;
  /** How long connect() waits for the first connection (default 30000 ms). */
  connectTimeoutMs?: number;
  /** How long one helper call may take, resends across reconnects included, before it rejects (default 60000 ms). */
  sendTimeoutMs?: number;
  /**
   * Reconnect back-off: first and largest delay in ms (defaults 100 and 2000), and attempts before giving up (default:
   * never). A broker that refuses the login (AmqpLoginRefusedError, code 'login_refused') stops the reconnects and
   * emits 'error' (connect() rejects with it at once), unless `refusedLoginRetryMs` asks to try again that often.
   * Likewise a broker that closes the connection with a condition not in `nonFatalErrors` (`amqp:not-allowed`, say)
   * stops the reconnects, unless `fatalCloseRetryMs` asks to try again that long after each such close (a system
   * that runs unattended: the hub uses 10000).
   */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number; limit?: number; refusedLoginRetryMs?: number; fatalCloseRetryMs?: number };
  /** More remote close conditions after which to reconnect (besides forced, internal-error, resource-limit-exceeded, decode-error). */
  nonFatalErrors?: readonly string[];
  /** Find the brokers by ActiveMQ's multicast announcements: 'multicast://239.255.2.3:6155?group=rts&interface=10.0.0.5' (see discovery.ts). With `url` too, both are offered. */
  discovery?: DiscoveryOption;
  /** Clock for envelope times (default: system time). */
  now?: () => Date;
}

/** Per call: make the envelope id deterministic, and/or carry a correlation id (default: the envelope id). */
export interface SendOptions {
  /** Any string; the same (systemId, messageId) always gives the same envelope id. A UUID is used as it is. */
  messageId?: string;
  correlationId?: string;
}

export interface JoinOptions extends SendOptions {
  /** Experts per 'experts.batch' message (1-500, default 500). */
  batchSize?: number;
  /** Batches in flight at once (default 8). */
  concurrency?: number;
  /** The system's display name, checked by the hub against its registration. */
  name?: string;
}

export interface JoinResult {
  correlationId: string;
  /** Envelope id of the 'system.join.requested' message. */
  requestId: string;
  /** Envelope ids of the batches, by batch index. */
  batchIds: string[];
  batches: number;
  experts: number;
}

export interface DeliveryInfo {
  /** 1 on the first delivery, more on redeliveries. */
  attempt: number;
  queue: string;
  applicationProperties: Readonly<Record<string, unknown>>;
}

/** A downlink message of a type (or version) this SDK does not know, e.g. from a newer hub. */
export interface UnknownDownlink {
  id: string | undefined;
  type: string | undefined;
  /** The raw body; for the JSON codec the JSON text. */
  body: unknown;
  /** 'unknown_type' (a type this SDK does not know), or 'bad_schema' with a detail starting 'version:'. */
  reason: string;
  detail: string;
}

type Handler<M> = (message: M, info: DeliveryInfo) => void | Promise<void>;

export interface DownlinkHandlers {
  onExpertUpserted?: Handler<DownlinkOf<'directory.expert.upserted'>>;
  onExpertRetired?: Handler<DownlinkOf<'directory.expert.retired'>>;
  onSnapshot?: Handler<DownlinkOf<'directory.snapshot'>>;
  onSystemJoined?: Handler<DownlinkOf<'system.joined'>>;
  /** Consultations (issue 5). Offered: a case for one of this system's experts (accept/decline it). */
  onConsultationOffered?: Handler<ConsultationDownlinkOf<'consultation.offered'>>;
  onConsultationAccepted?: Handler<ConsultationDownlinkOf<'consultation.accepted'>>;
  /** A candidate declined, or let the offer expire (payload.outcome); the hub offers the next one. */
  onConsultationDeclined?: Handler<ConsultationDownlinkOf<'consultation.declined'>>;
  onConsultationUnassigned?: Handler<ConsultationDownlinkOf<'consultation.unassigned'>>;
  /** The report for this (applicant) system; acknowledged for you once the handler resolved (see acknowledgeReports). */
  onConsultationReport?: Handler<ConsultationDownlinkOf<'consultation.report'>>;
  onConsultationCancelled?: Handler<ConsultationDownlinkOf<'consultation.cancelled'>>;
  /**
   * The hub refused one of this system's consultation messages for good (payload.refusedMessageId: the envelope id
   * the helper resolved with; payload.reason: the code, e.g. candidate_retired; payload.detail: the fields at fault).
   * Nothing more comes about that message. Without this handler the notice is accepted and logged at info.
   */
  onConsultationRefused?: Handler<ConsultationDownlinkOf<'consultation.refused'>>;
  /**
   * After onConsultationReport resolves, send 'consultation.acknowledge' (deterministic id per consultation, so
   * a resent report is acknowledged once) before the report is settled (default true). False: call
   * client.acknowledgeReport yourself; until then the hub re-sends the report.
   */
  acknowledgeReports?: boolean;
  /** Without it, messages of unknown type or version are dead-lettered ('unknown_type'). */
  onUnknown?: Handler<UnknownDownlink>;
}

export interface SubscribeOptions {
  /** Handlers running at once = unsettled messages held (default 10). */
  prefetch?: number;
  /** Deliveries of one message before it is dead-lettered (default 5). */
  maxAttempts?: number;
  /** A handler still running after this counts as failed (default 60000 ms). */
  handlerTimeoutMs?: number;
  /**
   * How long a message whose handler failed is held before it is handed back for the next attempt: this many ms
   * after the first failure, doubling, at most 30 s (default 1000: attempts at about 0, 1, 3, 7 and 15 s, so a
   * handler whose database is away for a few seconds does not send an offer to the dead letter queue; 0: at once).
   */
  retryDelayMs?: number;
  /** Processed envelope ids (default: BoundedSeenStore(10000) in memory). */
  seen?: SeenStore;
  /** Every settlement decision, for metrics. */
  onOutcome?: (event: ConsumerOutcomeEvent) => void;
  /**
   * The broker ended the subscription after it had started: it refused to attach it again after a reconnect (the
   * account may no longer read the queue) or the queue was deleted. Nothing more arrives; the client may subscribe
   * again. Also logged as an error.
   */
  onEnded?: (error: Error) => void;
}

export interface Subscription {
  readonly queue: string;
  /** Stops taking messages and waits for running handlers (up to `timeoutMs`). */
  close(timeoutMs?: number): Promise<void>;
}

export type RtsSendFailure = 'rejected' | 'timeout' | 'closed' | 'encode_failed' | 'too_large';

/**
 * Largest message body sent (UTF-8 bytes), as the Python client's MAX_BODY_BYTES: the brokers take frames of at most
 * 1 MiB (wireFormat.maxFrameSize), and for a larger one the broker closes the sender's whole connection (and with
 * it the client's downlink subscription), at every resend. Such a message is refused here at once ('too_large').
 */
export const MAX_BODY_BYTES = 1024 * 1024 - 32 * 1024;

/** A helper call that did not reach the broker (or the broker refused it). Safe to call again with the same messageId. */
export class RtsSendError extends Error {
  override readonly name = 'RtsSendError';
  constructor(
    readonly reason: RtsSendFailure,
    /** The envelope id that was being sent. */
    readonly envelopeId: string,
    readonly attempts: number,
    override readonly cause?: unknown,
  ) {
    super(`uplink message ${envelopeId} not accepted by the broker: ${reason} after ${attempts} attempt(s)${cause instanceof Error ? ` (${cause.message})` : ''}`);
  }
}

/** Some batches of a join were not accepted; call joinWithExperts again with the same messageId to finish it. */
export class RtsJoinError extends Error {
  override readonly name = 'RtsJoinError';
  constructor(
    readonly failedBatches: number[],
    readonly errors: Error[],
    readonly partial: JoinResult,
  ) {
    super(`join: ${failedBatches.length} of ${partial.batches} batches not accepted (${errors[0]?.message ?? 'unknown'})`);
  }
}

export interface RtsClientEvents {
  connected: [ConnectedEvent];
  disconnected: [DisconnectedEvent];
  /** The connection will not recover by itself (authentication refused, fatal close, reconnect limit). */
  error: [Error];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export class RtsClient extends EventEmitter<RtsClientEvents> {
  readonly systemId: string;
  readonly uplinkQueue: string;
  readonly downlinkQueue: string;
  readonly deadLetterQueue: string;
  private readonly connection: AmqpConnection;
  private readonly sender: DurableSender;
  private readonly codec: MessageCodec;
  private readonly logger: RtsLogger;
  private readonly sendTimeoutMs: number;
  private readonly now: () => Date;
  private readonly pendingSends = new Set<Promise<unknown>>();
  private subscription: SdkSubscription | undefined;
  private closed = false;

  private constructor(options: RtsClientOptions, endpoints: readonly AmqpEndpoint[], sasl: AmqpSasl | undefined, private readonly discovery?: SdkDiscovery) {
    super();
    if (!/^[a-z0-9][a-z0-9-]{1,31}$/.test(options.systemId)) throw new TypeError(`RtsClient: systemId must be 2-32 characters of a-z 0-9 - (got ${JSON.stringify(options.systemId)})`);
    this.systemId = options.systemId;
    this.uplinkQueue = options.uplinkQueue ?? DEFAULT_UPLINK_QUEUE;
    this.downlinkQueue = options.downlinkQueue ?? `${DEFAULT_DOWNLINK_QUEUE_PREFIX}${options.systemId}`;
    this.deadLetterQueue = options.deadLetterQueue ?? DEFAULT_DEAD_LETTER_QUEUE;
    this.codec = options.codec ?? jsonCodec;
    this.logger = options.logger ?? {};
    this.sendTimeoutMs = options.sendTimeoutMs ?? 60000;
    this.now = options.now ?? (() => new Date());
    const reconnect = options.reconnect ?? {};
    this.connection = AmqpConnection.open({
      ...(discovery ? { endpointProvider: discovery.provider } : { endpoints }),
      ...(sasl ? { sasl } : {}),
      ...(options.tls ? { tls: options.tls } : {}),
      containerId: `rts-sdk-${options.systemId}-${randomUUID().slice(0, 8)}`,
      reconnect: true,
      // ActiveMQ closes connections with amqp:decode-error ("Could not process AMQP commands") when a transfer
      // arrives while it shuts down: for a client that must outlive broker restarts, that is not fatal.
      nonFatalErrors: [...DEFAULT_NON_FATAL_ERRORS, 'amqp:decode-error', ...(options.nonFatalErrors ?? [])],
      initialReconnectDelayMs: reconnect.initialDelayMs ?? 100,
      maxReconnectDelayMs: reconnect.maxDelayMs ?? 2000,
      ...(reconnect.limit !== undefined ? { reconnectLimit: reconnect.limit } : {}),
      ...(reconnect.refusedLoginRetryMs !== undefined ? { retryRefusedLoginMs: reconnect.refusedLoginRetryMs } : {}),
      ...(reconnect.fatalCloseRetryMs !== undefined ? { retryFatalCloseMs: reconnect.fatalCloseRetryMs } : {}),
    });
    this.sender = new DurableSender(this.connection, { sendTimeoutMs: this.sendTimeoutMs });
    discovery?.attach(this.connection, (fields, message) => this.log('info', fields, message));
    this.connection.on('connected', (event) => {
      this.log('info', { endpoint: `${event.endpoint.host}:${event.endpoint.port}`, connectionCount: event.connectionCount }, 'connected to the hub broker');
      this.emit('connected', event);
    });
    this.connection.on('disconnected', (event) => {
      this.log('warn', { endpoint: event.endpoint ? `${event.endpoint.host}:${event.endpoint.port}` : undefined, reconnecting: event.reconnecting, error: event.error?.message }, 'disconnected from the hub broker');
      this.emit('disconnected', event);
    });
    this.connection.on('error', (error) => {
      this.log('error', { error: error.message }, 'hub broker connection failed');
      if (this.listenerCount('error') > 0) this.emit('error', error);
    });
  }

  /** Connects (failing over across the endpoints) and resolves once the first connection is open. */
  static async connect(options: RtsClientOptions): Promise<RtsClient> {
    const onlyDiscovery = options.discovery !== undefined && options.url === undefined && !options.endpoints?.length;
    const { endpoints, sasl } = onlyDiscovery ? { endpoints: [] as AmqpEndpoint[], sasl: undefined } : resolveEndpoints(options);
    // The warm-up probes of discovered brokers log in as the client does (a broker with accounts refuses SASL 'none').
    // Without credentials, SASL ANONYMOUS as the hub logs in: ActiveMQ's default AMQP connector refuses a connection
    // with no SASL layer at all, and the SDK answered 'it requires a login' to a broker that needs none (a review found
    // it with the production activemq.xml of scripts/cluster/README.md).
    const login = options.sasl ?? sasl ?? { mechanism: 'anonymous' as const };
    const discovery =
      options.discovery === undefined
        ? undefined
        : await openSdkDiscovery(options.discovery, endpoints, (f, m) => options.logger?.info?.({ systemId: options.systemId, ...f }, m), login, options.tls);
    let client: RtsClient;
    try {
      client = new RtsClient(options, endpoints, login, discovery);
    } catch (error) {
      await discovery?.stop();
      throw error;
    }
    try {
      await client.connection.waitConnected(options.connectTimeoutMs ?? 30000);
    } catch (error) {
      await client.close().catch(() => undefined);
      throw error;
    }
    return client;
  }

  isConnected(): boolean {
    return this.connection.isConnected();
  }

  // ---- uplink -------------------------------------------------------------------------------------------------

  /** 'expert.registered': a new expert of this system. Resolves with the envelope id once the broker accepted it. */
  registerExpert(localExpertId: string, profile: ExpertProfile, options: SendOptions = {}): Promise<string> {
    return this.sendUplink('expert.registered', { localExpertId, profile }, options);
  }

  /** 'expert.changed': a new profile for one of this system's experts. */
  changeExpert(localExpertId: string, profile: ExpertProfile, options: SendOptions = {}): Promise<string> {
    return this.sendUplink('expert.changed', { localExpertId, profile }, options);
  }

  /** 'expert.retired': the expert leaves the directory. */
  retireExpert(localExpertId: string, options: SendOptions = {}): Promise<string> {
    return this.sendUplink('expert.retired', { localExpertId }, options);
  }

  // ---- consultations (issue 5) -------------------------------------------------------------------------------
  // Every helper's correlation id defaults to the consultation id, so one id follows the consultation across its
  // messages; pass the consultation's own (`message.correlationId` of what the hub sent) when it was created
  // another way (HTTP). The hub keeps the consultation's correlation id whatever a later message carries.

  /**
   * 'consultation.requested': ask the candidates (expert ids, in order of preference). consultationId defaults to a new
   * UUID. `attachments`: uniqueIds of documents registered with the hub, current and of one patient; the hub refuses
   * others (unknown_attachment, attachment_replaced, attachments_of_several_patients: onConsultationRefused).
   */
  async requestConsultation(
    request: Omit<ConsultationUplinkPayloads['consultation.requested'], 'consultationId' | 'attachments'> & { consultationId?: string; attachments?: readonly string[] },
    options: SendOptions = {},
  ): Promise<{ id: string; consultationId: string; correlationId: string }> {
    const consultationId = request.consultationId ?? randomUUID();
    const correlationId = options.correlationId ?? consultationId;
    const payload: ConsultationUplinkPayloads['consultation.requested'] = {
      consultationId,
      applicantClinician: request.applicantClinician,
      candidates: request.candidates,
      clinicalQuestion: request.clinicalQuestion,
      summary: request.summary,
      attachments: request.attachments ?? [],
      ...(request.deadlineSeconds !== undefined ? { deadlineSeconds: request.deadlineSeconds } : {}),
    };
    const id = await this.sendConsultationUplink('consultation.requested', payload, { messageId: options.messageId ?? `consultation/${consultationId}/request`, correlationId });
    return { id, consultationId, correlationId };
  }

  /** 'consultation.accept': this system's expert takes the case offered to them. */
  acceptConsultation(consultationId: string, expertId: string, options: SendOptions = {}): Promise<string> {
    return this.sendConsultationUplink('consultation.accept', { consultationId, expertId }, this.consultationOptions(consultationId, `accept/${expertId}`, options));
  }

  /** 'consultation.decline': this system's expert declines; the hub offers the next candidate. */
  declineConsultation(consultationId: string, expertId: string, reason: string, options: SendOptions = {}): Promise<string> {
    return this.sendConsultationUplink('consultation.decline', { consultationId, expertId, reason }, this.consultationOptions(consultationId, `decline/${expertId}`, options));
  }

  /** 'consultation.report': the accepted expert's report, sent to the applicant by the hub. */
  issueReport(consultationId: string, expertId: string, report: { diagnosis: string; recommendations: string }, options: SendOptions = {}): Promise<string> {
    return this.sendConsultationUplink(
      'consultation.report',
      { consultationId, expertId, diagnosis: report.diagnosis, recommendations: report.recommendations },
      this.consultationOptions(consultationId, `report/${expertId}`, options),
    );
  }

  /** 'consultation.acknowledge': the applicant received the report (stops the hub's resends). */
  acknowledgeReport(consultationId: string, options: SendOptions = {}): Promise<string> {
    return this.sendConsultationUplink('consultation.acknowledge', { consultationId }, this.consultationOptions(consultationId, 'acknowledge', options));
  }

  /** 'consultation.cancel': the applicant withdraws the request (until a report is issued). */
  cancelConsultation(consultationId: string, reason?: string, options: SendOptions = {}): Promise<string> {
    return this.sendConsultationUplink('consultation.cancel', reason === undefined ? { consultationId } : { consultationId, reason }, this.consultationOptions(consultationId, 'cancel', options));
  }

  private consultationOptions(consultationId: string, step: string, options: SendOptions): SendOptions {
    return { messageId: options.messageId ?? `consultation/${consultationId}/${step}`, correlationId: options.correlationId ?? consultationId };
  }

  /** Sends a complete consultation uplink message (the helpers build these); resolves with its envelope id. */
  sendConsultationUplink<T extends ConsultationUplinkType>(type: T, payload: ConsultationUplinkPayloads[T], options: SendOptions = {}): Promise<string> {
    const id = this.envelopeId(options.messageId);
    const envelope = { id, type, version: CONTRACT_VERSION, systemId: this.systemId, correlationId: options.correlationId ?? id, time: this.now().toISOString(), payload } as unknown as ConsultationUplinkEnvelope;
    return this.send(envelope);
  }

  /** 'system.join.requested': announces how many batches and experts will follow. */
  requestJoin(join: { expectedBatches: number; expectedExperts: number; name?: string }, options: SendOptions = {}): Promise<string> {
    const payload: UplinkPayloads['system.join.requested'] = { expectedBatches: join.expectedBatches, expectedExperts: join.expectedExperts };
    if (join.name !== undefined) payload.name = join.name;
    return this.sendUplink('system.join.requested', payload, options);
  }

  /** One 'experts.batch' (at most 500 experts); joinWithExperts does the whole upload. */
  sendBatch(batch: { batchIndex: number; batchCount: number; experts: readonly UploadedExpert[] }, options: SendOptions = {}): Promise<string> {
    return this.sendUplink('experts.batch', { batchIndex: batch.batchIndex, batchCount: batch.batchCount, experts: batch.experts }, options);
  }

  /**
   * The paper's batching join: 'system.join.requested' first (awaited, so the hub knows the join before any
   * batch), then 'experts.batch' messages of at most batchSize experts and MAX_BATCH_JSON_BYTES of their JSON,
   * `concurrency` at a time. Resolves when the broker
   * accepted all of them. All messages share one correlation id. With `messageId`, every envelope id is
   * deterministic: after an RtsJoinError, calling again with the same messageId and experts completes the join
   * and the hub ignores the repeats.
   */
  async joinWithExperts(experts: readonly UploadedExpert[], options: JoinOptions = {}): Promise<JoinResult> {
    const batchSize = options.batchSize ?? MAX_BATCH_EXPERTS;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH_EXPERTS) throw new RangeError(`joinWithExperts: batchSize must be 1-${MAX_BATCH_EXPERTS}`);
    const concurrency = Math.max(1, options.concurrency ?? 8);
    // By count and by size: a batch over the broker's message limit (~1 MiB) would cost the connection at every try.
    const batches: UploadedExpert[][] = partitionExperts(experts, batchSize);
    const base = options.messageId ?? randomUUID();
    const requestId = this.envelopeId(`${base}/join`);
    const correlationId = options.correlationId ?? requestId;
    const batchIds = batches.map((_, i) => this.envelopeId(`${base}/batch/${i}/of/${batches.length}`));
    const result: JoinResult = { correlationId, requestId, batchIds, batches: batches.length, experts: experts.length };
    const join: { expectedBatches: number; expectedExperts: number; name?: string } = { expectedBatches: batches.length, expectedExperts: experts.length };
    if (options.name !== undefined) join.name = options.name;
    // Every batch checked against the contract before the join is announced: a batch refused here afterwards left a
    // join on the hub that could never finish (an expert's name too long, say), until another join replaced it.
    batches.forEach((experts, batchIndex) =>
      serializeUplink(this.envelopeOf('experts.batch', { batchIndex, batchCount: batches.length, experts }, { messageId: batchIds[batchIndex]!, correlationId })),
    );
    await this.requestJoin(join, { messageId: requestId, correlationId });

    const failed: number[] = [];
    const errors: Error[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        const index = next++;
        try {
          await this.sendBatch({ batchIndex: index, batchCount: batches.length, experts: batches[index]! }, { messageId: batchIds[index]!, correlationId });
        } catch (error) {
          failed.push(index);
          errors.push(error instanceof Error ? error : new Error(String(error)));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
    if (failed.length > 0) throw new RtsJoinError(failed.sort((a, b) => a - b), errors, result);
    this.log('info', { correlationId: loggableId(correlationId), batches: batches.length, experts: experts.length }, 'join uploaded');
    return result;
  }

  /** Sends a complete uplink message of any type (the helpers build these); resolves with its id. */
  sendUplink<T extends UplinkType>(type: T, payload: UplinkPayloads[T], options: SendOptions = {}): Promise<string> {
    return this.send(this.envelopeOf(type, payload, options));
  }

  /** Delivers, tracked among the sends close() waits for; resolves with the envelope id. */
  private send(envelope: UplinkEnvelope | ConsultationUplinkEnvelope): Promise<string> {
    const sending = this.deliver(envelope);
    this.pendingSends.add(sending);
    void sending.then(
      () => this.pendingSends.delete(sending),
      () => this.pendingSends.delete(sending),
    );
    return sending.then(() => envelope.id);
  }

  private envelopeOf<T extends UplinkType>(type: T, payload: UplinkPayloads[T], options: SendOptions): UplinkEnvelope {
    const id = this.envelopeId(options.messageId);
    return {
      id,
      type,
      version: CONTRACT_VERSION,
      systemId: this.systemId,
      correlationId: options.correlationId ?? id,
      time: this.now().toISOString(),
      payload,
    } as UplinkOf<T> as UplinkEnvelope;
  }

  private envelopeId(messageId: string | undefined): string {
    if (messageId === undefined) return randomUUID();
    if (UUID.test(messageId)) return messageId.toLowerCase();
    return uuidV5(`sdk/${this.systemId}/${messageId}`);
  }

  private async deliver(envelope: UplinkEnvelope | ConsultationUplinkEnvelope): Promise<void> {
    if (this.closed) throw new RtsSendError('closed', envelope.id, 0);
    // A contract violation is the caller's bug: TypeError, nothing sent.
    if (isConsultationType(envelope.type)) serializeConsultationUplink(envelope as ConsultationUplinkEnvelope);
    else serializeUplink(envelope as UplinkEnvelope);
    let encoded;
    try {
      encoded = await this.codec.encode(envelope, { from: this.systemId, to: 'hub', queue: this.uplinkQueue });
    } catch (error) {
      throw new RtsSendError('encode_failed', envelope.id, 0, error);
    }
    const size = Buffer.byteLength(encoded.body, 'utf8');
    if (size > MAX_BODY_BYTES) {
      throw new RtsSendError('too_large', envelope.id, 0, new RangeError(`${envelope.type}: a body of ${size} bytes is over ${MAX_BODY_BYTES}: the broker would close the connection`));
    }
    const applicationProperties: ApplicationProperties = {
      messageId: envelope.id,
      type: envelope.type,
      version: envelope.version,
      systemId: envelope.systemId,
      correlationId: envelope.correlationId,
      // This client reads the hub's refusal notices (the subscription handles them, with or without a handler).
      ...(isConsultationType(envelope.type) ? { [ACCEPTS_PROPERTY]: REFUSED_TYPE } : {}),
      ...encoded.applicationProperties,
    };
    // The group-id keeps the messages about one expert (one consultation) on one hub process, in order.
    const groupId = uplinkGroupId(envelope);
    const message = { body: encoded.body, applicationProperties, messageId: envelope.id, correlationId: envelope.correlationId, subject: envelope.type, ...(groupId ? { groupId } : {}) };
    const deadline = performance.now() + this.sendTimeoutMs;
    // The system's record of what it sent, by the ids the hub's 'uplink message handled' line has (README, "Tracing a
    // consultation or a message"); the Python client logs the same line. A correlation id or consultation id that may
    // hold a CPR number, glued into other digits too, is left out (loggableId), as in the hub's lines.
    // Its ids are checked only where a logger takes info lines.
    const sent = (attempts: number) =>
      Object.fromEntries(
        Object.entries({ id: envelope.id, type: envelope.type, correlationId: loggableId(envelope.correlationId), consultationId: loggableId(consultationIdOf(envelope)), queue: this.uplinkQueue, attempts }).filter(([, v]) => v !== undefined),
      );
    let attempts = 0;
    for (;;) {
      attempts += 1;
      try {
        // Each resend gets what is left of the call's window, not a window of its own: a send lost to a disconnect
        // late in the window must not hold the call open for up to another sendTimeoutMs.
        await this.sender.send(this.uplinkQueue, message, { timeoutMs: Math.max(1, deadline - performance.now()) });
        if (this.logger.info) this.log('info', sent(attempts), 'uplink message sent');
        return;
      } catch (error) {
        const retryable = error instanceof SendError && error.retryable && error.reason !== 'timeout';
        if (this.closed) throw new RtsSendError('closed', envelope.id, attempts, error);
        const notAccepted = () => {
          const reason: RtsSendFailure = error instanceof SendError && error.reason === 'rejected' ? 'rejected' : 'timeout';
          this.log('error', { id: envelope.id, type: envelope.type, attempts, reason, error: (error as Error).message }, 'uplink message not accepted');
          return new RtsSendError(reason, envelope.id, attempts, error);
        };
        if (!retryable || performance.now() >= deadline) throw notAccepted();
        this.log('debug', { id: envelope.id, type: envelope.type, attempts, error: (error as Error).message }, 'uplink send lost, resending');
        // Waiting sends are held by the sender until the link has credit again; a short pause avoids a hot loop
        // when the broker releases messages. It ends with the window, and no resend starts after it.
        await sleep(Math.min(50 * attempts, 1000, Math.max(0, deadline - performance.now())));
        if (performance.now() >= deadline) throw notAccepted();
      }
    }
  }

  // ---- downlink -----------------------------------------------------------------------------------------------

  /** Consumes this system's downlink queue with the given handlers; resolves when the link is attached. */
  async subscribe(handlers: DownlinkHandlers, options: SubscribeOptions = {}): Promise<Subscription> {
    if (this.closed) throw new Error('RtsClient is closed');
    if (this.subscription) throw new Error(`RtsClient: already subscribed to ${this.downlinkQueue}`);
    const subscription = new SdkSubscription(this, this.connection, this.sender, handlers, options, this.codec, (level, fields, message) => this.log(level, fields, message));
    this.subscription = subscription;
    try {
      await subscription.start();
    } catch (error) {
      this.subscription = undefined;
      await subscription.close().catch(() => undefined);
      throw error;
    }
    subscription.onClosed = () => {
      if (this.subscription === subscription) this.subscription = undefined;
    };
    return subscription;
  }

  /**
   * Stops the subscription (running handlers finish and are acknowledged), waits for pending sends to settle,
   * then closes the connection. Everything is bounded by `timeoutMs` (default 10000).
   */
  async close(timeoutMs = 10000): Promise<void> {
    if (this.closed) return;
    const deadline = performance.now() + timeoutMs;
    if (this.subscription) await this.subscription.close(timeoutMs);
    if (this.pendingSends.size > 0) {
      await Promise.race([Promise.allSettled([...this.pendingSends]), sleep(Math.max(0, deadline - performance.now()))]);
    }
    this.closed = true;
    await this.sender.close();
    await this.connection.close(Math.max(1000, deadline - performance.now()));
    await this.discovery?.stop();
  }

  private log(level: keyof RtsLogger, fields: object, message: string): void {
    try {
      this.logger[level]?.({ systemId: this.systemId, ...fields }, message);
    } catch {
      // a logger must not break messaging
    }
  }
}

class SdkSubscription implements Subscription {
  readonly queue: string;
  onClosed: (() => void) | undefined;
  private readonly consumer: QueueConsumer;
  /** A second copy of an envelope waits for the first instead of running twice. */
  private readonly dedupe: OncePerId;
  private closing: Promise<void> | undefined;
  private readonly warnedMissing = new Set<string>();

  constructor(
    private readonly client: RtsClient,
    connection: AmqpConnection,
    sender: DurableSender,
    private readonly handlers: DownlinkHandlers,
    options: SubscribeOptions,
    private readonly codec: MessageCodec,
    private readonly log: (level: keyof RtsLogger, fields: object, message: string) => void,
  ) {
    this.queue = client.downlinkQueue;
    this.dedupe = new OncePerId(options.seen ?? new BoundedSeenStore());
    this.consumer = new QueueConsumer(connection, {
      queue: client.downlinkQueue,
      deadLetterQueue: client.deadLetterQueue,
      deadLetterSender: sender,
      // rts_dlq_id made of the message, as the hub's own dead letters: a copy sent again because the broker's accept of
      // the first was lost (the message redelivered) is the same dead letter, not a second one (none was set before).
      deadLetterOwn: { names: [DLQ_ID], of: (original) => ({ [DLQ_ID]: deadLetterIdFor(original) }) },
      handler: (message) => this.handle(message),
      maxAttempts: options.maxAttempts ?? 5,
      retryDelayMs: retryBackoff(Math.max(0, options.retryDelayMs ?? 1000), 30_000),
      prefetch: options.prefetch ?? 10,
      handlerTimeoutMs: options.handlerTimeoutMs ?? 60000,
      onOutcome: (event) => {
        // With the message's ids as the hub set them (messageId, type, correlationId, consultationId: what a desk
        // quotes to the hub's operators), never one that may hold a CPR number (messageTraceOf).
        if (event.kind === 'dead-lettered') this.log('warn', { ...messageTraceOf(event.copy), queue: event.queue, attempt: event.attempt, reason: event.reason }, 'downlink message dead-lettered');
        if (event.kind === 'retried') this.log('warn', { ...(event.message ? messageTraceOf(event.message) : {}), queue: event.queue, attempt: event.attempt, reason: event.reason }, 'downlink message handed back for redelivery');
        options.onOutcome?.(event);
      },
      onDetached: (error) => {
        this.log('error', { queue: this.queue, error: error.message }, 'downlink subscription ended by the broker');
        this.closing ??= this.consumer.stop(0).finally(() => this.onClosed?.());
        options.onEnded?.(error);
      },
    });
  }

  start(): Promise<void> {
    return this.consumer.start();
  }

  close(timeoutMs = 10000): Promise<void> {
    this.closing ??= this.consumer.stop(timeoutMs).finally(() => this.onClosed?.());
    return this.closing;
  }

  private async handle(received: ReceivedMessage): Promise<HandlerOutcome> {
    const decoded = await this.codec.decode<HubDownlinkEnvelope>(received.body, received.applicationProperties, {
      from: 'hub',
      to: this.client.systemId,
      queue: this.queue,
      parse: parseHubDownlink,
    });
    const info: DeliveryInfo = { attempt: received.attempt, queue: received.queue, applicationProperties: received.applicationProperties };
    if (!decoded.ok) {
      if (isUnknownType(decoded)) {
        const unknown: UnknownDownlink = { id: decoded.envelope?.id, type: decoded.envelope?.type, body: received.body, reason: decoded.reason, detail: decoded.detail };
        if (!this.handlers.onUnknown) return { deadLetter: `unknown_type: ${decoded.detail}` };
        return this.once(unknown.id, () => this.handlers.onUnknown!(unknown, info));
      }
      return { deadLetter: `${decoded.reason}: ${decoded.detail}` };
    }
    const envelope = decoded.envelope;
    if (envelope.systemId !== this.client.systemId) return { deadLetter: `wrong_receiver: addressed to system ${envelope.systemId}, this is ${this.client.systemId}` };
    const outcome = await this.once(envelope.id, () => this.dispatch(envelope, info));
    // A consultation's messages (a few per case) at info once handled: the system's record that it arrived, by the
    // ids the hub's 'downlink message sent' line has. Directory messages (every change of every system) are not.
    const consultationId = consultationIdOf(envelope);
    if (consultationId !== undefined) {
      this.log('info', { id: envelope.id, type: envelope.type, correlationId: loggableId(envelope.correlationId), consultationId }, 'downlink message handled');
    }
    return outcome;
  }

  /** Runs `work` once per envelope id (OncePerId: seen store + in-progress runs); 'accept' after it resolved. Throws -> retry. */
  private async once(id: string | undefined, work: () => void | Promise<void>): Promise<HandlerOutcome> {
    if (id === undefined) {
      await work();
      return 'accept';
    }
    if (!(await this.dedupe.run(id, work))) this.log('debug', { id }, 'downlink message seen before: acknowledged without calling the handler');
    return 'accept';
  }

  private async dispatch(envelope: HubDownlinkEnvelope, info: DeliveryInfo): Promise<void> {
    const h = this.handlers;
    switch (envelope.type) {
      case 'directory.expert.upserted':
        return h.onExpertUpserted ? h.onExpertUpserted(envelope, info) : this.missing(envelope.type);
      case 'directory.expert.retired':
        return h.onExpertRetired ? h.onExpertRetired(envelope, info) : this.missing(envelope.type);
      case 'directory.snapshot':
        return h.onSnapshot ? h.onSnapshot(envelope, info) : this.missing(envelope.type);
      case 'system.joined':
        return h.onSystemJoined ? h.onSystemJoined(envelope, info) : this.missing(envelope.type);
      case 'consultation.offered':
        return h.onConsultationOffered ? h.onConsultationOffered(envelope, info) : this.missing(envelope.type);
      case 'consultation.accepted':
        return h.onConsultationAccepted ? h.onConsultationAccepted(envelope, info) : this.missing(envelope.type);
      case 'consultation.declined':
        return h.onConsultationDeclined ? h.onConsultationDeclined(envelope, info) : this.missing(envelope.type);
      case 'consultation.unassigned':
        return h.onConsultationUnassigned ? h.onConsultationUnassigned(envelope, info) : this.missing(envelope.type);
      case 'consultation.cancelled':
        return h.onConsultationCancelled ? h.onConsultationCancelled(envelope, info) : this.missing(envelope.type);
      case 'consultation.refused': {
        if (h.onConsultationRefused) return h.onConsultationRefused(envelope, info);
        // Asked for by this client on every consultation message, so never dead-lettered; the ids and the code tell the
        // operator which message (the detail names fields only, but stays out of the log as the payloads do).
        const p = envelope.payload;
        this.log('info', { id: envelope.id, refusedMessageId: p.refusedMessageId, refusedType: p.refusedType, consultationId: p.consultationId, reason: p.reason }, 'the hub refused a consultation message (no onConsultationRefused handler)');
        return;
      }
      case 'consultation.report': {
        if (!h.onConsultationReport) return this.missing(envelope.type);
        await h.onConsultationReport(envelope, info);
        if (h.acknowledgeReports !== false) await this.client.acknowledgeReport(envelope.payload.consultationId, { correlationId: envelope.correlationId });
        return;
      }
    }
  }

  private missing(type: string): void {
    if (this.warnedMissing.has(type)) return;
    this.warnedMissing.add(type);
    this.log('warn', { type }, 'no handler for this downlink type: its messages are acknowledged and ignored');
  }
}

/** A failure that is about a type or version we do not know (a newer hub), not a broken message. */
function isUnknownType(failure: DecodeFailure): boolean {
  // parseDownlink checks the version, then the type, before the schema: these two mean "not ours to read".
  if (typeof failure.envelope?.type !== 'string') return false;
  return failure.reason === 'unknown_type' || (failure.reason === 'bad_schema' && failure.detail.startsWith('version:'));
}

/** Endpoints from `endpoints` or `url`; credentials in a URL give SASL PLAIN. */
export function resolveEndpoints(options: Pick<RtsClientOptions, 'endpoints' | 'url'>): { endpoints: AmqpEndpoint[]; sasl?: AmqpSasl } {
  if (options.endpoints && options.endpoints.length > 0) return { endpoints: [...options.endpoints] };
  if (options.url === undefined) throw new TypeError('RtsClient: give `endpoints` or `url`');
  let text = Array.isArray(options.url) ? options.url.join(',') : String(options.url);
  text = text.trim();
  const failover = /^failover:\((.*)\)(\?.*)?$/.exec(text);
  if (failover) text = failover[1]!;
  let sasl: AmqpSasl | undefined;
  const endpoints = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      let url: URL;
      try {
        url = new URL(s);
      } catch {
        // Not the part before an @: it may hold a password.
        throw new TypeError(`RtsClient: not a URL: ${s.includes('@') ? `…@${s.slice(s.lastIndexOf('@') + 1)}` : s}`);
      }
      const tls = url.protocol === 'amqps:' || url.protocol === 'amqp+ssl:';
      if (url.protocol !== 'amqp:' && !tls) throw new TypeError(`RtsClient: only amqp:// and amqps:// URLs are supported (got ${url.protocol})`);
      if (url.username) sasl = { mechanism: 'plain', username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) };
      const host = url.hostname.replace(/^\[|\]$/g, '');
      return tls ? { host, port: url.port ? Number(url.port) : 5671, tls } : { host, port: url.port ? Number(url.port) : 5672 };
    });
  if (endpoints.length === 0) throw new TypeError('RtsClient: `url` names no broker');
  return sasl ? { endpoints, sasl } : { endpoints };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
