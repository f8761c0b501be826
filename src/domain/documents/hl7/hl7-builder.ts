import { hl7TimestampUtc, isoInstantMillis } from '../../shared/iso-instant';
import type { Cpr } from '../../monitoring/cpr';
import type { Quantity } from '../../monitoring/tele-observation';
import type { ObservationBuilder } from './observation-builder';

/**
 * The seed's truncated HL7 (a ClinicalDocument cut down to time, patient and two quantities). Codes are from the
 * Danish code system the seed uses; the parser reads the same table, so writer and reader cannot drift apart.
 */
export const HL7_OBSERVATION_CODES = {
  systolic: { code: 'MSC88019', displayName: 'Systolic BP' },
  diastolic: { code: 'MSC88020', displayName: 'Diastolic BP' },
} as const;

/** The unit as the seed writes it (UCUM's case-insensitive form); our domain calls it mmHg. */
export const HL7_PRESSURE_UNIT = 'mm(Hg)' as const;

/** HL7 TS format of effectiveTime; written in UTC without an offset, as in the seed. */
export const HL7_TS_FORMAT = 'yyyyMMddHHmmss';

const XML_ATTRIBUTE_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** Escape for a double-quoted attribute using only the five predefined XML entities (all the parser decodes). */
export const escapeXmlAttribute = (value: string): string => value.replace(/[&<>"']/g, (c) => XML_ATTRIBUTE_ESCAPES[c] ?? c);

/** The seed writes 126 as "126.0"; other values keep their shortest exact decimal form so they read back equal. */
export const formatHl7Number = (value: number): string => (Number.isInteger(value) ? `${value}.0` : String(value));

const observationLines = (code: { code: string; displayName: string }, quantity: Quantity): string[] => [
  '    <observation>',
  `      <code code="${escapeXmlAttribute(code.code)}" displayName="${escapeXmlAttribute(code.displayName)}"/>`,
  `      <value unit="${HL7_PRESSURE_UNIT}" value="${escapeXmlAttribute(formatHl7Number(quantity.value))}"/>`,
  '    </observation>',
];

/**
 * Writes the observation as the seed's HL7 text. The layout is fixed (two-space indent, newline-terminated) so
 * the same observation always gives the same bytes, which keeps the document hash stable.
 */
export class HL7Builder implements ObservationBuilder {
  private header: { patientId: Cpr; effectiveTime: string } | null = null;
  private systolic: Quantity | null = null;
  private diastolic: Quantity | null = null;

  buildHeader(patientId: Cpr, measuredAt: string): void {
    const at = isoInstantMillis(measuredAt);
    // A TeleObservation always holds a valid instant; failing here means a caller bypassed createTeleObservation.
    if (Number.isNaN(at)) throw new Error('HL7Builder: measuredAt is not an ISO-8601 date-time');
    this.header = { patientId, effectiveTime: hl7TimestampUtc(at) }; // HL7_TS_FORMAT, in UTC
  }

  buildSystolic(systolic: Quantity): void {
    this.systolic = systolic;
  }

  buildDiastolic(diastolic: Quantity): void {
    this.diastolic = diastolic;
  }

  getResult(): string {
    const { header, systolic, diastolic } = this;
    if (!header || !systolic || !diastolic) throw new Error('HL7Builder: getResult called before Director.construct');
    return [
      '<?xml version="1.0" encoding="UTF-8" standalone="no"?>',
      '<ClinicalDocument>',
      `  <effectiveTime value="${escapeXmlAttribute(header.effectiveTime)}"/>`,
      '  <patient>',
      `    <id extension="${escapeXmlAttribute(header.patientId)}"/>`,
      '  </patient>',
      '  <component>',
      ...observationLines(HL7_OBSERVATION_CODES.systolic, systolic),
      ...observationLines(HL7_OBSERVATION_CODES.diastolic, diastolic),
      '  </component>',
      '</ClinicalDocument>',
      '',
    ].join('\n');
  }
}
