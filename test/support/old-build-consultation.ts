import { uuidV5 } from '../../src/application/ids';
import type { EventStore } from '../../src/application/ports/event-store';
import { consultationStreamName } from '../../src/domain/consultation/consultation';

/**
 * A consultation as builds before 2026-12-01 stored it: requested and offered to `city-b:e3` (then `city-c:e1`),
 * texts in clear, and any id they took (`cons-0001`, even a CPR number), appended straight through the store port
 * as an old build would have. `n` keeps the event ids apart; the request was made `secondsAgo` before now.
 */
export const appendOldBuildConsultation = async (store: Pick<EventStore, 'appendToStream'>, consultationId: string, n: number, secondsAgo = 60): Promise<void> => {
  const at = new Date(Date.now() - secondsAgo * 1000).toISOString();
  await store.appendToStream(
    consultationStreamName(consultationId),
    [
      {
        id: uuidV5(`old-build/${n}/requested`),
        type: 'ConsultationRequested',
        data: {
          consultationId,
          applicantSystemId: 'city-a',
          applicantClinician: 'dr-a',
          candidates: ['city-b:e3', 'city-c:e1'],
          clinicalQuestion: 'Second opinion',
          summary: 'ECG attached',
          attachments: [],
          deadlineSeconds: 3600,
          reportResend: { intervalSeconds: 3600, maxAttempts: 3 },
          correlationId: `req-${n}`,
          requestedAt: at,
        },
      },
      { id: uuidV5(`old-build/${n}/offered`), type: 'ConsultationOffered', data: { consultationId, expertId: 'city-b:e3', offerIndex: 0, offeredAt: at, expiresAt: new Date(Date.now() + 3_600_000).toISOString() } },
    ],
    { expectedVersion: 'no_stream' },
  );
};
