export { Director, type ObservationBuilder } from './observation-builder';
export { HL7Builder, HL7_OBSERVATION_CODES, HL7_PRESSURE_UNIT, HL7_TS_FORMAT, HL7_UTC_OFFSET, escapeXmlAttribute, formatHl7Number, withoutEffectiveTimeOffset } from './hl7-builder';
export { MetadataBuilder, BLOOD_PRESSURE_DOCUMENT_CODES, type DocumentMetadata } from './metadata-builder';
export { parseHl7Observation, checkXmlCharacters, MAX_HL7_BYTES } from './hl7-parser';
