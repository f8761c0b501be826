import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { atMostAsSent } from '../validation/as-sent-length';
import { binaryShown } from '../validation/binary-text';
import { withoutCprNumber } from '../validation/no-cpr-text';
import { holdsOneLineControl, TRIMMED_ONE_LINE_PATTERN } from '../../domain/shared/text-limits';
import { mayHoldCprDigits } from '../../domain/monitoring/cpr-like';
import { DeadLetterDiscardedError, MAX_LIST_LIMIT, uuidOrNull, type DeadLetter, type DeadLetterService } from '../../application/directory/dead-letter-operations';
import { problem, sendProblem, type Problem } from './problem';
import { type AnswerOf, DeadLetterSummary, DiscardedProblemMember } from './response-schemas';
import { parseInput } from './schemas';

/**
 * Operators' HTTP API for the dead letter queue (problem+json on errors; 503 service_unavailable when the hub
 * runs without a broker):
 *   GET  /dead-letters?limit=          browse without consuming, oldest first (no bodies; see the one); `more`: not all listed
 *   GET  /dead-letters/{id}            one, with its body and properties, and the replays recorded for it;
 *                                      {id} is the dead letter id, our envelope id, or the broker's message id
 *   POST /dead-letters/{id}/replay     { by?, reason? }: back to the source queue; recorded as DeadLetterReplayed,
 *                                      by the caller's subject (the body's `by` is kept as its note). Neither
 *                                      text may hold a CPR number (400 invalid_request): the event outlives erasure.
 *                                      Only to the uplink queue or a registered system's downlink queue, else
 *                                      422 replay_target_refused (the message stays on the dead letter queue)
 *   POST /dead-letters/{id}/discard    { reason }: off the dead letter queue for good (garbage, a duplicate, a
 *                                      message with personal data that must not be kept); recorded as
 *                                      DeadLetterDiscarded (never the body) by the caller's subject, in the stream
 *                                      the replays go to; audited (dead_letters.discard) whatever the outcome. The
 *                                      reason is required and may not hold a CPR number.
 *
 * An id no longer on the queue whose last recorded fate is a discard answers 410 dead_letter_discarded with the
 * discard record (member `discard`) on every route of one dead letter; one that another request took off the
 * queue while this one was at it (a replay racing a discard) 409 dead_letter_taken; else 404 dead_letter_not_found.
 */
export type DeadLetterRouteDependencies = Readonly<{ deadLetters: DeadLetterService }>;

export const DeadLettersQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(MAX_LIST_LIMIT).optional() });
export const DeadLetterParams = z.strictObject({ id: z.string().min(1).max(200) });
/**
 * One line: the note and the reasons are shown on one line (`rts dlq show`, the dead letter's history) and kept in
 * events in clear. A line break split that line, a bidirectional override reordered it, and NUL failed the event's
 * append on PostgreSQL after the replay had already moved the message back to its queue: a replay nothing recorded.
 */
const oneLine = (max: number) =>
  withoutCprNumber(
    // At most `max` characters as sent, white space around included, as the document's maxLength counts them.
    atMostAsSent(max)
      .trim()
      .min(1)
      .refine((v) => !holdsOneLineControl(v), 'one line: no control characters, line breaks or bidirectional overrides')
      // What the trim, min and refine take, as the OpenAPI document can say it.
      .meta({ pattern: TRIMMED_ONE_LINE_PATTERN }),
  );
export const ReplayBody = z
  .strictObject({
    by: oneLine(100).optional().describe('A note on who asked for the replay; who replayed is the caller (their token\'s sub)'),
    reason: oneLine(500).optional(),
  })
  .optional();
export const DiscardBody = z.strictObject({
  reason: oneLine(500).describe('Why it is discarded (kept in the DeadLetterDiscarded event, in clear: no CPR number)'),
});

/**
 * What a sender set (message-id, systemId, correlationId, its application properties) is shown only when it cannot
 * hold a CPR number (mayHoldCprDigits, the request id's check: the replacements' strength, digits glued into longer
 * runs too, since a redaction costs only what an operator sees): a misbehaving sender's patient number would
 * otherwise reach operators, whose role is no patient data. The dead letter itself is untouched (a replay sends it
 * as it came), and it can still be addressed by the hub's own dead letter id. The body is shown as sent: see README.
 */
export const REDACTED = '[redacted]';
const shown = <T extends string | null>(value: T): T | typeof REDACTED => (value !== null && mayHoldCprDigits(value) ? REDACTED : value);
/** A property's value: numbers, booleans and null as they are; binary as its text (or hex); anything else as text; then checked. */
const shownValue = (value: unknown): unknown =>
  typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined
    ? value
    : shown(typeof value === 'string' ? value : value instanceof Uint8Array ? binaryShown(value) : JSON.stringify(value) ?? String(value));
const shownProperties = (properties: Readonly<Record<string, unknown>>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(properties).map(([key, value]) => [mayHoldCprDigits(key) ? REDACTED : key, shownValue(value)]));

/**
 * The ids that address a dead letter. The hub's own are UUIDs, shown as they are (a UUID's digits may by chance look
 * like a CPR number, and a redacted id could not be addressed); anything else, which a sender writing to the dead
 * letter queue itself can set, is redacted where it holds a CPR number.
 */
const shownId = (value: string | null): string | null => (uuidOrNull(value) ?? shown(value));
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** The ids a replay's or discard's answer names the dead letter by, shown as in the list (a sender's may hold a CPR number). */
const shownAddress = (d: DeadLetter): { id: string; envelopeId: string | null } => ({ id: shownId(d.id)!, envelopeId: shown(d.envelopeId) });

export const deadLetterSummary = (d: DeadLetter): AnswerOf<typeof DeadLetterSummary> => ({
  id: shownId(d.id)!,
  deadLetterId: shownId(d.deadLetterId),
  envelopeId: shown(d.envelopeId),
  brokerMessageId: shown(d.brokerMessageId),
  type: shown(d.type),
  systemId: shown(d.systemId),
  reason: shown(d.reason), // the hub's, or a client-side dead-lettering system's
  sourceQueue: shown(d.sourceQueue),
  attempts: d.attempts,
  // x-dlq-at: the hub writes an instant, a sender writing to the queue anything; shown only when it is an instant.
  deadLetteredAt: d.deadLetteredAt !== null && ISO_INSTANT.test(d.deadLetteredAt) ? d.deadLetteredAt : null,
  replayCount: d.replayCount,
  bodyChars: d.body.length,
});

/** 410 dead_letter_discarded with the discard record as the problem's `discard` member (RFC 9457 extension; openapi.ts describes it). */
export const discardedProblem = (error: DeadLetterDiscardedError): Problem & Readonly<{ discard: AnswerOf<typeof DiscardedProblemMember> }> => ({
  ...problem(error.code, error.message),
  discard: error.record,
});

const answeringDiscarded = async <T>(reply: FastifyReply, work: () => Promise<T>): Promise<T | FastifyReply> => {
  try {
    return await work();
  } catch (error) {
    if (!(error instanceof DeadLetterDiscardedError)) throw error;
    return sendProblem(reply, discardedProblem(error));
  }
};

export const registerDeadLetterRoutes = (app: FastifyInstance, deps: DeadLetterRouteDependencies): void => {
  const { deadLetters } = deps;

  app.get('/dead-letters', async (request) => {
    const q = parseInput(DeadLettersQuery, request.query, 'query');
    const { items, more } = await deadLetters.listPage(q.limit);
    // `more`: the queue holds more than were listed (ask with a larger limit, up to MAX_LIST_LIMIT).
    return { items: items.map(deadLetterSummary), count: items.length, more };
  });

  app.get('/dead-letters/:id', async (request, reply) => {
    const { id } = parseInput(DeadLetterParams, request.params, 'path');
    return answeringDiscarded(reply, async () => {
      const d = await deadLetters.get(id);
      // Earlier copies of the same message may have been replayed or discarded.
      const { replays, discards } = await deadLetters.history(d.envelopeId ?? d.deadLetterId ?? d.id);
      return { ...deadLetterSummary(d), correlationId: shown(d.correlationId), body: d.body, applicationProperties: shownProperties(d.applicationProperties), replays, discards };
    });
  });

  app.post('/dead-letters/:id/replay', async (request, reply) => {
    const { id } = parseInput(DeadLetterParams, request.params, 'path');
    const body = parseInput(ReplayBody, request.body ?? undefined, 'body');
    // Who replayed is who the hub authenticated (as for an erasure's `by`), not the name in the body: that one
    // is kept as a note (e.g. who asked for the replay).
    const by = request.principal?.subject ?? 'anonymous';
    return answeringDiscarded(reply, async () => {
      const result = await deadLetters.replay(id, { by, ...(body?.by !== undefined ? { note: body.by } : {}), ...(body?.reason !== undefined ? { reason: body.reason } : {}) });
      return reply.code(200).send({
        ...shownAddress(result.deadLetter),
        sourceQueue: result.sourceQueue,
        moved: result.moved,
        replay: result.event,
        recordedIn: result.streamName,
      });
    });
  });

  app.post('/dead-letters/:id/discard', async (request, reply) => {
    const { id } = parseInput(DeadLetterParams, request.params, 'path');
    const { reason } = parseInput(DiscardBody, request.body ?? undefined, 'body');
    // Who discarded is who the hub authenticated; the body holds no name.
    const by = request.principal?.subject ?? 'anonymous';
    return answeringDiscarded(reply, async () => {
      const result = await deadLetters.discard(id, { by, reason });
      return reply.code(200).send({
        ...shownAddress(result.deadLetter),
        removed: result.removed,
        discard: result.event,
        recordedIn: result.streamName,
      });
    });
  });
};
