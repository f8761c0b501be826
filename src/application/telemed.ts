import { Director, HL7Builder, MetadataBuilder, parseHl7Observation, type DocumentMetadata } from '../domain/documents/hl7';
import type { Cpr } from '../domain/monitoring/cpr';
import type { TeleObservation } from '../domain/monitoring/tele-observation';
import type { TimeInterval } from '../domain/monitoring/time-interval';
import type { SubmitResult, XdsBackend } from './xds-backend';

/** A stored reading as the query side returns it: the observation and the document it lives in. */
export type StoredObservation = TeleObservation & Readonly<{ uniqueId: string }>;

/**
 * The seed's TeleMed role: the server that processes, stores and answers queries on tele observations.
 * This is the library entry point for a backend team embedding the core without HTTP.
 */
export interface TeleMed {
  /** Build the HL7 document and its metadata, store them in XDS, return the document's uniqueId. */
  processAndStore(teleObs: TeleObservation): Promise<string>;
  /** Every current observation of the patient measured in the half-open interval [from, to), oldest first. */
  getObservationsFor(patientId: Cpr, interval: TimeInterval): Promise<readonly StoredObservation[]>;
}

/** The seed's processAndStore: Director + builders make the document and metadata from one observation. */
export const buildDocument = (teleObs: TeleObservation): { document: string; metadata: DocumentMetadata } => {
  const builder = new HL7Builder();
  Director.construct(teleObs, builder);
  const metadataBuilder = new MetadataBuilder();
  Director.construct(teleObs, metadataBuilder);
  return { document: builder.getResult(), metadata: metadataBuilder.getResult() };
};

const summaryOf = (o: TeleObservation) => ({ systolic: o.systolic.value, diastolic: o.diastolic.value });

export class TeleMedService implements TeleMed {
  constructor(private readonly xds: XdsBackend) {}

  async processAndStore(teleObs: TeleObservation): Promise<string> {
    return (await this.record(teleObs)).uniqueId;
  }

  /**
   * processAndStore with an idempotency key: the same observationId for the same patient is stored once and
   * answers with the same uniqueId (`created: false` on a repeat).
   */
  async record(teleObs: TeleObservation, options: { observationId?: string; correlationId?: string } = {}): Promise<SubmitResult> {
    const { document, metadata } = buildDocument(teleObs);
    return this.xds.provideAndRegisterDocument(metadata, document, { ...options, summary: summaryOf(teleObs) });
  }

  /** Replace a stored reading by a corrected one (XDS RPLC); the old one disappears from queries. */
  async correct(uniqueId: string, corrected: TeleObservation, options: { correctionId?: string; correlationId?: string } = {}): Promise<SubmitResult> {
    const { document, metadata } = buildDocument(corrected);
    return this.xds.correctDocument(uniqueId, metadata, document, { ...options, summary: summaryOf(corrected) });
  }

  /** The patient of a stored document, read from the document itself (the registry keeps only a pseudonym). */
  async patientOf(uniqueId: string): Promise<Cpr> {
    const { content } = await this.xds.retrieveDocument(uniqueId);
    return parseHl7Observation(content).patientId;
  }

  async getObservationsFor(patientId: Cpr, interval: TimeInterval): Promise<readonly StoredObservation[]> {
    const entries = await this.xds.findEntries(patientId, interval.from, interval.to);
    return entries.map((e) => ({ uniqueId: e.uniqueId, patientId, systolic: e.systolic, diastolic: e.diastolic, measuredAt: e.serviceStartTime }));
  }
}
