import { uuidV5 } from '../ids';
import { CONTRACT_VERSION } from '../directory/directory-messages';
import type { ConsultationDownlinkOf, ConsultationUplinkEnvelope } from './consultation-messages';

/**
 * PURE: the 'consultation.refused' notice the hub sends the sender of a consultation message it refused for good
 * (the uplink consumer dead-letters the message all the same; adapters/messaging/refusal-notices.ts sends this).
 *
 *   refusalNotice(refused, { reason: 'candidate_retired', detail: 'candidates.0 retired' }, time)
 *
 * Not planned from the store: a refusal records no event. So the id is derived from the refused envelope (its
 * sender and id): the same message redelivered after a crash between the notice and the dead letter gives a notice
 * with the same id, which the receiver dedupes. `correlationId` is the refused message's own: the notice answers that
 * message, and for a refusal such as not_your_consultation the consultation's own correlation id belongs to another
 * system. `detail` is what the dead letter's x-dlq-reason carries after the code: fields, never their values.
 */
export type Refusal = Readonly<{ reason: string; detail: string }>;

/** Longest detail a notice carries (the contract's limit; the dead letter's reason is cut at 500 too). */
export const MAX_REFUSAL_DETAIL = 500;

export const refusalNoticeId = (refused: Pick<ConsultationUplinkEnvelope, 'id' | 'systemId'>): string => uuidV5(`consultation.refused/${refused.systemId}/${refused.id}`);

export const refusalNotice = (refused: ConsultationUplinkEnvelope, refusal: Refusal, time: string): ConsultationDownlinkOf<'consultation.refused'> => ({
  id: refusalNoticeId(refused),
  type: 'consultation.refused',
  version: CONTRACT_VERSION,
  systemId: refused.systemId,
  correlationId: refused.correlationId,
  time,
  payload: {
    consultationId: refused.payload.consultationId,
    refusedType: refused.type,
    refusedMessageId: refused.id,
    reason: refusal.reason,
    detail: refusal.detail.slice(0, MAX_REFUSAL_DETAIL),
  },
});
