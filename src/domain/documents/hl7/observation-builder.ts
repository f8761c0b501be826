import type { Cpr } from '../../monitoring/cpr';
import type { Quantity, TeleObservation } from '../../monitoring/tele-observation';

/**
 * The seed's Builder pattern: one observation is turned into several representations (the HL7 document, the
 * XDS registry metadata) by the same Director walking the same steps. Each concrete builder keeps what it
 * needs from each step and offers its own `getResult()`, because the results have different types.
 */
export interface ObservationBuilder {
  /** Who was measured and when (ISO-8601 UTC at second precision, as in TeleObservation.measuredAt). */
  buildHeader(patientId: Cpr, measuredAt: string): void;
  buildSystolic(systolic: Quantity): void;
  buildDiastolic(diastolic: Quantity): void;
}

/**
 * Knows the order of the steps, so every builder sees an observation the same way; builders only know how to
 * write one step. A plain object rather than a class: it holds no state.
 */
export const Director = {
  construct(teleObs: TeleObservation, builder: ObservationBuilder): void {
    builder.buildHeader(teleObs.patientId, teleObs.measuredAt);
    builder.buildSystolic(teleObs.systolic);
    builder.buildDiastolic(teleObs.diastolic);
  },
} as const;
