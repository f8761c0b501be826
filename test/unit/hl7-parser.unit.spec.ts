import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ValidationError } from '../../src/domain/shared/errors';
import { MAX_HL7_BYTES, checkXmlCharacters, parseHl7Observation } from '../../src/domain/documents/hl7';

const seedXml = readFileSync(join(__dirname, '../fixtures/seed-hl7-example.xml'), 'utf8');
const PATIENT = '251248-1234';

/** Run the parser and return its ValidationError (failing the test when it does not throw one). */
const rejection = (xml: string): ValidationError => {
  try {
    parseHl7Observation(xml);
  } catch (e) {
    if (e instanceof ValidationError) return e;
    throw e;
  }
  throw new Error('expected a ValidationError, but the document parsed');
};

const expectInvalid = (xml: string, code = 'invalid_document', message?: RegExp): ValidationError => {
  const error = rejection(xml);
  expect(error.code).toBe(code);
  if (message) expect(error.message).toMatch(message);
  // Personal data never leaves in an error.
  expect(error.message).not.toContain(PATIENT);
  expect(JSON.stringify(error.details)).not.toContain(PATIENT);
  return error;
};

describe('parseHl7Observation: the seed example', () => {
  it("parses the seed's own HL7 example to its exact values", () => {
    expect(parseHl7Observation(seedXml)).toEqual({
      patientId: '251248-1234',
      systolic: { value: 126, unit: 'mmHg' },
      diastolic: { value: 70, unit: 'mmHg' },
      measuredAt: '2017-05-10T14:50:14Z',
    });
  });

  it('honours an explicit offset in effectiveTime and converts to UTC', () => {
    const xml = seedXml.replace('20170510145014', '20170510145014+0200');
    expect(parseHl7Observation(xml).measuredAt).toBe('2017-05-10T12:50:14Z');
    expect(parseHl7Observation(seedXml.replace('20170510145014', '20170510145014-0330')).measuredAt).toBe('2017-05-10T18:20:14Z');
  });

  it('reads the +0000 the builder writes as UTC', () => {
    expect(parseHl7Observation(seedXml.replace('20170510145014', '20170510145014+0000')).measuredAt).toBe('2017-05-10T14:50:14Z');
  });

  it('reads an inbound effectiveTime without an offset as UTC, not as local time (documented, never refused)', () => {
    // A Danish sender meaning 00:30 on 1 December local time without saying so gets 00:30 UTC (01:30 in Copenhagen).
    expect(parseHl7Observation(seedXml.replace('20170510145014', '20261201003000')).measuredAt).toBe('2026-12-01T00:30:00Z');
  });

  it('reads an inbound +0100 effectiveTime (Copenhagen in winter) at its offset', () => {
    // 00:30 on 1 December in Copenhagen is 23:30 UTC on 30 November: the same instant, whichever day UTC calls it.
    expect(parseHl7Observation(seedXml.replace('20170510145014', '20261201003000+0100')).measuredAt).toBe('2026-11-30T23:30:00Z');
    expect(parseHl7Observation(seedXml.replace('20170510145014', '20260701003000+0200')).measuredAt).toBe('2026-06-30T22:30:00Z');
  });

  it('drops fractional seconds of effectiveTime (readings are kept at seconds)', () => {
    expect(parseHl7Observation(seedXml.replace('20170510145014', '20170510145014.987')).measuredAt).toBe('2017-05-10T14:50:14Z');
  });

  it.each(['mm(Hg)', 'mmHg', 'mm[Hg]'])('accepts the unit %s as mmHg', (unit) => {
    const obs = parseHl7Observation(seedXml.split('unit="mm(Hg)"').join(`unit="${unit}"`));
    expect(obs.systolic).toEqual({ value: 126, unit: 'mmHg' });
    expect(obs.diastolic).toEqual({ value: 70, unit: 'mmHg' });
  });

  it('reads the observations in either order, by code', () => {
    const sys = /<observation>\s*<code code="MSC88019"[\s\S]*?<\/observation>/.exec(seedXml)![0];
    const dia = /<observation>\s*<code code="MSC88020"[\s\S]*?<\/observation>/.exec(seedXml)![0];
    const swapped = seedXml.replace(sys, '@@').replace(dia, sys).replace('@@', dia);
    expect(swapped.indexOf('MSC88020')).toBeLessThan(swapped.indexOf('MSC88019'));
    const obs = parseHl7Observation(swapped);
    expect([obs.systolic.value, obs.diastolic.value]).toEqual([126, 70]);
  });

  it('keeps values as written: "070.0" is 70, never an octal or a coerced string', () => {
    expect(parseHl7Observation(seedXml.replace('value="70.0"', 'value="070.0"')).diastolic.value).toBe(70);
  });

  it('does not apply the upload rule "not in the future": a document dated far ahead still reads', () => {
    expect(parseHl7Observation(seedXml.replace('20170510145014', '29991231235959')).measuredAt).toBe('2999-12-31T23:59:59Z');
  });
});

describe('parseHl7Observation: hostile input', () => {
  const billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<ClinicalDocument><effectiveTime value="&lol3;"/></ClinicalDocument>`;

  const xxe = seedXml.replace(
    '<ClinicalDocument>',
    '<!DOCTYPE ClinicalDocument [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n<ClinicalDocument>',
  ).replace('251248-1234', '&xxe;');

  it('rejects a billion-laughs document before parsing', () => {
    expectInvalid(billionLaughs, 'invalid_document', /DOCTYPE and ENTITY/);
  });

  it('rejects an XXE document with a SYSTEM entity', () => {
    expectInvalid(xxe, 'invalid_document', /DOCTYPE and ENTITY/);
  });

  it('rejects an ENTITY declaration even without a DOCTYPE, and a lower-case doctype', () => {
    expectInvalid(`<!ENTITY x "y">${seedXml}`, 'invalid_document', /DOCTYPE and ENTITY/);
    expectInvalid(seedXml.replace('<ClinicalDocument>', '<!doctype ClinicalDocument><ClinicalDocument>'), 'invalid_document', /DOCTYPE and ENTITY/);
  });

  it('rejects element names the parser will not take (__proto__, constructor) as an invalid document, not a crash', () => {
    for (const name of ['__proto__', 'constructor']) {
      expectInvalid(seedXml.replace('</component>', `</component><${name} polluted="yes"/>`), 'invalid_document', /could not be read/);
    }
  });

  it('rejects an observation anywhere but the two in component: a third, nested one would be ignored', () => {
    const nested = seedXml.replace('</component>', '<section><observation><code code="MSC88019"/><value unit="mm(Hg)" value="299.0"/></observation></section></component>');
    expectInvalid(nested, 'invalid_document', /holds 3 observation elements/);
    expectInvalid(seedXml.replace('<component>', '<component><section><hl7:observation xmlns:hl7="urn:hl7-org:v3"/></section>'), 'invalid_document', /holds 3 observation elements/);
  });

  it('refuses a <! declaration (the validator checked a real element inside its quotes, the parser never saw it)', () => {
    const third = '<observation><code code="MSC88019"/><value unit="mm(Hg)" value="200.0"/></observation>';
    for (const decl of [`<!y '>${third}'/>`, '<!ELEMENT x ANY>']) {
      expectInvalid(seedXml.replace('</component>', `${decl}</component>`), 'invalid_document', /a <! declaration/);
    }
  });

  it('refuses what a namespace-aware reader reads otherwise: a prefixed element it reads, a default namespace not HL7 v3', () => {
    const hl7 = seedXml.replace('<ClinicalDocument>', '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:h="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">');
    expect(parseHl7Observation(hl7).systolic.value).toBe(126); // HL7 v3 as default, xsi declared: taken
    expectInvalid(hl7.replace('<effectiveTime value="20170510145014"/>', '<h:effectiveTime value="20170510145014"/><effectiveTime xmlns="urn:other" value="20200510145014"/>'), 'invalid_document', /namespace other than HL7 v3|prefixed effectiveTime/);
    expectInvalid(hl7.replace('<id extension="251248-1234"/>', '<h:id extension="010101-1111"/><id extension="251248-1234"/>'), 'invalid_document', /prefixed id element/);
    expectInvalid(hl7.replace('<effectiveTime value="20170510145014"/>', '<effectiveTime xmlns="urn:other" value="20170510145014"/>'), 'invalid_document', /namespace other than HL7 v3/);
    // A prefixed element it does not read (an extension) stays taken.
    expect(parseHl7Observation(hl7.replace('</component>', '</component><h:extension a="1"/>')).diastolic.value).toBe(70);
  });

  it('reads a document whose instructions hold quotes, as XML does: an apostrophe, balanced quotes around the root', () => {
    for (const doc of [seedXml.replace('<component>', "<?note don't edit by hand?><component>"), `${seedXml.replace('<ClinicalDocument', '<?pi "?><ClinicalDocument')}<?pi "?>`]) {
      const reading = parseHl7Observation(doc);
      expect([reading.systolic.value, reading.diastolic.value]).toEqual([126, 70]);
    }
  });

  it('refuses elements nested deeper than 100 with a message that says so (it said a name was not allowed)', () => {
    const deep = (n: number) => `${'<x>'.repeat(n)}${'</x>'.repeat(n)}`;
    expect(parseHl7Observation(seedXml.replace('<component>', `${deep(96)}<component>`)).systolic.value).toBe(126);
    expectInvalid(seedXml.replace('<component>', `${deep(101)}<component>`), 'invalid_document', /nested deeper than 100/);
  });

  it('counts no observation in a comment, a CDATA section or a processing instruction: the document is valid', () => {
    for (const aside of ['<!-- <observation> an old one, removed -->', '<text><![CDATA[<observation> as text]]></text>', '<?note <observation>?>', '<!-- <![CDATA[ --><text><![CDATA[ <!-- <observation/> ]]></text>']) {
      const reading = parseHl7Observation(seedXml.replace('<component>', `<component>${aside}`));
      expect([reading.systolic.value, reading.diastolic.value]).toEqual([126, 70]);
    }
    // A real element after a comment still counts.
    expectInvalid(seedXml.replace('</component>', '<!-- x --><section><observation/></section></component>'), 'invalid_document', /holds 3 observation elements/);
  });

  it('counts the observations the parser reads: a <!-- in an attribute value or a quoted ?> in an instruction hides none', () => {
    const third = '<section><observation><code code="MSC88019"/><value unit="mm(Hg)" value="200"/></observation></section>';
    for (const smuggled of [`<b c="<!--"/>${third}<d e="-->"/>`, `<b c="<![CDATA["/>${third}<d e="]]>"/>`]) {
      expectInvalid(seedXml.replace('<component>', `${smuggled}<component>`), 'invalid_document', /holds 3 observation elements/);
    }
    // After the instruction ends at its first ?>, as XML has it, the rest is a comment holding '--': no XML reader takes it.
    expectInvalid(seedXml.replace('<component>', `<?pi a="?><!--"?>${third}<!-- --><component>`), 'invalid_document', /a comment holds '--'/);
    // A quote inside an instruction: the parser read on to the next quote's ?>, past a real element (201, its value lost).
    for (const quote of ['"', "'"]) {
      expectInvalid(seedXml.replace('<component>', `<component><?pi a=${quote}?>${third}<?pi b=${quote}?>`), 'invalid_document', /holds 3 observation elements/);
    }
    // Prefixes of any characters the parser takes, and more than one: still an observation.
    for (const name of ['é:observation', 'a:b:observation']) {
      expectInvalid(seedXml.replace('</component>', `<section><${name} xmlns:é="urn:x" xmlns:a="urn:y"/></section></component>`), 'invalid_document', /holds 3 observation elements/);
    }
    // 32,000 unclosed '<?' in an attribute value: read as the text it is (a pattern over the text took 0.5 s on it).
    const pad = `<pad b="${'<?'.repeat(32_000)}"/>`;
    expect(parseHl7Observation(seedXml.replace('<component>', `${pad}<component>`)).systolic.value).toBe(126);
  });

  it(`rejects a document over ${MAX_HL7_BYTES} bytes, and accepts one of exactly that size`, () => {
    const padTo = (bytes: number) => seedXml + `<!--${'x'.repeat(bytes - seedXml.length - 7)}-->`;
    expect(padTo(MAX_HL7_BYTES)).toHaveLength(MAX_HL7_BYTES);
    expect(parseHl7Observation(padTo(MAX_HL7_BYTES)).systolic.value).toBe(126);
    expectInvalid(padTo(MAX_HL7_BYTES + 1), 'document_too_large');
  });

  it('counts bytes, not characters: multi-byte text under the character limit is still too large', () => {
    const xml = seedXml + `<!--${'æ'.repeat(MAX_HL7_BYTES / 2)}-->`;
    expect(xml.length).toBeLessThan(MAX_HL7_BYTES);
    expectInvalid(xml, 'document_too_large');
  });

  // UTF-8 widths at each boundary: U+0080 and U+07FF take 2 bytes, U+0800 and U+FFFD 3, U+10000 and an emoji 4.
  it.each([
    ['\u0080', 2],
    ['æ', 2],
    ['\u07ff', 2],
    ['\u0800', 3],
    ['€', 3],
    ['\ufffd', 3],
    ['\u{10000}', 4],
    ['😀', 4],
  ])('counts %s as %i bytes: a document of exactly the limit in UTF-8 parses, one byte more is too large', (ch, width) => {
    const utf8 = (text: string) => Buffer.byteLength(text, 'utf8');
    /** The seed with a comment of `ch` repeated and ASCII padding, `bytes` long in UTF-8. */
    const fill = (bytes: number) => {
      const room = bytes - utf8(seedXml) - '<!---->'.length;
      const n = Math.floor(room / width);
      return seedXml + `<!--${ch.repeat(n)}${'x'.repeat(room - n * width)}-->`;
    };
    const atLimit = fill(MAX_HL7_BYTES);
    expect(utf8(atLimit)).toBe(MAX_HL7_BYTES);
    expect(atLimit.length).toBeLessThan(MAX_HL7_BYTES);
    expect(parseHl7Observation(atLimit).systolic.value).toBe(126);
    const over = fill(MAX_HL7_BYTES + 1);
    expect(utf8(over)).toBe(MAX_HL7_BYTES + 1);
    expect(over.length).toBeLessThan(MAX_HL7_BYTES);
    expectInvalid(over, 'document_too_large');
  });

  it.each([
    ['an empty string', ''],
    ['plain text', 'hello'],
    ['an unclosed element', seedXml.replace('</patient>', '')],
    ['mismatched closing tags', seedXml.replace('</component>', '</components>')],
    ['an unquoted attribute', seedXml.replace('value="126.0"', 'value=126.0')],
    ['a truncated document', seedXml.slice(0, seedXml.length / 2)],
  ])('rejects malformed XML: %s', (_name, xml) => {
    expectInvalid(xml, 'invalid_document', /not well-formed XML/);
  });

  it('does not quote document text from the XML validator (it could be a patient id)', () => {
    // The validator's own message here is "Tag '251248-1234' is an invalid name."
    const error = expectInvalid(seedXml.replace('<id extension="251248-1234"/>', '<251248-1234/>'), 'invalid_document', /not well-formed XML/);
    expect(error.message).toMatch(/line 5, column \d+/);
  });

  it('does not call a value a number when only the XML would coerce it', () => {
    for (const v of ['0x7E', '1e2', 'Infinity', '', ' ', '126,0', '12 6']) {
      expectInvalid(seedXml.replace('value="126.0"', `value="${v}"`), 'invalid_document', /value/);
    }
  });
});

describe('parseHl7Observation: wrong content', () => {
  it('rejects an unknown observation code', () => {
    expectInvalid(seedXml.replace('MSC88019', 'MSC99999'), 'invalid_document', /not a blood pressure code/);
  });

  it('rejects the same code twice', () => {
    expectInvalid(seedXml.replace('MSC88020', 'MSC88019'), 'invalid_document', /repeats the systolic code/);
  });

  it('rejects a unit other than mmHg', () => {
    expectInvalid(seedXml.replace('unit="mm(Hg)"', 'unit="kPa"'), 'invalid_document', /unit/);
  });

  it.each([
    ['effectiveTime', seedXml.replace(/\s*<effectiveTime[^>]*\/>/, '')],
    ['effectiveTime/@value', seedXml.replace(' value="20170510145014"', '')],
    ['patient', seedXml.replace(/\s*<patient>[\s\S]*<\/patient>/, '')],
    ['patient/id', seedXml.replace(/\s*<id [^>]*\/>/, '')],
    ['patient/id/@extension', seedXml.replace(' extension="251248-1234"', '')],
    ['component', seedXml.replace(/\s*<component>[\s\S]*<\/component>/, '')],
    ['an observation', seedXml.replace(/\s*<observation>\s*<code code="MSC88020"[\s\S]*?<\/observation>/, '')],
    ['a value', seedXml.replace(/\s*<value unit="mm\(Hg\)" value="70.0"\/>/, '')],
    ['a code', seedXml.replace(/\s*<code code="MSC88019"[^>]*\/>/, '')],
  ])('rejects a document missing %s', (_name, xml) => {
    expect(xml).not.toBe(seedXml);
    expectInvalid(xml, 'invalid_document');
  });

  /** The seed with its observations (both, in order) moved into a <section> of component. */
  const observationsInSection = (xml: string): string => xml.replace(/(<observation>[\s\S]*<\/observation>)/, '<section>$1</section>');

  it.each([
    ['effectiveTime', seedXml.replace(/\s*<effectiveTime[^>]*\/>/, '')],
    ['effectiveTime/@value', seedXml.replace('value="20170510145014"', 'nullFlavor="UNK"')],
    ['effectiveTime/@value', seedXml.replace('20170510145014', '2017-05-10')],
    ['patient', seedXml.replace(/\s*<patient>[\s\S]*<\/patient>/, '')],
    ['patient/id', seedXml.replace(/<id [^>]*\/>/, '<name>N</name>')],
    ['patient/id/@extension', seedXml.replace(' extension="251248-1234"', ' root="1.2.208.176.1.2"')],
    ['patient/id/@extension', seedXml.replace(' extension="251248-1234"', ' extension=""')],
    ['component', seedXml.replace(/(<\/?)component>/g, '$1section>')],
    ['component/observation', observationsInSection(seedXml)],
    ['component/observation', seedXml.replace(/(<observation>\s*<code code="MSC88020"[\s\S]*?<\/observation>)/, '<section>$1</section>')],
    ['component/observation', seedXml.replace('</component>', '<section><observation/></section></component>')],
    ['component/observation[2]', seedXml.replace(/<observation>\s*<code code="MSC88020"[\s\S]*?<\/observation>/, '<observation/>')],
    ['component/observation[1]/code', seedXml.replace(/\s*<code code="MSC88019"[^>]*\/>/, '')],
    ['component/observation[1]/code/@code', seedXml.replace('code="MSC88019"', 'codeSystem="MSC"')],
    ['component/observation[1]/code/@code', seedXml.replace('MSC88019', 'MSC99999')],
    ['component/observation[2]/code/@code', seedXml.replace('MSC88020', 'MSC88019')],
    ['component/observation[2]/value', seedXml.replace(/\s*<value unit="mm\(Hg\)" value="70.0"\/>/, '')],
    ['component/observation[2]/value/@unit', seedXml.replace('unit="mm(Hg)" value="70.0"', 'value="70.0"')],
    ['component/observation[2]/value/@unit', seedXml.replace('unit="mm(Hg)" value="70.0"', 'unit="kPa" value="70.0"')],
    ['component/observation[2]/value/@value', seedXml.replace(' value="70.0"', '')],
    ['component/observation[2]/value/@value', seedXml.replace('value="70.0"', 'value="7e1"')],
    ['document', seedXml.replace('</patient>', '</Patient>')],
    ['document', `${seedXml}<Extra/>`],
    ['document', seedXml.replace('<ClinicalDocument>', '<!DOCTYPE ClinicalDocument><ClinicalDocument>')],
    ['document', seedXml.replace('</component>', '</component><__proto__ polluted="yes"/>')],
  ])('says where the document is wrong: %s', (path, xml) => {
    expect(xml).not.toBe(seedXml);
    expect(expectInvalid(xml).details).toEqual([{ path, message: expect.any(String) }]);
  });

  it('refuses a document that is not text, and says how much a document may be', () => {
    expect(expectInvalid(42 as unknown as string).details).toEqual([{ path: 'document', message: 'expected the document as text' }]);
    expect(expectInvalid(`${seedXml}<!--${'x'.repeat(MAX_HL7_BYTES)}-->`, 'document_too_large').details).toEqual([{ path: 'document', message: `at most ${MAX_HL7_BYTES} bytes` }]);
  });

  it('rejects a third observation', () => {
    const third = '<observation><code code="MSC88019"/><value unit="mmHg" value="120"/></observation></component>';
    expectInvalid(seedXml.replace('</component>', third), 'invalid_document', /exactly two observations/);
  });

  it('rejects a repeated header element', () => {
    const twice = seedXml.replace(/(<effectiveTime[^>]*\/>)/, '$1$1');
    expectInvalid(twice, 'invalid_document', /more than once/);
  });

  it('rejects another root element, or a second root', () => {
    expectInvalid(seedXml.replace(/ClinicalDocument>/g, 'Document>'), 'invalid_document', /ClinicalDocument/);
    expectInvalid(`${seedXml}<Extra/>`, 'invalid_document', /one root/);
  });

  it.each([
    ['without seconds', '201705101450'],
    ['with a colon in the offset', '20170510145014+02:00'],
    ['in ISO form', '2017-05-10T14:50:14Z'],
  ])('rejects an effectiveTime %s', (_name, ts) => {
    expectInvalid(seedXml.replace('20170510145014', ts), 'invalid_document', /effectiveTime/);
  });

  it('rejects an effectiveTime that is no calendar date', () => {
    expectInvalid(seedXml.replace('20170510145014', '20170230145014'), 'invalid_document', /measuredAt/);
  });

  it('rejects a patient id that is not a CPR number, without echoing it', () => {
    const error = expectInvalid(seedXml.replace('251248-1234', '3112XX-0000'), 'invalid_document', /patientId/);
    expect(error.message).not.toContain('3112XX');
    expectInvalid(seedXml.replace('251248-1234', '310248-1234'), 'invalid_document', /patientId/);
  });

  it('applies the plausibility rules of an upload', () => {
    expectInvalid(seedXml.replace('value="126.0"', 'value="400.0"'), 'invalid_document', /systolic must be between/);
    expectInvalid(seedXml.replace('value="126.0"', 'value="60.0"'), 'invalid_document', /above the diastolic/);
  });

  it('does not decode entities beyond the five predefined ones', () => {
    // &#45; would be "-" to a full XML processor; left undecoded, the id is no CPR and the document fails closed.
    expectInvalid(seedXml.replace('251248-1234', '251248&#45;1234'), 'invalid_document', /patientId/);
    expectInvalid(seedXml.replace('mm(Hg)', 'mm&lpar;Hg&rpar;'), 'invalid_document', /unit/);
  });

  it('decodes the predefined entities', () => {
    const obs = parseHl7Observation(seedXml.replace('displayName="Systolic BP"', 'displayName="Systolic &amp; &lt;BP&gt;"'));
    expect(obs.systolic.value).toBe(126);
  });
});

describe('checkXmlCharacters: a document coming in holds XML 1.0 characters only', () => {
  const at = (text: string) => seedXml.replace('<ClinicalDocument', `<!--${text}--><ClinicalDocument`);
  it.each([
    ['U+0000', '\u0000'],
    ['U+0008', '\u0008'],
    ['U+001F', '\u001f'],
    ['U+FFFE', '\ufffe'],
    ['a lone high surrogate', '\ud83d'],
    ['a lone low surrogate', '\ude00'],
  ])('refuses %s, naming it and where, not the text', (_name, char) => {
    const error = (() => {
      try {
        checkXmlCharacters(at(`a${char}b 251248-1234`));
        return null;
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ code: 'invalid_document', details: [{ path: 'document' }] });
    expect((error as Error).message).toMatch(/^the HL7 document is not valid: not well-formed XML \(U\+[0-9A-F]{4} at offset \d+ is no XML 1\.0 character\)$/);
    expect((error as Error).message).not.toContain('251248');
  });
  it('takes tab, line feed, carriage return and characters beyond the BMP (a surrogate pair), and the seed example', () => {
    expect(() => checkXmlCharacters(at('\t\n\r 😀 é'))).not.toThrow();
    expect(() => checkXmlCharacters(seedXml)).not.toThrow();
  });
});
