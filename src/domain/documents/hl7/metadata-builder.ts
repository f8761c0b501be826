import type { Cpr } from '../../monitoring/cpr';
import type { Quantity } from '../../monitoring/tele-observation';
import type { ObservationBuilder } from './observation-builder';

/**
 * The part of an XDS DocumentEntry that follows from the observation alone. creationTime, uniqueId,
 * repositoryUniqueId, hash and size are set by the application when it submits the document: they need a clock,
 * an id generator or the document bytes, none of which the domain has.
 */
export type DocumentMetadata = Readonly<{
  patientId: Cpr;
  /** ISO-8601 UTC at second precision; equals the observation's measuredAt. */
  serviceStartTime: string;
  /** A reading is an instant, so the service stops when it starts. */
  serviceStopTime: string;
  mimeType: 'text/xml';
  classCode: string;
  typeCode: string;
  formatCode: string;
  title: string;
  languageCode: string;
}>;

/**
 * Fixed codes of every blood pressure document. LOINC: 8716-3 "Vital signs" is the broad class a registry query
 * filters by; 55284-4 "Blood pressure systolic and diastolic" is the precise type. The format code is ours: the
 * seed's truncated HL7 is no standard format, and the version suffix lets a later layout coexist with this one.
 * Language: the document's only text (display names) is English.
 */
export const BLOOD_PRESSURE_DOCUMENT_CODES = {
  mimeType: 'text/xml',
  classCode: '8716-3',
  typeCode: '55284-4',
  formatCode: 'urn:telemed-rts:hl7:bp:1',
  title: 'Home blood pressure measurement',
  languageCode: 'en',
} as const;

/** Builds registry metadata from the same Director steps as the HL7 document, so both describe one reading. */
export class MetadataBuilder implements ObservationBuilder {
  private header: { patientId: Cpr; measuredAt: string } | null = null;

  buildHeader(patientId: Cpr, measuredAt: string): void {
    this.header = { patientId, measuredAt };
  }

  // The registry indexes patient and time only; the values themselves live in the document.
  buildSystolic(_systolic: Quantity): void {}

  buildDiastolic(_diastolic: Quantity): void {}

  getResult(): DocumentMetadata {
    if (!this.header) throw new Error('MetadataBuilder: getResult called before Director.construct');
    const { patientId, measuredAt } = this.header;
    return { patientId, serviceStartTime: measuredAt, serviceStopTime: measuredAt, ...BLOOD_PRESSURE_DOCUMENT_CODES };
  }
}
