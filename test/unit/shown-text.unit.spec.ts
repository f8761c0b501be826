// Texts people read where they are shown must show something: beyond an expert's profile (messages.unit.spec.ts), a
// system's name and area, a consultation's clinician, question, summary, reasons and report. A
// text of zero-width spaces passed trim() and showed as an empty name, question or diagnosis. Refused where it comes
// in (uplink bad_schema, HTTP body schemas, the SDK's serializers) with the field named; read as stored elsewhere.
import { z } from 'zod';
import { parseUplink, serializeDownlink, serializeUplink, parseDownlink, type DownlinkEnvelope, type UplinkEnvelope } from '../../src/adapters/messaging/messages';
import {
  parseConsultationDownlink,
  parseConsultationUplink,
  serializeConsultationDownlink,
  serializeConsultationUplink,
  type ConsultationDownlinkEnvelope,
  type ConsultationUplinkEnvelope,
} from '../../src/adapters/messaging/consultation-messages';
import { CancelBody, ConsultationBody, DeclineBody, ReportBody } from '../../src/adapters/http/consultation-routes';
import { SystemBody } from '../../src/adapters/http/directory-routes';
import { isBlankText } from '../../src/domain/shared/text-limits';

const ID = '11111111-2222-4333-8444-555555555555';
const envelope = (type: string, payload: unknown) => ({ id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abcd', type, version: 1, systemId: 'chengdu', correlationId: 'corr-1', time: '2024-05-01T12:00:00+08:00', payload });
const requested = { consultationId: ID, applicantClinician: 'dr-chen', candidates: ['xian:li'], clinicalQuestion: 'Chest pain?', summary: 'Male, 58', attachments: [] };
const INVISIBLE = /must show a visible character: it holds only white space, format or other invisible characters/;
// Zero-width space, joiners, word joiner, BOM, soft hyphen, bidi marks and isolates, a Hangul filler, ideographic
// space with NBSP, a tag character, a variation selector: each shows nothing.
const BLANKS = ['\u200B', '\u200C\u200D', '\u2060', '\uFEFF\u200B', '\u00AD', '\u200E\u200F\u061C', '\u2066\u2069', '\u3164', '\u3000\u00A0\u200B', '\u{E0020}', '\u034F\uFE0F'];

/** The issues zod finds in `value`, as the HTTP layer names them (path: message). */
const issues = (schema: z.ZodType, value: unknown): string[] => {
  const r = schema.safeParse(value);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
};

describe('texts people read must show something where they come in', () => {
  it.each(BLANKS.map((b) => [JSON.stringify(b), b]))('uplink: refuses %s as bad_schema naming the field, and the SDK refuses to send it', (_, blank) => {
    const upCases: Array<[string, Record<string, unknown>, string]> = [
      ['consultation.requested', { ...requested, applicantClinician: blank }, 'payload.applicantClinician'],
      ['consultation.requested', { ...requested, clinicalQuestion: ` ${blank} ` }, 'payload.clinicalQuestion'],
      ['consultation.requested', { ...requested, summary: blank }, 'payload.summary'],
      ['consultation.decline', { consultationId: ID, expertId: 'xian:li', reason: blank }, 'payload.reason'],
      ['consultation.report', { consultationId: ID, expertId: 'xian:li', diagnosis: blank, recommendations: 'rest' }, 'payload.diagnosis'],
      ['consultation.report', { consultationId: ID, expertId: 'xian:li', diagnosis: 'angina', recommendations: blank }, 'payload.recommendations'],
      ['consultation.cancel', { consultationId: ID, reason: blank }, 'payload.reason'],
    ];
    for (const [type, payload, path] of upCases) {
      const message = envelope(type, payload);
      const parsed = parseConsultationUplink(JSON.stringify(message));
      expect({ type, path, parsed }).toMatchObject({ type, path, parsed: { ok: false, reason: 'bad_schema' } });
      // One issue, the field's: not also "too small".
      expect(parsed.ok ? [] : parsed.detail.split('; ')).toEqual([expect.stringMatching(new RegExp(`^${path.replace('.', '\\.')}: ${INVISIBLE.source}`))]);
      expect(() => serializeConsultationUplink(message as ConsultationUplinkEnvelope)).toThrow(new RegExp(`${path.replace('.', '\\.')}: must show a visible character`));
    }
    const join = envelope('system.join.requested', { name: blank, expectedBatches: 1, expectedExperts: 1 });
    expect(parseUplink(JSON.stringify(join))).toMatchObject({ ok: false, reason: 'bad_schema', detail: expect.stringMatching(new RegExp(`^payload\\.name: ${INVISIBLE.source}`)) });
    expect(() => serializeUplink(join as UplinkEnvelope)).toThrow(/payload\.name: must show a visible character/);
  });

  it.each(BLANKS.map((b) => [JSON.stringify(b), b]))('HTTP bodies: refuse %s naming the field (400 invalid_request)', (_, blank) => {
    const http: Array<[z.ZodType, Record<string, unknown>, string]> = [
      [SystemBody, { id: 'chengdu', name: blank, area: 'Sichuan' }, 'name'],
      [SystemBody, { id: 'chengdu', name: 'Chengdu', area: ` ${blank}` }, 'area'],
      [ConsultationBody, { ...requested, applicantSystemId: 'chengdu', applicantClinician: blank }, 'applicantClinician'],
      [ConsultationBody, { ...requested, applicantSystemId: 'chengdu', clinicalQuestion: blank }, 'clinicalQuestion'],
      [ConsultationBody, { ...requested, applicantSystemId: 'chengdu', summary: blank }, 'summary'],
      [DeclineBody, { expertId: 'xian:li', reason: blank }, 'reason'],
      [ReportBody, { expertId: 'xian:li', diagnosis: blank }, 'diagnosis'],
      [ReportBody, { expertId: 'xian:li', diagnosis: 'angina', recommendations: blank }, 'recommendations'],
      [CancelBody, { systemId: 'chengdu', reason: blank }, 'reason'],
    ];
    for (const [schema, body, path] of http) {
      const found = issues(schema, body);
      // The field's own issue, and no other field's.
      expect({ path, found }).toEqual({ path, found: expect.arrayContaining([expect.stringMatching(new RegExp(`^${path}: ${INVISIBLE.source}`))]) });
      expect(found.filter((i) => !i.startsWith(`${path}: `))).toEqual([]);
    }
  });

  it('keeps visible text with such characters in it, and an empty optional text that says there is none', () => {
    for (const clinician of ['Dr\u00A0Søren\u00ADsen', '\u200Fسارة Li', '李\u200B伟', 'Dr 👨\u200D⚕️']) {
      expect(parseConsultationUplink(JSON.stringify(envelope('consultation.requested', { ...requested, applicantClinician: clinician })))).toMatchObject({ ok: true });
      expect(issues(SystemBody, { id: 'chengdu', name: clinician, area: clinician })).toEqual([]);
    }
    // Empty (or white space, stored empty) where empty means none: summary, recommendations, reasons; a join without a name.
    for (const none of ['', '  ']) {
      expect(parseConsultationUplink(JSON.stringify(envelope('consultation.requested', { ...requested, summary: none })))).toMatchObject({ ok: true });
      expect(parseConsultationUplink(JSON.stringify(envelope('consultation.decline', { consultationId: ID, expertId: 'xian:li', reason: none })))).toMatchObject({ ok: true });
      expect(parseConsultationUplink(JSON.stringify(envelope('consultation.report', { consultationId: ID, expertId: 'xian:li', diagnosis: 'angina', recommendations: none })))).toMatchObject({ ok: true });
      expect(parseConsultationUplink(JSON.stringify(envelope('consultation.cancel', { consultationId: ID, reason: none })))).toMatchObject({ ok: true });
      expect(issues(ConsultationBody, { ...requested, applicantSystemId: 'chengdu', summary: none })).toEqual([]);
      expect(issues(ReportBody, { expertId: 'xian:li', diagnosis: 'angina', recommendations: none })).toEqual([]);
      expect(issues(DeclineBody, { expertId: 'xian:li', reason: none })).toEqual([]);
      expect(issues(CancelBody, { systemId: 'chengdu', reason: none })).toEqual([]);
    }
    expect(parseConsultationUplink(JSON.stringify(envelope('consultation.cancel', { consultationId: ID })))).toMatchObject({ ok: true });
    expect(parseUplink(JSON.stringify(envelope('system.join.requested', { expectedBatches: 1, expectedExperts: 1 })))).toMatchObject({ ok: true });
    expect(issues(DeclineBody, { expertId: 'xian:li' })).toEqual([]);
  });

  it('takes a text of only prepended concatenation marks: they are format characters (Cf) that show a sign', () => {
    // Unicode 17's Prepended_Concatenation_Mark list (PropList.txt), the version Node 20's ICU 78 has: the Arabic
    // number, year, footnote and page signs, the end of ayah, the Syriac abbreviation mark, the Arabic pound and
    // piastre marks, the Kaithi number signs. Each is drawn, spanning the digits after it: one alone still shows.
    const MARKS = ['\u0600', '\u0601', '\u0602', '\u0603', '\u0604', '\u0605', '\u06DD', '\u070F', '\u0890', '\u0891', '\u08E2', '\u{110BD}', '\u{110CD}'];
    for (const mark of MARKS) {
      expect({ mark, blank: isBlankText(mark) }).toEqual({ mark, blank: false });
      expect({ mark, blank: isBlankText(`\u200B${mark}\u00A0`) }).toEqual({ mark, blank: false });
      expect({ mark, found: issues(SystemBody, { id: 'chengdu', name: mark, area: mark }) }).toEqual({ mark, found: [] });
      expect(parseConsultationUplink(JSON.stringify(envelope('consultation.report', { consultationId: ID, expertId: 'xian:li', diagnosis: mark, recommendations: mark })))).toMatchObject({ ok: true });
    }
    // The list is the runtime's: the format characters its ICU segments as Prepend (a grapheme with what follows) are
    // these, Grapheme_Cluster_Break=Prepend being Prepended_Concatenation_Mark among Cf.
    const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });
    const prepend: string[] = [];
    for (let cp = 0; cp < 0x110000; cp++) {
      const c = cp >= 0xd800 && cp <= 0xdfff ? '' : String.fromCodePoint(cp);
      if (/^\p{Cf}$/u.test(c) && [...graphemes.segment(`${c}1`)].length === 1) prepend.push(c);
    }
    expect(prepend).toEqual(MARKS);
    // The other format characters still show nothing.
    expect(BLANKS.every(isBlankText)).toBe(true);
  });

  it('the downlink still carries what was stored before the rule (a system reading it must not skip it)', () => {
    const offered = envelope('consultation.offered', { consultationId: ID, expertId: 'xian:li', offerIndex: 0, offeredAt: '2024-05-01T04:00:00.000Z', expiresAt: '2024-05-02T04:00:00.000Z', applicantSystemId: 'chengdu', applicantClinician: '\u200B', clinicalQuestion: '\u2060', summary: '\u00AD', attachments: [] });
    expect(parseConsultationDownlink(serializeConsultationDownlink(offered as ConsultationDownlinkEnvelope))).toMatchObject({ ok: true });
    const report = envelope('consultation.report', { consultationId: ID, expertId: 'xian:li', diagnosis: '\u200B', recommendations: '\uFEFF', issuedAt: '2024-05-01T04:00:00.000Z', attempt: 0 });
    expect(parseConsultationDownlink(serializeConsultationDownlink(report as ConsultationDownlinkEnvelope))).toMatchObject({ ok: true });
    const joined = envelope('system.joined', { systemId: 'chengdu', name: '\u200B', area: '\u3164' });
    expect(parseDownlink(serializeDownlink(joined as DownlinkEnvelope))).toMatchObject({ ok: true });
  });
});
