import { createHash, randomUUID } from 'node:crypto';
import { message as amqpMessage, type Message } from 'rhea';
import type { UplinkEnvelope } from '../../application/directory/directory-messages';
import { loggableId } from '../../domain/monitoring/cpr-like';
import { RtsError } from '../../domain/shared/errors';
import type { AmqpConnection } from '../amqp/connection';
import { DurableSender, type SendOptions } from '../amqp/durable-sender';
import { QueueConsumer, retryBackoff, type ConsumerOutcomeEvent, type HandlerOutcome, type MessageHandler, type QueueConsumerOptions, type ReceivedMessage } from '../amqp/queue-consumer';
import type { ConsultationUplinkEnvelope } from '../../application/consultation/consultation-messages';
import { isConsultationType } from './consultation-messages';
import { PlainHubCodec, type HubMessageCodec } from './hub-codec';
import { OrderClosedError, OrderedByKey } from '../../application/ordered-by-key';
import { acceptsDownlinkType, REFUSED_TYPE, type RefusalNotices } from './refusal-notices';
import { envelopeIdOf, messageTraceOf } from './message-trace';
import { underPatients, uplinkAuditEntry, uplinkAuditOnceId, type UplinkAuditTrail, type UplinkVerdict } from './uplink-audit';

export { envelopeIdOf };

/**
 * The hub's uplink consumer: one shared queue, every hub process a competing consumer on it.
 *
 *   decode (codec)        failure          -> dead letter, reason `bad_json: ...` / `bad_schema: ...`, and with
 *                                             message security `bad_signature` / `unknown_key` / `not_for_us` /
 *                                             `sender_mismatch` / `malformed_jose: ...` (hub-codec.ts): never handled
 *   route                 consultation.*   -> routes.consultations.handleUplink, else the directory's handler
 *   handleUplink          resolved         -> accept (the events are committed; a repeat is a no-op)
 *                         RtsError         -> dead letter, reason = error.code (unknown_system,
 *                                             expert_owned_by_other_system, system_not_joined, ...): a message
 *                                             that can never succeed as sent. A consultation.* message whose
 *                                             `rts_accepts` property names consultation.refused: first a
 *                                             'consultation.refused' notice to its sender (routes.refusals,
 *                                             refusal-notices.ts), awaited until the broker has it; if that send
 *                                             fails, retry instead (the message comes again, and so does the
 *                                             notice, with the same id), except on the last attempt: then the dead
 *                                             letter all the same, without the notice
 *                         anything else    -> retry through the broker (modified, delivery-failed); QueueConsumer
 *                                             counts the attempts and dead-letters past RTS_UPLINK_MAX_ATTEMPTS
 *
 * Audit (uplink-audit.ts): a consultation.* message's final outcome (applied, duplicate, dead-lettered: refused, or its
 * retries used up) is recorded in the hub's audit trail (routes.audit), in its lane, before the message is settled:
 * as the HTTP side answers a write only once its audit event is stored, the message is accepted (or dead-lettered)
 * only once its entry is. A hub that dies between the commit and the entry leaves the message unaccepted: it comes
 * again, the domain takes it for a duplicate, and that records the entry; one that comes with its attempts used up
 * (hubs died holding it that often) is dead-lettered unhandled, and recorded first (auditExhaustedUplink). An entry
 * that cannot be stored (the trail is unwritable: the store is full or down) hands the message back uncounted
 * (`later`, as a store outage does), so neither its acceptance nor its dead letter goes by unaudited. Attempts that
 * hand it back are not recorded. Each entry is recorded once (uplinkAuditOnceId): a delivery that comes again stores
 * the entries an earlier one did not (another patient's that failed, or all of them) and none it stored. The directory's messages (experts, joins) hold no patient data and are not audited.
 *
 * Dead letter copies carry QueueConsumer's x-dlq-reason / x-dlq-source-queue / x-dlq-attempts / x-dlq-at, and from
 * the tagging sender below two properties a JMS selector can name (x-dlq-* cannot be: a hyphen is not allowed in
 * a selector identifier), so an operator can later take exactly that message off the dead letter queue:
 *   rts_dlq_id   a UUID chosen from the original delivery (deadLetterIdFor: its message-id, user-id, body and
 *                properties), the same on every copy of it: one sent again after the broker's accept of the first was
 *                lost, or after a hub restart, is the same dead letter, and the views treat copies alike as one
 *   rts_envelope_id  the id of the envelope the hub read (READ_ENVELOPE_ID), where it read one and the sender's
 *                messageId says another (kept as sent, beside it); the hub's own, never the sender's (not kept)
 *   messageId    our envelope id, filled in from the body when the sender did not set it (and it can be read); for a
 *                body that does not show it (JOSE), with `type` and `systemId`, from the envelope the hub read
 *                (withEnvelopeCopies), where the sender set none of them
 *
 * Order: the consumer runs up to `prefetch` handlers at once, but messages about the same expert (or the same
 * consultation) are handled one at a time, in the order they arrived (OrderedByKey, keys from `uplinkOrderKeys`):
 * a registration and the changes sent right after it are applied as sent, also when they arrive together (a
 * system that sent while the hub was down). One handed back for another attempt keeps its place: the messages
 * about the same expert wait (unsettled) until it came again and was applied, or for at most 30 s; except the one
 * its refusal waits for (WAITS_FOR_TYPE: a batch's join request), which goes first. Different experts still run at
 * once. Except when the messages waiting for their turn hold the consumer's whole credit (QueueConsumer's onSaturated:
 * prefetch + maxWaiting of them, a flood in one lane; retry pauses do not count): the failed one with the most waiting
 * behind it is no longer waited for (OrderedByKey's giveUpAwaited), so its lane goes on and it queues as a newcomer
 * when it comes again; the other lanes keep their order. Waited for, one handed back could
 * not come again (ActiveMQ re-sends it on the same link, behind what it holds for it, and no credit was left), and every
 * system's uplink stood still, 30 s per message of the flood. A message waiting its turn holds no credit (QueueConsumer's maxWaiting), nor does one refused for now while it
 * pauses before it is handed back for its next attempt (QueueConsumer's retryDelayMs), and the handler timeout counts
 * from when its turn came. Caveat: a handling that timed out is not stopped; its message, handed back, may run
 * again beside it (idempotent by envelope id, and the store's expected versions keep the two apart). Other hub processes compete for the queue: a sender that sets the AMQP group-id to
 * the message's key (`uplinkGroupId`; the SDK and the Python client do) has ActiveMQ hand all messages about one
 * expert to the same hub, so the order holds across hubs too. Without it, and when a hub dies holding messages,
 * the refusals that only mean "too early" (ORDER_DEPENDENT_CODES: a batch before its join request, a change
 * before the expert's registration, a report before the accept) are retried through the broker, and
 * dead-lettered with that code once the retry limit is reached.
 */
export type UplinkLike = Readonly<{ handleUplink(envelope: UplinkEnvelope): Promise<unknown> }>;

/** Where consultation.* messages go, how bodies are decoded (default: plain JSON), and a logger for the trace. */
export type UplinkRoutes = Readonly<{
  consultations?: Readonly<{
    handleUplink(envelope: ConsultationUplinkEnvelope): Promise<unknown>;
    /** The consultation's own correlation id, for the log lines (a later envelope may carry another). */
    correlationIdOf?(consultationId: string): Promise<string | null>;
    /** Its patients' pseudonymous keys ([] for none, or no such case): a message's audit entry goes under each. */
    patientKeysOf?(consultationId: string): Promise<readonly string[]>;
  }>;
  codec?: HubMessageCodec;
  /** 'consultation.refused' to the sender of a refused consultation message that asked for it (see the file comment). */
  refusals?: RefusalNotices;
  /** The hub's audit trail: consultation.* messages' final outcomes are recorded there (see the file comment). */
  audit?: UplinkAuditTrail;
  /** The time an audit entry carries (ISO-8601 UTC with milliseconds); default the system clock. */
  now?: () => string;
  logger?: { info?(fields: object, message: string): void; debug?(fields: object, message: string): void; warn?(fields: object, message: string): void };
}>;

export const DLQ_ID = 'rts_dlq_id';

/**
 * The queue the broker dead-letters the uplink queue's messages to (the `individualDeadLetterStrategy` with
 * queuePrefix `DLQ.` of scripts/activemq/broker.sh, scripts/cluster/cluster.sh and scripts/cluster/README.md), not
 * the hub's own dead letter queue (rts.dlq), which it never reads from here.
 */
export const brokerDeadLetterQueueFor = (uplinkQueue: string): string => `DLQ.${uplinkQueue}`;

/**
 * The copies ActiveMQ 6.3.1 moves there as a duplicate it paged in from its cursor (Queue.doPageInForDispatch:
 * "duplicate message ... from cursor ... Redirecting to dlq"): RegionBroker sets the property dlqDeliveryFailureCause
 * to the Throwable's toString(), `java.lang.Throwable: duplicate paged in from cursor for queue://<queue>`. The broker
 * evaluates the selector over that property; an AMQP consumer does not see it (the broker sends the message as it
 * came, with the sender's application-properties only). Such a copy may be the only one left (README, "High
 * availability"): the hub handles it as any uplink message (idempotent by envelope id). Anything else there (an
 * expired message, one the broker gave up redelivering) the hub moves to its own dead letter queue
 * (BROKER_OTHER_DEAD_LETTER_SELECTOR, createBrokerDeadLetterMover).
 */
export const BROKER_CURSOR_DUPLICATE_SELECTOR = "dlqDeliveryFailureCause LIKE 'java.lang.Throwable: duplicate paged in from cursor for %'";
/**
 * Everything else there: the complement of BROKER_CURSOR_DUPLICATE_SELECTOR. A message without the property (put
 * there by hand, or by a broker that does not set it) must match too: `LIKE` over a missing property is UNKNOWN, and so
 * is its NOT, which a selector does not match. (A property that is no string makes `LIKE` false in ActiveMQ, so its NOT
 * matches.) The hub moves these to its own dead letter queue (createBrokerDeadLetterMover): left on the broker's queue,
 * 200 of them ahead of a cursor duplicate hid it from the read-back for good (ActiveMQ pages in maxPageSize=200 messages
 * for a selector consumer), and nothing the hub shows counted them.
 */
export const BROKER_OTHER_DEAD_LETTER_SELECTOR = `dlqDeliveryFailureCause IS NULL OR NOT (${BROKER_CURSOR_DUPLICATE_SELECTOR})`;
/**
 * The reason of such a message's dead letter in the hub's queue: fixed, as the hub cannot read the broker's cause
 * (dlqDeliveryFailureCause is evaluated by the broker's selector, not sent to an AMQP consumer). A code first, as
 * every reason (the metrics' reason label: `broker_dead_lettered`).
 */
export const brokerDeadLetteredReason = (uplinkQueue: string): string =>
  `broker_dead_lettered: the broker moved it off ${uplinkQueue} (it expired, or the broker gave up redelivering it); the broker's own cause is not readable over AMQP`;
export const ENVELOPE_ID_PROPERTY = 'messageId';
/**
 * The id of the envelope the hub read (decoded, and with message security verified), on the dead letter copy of a
 * message it could read whose messageId property says another id: the hub's own property, never the sender's (one the sender set is not kept), so a
 * `messageId` that says otherwise does not hide the dead letter from `rts dlq show <envelope id>`.
 */
export const READ_ENVELOPE_ID = 'rts_envelope_id';

/**
 * Refusals that may clear once an earlier message of the same system is applied: its join request, an expert's
 * registration sent just before a change or retirement, or an expert's accept sent just before the report (other
 * hub processes compete for the queue, so messages sent back to back can be applied in either order across hubs).
 * Retried, and dead-lettered past the limit.
 */
export const ORDER_DEPENDENT_CODES: readonly string[] = ['system_not_joining', 'system_not_joined', 'expert_not_found', 'consultation_not_accepted'];

/**
 * Of those refusals, the ones that wait for a message of the same lane (OrderedByKey's `waitsFor`): that message
 * may go ahead of the refused one, which keeps its place before the rest. A batch sent just before its join
 * request held the request up behind it until the batch was dead-lettered (`system_not_joining`), and the join
 * stayed at 0 % for good.
 */
export const WAITS_FOR_TYPE: Readonly<Record<string, string>> = {
  system_not_joining: 'system.join.requested',
  expert_not_found: 'expert.registered',
  consultation_not_accepted: 'consultation.accept',
};

/** How long the handling of one message may take, from when it runs (not while it waits its turn): 60 s. */
export const HANDLER_TIMEOUT_MS = 60_000;

/**
 * Messages that wait for their turn, or pause before a retry's hand-back, held beyond the prefetch, for a consumer with
 * this prefetch: ten times it (2,000 with the default 200). Enough that a flood about one thing, or one system's flood
 * of changes of experts the hub does not know (each paused 3.75 s over its retries), leaves the credit to the others;
 * bounded, as each is held in memory. Shared by all systems, not split among them: a larger flood fills it.
 */
export const maxWaitingFor = (prefetch: number): number => 10 * prefetch;

/**
 * What a message is about, for OrderedByKey: the expert of an expert.* message, each expert of a batch, the
 * system of a join request, the consultation of a consultation.* message. Messages sharing a key are handled
 * in arrival order.
 */
export const uplinkOrderKeys = (envelope: UplinkEnvelope | ConsultationUplinkEnvelope): readonly string[] => {
  const payload = envelope.payload as { localExpertId?: unknown; homeSystemId?: unknown; consultationId?: unknown; experts?: readonly { localExpertId: string }[] };
  switch (envelope.type) {
    case 'expert.registered':
    case 'expert.changed':
    case 'expert.retired':
      return [`expert/${typeof payload.homeSystemId === 'string' ? payload.homeSystemId : envelope.systemId}:${String(payload.localExpertId)}`];
    case 'experts.batch':
      // Also the system's: every batch records its import on the system's stream, so the batches of one join ran at
      // once and met there. 120 batches of 25 used up their attempts on version conflicts and a join stopped at 55 %
      // for good; one at a time (after the join request they belong to) they meet nothing.
      return [`system/${envelope.systemId}`, ...(payload.experts ?? []).map((e) => `expert/${envelope.systemId}:${e.localExpertId}`)];
    case 'system.join.requested':
      return [`system/${envelope.systemId}`];
    default:
      return typeof payload.consultationId === 'string' ? [`consultation/${payload.consultationId}`] : [];
  }
};

/**
 * The AMQP group-id a sender gives an uplink message: its one key (the expert, the consultation, the joining
 * system), and for a batch its system's. With several hub processes on the queue, ActiveMQ then hands the messages
 * about one expert, and the batches of one system, to one hub, which applies them in order (see the file comment).
 */
export const uplinkGroupId = (envelope: UplinkEnvelope | ConsultationUplinkEnvelope): string | undefined => {
  const keys = uplinkOrderKeys(envelope);
  // A batch by its system (its first key): the batches of one join then reach one hub process, one at a time.
  return envelope.type === 'experts.batch' || keys.length === 1 ? keys[0] : undefined;
};

/**
 * Maps one received uplink message to the consumer's outcome. Pure apart from the handler it calls.
 * `maxAttempts` (the consumer's): a retry on the last attempt is a dead letter, which does not come back, so
 * nothing waits for it. `order`: the consumer's OrderedByKey (its own by default), which its stop closes.
 */
export const uplinkMessageHandler = (
  uplink: UplinkLike,
  routes: UplinkRoutes = {},
  options: { maxAttempts?: number; order?: OrderedByKey; handlerTimeoutMs?: number } = {},
): MessageHandler => {
  const codec = routes.codec ?? new PlainHubCodec();
  const order = options.order ?? new OrderedByKey();
  const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
  const handlerTimeoutMs = options.handlerTimeoutMs ?? HANDLER_TIMEOUT_MS;
  return async (message: ReceivedMessage): Promise<HandlerOutcome> => {
    // Called in the order the messages arrived: take the place now, before decoding (which may take a while).
    const place = order.arrive();
    let parsed: Awaited<ReturnType<HubMessageCodec['decodeUplink']>>;
    try {
      // Decoding checks the security (jose: signature, key, receiver, signer = systemId) before the contract.
      parsed = await codec.decodeUplink(message.body);
    } catch (error) {
      place.leave();
      throw error;
    }
    if (!parsed.ok) {
      place.leave();
      return { deadLetter: `${parsed.reason}: ${parsed.detail}` };
    }
    const envelope = parsed.envelope;
    // Handed back for another attempt (not on the last, where a retry becomes a dead letter), or for later (always
    // comes back, uncounted): it keeps its place.
    const comesBack = (outcome: HandlerOutcome) => outcome !== 'accept' && ('later' in outcome || ('retry' in outcome && message.attempt < maxAttempts));
    try {
      // Asked per message, never remembered per system: an older client of the same system may send the next one.
      const notify = acceptsDownlinkType(message.applicationProperties, REFUSED_TYPE);
      // The timeout counts the handling only, from when its turn came: counted from the receipt, the messages
      // waiting behind a failing one timed out in their lane (and were dead-lettered as timed out, not with the
      // true reason), and their tasks, still in the lane, ran later all the same.
      const run = async (): Promise<HandlerOutcome> => {
        const seen: Seen = {};
        const late: HandlerOutcome = { retry: `handler timed out after ${handlerTimeoutMs} ms` };
        const outcome = await withDeadline(handle(envelope, notify, message.attempt, seen), handlerTimeoutMs).catch((error: unknown) => {
          if (error instanceof PastDeadline) return late; // its late result is ignored
          throw error;
        });
        // Timed out, what the handling saw so far is not its outcome (it may still commit): the entry names the timeout.
        return audited(envelope, outcome, outcome === late ? { timedOut: true } : seen, message.attempt);
      };
      const outcome = await place.enter(uplinkOrderKeys(envelope), envelope.id, run, comesBack, {
        tag: envelope.type,
        waitsFor: (outcome) => (outcome !== undefined && outcome !== 'accept' && 'retry' in outcome ? WAITS_FOR_TYPE[outcome.retry] : undefined),
        // Waiting for its turn, it holds no credit slot (QueueConsumer's maxWaiting): the other keys' messages come.
        ...(message.waiting ? { onWait: message.waiting } : {}),
      });
      return withEnvelopeCopies(outcome, envelope, message);
    } catch (error) {
      // Not the message's fault, so not one of its attempts: a retry counted here dead-lettered a message on its last
      // attempt because the hub stopped (unaudited, as its handling never ran), a fault of no one's.
      if (error instanceof OrderClosedError) return { later: 'hub_stopping: not handled, the consumer is stopping' };
      throw error;
    }
  };

  /**
   * `outcome` as the handling ended, once the entry of a consultation message's final outcome is stored (see the file
   * comment): accepted, dead-lettered, or a retry on the last attempt (a dead letter too). Else `later`.
   */
  async function audited(envelope: UplinkEnvelope | ConsultationUplinkEnvelope, outcome: HandlerOutcome, seen: Seen, attempt: number): Promise<HandlerOutcome> {
    if (!routes.audit || !routes.consultations || !isConsultationType(envelope.type)) return outcome;
    const final = outcome === 'accept' || 'deadLetter' in outcome || ('retry' in outcome && attempt >= maxAttempts);
    if (!final) return outcome;
    const verdict: UplinkVerdict | undefined = outcome === 'accept' ? seen.handled : seen.timedOut ? { kind: 'timed_out' } : { kind: 'refused', error: seen.error ?? new Error('refused') };
    if (verdict === undefined) return outcome;
    return (await storeAuditEntry(routes, envelope as ConsultationUplinkEnvelope, verdict, handlerTimeoutMs)) ? outcome : AUDIT_UNAVAILABLE;
  }

  async function handle(envelope: UplinkEnvelope | ConsultationUplinkEnvelope, notify: boolean, attempt: number, seen: Seen): Promise<HandlerOutcome> {
    // The envelope passed the contract: its id is a UUID, its correlation id and consultation id refuse a CPR number
    // standing alone. One glued into other digits passes there, and is left out of the lines (loggableId).
    const trace: { id: string; type: string; systemId: string; correlationId?: string; consultationId?: string } = {
      id: envelope.id,
      type: envelope.type,
      systemId: envelope.systemId,
      correlationId: loggableId(envelope.correlationId),
    };
    try {
      let result: unknown;
      if (isConsultationType(envelope.type)) {
        if (!routes.consultations) return { deadLetter: 'unsupported_type: this hub does not handle consultations' };
        const consultationId = (envelope as ConsultationUplinkEnvelope).payload.consultationId;
        trace.consultationId = loggableId(consultationId);
        // One correlation id follows a consultation through the log: its own, whatever this envelope says.
        const own = await routes.consultations.correlationIdOf?.(consultationId);
        if (own) trace.correlationId = loggableId(own);
        result = await routes.consultations.handleUplink(envelope as ConsultationUplinkEnvelope);
      } else {
        result = await uplink.handleUplink(envelope as UplinkEnvelope);
      }
      // At info, one line per message: an operator asked about a message finds it by its id, and `outcome` says
      // whether it changed anything (applied) or not (duplicate: a repeat of an id already applied, which a new
      // message under a reused id is taken for, or nothing to change).
      const outcome = (result as { outcome?: unknown } | null | undefined)?.outcome;
      seen.handled = { kind: 'handled', outcome: outcome === 'duplicate' ? 'duplicate' : 'applied' };
      routes.logger?.info?.({ ...trace, ...(typeof outcome === 'string' ? { outcome } : {}) }, 'uplink message handled');
      return 'accept';
    } catch (error) {
      // What the audit entry records if this is the message's last word (a dead letter, or a retry on its last attempt).
      seen.error = error;
      if (error instanceof RtsError && ORDER_DEPENDENT_CODES.includes(error.code)) return { retry: error.code };
      // Not the message's fault (the hub's disk is full, its database does not answer): handed back without using
      // up an attempt, however long it lasts; a database failover of a minute dead-lettered every message in flight.
      if (error instanceof RtsError && error.kind === 'unavailable') return { later: `transient failure: ${error.code}` };
      if (error instanceof RtsError) {
        routes.logger?.warn?.({ ...trace, code: error.code }, 'uplink message refused');
        // "<code>: <detail>" as docs/messaging.md has it: the fields at fault (domain errors name fields, never
        // values), or the error's own sentence. A bare code left a city system guessing what to change.
        const detail = error.details.length > 0 ? error.details.map((d) => `${d.path} ${d.message}`).join('; ') : error.message;
        const reason = `${error.code}: ${detail}`.slice(0, 500);
        const deadLetter = { deadLetter: reason };
        if (notify && routes.refusals && isConsultationType(envelope.type)) {
          try {
            // The detail as the dead letter has it (cut the same way), so the sender reads what an operator reads.
            await routes.refusals.send(envelope as ConsultationUplinkEnvelope, { reason: error.code, detail: reason.slice(error.code.length + 2) });
          } catch (failure) {
            const name = failure instanceof Error ? failure.name : typeof failure;
            // Dead-lettered now, the sender would never hear of it; handed back, it comes again with its notice. On the
            // last attempt a retry would be a dead letter reading "retry limit": the real reason matters more there.
            if (attempt < maxAttempts) return { retry: `transient failure: the refusal notice was not sent (${name}); refused as ${error.code}` };
            routes.logger?.warn?.({ ...trace, code: error.code, err: name }, 'refusal notice not sent on the last attempt: dead-lettered without it');
          }
        }
        return deadLetter;
      }
      const name = error instanceof Error ? error.name : typeof error;
      const code = (error as { code?: unknown } | null)?.code;
      // Name and code only: an unexpected error's message might quote the payload.
      return { retry: `transient failure: ${name}${typeof code === 'string' ? ` (${code})` : ''}` };
    }
  }
};

/**
 * A dead letter (or a retry, which may become one) of a message whose envelope was read, with the envelope's id, type
 * and systemId to fill in where the message has no such property and its body does not show them: a JOSE body sent
 * without the copies (docs/messaging.md allows it). Without them its dead letter had no envelope id, type or system:
 * `rts dlq show <envelope id>`, which a sender is told to ask its operators for, found nothing, and the log line of
 * the dead-lettering named no message. A plain JSON body shows its id (tagDeadLetter reads it, the views the rest).
 * And where the sender's messageId is not the envelope's id, the id read as the hub's own rts_envelope_id: with the
 * sender's property taken for the envelope id, the dead letter was found only by what the sender claimed.
 */
const withEnvelopeCopies = (outcome: HandlerOutcome, envelope: UplinkEnvelope | ConsultationUplinkEnvelope, message: ReceivedMessage): HandlerOutcome => {
  if (outcome === 'accept' || 'later' in outcome) return outcome;
  // A messageId that is not the envelope's: the id read goes beside it (READ_ENVELOPE_ID), and the views take that.
  // Only the id, never a payload field; the sender's property stays as sent.
  const claimed = message.applicationProperties[ENVELOPE_ID_PROPERTY];
  const read = claimed !== undefined && claimed !== envelope.id ? { ...outcome, own: { [READ_ENVELOPE_ID]: envelope.id } } : outcome;
  if (envelopeIdOf(message.body) === envelope.id) return read;
  return { ...read, fill: { [ENVELOPE_ID_PROPERTY]: envelope.id, type: envelope.type, systemId: envelope.systemId } };
};

/** A message whose final outcome could not be audited: it is not settled, and comes again. */
const AUDIT_UNAVAILABLE = { later: 'transient failure: audit_unavailable' } as const;
const KEYS_UNAVAILABLE = { later: 'transient failure: keys_unavailable' } as const;

/** The entry of a consultation message's final outcome stored, within `deadlineMs`: true, or false (logged). */
const storeAuditEntry = async (routes: UplinkRoutes, envelope: ConsultationUplinkEnvelope, verdict: UplinkVerdict, deadlineMs: number): Promise<boolean> => {
  const at = routes.now?.() ?? new Date().toISOString();
  try {
    // Under the patients' keys, looked up after the handling (a consultation.requested has made its case by then). A
    // lookup that fails is handled as an entry that cannot be stored: the message comes again.
    const entry = uplinkAuditEntry(envelope, verdict, at);
    const patientKeys = entry.resource === null ? [] : await withDeadline(routes.consultations?.patientKeysOf?.(entry.resource) ?? Promise.resolve([]), deadlineMs);
    const audit = routes.audit!;
    // Each under its once-id (uplinkAuditOnceId): handed back because one patient's entry failed, the message comes
    // again, and the entries stored the first time are not recorded a second time.
    const entries = underPatients(entry, patientKeys);
    await withDeadline(
      Promise.all(
        entries.map((e) => {
          const onceId = uplinkAuditOnceId(envelope, e, verdict);
          return audit.record(e, onceId === undefined ? {} : { onceId });
        }),
      ),
      deadlineMs,
    );
    return true;
  } catch (error) {
    const name = error instanceof Error ? error.name : typeof error;
    // Ids and the code only (as every uplink line): the entry itself is not logged.
    routes.logger?.warn?.({ id: envelope.id, type: envelope.type, systemId: envelope.systemId, err: name }, 'uplink message not settled: its audit entry could not be stored; it comes again');
    return false;
  }
};

/**
 * QueueConsumer's beforeExhaustedDeadLetter for the uplink: a consultation.* message that arrives with its attempts
 * used up (the hub processes that took it died, or lost their connection, before settling it) is dead-lettered
 * without a handling, and that final outcome goes into the audit trail first, as every other one does (uplink-audit.ts:
 * 'error', 503, max_attempts_exceeded). The message is decoded as the handler would (message security included):
 * one that does not decode, or is not a consultation message, is not audited, as its handling would not have audited
 * it. The entry not stored: handed back uncounted, to come again.
 */
export const auditExhaustedUplink =
  (routes: UplinkRoutes, deadlineMs: number = HANDLER_TIMEOUT_MS) =>
  async (message: ReceivedMessage): Promise<'dead-letter' | { later: string }> => {
    if (!routes.audit || !routes.consultations) return 'dead-letter';
    let parsed: Awaited<ReturnType<HubMessageCodec['decodeUplink']>>;
    try {
      parsed = await (routes.codec ?? new PlainHubCodec()).decodeUplink(message.body);
    } catch {
      // A body that cannot be read is a result, not a throw: a throw is the key book's catch-up failing (the store
      // unreadable now). Taken for an undecodable body, the message went to the dead letters unaudited.
      return KEYS_UNAVAILABLE;
    }
    if (!parsed.ok || !isConsultationType(parsed.envelope.type)) return 'dead-letter';
    return (await storeAuditEntry(routes, parsed.envelope as ConsultationUplinkEnvelope, { kind: 'exhausted' }, deadlineMs)) ? 'dead-letter' : AUDIT_UNAVAILABLE;
  };

/** What a handling saw, for its audit entry: the step's outcome, or the error it ended with. */
type Seen = { handled?: UplinkVerdict & { kind: 'handled' }; error?: unknown; timedOut?: true };

/** A deadline passed before the work was done. */
class PastDeadline extends Error {}

/** `work`, or a rejection once it took longer than `ms`. */
const withDeadline = async <T>(work: Promise<T>, ms: number): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new PastDeadline(`not done within ${ms} ms`)), ms)));
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
};

/** See messageTraceOf (message-trace.ts): the hub's uplink lines use it. */
export const uplinkTraceOf = messageTraceOf;

/** The dead letter id a tagged copy carries (a UUID the hub made: safe to log), if it is one. */
export const deadLetterIdOf = (message: Message): string | undefined => {
  const id = message.application_properties?.[DLQ_ID];
  return typeof id === 'string' && /^[0-9a-f-]{36}$/i.test(id) ? id : undefined;
};

/**
 * The dead letter id of the copies of one delivery (QueueConsumer's deadLetterOwn): a UUID (version 8) made of the
 * SHA-256 of what the broker gives again each time the message comes: its message-id, user-id, body and
 * application-properties (the keys in order; a sender's own rts_dlq_id and rts_envelope_id, which the copy does not
 * keep, left out). A copy sent again because the broker's accept of the first was lost, the message dead-lettered
 * again after a hub restart or by another hub process: the same id, one dead letter. A message sent twice alike by its
 * sender (a resend of its own after a lost accept) is one too; a replayed one (x-replay-count) is another.
 */
export const deadLetterIdFor = (original: Message): string => {
  const hash = createHash('sha256').update('rts_dlq_id/1\n');
  for (const id of [original.message_id, original.user_id]) {
    const text = id === undefined || id === null ? '' : Buffer.isBuffer(id) ? `b${id.toString('hex')}` : `${typeof id}:${String(id)}`;
    hash.update(`${text.length}:${text}\n`);
  }
  const body = original.body as unknown;
  if (typeof body === 'string') hash.update('s').update(body, 'utf8');
  else if (body instanceof Uint8Array) hash.update('b').update(body);
  else if (body instanceof BodySection) {
    // Data (or sequence) sections: each by its bytes, its length first. As JSON, a Buffer is an array of numbers (a
    // 1 MB body took ~80 ms), and the section looked like an amqp-value map of the same fields.
    const { typecode, content, multiple } = body as unknown as { typecode: number; content: unknown; multiple?: boolean };
    hash.update(`d${typecode}${multiple ? '*' : ''}\n`);
    for (const part of multiple && Array.isArray(content) ? content : [content]) {
      const bytes = part instanceof Uint8Array ? part : Buffer.from(String(JSON.stringify(part, bigints)), 'utf8');
      hash.update(`${part instanceof Uint8Array ? 'b' : 'j'}${bytes.length}:`).update(bytes);
    }
  } else hash.update('j').update(String(JSON.stringify(body, bigints) ?? body));
  const properties = original.application_properties ?? {};
  const keys = Object.keys(properties).filter((key) => key !== DLQ_ID && key !== READ_ENVELOPE_ID).sort();
  hash.update('\n').update(JSON.stringify(keys.map((key) => [key, properties[key]]), bigints));
  const hex = hash.digest('hex').slice(0, 32).split('');
  hex[12] = '8';
  hex[16] = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

const bigints = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? `${value}n` : value);

/** rhea's class of a body received in data or sequence sections (message.data_section makes one). */
const BodySection = (amqpMessage.data_section(Buffer.alloc(0)) as object).constructor as new (...args: never[]) => object;

/** QueueConsumer's deadLetterOwn for the uplink: the dead letter id chosen from the original, the envelope id read. */
export const UPLINK_DEAD_LETTER_OWN = { names: [DLQ_ID, READ_ENVELOPE_ID], of: (original: Message) => ({ [DLQ_ID]: deadLetterIdFor(original) }) } as const;

/**
 * The dead letter copy with the selectable properties added (see the file comment): the envelope id read from the
 * body where the sender set no messageId, and a dead letter id where the consumer chose none (a fresh UUID then).
 */
export const tagDeadLetter = (message: Message, newId: () => string = randomUUID): Message => {
  const properties: Record<string, unknown> = { ...(message.application_properties ?? {}) };
  if (typeof properties[DLQ_ID] !== 'string') properties[DLQ_ID] = newId();
  if (typeof properties[ENVELOPE_ID_PROPERTY] !== 'string') {
    const id = envelopeIdOf(message.body);
    if (id !== undefined) properties[ENVELOPE_ID_PROPERTY] = id;
  }
  return { ...message, application_properties: properties };
};

/**
 * A DurableSender that tags every message it forwards as a dead letter (QueueConsumer's `deadLetterSender`). It tags
 * the copy it is given in place, so the consumer's `dead-lettered` event carries the dead letter id (for the log).
 */
export class DeadLetterTaggingSender extends DurableSender {
  override sendRaw(queue: string, message: Message, options?: SendOptions): Promise<void> {
    message.application_properties = tagDeadLetter(message).application_properties;
    return super.sendRaw(queue, message, options);
  }
}

export type UplinkConsumerOptions = Readonly<{
  queue: string;
  deadLetterQueue: string;
  /** Only the messages this JMS selector matches (the broker's dead letters: BROKER_CURSOR_DUPLICATE_SELECTOR). */
  selector?: string;
  /** x-dlq-source-queue of its dead letters, where a replay sends them (default: `queue`). */
  deadLetterSourceQueue?: string;
  uplink: UplinkLike;
  maxAttempts: number;
  prefetch: number;
  onOutcome?: (event: ConsumerOutcomeEvent) => void;
  /** The broker ended the link after it was attached (QueueConsumer's onDetached). */
  onDetached?: (error: Error) => void;
  /** The link was attached (QueueConsumer's onAttached: at the start and after each reconnect). */
  onAttached?: () => void;
  handlerTimeoutMs?: number;
  /** Before a retried message is handed back: base × 2^(attempt-1) ms, at most 5 s (0: at once). */
  retryDelayBaseMs?: number;
  /** consultation.* handler, body codec, trace logger (see UplinkRoutes). */
  routes?: UplinkRoutes;
}>;

export type UplinkConsumer = Readonly<{
  start(timeoutMs?: number | null): Promise<void>;
  stop(timeoutMs?: number): Promise<void>;
  /** Whether its link is attached now (QueueConsumer.attached). */
  attached(): boolean;
}>;

/** base × 2^(attempt-1) ms, at most 5 s: with the default 250 and 5 attempts, 0.25 + 0.5 + 1 + 2 s before the dead letter. */
export { retryBackoff };

export type BrokerDeadLetterMoverOptions = Readonly<{
  /** The broker's dead letter queue of the uplink (brokerDeadLetterQueueFor). */
  queue: string;
  /** The hub's own dead letter queue (rts.dlq). */
  deadLetterQueue: string;
  /** The uplink queue: named as the dead letters' x-dlq-source-queue, so that a replay goes there. */
  uplinkQueue: string;
  prefetch: number;
  onOutcome?: (event: ConsumerOutcomeEvent) => void;
  onDetached?: (error: Error) => void;
  onAttached?: () => void;
}>;

/**
 * The consumer of the broker's other dead letters of the uplink queue (BROKER_OTHER_DEAD_LETTER_SELECTOR: all but the
 * cursor duplicates, which the read-back consumer handles): each message is moved, unhandled, to the hub's own dead
 * letter queue as a dead letter like the uplink's (QueueConsumer's dead letter path: body and the sender's properties
 * unchanged, the original accepted only once the broker accepted the copy; rts_dlq_id chosen from the original by
 * deadLetterIdFor, messageId filled in from the body by the tagging sender), with the reason brokerDeadLetteredReason
 * and x-dlq-source-queue the uplink queue, so `rts dlq replay` sends it there. Its time-to-live does not go along
 * (deadLetterCopy keeps no ttl or absolute-expiry-time, nor does the replay's copy): an expired message replayed is not
 * expired again at once. Not audited: the hub made no decision about it; a replay is handled (and audited) as uplink.
 */
/** The hooks of a consumer's options that it was given, for QueueConsumer. */
const consumerHooksOf = (options: Readonly<{ onOutcome?: QueueConsumerOptions['onOutcome']; onDetached?: QueueConsumerOptions['onDetached']; onAttached?: QueueConsumerOptions['onAttached'] }>) => ({
  ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
  ...(options.onDetached ? { onDetached: options.onDetached } : {}),
  ...(options.onAttached ? { onAttached: options.onAttached } : {}),
});

/** A QueueConsumer as an UplinkConsumer: its dead letter sender closed after it stops (`beforeStop` first). */
const withItsSender = (consumer: QueueConsumer, deadLetterSender: DeadLetterTaggingSender, beforeStop?: () => void): UplinkConsumer => ({
  attached: () => consumer.attached(),
  start: (timeoutMs) => consumer.start(timeoutMs),
  stop: async (timeoutMs) => {
    beforeStop?.();
    await consumer.stop(timeoutMs);
    await deadLetterSender.close();
  },
});

export const createBrokerDeadLetterMover = (connection: AmqpConnection, options: BrokerDeadLetterMoverOptions): UplinkConsumer => {
  const deadLetterSender = new DeadLetterTaggingSender(connection);
  const reason = brokerDeadLetteredReason(options.uplinkQueue);
  const consumer = new QueueConsumer(connection, {
    queue: options.queue,
    deadLetterQueue: options.deadLetterQueue,
    selector: BROKER_OTHER_DEAD_LETTER_SELECTOR,
    deadLetterSourceQueue: options.uplinkQueue,
    deadLetterAll: reason,
    // Not called (deadLetterAll): it would answer the same.
    handler: async () => ({ deadLetter: reason }),
    prefetch: options.prefetch,
    deadLetterSender,
    deadLetterOwn: UPLINK_DEAD_LETTER_OWN,
    ...consumerHooksOf(options),
  });
  return withItsSender(consumer, deadLetterSender);
};

export const createUplinkConsumer = (connection: AmqpConnection, options: UplinkConsumerOptions): UplinkConsumer => {
  const deadLetterSender = new DeadLetterTaggingSender(connection);
  const order = new OrderedByKey();
  const consumer = new QueueConsumer(connection, {
    queue: options.queue,
    deadLetterQueue: options.deadLetterQueue,
    ...(options.selector !== undefined ? { selector: options.selector } : {}),
    ...(options.deadLetterSourceQueue !== undefined ? { deadLetterSourceQueue: options.deadLetterSourceQueue } : {}),
    handler: uplinkMessageHandler(options.uplink, options.routes, {
      maxAttempts: options.maxAttempts,
      order,
      ...(options.handlerTimeoutMs !== undefined ? { handlerTimeoutMs: options.handlerTimeoutMs } : {}),
    }),
    maxAttempts: options.maxAttempts,
    prefetch: options.prefetch,
    maxWaiting: maxWaitingFor(options.prefetch),
    // The messages waiting for their turn hold the whole credit: the lane with the most of them stops waiting for its failed message and goes on (see the file comment).
    onSaturated: () => order.giveUpAwaited(),
    deadLetterSender,
    // rts_dlq_id chosen from the original (the same for every copy of one delivery), rts_envelope_id from the handler.
    deadLetterOwn: UPLINK_DEAD_LETTER_OWN,
    // The handler times its own run (see uplinkMessageHandler). The wait for its turn ends as what is ahead of it
    // ends: each handling has the same limit, and a failed message is waited for 30 s at most.
    handlerTimeoutMs: null,
    ...(options.retryDelayBaseMs ? { retryDelayMs: retryBackoff(options.retryDelayBaseMs) } : {}),
    ...(options.routes ? { beforeExhaustedDeadLetter: auditExhaustedUplink(options.routes, options.handlerTimeoutMs) } : {}),
    ...consumerHooksOf(options),
  });
  // Messages waiting for a failed one to come again are handed back, not kept until the wait ends.
  return withItsSender(consumer, deadLetterSender, () => order.close());
};
