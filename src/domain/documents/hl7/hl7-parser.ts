import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { DateTime } from 'luxon';
import { ValidationError } from '../../shared/errors';
import { createTeleObservation, MMHG, type TeleObservation } from '../../monitoring/tele-observation';
import { HL7_OBSERVATION_CODES } from './hl7-builder';

/** A blood pressure document is under 1 KiB; 64 KiB leaves room for padding and rejects abuse before any parsing. */
export const MAX_HL7_BYTES = 64 * 1024;

const OBSERVATION_PATH = 'ClinicalDocument.component.observation';

/**
 * Configured explicitly for clinical XML rather than relying on defaults: values stay strings (a CPR or "070.0"
 * must never become a number behind our back), observations are always an array (one or many), and only the five
 * predefined XML entities are decoded. DOCTYPEs are refused before this parser runs, so no declared entity exists.
 */
/** fast-xml-parser's own limit, set here so that the refusal can say it: a blood pressure document nests 3 deep. */
const MAX_NESTED_ELEMENTS = 100;

const parser = new XMLParser({
  maxNestedTags: MAX_NESTED_ELEMENTS,
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true,
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (_name, jPath) => jPath === OBSERVATION_PATH,
});

/** Unit spellings in use for millimetres of mercury: the seed's, the domain's and UCUM's case-sensitive one. */
const PRESSURE_UNITS: ReadonlySet<string> = new Set(['mm(Hg)', 'mmHg', 'mm[Hg]']);

/** Plain decimals only: Number() would also take "0x7E", "1e2", "Infinity" or "" (as 0). */
const DECIMAL = /^[+-]?\d+(\.\d+)?$/;

/** HL7 TS at second precision, optional fraction (dropped: we keep seconds) and optional offset. */
const HL7_TS = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d{1,4})?(?:([+-])(\d{2})(\d{2}))?$/;

/**
 * A stored document is read back long after it was measured, so the "not in the future" rule of new uploads
 * must not apply: validate against a `now` no real reading can pass.
 */
const END_OF_TIME = DateTime.utc(9999, 12, 31, 23, 59, 59);

const invalid = (message: string, path: string): ValidationError =>
  new ValidationError('invalid_document', `the HL7 document is not valid: ${message}`, [{ path, message }]);

/** UTF-8 length without Buffer or TextEncoder, so the domain stays free of platform APIs. */
const utf8ByteLength = (text: string): number => {
  let bytes = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
};

type XmlNode = Record<string, unknown>;

const isNode = (value: unknown): value is XmlNode => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The HL7 v3 namespace, the one default namespace a document may declare. */
const HL7_NAMESPACE = 'urn:hl7-org:v3';

/** The elements this reader reads, under a prefix (refused: see countObservationElements). */
const PREFIXED_READ_NAME = /^(?:[^:]+:)+(?:ClinicalDocument|effectiveTime|patient|id|component|code|value)$/;

/** An observation element's name, with or without a namespace prefix (of any characters the parser takes in a name). */
const OBSERVATION_NAME = /^(?:[^:]+:)*observation$/;

/**
 * The document without its processing instructions, each ended at its first `?>` as XML (and the validator) has it,
 * found by one scan from left to right that passes over comments, CDATA sections and tags (quoted attribute values
 * included). fast-xml-parser reads quoted text inside an instruction and ended `<?pi a="?>` at the next quote's `?>`:
 * the elements between went into no tree, a real third observation among them, stored without its value; and
 * `<?note don't edit?>` was not read at all. Instructions mean nothing to this reader, so none reaches the parser.
 */
const withoutInstructions = (xml: string): string => {
  let out = '';
  let kept = 0;
  let i = 0;
  for (;;) {
    const lt = xml.indexOf('<', i);
    if (lt < 0) break;
    const skipTo = (marker: string, from: number): number => {
      const at = xml.indexOf(marker, from);
      return at < 0 ? xml.length : at + marker.length;
    };
    if (xml.startsWith('<!--', lt)) {
      i = skipTo('-->', lt + 4);
      // XML's rule, which the validator does not hold: a comment holds no '--'. `<!--"?> ... <!-- -->` after an
      // instruction hid elements in a "comment" that no XML reader takes.
      if (xml.slice(lt + 4, i - 3).includes('--')) throw invalid("not well-formed XML (a comment holds '--')", 'document');
    }
    else if (xml.startsWith('<![CDATA[', lt)) i = skipTo(']]>', lt + 9);
    else if (xml.startsWith('<!', lt)) {
      // A declaration (<!ELEMENT, <!y '...'>): no XML reader takes one in a document without a DTD, and the validator
      // and the parser read it differently: a real element inside its quotes was checked as one and never parsed.
      throw invalid('not well-formed XML (a <! declaration: only comments and CDATA sections are taken)', 'document');
    }
    else if (xml.startsWith('<?', lt)) {
      out += xml.slice(kept, lt);
      i = kept = skipTo('?>', lt + 2);
    } else {
      // A tag: to its '>', passing over quoted attribute values (which may hold '>').
      let quote = '';
      let j = lt + 1;
      for (; j < xml.length; j++) {
        const c = xml[j];
        if (quote !== '') {
          if (c === quote) quote = '';
        } else if (c === '"' || c === "'") quote = c;
        else if (c === '>') break;
      }
      i = j + 1;
    }
  }
  return out + xml.slice(kept);
};

/**
 * The observation elements anywhere in the parsed document, counted on the parser's own tree (iteratively: a deeply
 * nested document must not overflow the stack). Counted on the text instead, an `<observation>` inside a comment
 * was a third one and a valid document refused; with comments and processing instructions cut out of the text by a
 * pattern, a `<!--` inside an attribute value or a quoted `?>` in an instruction hid a real third observation (stored
 * without the value its sender meant), and a document of 32,000 unclosed `<?` took the pattern 0.5 s.
 */
const countObservationElements = (parsed: unknown): number => {
  let count = 0;
  const foreign = (why: string): never => {
    throw invalid(why, 'document');
  };
  const stack: unknown[] = [parsed];
  while (stack.length > 0) {
    const node = stack.pop();
    if (Array.isArray(node)) {
      stack.push(...node);
      continue;
    }
    if (!isNode(node)) continue;
    for (const [name, value] of Object.entries(node)) {
      // A default namespace other than HL7 v3: a namespace-aware reader finds none of our elements under it.
      if (name === '@_xmlns' && value !== HL7_NAMESPACE) foreign(`an element is in a namespace other than HL7 v3 (${HL7_NAMESPACE}), which only a prefix-blind reader would read as HL7`);
      if (name.startsWith('@_') || name === '#text') continue;
      if (OBSERVATION_NAME.test(name)) count += Array.isArray(value) ? value.length : 1;
      // One of the elements this reader reads, under a prefix: read as another by a namespace-aware reader (a second
      // effectiveTime or patient id beside the unprefixed one).
      else if (PREFIXED_READ_NAME.test(name)) foreign(`a prefixed ${name.slice(name.lastIndexOf(':') + 1)} element: this reader takes the HL7 elements unprefixed`);
      stack.push(value);
    }
  }
  return count;
};


/** Exactly one child element; a repeated element is ambiguous (which time, which patient?) and is refused. */
const child = (parent: XmlNode, name: string, path: string): XmlNode => {
  const value = parent[name];
  if (Array.isArray(value)) throw invalid(`element ${path} appears more than once`, path);
  // An element without attributes or children parses to "" – as good as missing for us.
  if (!isNode(value)) throw invalid(`element ${path} is missing or empty`, path);
  return value;
};

const attribute = (node: XmlNode, name: string, path: string): string => {
  const value = node[`@_${name}`];
  if (typeof value !== 'string' || value.length === 0) throw invalid(`attribute ${path}/@${name} is missing`, `${path}/@${name}`);
  return value;
};

/**
 * HL7 TS to ISO-8601. An offset is honoured (`+0000`, as the builder writes since 2026-12-02; `+0100` from a Danish
 * sender). Without one the time is UTC, not the sender's local time as HL7 would have it: documents earlier builds
 * stored are written so, and so is the seed's own example (20170510145014 is 14:50:14 UTC). Never refused: the
 * README and the OpenAPI document tell senders to send an offset.
 */
const effectiveTimeToIso = (ts: string): string => {
  const m = HL7_TS.exec(ts);
  if (!m) throw invalid('effectiveTime must be an HL7 TS of the form yyyyMMddHHmmss[+-ZZZZ]', 'effectiveTime/@value');
  const [, y, mo, d, h, mi, s, sign, oh, om] = m;
  const offset = sign ? `${sign}${oh}:${om}` : 'Z';
  return `${y}-${mo}-${d}T${h}:${mi}:${s}${offset}`;
};

type Reading = { value: number; unit: typeof MMHG };

const reading = (observation: XmlNode, path: string): { kind: 'systolic' | 'diastolic'; quantity: Reading } => {
  const code = attribute(child(observation, 'code', `${path}/code`), 'code', `${path}/code`);
  const kind = code === HL7_OBSERVATION_CODES.systolic.code ? 'systolic' : code === HL7_OBSERVATION_CODES.diastolic.code ? 'diastolic' : null;
  // A code is not personal data, but keep it out anyway: the caller only needs to know it is not ours.
  if (!kind) throw invalid(`${path}/code is not a blood pressure code (expected ${HL7_OBSERVATION_CODES.systolic.code} or ${HL7_OBSERVATION_CODES.diastolic.code})`, `${path}/code/@code`);
  const valueNode = child(observation, 'value', `${path}/value`);
  const unit = attribute(valueNode, 'unit', `${path}/value`);
  if (!PRESSURE_UNITS.has(unit)) throw invalid(`${path}/value has a unit other than mm(Hg)`, `${path}/value/@unit`);
  const raw = attribute(valueNode, 'value', `${path}/value`);
  if (!DECIMAL.test(raw)) throw invalid(`${path}/value is not a decimal number`, `${path}/value/@value`);
  return { kind, quantity: { value: Number(raw), unit: MMHG } };
};

/** What XML 1.0 (Char) does not allow: C0 controls but tab, line feed and carriage return; U+FFFE, U+FFFF; lone surrogates. */
const NOT_XML_CHAR = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * A document given to the hub holds XML 1.0 characters only (Char): the validator let U+0000 and the other C0 controls
 * through, and the document was stored with them (readers that follow XML refuse it then). Checked where a document
 * comes in (a correction's XML, the library's provideAndRegisterDocument), not where a stored one is read again: one
 * an earlier build took must still open.
 */
export const checkXmlCharacters = (xml: string): void => {
  const notXml = NOT_XML_CHAR.exec(xml);
  if (notXml) throw invalid(`not well-formed XML (U+${notXml[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} at offset ${notXml.index} is no XML 1.0 character)`, 'document');
};

/** Refuse what must never reach an XML parser: entity declarations are how billion-laughs and XXE attacks start. */
const guard = (xml: unknown): string => {
  if (typeof xml !== 'string') throw invalid('expected the document as text', 'document');
  // UTF-8 never has fewer bytes than UTF-16 code units, so the cheap length test already decides most cases.
  if (xml.length > MAX_HL7_BYTES || utf8ByteLength(xml) > MAX_HL7_BYTES) {
    throw new ValidationError('document_too_large', `the HL7 document exceeds ${MAX_HL7_BYTES} bytes`, [{ path: 'document', message: `at most ${MAX_HL7_BYTES} bytes` }]);
  }
  if (/<!DOCTYPE/i.test(xml) || /<!ENTITY/i.test(xml)) throw invalid('DOCTYPE and ENTITY declarations are not allowed', 'document');
  const wellFormed = XMLValidator.validate(xml);
  // Only position and error kind: the validator's own message may quote document text, and so a patient id.
  if (wellFormed !== true) {
    const { code, line, col } = wellFormed.err;
    throw invalid(`not well-formed XML (${code} at line ${line}${col === undefined ? '' : `, column ${col}`})`, 'document');
  }
  return xml;
};

/**
 * Read the seed's truncated HL7 back into a TeleObservation. Every failure is a ValidationError with code
 * `invalid_document` (or `document_too_large`), whose message never contains the patient identifier.
 */
export const parseHl7Observation = (xml: string): TeleObservation => {
  const text = withoutInstructions(guard(xml));
  let parsed: unknown;
  try {
    parsed = parser.parse(text);
  } catch (error) {
    // Its message quotes document text, and so perhaps a patient id: only what kind of refusal it was is passed on.
    const nested = /nested/i.test(String((error as Error)?.message));
    throw invalid(
      nested
        ? `the XML could not be read (elements nested deeper than ${MAX_NESTED_ELEMENTS})`
        : 'the XML could not be read (an element or attribute name is not allowed, such as __proto__ or constructor)',
      'document',
    );
  }
  // Observations are read from component/observation only: one nested elsewhere (a section) would be ignored,
  // and the document stored without the value its sender meant.
  const observationElements = countObservationElements(parsed);
  if (observationElements !== 2) throw invalid(`the document holds ${observationElements} observation elements; a blood pressure document holds exactly two observations, in component`, 'component/observation');
  if (!isNode(parsed) || Object.keys(parsed).length !== 1) throw invalid('expected exactly one root element', 'document');
  const doc = child(parsed, 'ClinicalDocument', 'ClinicalDocument');
  const measuredAt = effectiveTimeToIso(attribute(child(doc, 'effectiveTime', 'effectiveTime'), 'value', 'effectiveTime'));
  const patientId = attribute(child(child(doc, 'patient', 'patient'), 'id', 'patient/id'), 'extension', 'patient/id');
  const observations = child(doc, 'component', 'component')['observation'];
  if (!Array.isArray(observations) || observations.length !== 2) throw invalid('component must hold exactly two observations (systolic and diastolic)', 'component/observation');
  const found: Partial<Record<'systolic' | 'diastolic', Reading>> = {};
  observations.forEach((node: unknown, i) => {
    const path = `component/observation[${i + 1}]`;
    if (!isNode(node)) throw invalid(`${path} is empty`, path);
    const { kind, quantity } = reading(node, path);
    if (found[kind]) throw invalid(`${path} repeats the ${kind} code`, `${path}/code/@code`);
    found[kind] = quantity;
  });
  try {
    // Not the birth-date check: a stored document is read as it was stored. An XML correction, parsed here, meets
    // that check when the route validates the parsed reading as a new one.
    return createTeleObservation({ patientId, systolic: found.systolic, diastolic: found.diastolic, measuredAt }, END_OF_TIME, { notBeforeBirth: false });
  } catch (e) {
    // Same rules as an upload (CPR form, plausible ranges, a real date), reported as a bad document; the inner
    // messages are already free of personal data.
    if (e instanceof ValidationError) throw new ValidationError('invalid_document', `the HL7 document does not hold a valid observation: ${e.message}`, e.details);
    throw e;
  }
};
