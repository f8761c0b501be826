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

/** The unit as the seed writes it (not UCUM's: that is mm[Hg], case-insensitive MM[HG]); our domain calls it mmHg. */
export const HL7_PRESSURE_UNIT = 'mm(Hg)' as const;

/**
 * HL7 TS format of effectiveTime (luxon's tokens): UTC with its offset written out, `20261130233000+0000`. HL7 v3
 * reads a TS without an offset as the sender's local time, so the seed's offset-less form put a reading taken at
 * 00:30 in Copenhagen on the day before in a Danish consumer. The instant is the one stored (and in the XDS
 * metadata, which is UTC by definition); only its spelling says so now.
 */
export const HL7_TS_FORMAT = 'yyyyMMddHHmmssZZZ';

/** The offset every effectiveTime the builder writes carries: the time is UTC. */
export const HL7_UTC_OFFSET = '+0000';

/** The effectiveTime line as the builder writes it, the time's digits captured. */
const EFFECTIVE_TIME_LINE = /\n {2}<effectiveTime value="(\d{14})\+0000"\/>\n/;

/**
 * The bytes earlier builds (to 2026-12-02) wrote for the same reading: the document with effectiveTime's `+0000` left
 * out (the seed's form, read as UTC by this hub). A document stored that way keeps its bytes and its hash, so a
 * retried upload or correction, rebuilt today, is recognised by this rendering. Null for a document without the
 * builder's effectiveTime line.
 */
export const withoutEffectiveTimeOffset = (document: string): string | null =>
  EFFECTIVE_TIME_LINE.test(document) ? document.replace(EFFECTIVE_TIME_LINE, '\n  <effectiveTime value="$1"/>\n') : null;

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
    this.header = { patientId, effectiveTime: `${hl7TimestampUtc(at)}${HL7_UTC_OFFSET}` }; // HL7_TS_FORMAT
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
