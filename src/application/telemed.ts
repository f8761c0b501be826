import { Director, HL7Builder, MetadataBuilder, parseHl7Observation, type DocumentMetadata } from '../domain/documents/hl7';
import { parseCprBornBy, type Cpr } from '../domain/monitoring/cpr';
import { ensureTeleObservation, type TeleObservation } from '../domain/monitoring/tele-observation';
import { checkedInterval, type TimeInterval } from '../domain/monitoring/time-interval';
import { ConflictError } from '../domain/shared/errors';
import { checkPatientIdempotencyKey } from '../domain/shared/idempotency-key';
import type { RepeatedResult, SubmitResult, XdsBackend } from './xds-backend';

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

/** What `record` did, and the measurement time the stored reading has. */
export type RecordResult = SubmitResult & RepeatedResult & Readonly<{ measuredAt: string }>;

/** What `correct` did: a repeat of a correction corrected again since names the current document too. */
export type CorrectResult = SubmitResult & RepeatedResult;

export type RecordOptions = Readonly<{
  /** Client-supplied idempotency key: the same key for the same patient and reading is stored once. */
  observationId?: string;
  correlationId?: string;
  /**
   * The caller gave no measurement time and `measuredAt` is the hub's "now". A retry of such an upload (after a
   * lost answer) comes a moment later with another "now"; with this flag it is the same reading when its values
   * match the one stored under the id, and answers with that reading's time.
   */
  measuredAtDefaulted?: boolean;
}>;

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
  async record(observation: TeleObservation, options: RecordOptions = {}): Promise<RecordResult> {
    // A TeleObservation is a plain type: one a caller built by hand (NaN, systolic below diastolic, a CPR cast) is
    // validated here as createTeleObservation would; one it made is taken as it is.
    const teleObs = ensureTeleObservation(observation, () => this.xds.now());
    if (options.observationId !== undefined) checkPatientIdempotencyKey(options.observationId, teleObs.patientId.replace('-', ''), 'observationId', 'invalid_observation');
    try {
      return await this.submit(teleObs, options);
    } catch (e) {
      const { observationId, measuredAtDefaulted } = options;
      if (!(measuredAtDefaulted && observationId !== undefined && e instanceof ConflictError && e.code === 'observation_id_reused')) throw e;
      // Only the time differs from what the id was stored with? Then it is the same reading: submit it at the
      // stored time, which the decider answers as a repeat (or refuses again when the values differ too).
      const stored = await this.xds.entryOfObservation(teleObs.patientId, observationId);
      if (stored === null || stored.serviceStartTime === teleObs.measuredAt) throw e;
      return this.submit({ ...teleObs, measuredAt: stored.serviceStartTime }, { observationId, correlationId: options.correlationId });
    }
  }

  private async submit(teleObs: TeleObservation, options: RecordOptions): Promise<RecordResult> {
    const { document, metadata } = buildDocument(teleObs);
    const result = await this.xds.provideAndRegisterBuilt(metadata, document, { observationId: options.observationId, correlationId: options.correlationId, summary: summaryOf(teleObs) });
    return { ...result, ...(await this.xds.repeatedResult(result)), measuredAt: teleObs.measuredAt };
  }

  /** Replace a stored reading by a corrected one (XDS RPLC); queries show the new one instead of the old, never neither or both. */
  async correct(uniqueId: string, corrected: TeleObservation, options: { correctionId?: string; correlationId?: string } = {}): Promise<CorrectResult> {
    const reading = ensureTeleObservation(corrected, () => this.xds.now());
    if (options.correctionId !== undefined) checkPatientIdempotencyKey(options.correctionId, reading.patientId.replace('-', ''), 'correctionId', 'invalid_observation');
    const { document, metadata } = buildDocument(reading);
    const result = await this.xds.correctBuilt(uniqueId, metadata, document, { ...options, summary: summaryOf(reading) });
    return { ...result, ...(await this.xds.repeatedResult(result)) };
  }

  /** The patient of a stored document, read from the document itself (the registry keeps only a pseudonym). */
  async patientOf(uniqueId: string): Promise<Cpr> {
    const { content } = await this.xds.retrieveDocument(uniqueId);
    return parseHl7Observation(content).patientId;
  }

  async getObservationsFor(patientId: Cpr, interval: TimeInterval): Promise<readonly StoredObservation[]> {
    const { from, to } = checkedInterval(interval); // a hand-built interval meets the same rules (width, order)
    // As an upload: a CPR number born in the future is invalid_patient_id, not a patient without readings.
    const entries = await this.xds.findEntries(parseCprBornBy(patientId, this.xds.now().toMillis()), from, to);
    return entries.map((e) => ({ uniqueId: e.uniqueId, patientId, systolic: e.systolic, diastolic: e.diastolic, measuredAt: e.serviceStartTime }));
  }
}
