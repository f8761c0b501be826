import { consultationStreamName, isConsultationEvent } from '../../domain/consultation/consultation';
import { NotFoundError } from '../../domain/shared/errors';
import type { EventStore } from '../ports/event-store';
import type { PatientDataProtection } from '../ports/patient-data-protection';
import { evolveConsultationView, type ConsultationView, type OpenedConsultationEvent } from './consultation-projection';
import { openConsultationEvent } from './sealed-consultations';

/**
 * One consultation's view folded from its own stream, texts opened as the read model's projection opens them
 * (OpeningConsultations): the same pure evolve, run on demand. For a process that composes no consultation read
 * model yet must show a consultation as the hub does: the embedded library's patient export (library.ts), on a
 * store a hub has recorded consultations in. NotFoundError `consultation_not_found` as ConsultationService.get.
 */
export const consultationViewFromStream = async (
  store: Pick<EventStore, 'readStream'>,
  protection: PatientDataProtection,
  consultationId: string,
): Promise<ConsultationView> => {
  const { events } = await store.readStream(consultationStreamName(consultationId));
  let view: ConsultationView | null = null;
  for (const event of events) {
    if (!isConsultationEvent(event)) continue;
    const opened = await openConsultationEvent(protection, event);
    view = evolveConsultationView(view, { type: opened.type, data: opened.data } as unknown as OpenedConsultationEvent);
  }
  if (view === null) throw new NotFoundError('consultation_not_found', 'no consultation has this id');
  return view;
};
