import { ValidationError } from '../../domain/shared/errors';
import type { ConsultationUplinkEnvelope } from './consultation-messages';
import type { ConsultationService, StepResult } from './consultation-service';

/**
 * The consultation uplink use case: one parsed consultation message (parseConsultationUplink in
 * src/adapters/messaging/consultation-messages.ts) in, its events committed, out.
 *
 *   const { outcome } = await handleConsultationUplink(service, envelope);   // 'applied' | 'duplicate'
 *
 * Who may send what (the sender is `envelope.systemId`; the decider enforces it, so HTTP gets the same rule):
 * - 'consultation.requested': the sender becomes the applicant system.
 * - 'consultation.accept' / 'decline' / 'report': only the home system of the acting expert (`payload.expertId`),
 *   and only an expert who was offered the case: ForbiddenError 'not_your_consultation' / 'expert_not_offered'.
 * - 'consultation.acknowledge' / 'cancel': only the applicant system: ForbiddenError 'not_your_consultation'.
 *
 * An accept's envelope `time` (signed by the sender) counts when the hub handles it after the offer's deadline
 * while the offer is still open (the decider's sentInTime).
 *
 * The envelope id is the command id (a redelivery is stored once and answers 'duplicate'); the envelope's
 * correlation id becomes the consultation's on 'consultation.requested', and every later event and message
 * carries the consultation's own, whatever a later envelope says.
 *
 * Errors, for part B's consumer: any RtsError is permanent (dead-letter with `error.code` as the reason);
 * anything else is transient (retry through the broker).
 */
export type ConsultationUplinkResult = Readonly<{ outcome: 'applied' | 'duplicate' }>;

const outcome = (r: { changed: boolean } | { created: boolean }): ConsultationUplinkResult => ({
  outcome: ('changed' in r ? r.changed : r.created) ? 'applied' : 'duplicate',
});

export const handleConsultationUplink = async (
  service: Pick<ConsultationService, 'request' | 'accept' | 'decline' | 'issueReport' | 'acknowledge' | 'cancel'>,
  envelope: ConsultationUplinkEnvelope,
): Promise<ConsultationUplinkResult> => {
  const options = { commandId: envelope.id, correlationId: envelope.correlationId };
  const by = envelope.systemId;
  let result: StepResult | { created: boolean };
  switch (envelope.type) {
    case 'consultation.requested': {
      const p = envelope.payload;
      result = await service.request(
        {
          consultationId: p.consultationId,
          applicantSystemId: by,
          applicantClinician: p.applicantClinician,
          candidates: p.candidates,
          clinicalQuestion: p.clinicalQuestion,
          summary: p.summary,
          attachments: p.attachments,
          deadlineSeconds: p.deadlineSeconds,
        },
        options,
      );
      break;
    }
    case 'consultation.accept':
      result = await service.accept(envelope.payload.consultationId, { expertId: envelope.payload.expertId, bySystemId: by, sentAt: envelope.time }, options);
      break;
    case 'consultation.decline':
      result = await service.decline(envelope.payload.consultationId, { expertId: envelope.payload.expertId, bySystemId: by, reason: envelope.payload.reason }, options);
      break;
    case 'consultation.report': {
      const p = envelope.payload;
      result = await service.issueReport(p.consultationId, { expertId: p.expertId, bySystemId: by, diagnosis: p.diagnosis, recommendations: p.recommendations }, options);
      break;
    }
    case 'consultation.acknowledge':
      result = await service.acknowledge(envelope.payload.consultationId, { bySystemId: by }, options);
      break;
    case 'consultation.cancel':
      result = await service.cancel(envelope.payload.consultationId, { bySystemId: by, reason: envelope.payload.reason }, options);
      break;
    default: {
      const unknown: never = envelope;
      throw new ValidationError('unknown_message_type', `unknown uplink type ${String((unknown as { type?: unknown }).type)}`);
    }
  }
  return outcome(result);
};
