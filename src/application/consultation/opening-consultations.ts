import { isConsultationEvent } from '../../domain/consultation/consultation';
import { completeKeyErasure } from '../erasure-completion';
import type { RecordedEvent } from '../ports/event-store';
import type { PatientDataProtection } from '../ports/patient-data-protection';
import type { MonthCount } from './consultation-projection';
import type { ConsultationPage, ConsultationQuery, ConsultationReadModel, DueTimerRow, OpenOfferRow } from './consultation-read-model';
import type { ConsultationView } from './consultation-projection';
import { consultationDataKey, openConsultationEvent } from './sealed-consultations';

/**
 * The consultation read model as the projector feeds it: each consultation event's sealed texts are opened before
 * the pure evolve sees them (null where they cannot be: the consultation's key was erased), so the rows hold
 * clear text while it exists and none after; a ConsultationContentErased deletes the key an erasure cut off left live
 * (completeKeyErasure). As OpeningRegistry does for documents.
 */
export class OpeningConsultations implements ConsultationReadModel {
  constructor(
    readonly inner: ConsultationReadModel,
    private readonly protection: PatientDataProtection,
  ) {}

  get eventTypes(): ReadonlySet<string> | undefined {
    return this.inner.eventTypes;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    const opened: RecordedEvent[] = [];
    for (const e of events) {
      // The consultation's key, if the erasure that recorded this cut off before deleting it (erasure-completion.ts).
      if (e.type === 'ConsultationContentErased') await completeKeyErasure(this.protection, consultationDataKey(String(e.data['consultationId'])), e.data['erasedAt']);
      opened.push(isConsultationEvent(e) ? await openConsultationEvent(this.protection, e) : e);
    }
    await this.inner.apply(opened, checkpoint);
  }

  checkpoint(): Promise<bigint> {
    return this.inner.checkpoint();
  }

  reset(): Promise<void> {
    return this.inner.reset();
  }

  get(consultationId: string): Promise<ConsultationView | null> {
    return this.inner.get(consultationId);
  }

  list(query: ConsultationQuery): Promise<ConsultationPage> {
    return this.inner.list(query);
  }

  dueTimers(now: string, limit: number): Promise<readonly DueTimerRow[]> {
    return this.inner.dueTimers(now, limit);
  }

  monthlyCounts(range: Readonly<{ from?: string; to?: string }>): Promise<readonly MonthCount[]> {
    return this.inner.monthlyCounts(range);
  }

  openOffersTo(expertId: string): Promise<readonly OpenOfferRow[]> {
    return this.inner.openOffersTo(expertId);
  }
}
