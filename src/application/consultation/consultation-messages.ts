import { CONTRACT_VERSION, type Envelope } from '../directory/directory-messages';

/**
 * The consultation part of the hub's message contract (version 1), as TypeScript types. Same envelope as the
 * directory's (see directory-messages.ts): { id, type, version: 1, systemId, correlationId, time, payload }.
 * The zod schemas live at the edge: src/adapters/messaging/consultation-messages.ts.
 *
 * Uplink (a system -> the hub). `systemId` is the sender; it must be the applicant system (requested, acknowledge,
 * cancel) or the acting expert's home system (accept, decline, report), else 'not_your_consultation'.
 * Downlink (the hub -> one system's queue). `correlationId` is always the consultation's: the one of the
 * 'consultation.requested' envelope (or the HTTP request id when it was created over HTTP).
 *
 * Every payload here except 'consultation.offered' and 'consultation.report' is free of patient information;
 * those two carry it, which is why the queues carry them signed and encrypted (adapters/crypto/jose-codec.ts).
 */
export { CONTRACT_VERSION };

export type ConsultationUplinkPayloads = {
  'consultation.requested': {
    consultationId: string;
    applicantClinician: string;
    candidates: readonly string[];
    clinicalQuestion: string;
    summary: string;
    attachments: readonly string[];
    /** Seconds each candidate has to answer; the hub's default when absent. */
    deadlineSeconds?: number;
  };
  'consultation.accept': { consultationId: string; expertId: string };
  'consultation.decline': { consultationId: string; expertId: string; reason: string };
  'consultation.report': { consultationId: string; expertId: string; diagnosis: string; recommendations: string };
  'consultation.acknowledge': { consultationId: string };
  'consultation.cancel': { consultationId: string; reason?: string };
};
export type ConsultationUplinkType = keyof ConsultationUplinkPayloads;
export const CONSULTATION_UPLINK_TYPES = [
  'consultation.requested',
  'consultation.accept',
  'consultation.decline',
  'consultation.report',
  'consultation.acknowledge',
  'consultation.cancel',
] as const satisfies readonly ConsultationUplinkType[];
export type ConsultationUplinkEnvelope = { [T in ConsultationUplinkType]: Envelope<T, ConsultationUplinkPayloads[T]> }[ConsultationUplinkType];
export type ConsultationUplinkOf<T extends ConsultationUplinkType> = Extract<ConsultationUplinkEnvelope, { type: T }>;

export type ConsultationDownlinkPayloads = {
  /** To the candidate expert's home system: the case, with the patient information it needs. */
  'consultation.offered': {
    consultationId: string;
    expertId: string;
    offerIndex: number;
    offeredAt: string;
    expiresAt: string;
    applicantSystemId: string;
    applicantClinician: string;
    clinicalQuestion: string;
    summary: string;
    attachments: readonly string[];
  };
  /** To the applicant. */
  'consultation.accepted': { consultationId: string; expertId: string; acceptedAt: string };
  /** To the applicant: a candidate declined (`outcome` 'declined', with the reason) or let the offer expire. */
  'consultation.declined': { consultationId: string; expertId: string; outcome: 'declined' | 'expired'; reason: string; at: string };
  /** To the applicant: no candidate left. */
  'consultation.unassigned': { consultationId: string; unassignedAt: string };
  /** To the applicant: the report; `attempt` 0 first, then 1, 2... for resends (same content). */
  'consultation.report': { consultationId: string; expertId: string; diagnosis: string; recommendations: string; issuedAt: string; attempt: number };
  /** To the expert's home system (the open offer or the accepted expert): stop working on it. */
  'consultation.cancelled': { consultationId: string; expertId: string; reason: string; cancelledAt: string };
  /**
   * To the sender of a consultation uplink message the hub refused for good (dead-lettered with `reason`), only when
   * that message said it understands this type (AMQP application property `rts_accepts`). `detail` names fields,
   * never values, as the dead letter's x-dlq-reason does. Not from the store: sent while the refusal is handled.
   */
  'consultation.refused': { consultationId: string; refusedType: ConsultationUplinkType; refusedMessageId: string; reason: string; detail: string };
};
export type ConsultationDownlinkType = keyof ConsultationDownlinkPayloads;
export const CONSULTATION_DOWNLINK_TYPES = [
  'consultation.offered',
  'consultation.accepted',
  'consultation.declined',
  'consultation.unassigned',
  'consultation.report',
  'consultation.cancelled',
  'consultation.refused',
] as const satisfies readonly ConsultationDownlinkType[];
export type ConsultationDownlinkEnvelope = { [T in ConsultationDownlinkType]: Envelope<T, ConsultationDownlinkPayloads[T]> }[ConsultationDownlinkType];
export type ConsultationDownlinkOf<T extends ConsultationDownlinkType> = Extract<ConsultationDownlinkEnvelope, { type: T }>;
