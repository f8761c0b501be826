import type { Message } from 'rhea';
import { loggableId } from '../../domain/monitoring/cpr-like';


/** Our envelope id as readable from a message body, when it is JSON with a plain `id` string. */
export const envelopeIdOf = (body: unknown): string | undefined => {
  if (typeof body !== 'string' || body.length > 8 * 1024 * 1024) return undefined;
  try {
    const value = JSON.parse(body) as unknown;
    const id = value && typeof value === 'object' ? (value as { id?: unknown }).id : undefined;
    return typeof id === 'string' && /^[A-Za-z0-9._:-]{1,100}$/.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
};

export type MessageTrace = Readonly<{ id?: string; type?: string; systemId?: string; correlationId?: string; consultationId?: string }>;

/**
 * What names a message in the log lines of its retries and its dead letter (the hub's uplink consumer, the SDK's
 * downlink subscription), where its envelope may never have been read (bad JSON, a bad signature): the envelope id
 * (on a hub's dead letter copy the one it read, rts_envelope_id; else the application property messageId, else the
 * body's `id` when it is plain JSON), type, systemId, correlationId
 * and consultationId as the sender set them. Each only when it looks like an id and cannot hold a CPR number (the
 * dead letter views' rule: a sender's values are whatever it wrote). The same names as the lines of a message that
 * was read ('uplink message handled', 'downlink message sent'), so one search for an id finds them all.
 */
export const messageTraceOf = (message: Pick<Message, 'body' | 'application_properties'>): MessageTrace => {
  const props = message.application_properties ?? {};
  const fields = {
    id: loggableId(props['rts_envelope_id']) ?? loggableId(props['messageId']) ?? loggableId(envelopeIdOf(message.body)),
    type: loggableId(props['type']),
    systemId: loggableId(props['systemId']),
    correlationId: loggableId(props['correlationId']),
    consultationId: loggableId(props['consultationId']),
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
};
