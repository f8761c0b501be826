import { randomBytes, randomUUID } from 'node:crypto';
import { holdsCprNumber, loggableId, mayHoldCprDigits, redactCprDigits } from '../../src/domain/monitoring/cpr-like';
import { patientSubject } from '../../src/application/access/patient-subject';
import { uuidToOid } from '../../src/application/ids';
import { decodePercentUtf8, problemInstance } from '../../src/adapters/http/problem';

const R = '[redacted]';
const both = (value: string) => ({ value, refused: holdsCprNumber(value), replaced: mayHoldCprDigits(value) });

describe('what may be a CPR number: holdsCprNumber (refusals) and mayHoldCprDigits (replacements)', () => {
  // The spellings found in ids that reached logs, the audit trail and other systems' queues, and the tester's (D2, D7):
  // a CPR number bounded by non-digits, letters next to it or not, alone or among other groups joined to it by
  // separators (free text a clinician types: "bed 4 251248-1234"). Both strengths take them.
  it.each([
    ['ddmmyy-ssss', '251248-1234'],
    ['ddmmyyssss', '2512481234'],
    ['dots, underscores, colons, slashes', '251248.1234'],
    ['an underscore', '251248_1234'],
    ['a colon', '251248:1234'],
    ['a slash', '251248/1234'],
    ['a plus (a space in a query)', '251248+1234'],
    ['every group apart', '25/12/48/1234'],
    ['the date with dots', '25.12.48-1234'],
    ['spaces', '25 12 48 1234'],
    ['a non-breaking space', '251248\u00a01234'],
    ['a doubled separator', '251248--1234'],
    ['space, dash, space', '251248 - 1234'],
    ['an en dash', '251248\u20131234'],
    ['an em dash', '251248\u20141234'],
    ['a non-breaking hyphen', '251248\u20111234'],
    ['a minus sign', '251248\u22121234'],
    ['a mistyped split', '25124-81234'],
    ['split after the month', '2512-481234'],
    ['ddmmyyyy', '25-12-1948-1234'],
    ['yyyymmdd-ssss', '19481225-1234'],
    ['yyyy-mm-dd-ssss', '1948-12-25-1234'],
    ['a letter after', '2512481234x'],
    ['a letter before', 'x251248-1234'],
    ['letters on both sides', 'cpr251248_1234z'],
    ['after a colon', 'cpr:251248-1234'],
    ['inside an id', 'pt-251248-1234'],
    ['inside dotted text', 'case.150575.2468'],
    ['inside a sentence', 'patient 251248-1234 asked'],
    ['a user name', 'user-2512481234'],
    ['29 February of a leap year', '290200-1234'],
    ['an en dash in yyyymmdd-ssss', '19481225\u20131234'],
    ['another number joined by a separator', 'v2-251248-1234'],
    ['a number before it in a sentence', 'bed 4 251248-1234'],
    ['the last arc of a dotted number', '1.2.2512481234'],
    ['a mistyped split after another group', 'bed 4 25124-81234'],
    // No CPR number, a date and a serial written apart, but a person's number cannot be told from it: refused.
    ['a date and a serial with separators (a false positive, accepted)', 'order-20261202-1030-17'],
  ])('both find %s: %s', (_why, value) => {
    expect(both(value)).toEqual({ value, refused: true, replaced: true });
  });

  // A CPR form glued to other digits (no separator at one of its ends): replaced or redacted, never refused. A
  // refusal there costs a user (a 401 for good) or a message (dead-lettered).
  it.each([
    ['a compact timestamp in a correlation id (20261202 1030 read as yyyymmdd ssss)', 'order-202612021030-17'],
    ['a compact timestamp with seconds', '20261202103000'],
    ['twelve digits in a row (yyyymmddhhmm: a four-digit year needs a separator)', '202612021030'],
    ['a digit before', '12512481234'],
    ['a digit after', '251248-12345'],
    ['digits on both sides', '25124812345678'],
    ['a timestamp before', '20261201251248-1234'],
    ['a compact timestamp among other groups', 'x-202612021030-17'],
  ])('only the replacements find %s: %s', (_why, value) => {
    expect(both(value)).toEqual({ value, refused: false, replaced: true });
  });

  it.each([
    ['no day/month pair', '991348-1234'],
    ['month 13', '0251348-1234'],
    ['31 February', '9310248-12345'],
    ['day 00', '0001481234x'],
    ['29 February of no leap year', '290201-1234'],
    ['a short serial', '251248-123'],
    ['two separators inside a group', '251248-12-34'],
    ['two separators, one inside the date', '2-51248-1234'],
    ['a year out of 1800-2099', '21481225-1234'],
    ['eight digits', '12345678-1234'],
    ['a long run with no date', '112233445566778899001'],
    ['a clock time', 'failed at 2024-01-01 12:00:00'],
    ['an ISO instant', '2024-01-01T12:00:00Z'],
    ['a plain token', 'batch-42.a-0001'],
    ['a name', 'dr-jensen'],
    ['four separators', '251248----1234'],
  ])('neither finds %s: %s', (_why, value) => {
    expect(both(value)).toEqual({ value, refused: false, replaced: false });
  });

  it('the mistyped split (one separator anywhere among ten digits) refuses only what the ten digits unsplit would', () => {
    // Measured on 100,000 random ten-digit numbers: 3,748 refused unsplit and the same 3,748 with one separator at a
    // random place (the first six digits a real ddmmyy either way); by construction, so checked exactly here.
    for (let i = 0; i < 20_000; i++) {
      const digits = randomBytes(8).readBigUInt64BE().toString().slice(-10).padStart(10, '0');
      const at = 1 + (i % 9);
      const split = `${digits.slice(0, at)}-${digits.slice(at)}`;
      expect({ split, refused: holdsCprNumber(split) }).toEqual({ split, refused: holdsCprNumber(digits) });
    }
  });

  describe("the hub's own random or keyed ids are not looked into, matched exactly", () => {
    it('a UUID (RFC 9562: 8-4-4-4-12 hex, version 1-8, variant 10), alone or inside an id', () => {
      for (const id of ['5f2b8c3e-1234-4a5b-9c8d-123456789012', 'ab010203-4567-4abc-8def-0123456789ab', '00000000-0000-4000-8000-002512481234', '25124812-3400-1000-a000-000000000000']) {
        expect({ ...both(id), inside: mayHoldCprDigits(`corr-${id}`) }).toEqual({ value: id, refused: false, replaced: false, inside: false });
      }
    });

    it('not what only looks like one: another version or variant, a digit glued on, more hex around', () => {
      for (const id of ['00000000-0000-0000-0000-002512481234', '00000000-0000-4000-0000-002512481234', '00000000-0000-4000-8000-0025124812345', 'a00000000-0000-4000-8000-002512481234']) {
        expect({ id, replaced: mayHoldCprDigits(id) }).toEqual({ id, replaced: true });
      }
      // Refused only where the CPR number is bounded by non-digits: after a hex letter, not glued to other digits.
      expect(holdsCprNumber('abcdefab-cdef-4abc-0abc-ab2512481234')).toBe(true);
      expect(holdsCprNumber('00000000-0000-4000-0000-002512481234')).toBe(false);
      // A UUID followed by a separate number: the number is looked at.
      expect(both('5f2b8c3e-1234-4a5b-9c8d-123456789012/251248-1234')).toMatchObject({ refused: true, replaced: true });
    });

    it("a document's uniqueId (the OID of a UUID), a patient's key and the sub the hub gives a patient", () => {
      // Both hold ten digits with a real date (1150617291, ...); both are UUIDs of version 1, variant 10.
      expect(both('2.25.329800735698586629295641978511506172918')).toMatchObject({ refused: false, replaced: false });
      expect(both(uuidToOid('00000000-0000-4000-8000-002512481234'))).toMatchObject({ refused: false, replaced: false });
      // 2.25.<more than 2^128>, or of no UUID version: digits like any other. An arc that is a CPR number is refused
      // (a form between separators); digits glued inside a longer arc are only redacted.
      expect(both('2.25.3298007356985866292956419785115061729180')).toMatchObject({ refused: false, replaced: true });
      expect(both('2.25.2512481234')).toMatchObject({ refused: true, replaced: true });
      expect(both('1.2.2512481234')).toMatchObject({ refused: true, replaced: true });
      for (const key of ['p0102031234abcdef0102031234abcdef', `p${'0'.repeat(22)}2512481234`]) expect(both(key)).toMatchObject({ refused: false, replaced: false });
      for (const key of ['pab0102031234cdef', 'p0102031234abcdef', 'p010203123456cdef', 'p9f010203123456ab']) expect(both(patientSubject(key))).toMatchObject({ refused: false, replaced: false });
      for (let i = 0; i < 2000; i++) expect(mayHoldCprDigits(patientSubject(`p${randomBytes(16).toString('hex')}`))).toBe(false);
    });

    it('100,000 random UUIDs: neither strength flags one (the token, system id and request id checks refuse or replace none)', () => {
      // Measured: 0 of 1,000,000 for each strength, with the UUID taken whole. Looked into as text (the exemption
      // left out), 3,354 of 1,000,000 (0.34 %, about one in 300) held ten digits with a real date (the replacements'
      // rule) and 955 (0.10 %, about one in 1,050) a form bounded by non-digits (the refusals' rule).
      let refused = 0;
      let replaced = 0;
      for (let i = 0; i < 100_000; i++) {
        const id = randomUUID();
        if (holdsCprNumber(id)) refused++;
        if (mayHoldCprDigits(id)) replaced++;
      }
      expect({ refused, replaced }).toEqual({ refused: 0, replaced: 0 });
      let oids = 0;
      for (let i = 0; i < 10_000; i++) if (mayHoldCprDigits(uuidToOid(randomUUID()))) oids++;
      expect(oids).toBe(0);
    });

    it('an identity provider\'s sub of 24 random hex digits: refused about once in 1,200, replaced about once in 220', () => {
      // Measured on 1,000,000 `auth0|<24 hex>` subs: 840 refused (0.08 %: ten decimal digits in a row, between hex
      // letters or at an end, reading as ddmmyy ssss with a real date; hex holds no separator, so a bounded form is
      // a whole run of digits) and 4,495 flagged by the replacements' rule (0.45 %: any ten digits inside a longer run
      // too), which the branch first refused with. Those 840 users would still get a 401 for good; the hub does not
      // know such a sub from text that names a person.
      let refused = 0;
      let replaced = 0;
      const n = 100_000;
      for (let i = 0; i < n; i++) {
        const sub = `auth0|${randomBytes(12).toString('hex')}`;
        if (holdsCprNumber(sub)) refused++;
        if (mayHoldCprDigits(sub)) replaced++;
      }
      expect(refused / n).toBeLessThan(0.002);
      expect(replaced / n).toBeGreaterThan(0.003);
      expect(refused).toBeLessThan(replaced / 3);
    });
  });
});

describe('full-width digits (a Chinese or Japanese input method in full-width mode) are digits', () => {
  it('refuses and redacts a CPR number written in full-width digits, with an ASCII or a full-width hyphen or space', () => {
    for (const value of ['患者２５１２４８-１２３４', '患者２５１２４８－１２３４', '２５１２４８\u3000１２３４', '２５１２４８１２３４号床', 'Søren ２５１２４８-1234']) {
      expect(both(value)).toEqual({ value, refused: true, replaced: true });
    }
    // Read by the same rules as the ASCII spelling, whatever those say (a compact timestamp is no refusal).
    for (const [value, ascii] of [['订单２０２６１２０２１０３０-17', '订单202612021030-17'], ['电话１３８００１３８０００', '电话13800138000'], ['床位４２', '床位42'], ['３２１３４８-１２３４', '321348-1234']] as const) {
      expect(both(value)).toEqual({ ...both(ascii), value });
    }
    expect(holdsCprNumber('订单２０２６１２０２１０３０-17')).toBe(false);
    // Redacted in place: the full-width number goes whole, the text around it stays.
    expect(redactCprDigits('患者２５１２４８－１２３４，胸痛', R)).toBe(`患者${R}，胸痛`);
  });
});

describe('invisible separators and Arabic-Indic digits: what shows as 251248-1234 is read as it', () => {
  it('refuses and redacts a CPR number split by a soft hyphen, a zero-width space, joiner or word joiner, or in Arabic-Indic digits', () => {
    // Were taken as a token's sub and stored in the audit trail (an outside review): they display as the number.
    for (const value of ['251248\u00AD1234', '251248\u200B-1234', '251248-\u200C1234', '251248\u200D1234', '251248\u20601234', '251248\u200F-1234', '251248\u200E1234', '251248\u061C1234', '251248\u20621234', '251248\u034F1234', '２５１２４８ー１２３４', '251248\uFF5E1234', '251248\u301C1234', '\u0662\u0665\u0661\u0662\u0664\u0668\u200F-\u0661\u0662\u0663\u0664', '\u0662\u0665\u0661\u0662\u0664\u0668-\u0661\u0662\u0663\u0664', '\u06F2\u06F5\u06F1\u06F2\u06F4\u06F8\u06F1\u06F2\u06F3\u06F4']) {
      expect(both(value)).toEqual({ value, refused: true, replaced: true });
    }
    expect(redactCprDigits('Patient 251248\u200B-1234, chest pain', R)).toBe(`Patient ${R}, chest pain`);
    // Not every number is one: an invisible character between other digits changes nothing.
    for (const value of ['120\u200B80', 'Ward \u0664\u0662', '2026\u00AD12\u00AD05']) expect(both(value)).toEqual({ value, refused: false, replaced: false });
  });
});

describe('redactCprDigits: each number holding a CPR number replaced as a whole, nothing else touched', () => {
  it.each([
    ['/x/2512481234', `/x/${R}`],
    ['/x/12512481234', `/x/${R}`],
    ['/x/2512-481234', `/x/${R}`],
    ['/x/25124812345678', `/x/${R}`],
    ['/x/251248\u20131234', `/x/${R}`],
    ['/x/19481225-1234/y', `/x/${R}/y`],
    ['/patients/2512481234x/observations', `/patients/${R}x/observations`],
    ['/a/cpr251248-1234z?from=1', `/a/cpr${R}z?from=1`],
    ['/x/251248-1234 and 010190-2345', `/x/${R} and ${R}`],
    // Not a CPR number, or the hub's own ids: as they were.
    ['/consultations/00000000-0000-4000-8000-000000000000', '/consultations/00000000-0000-4000-8000-000000000000'],
    ['/consultations/25124812-3400-4000-8000-002512481234/report', '/consultations/25124812-3400-4000-8000-002512481234/report'],
    ['/documents/2.25.329800735698586629295641978511506172918/corrections', '/documents/2.25.329800735698586629295641978511506172918/corrections'],
    ['/erasures/p0102031234abcdef0102031234abcdef', '/erasures/p0102031234abcdef0102031234abcdef'],
    ['/x?from=2024-01-01T00:00:00Z', '/x?from=2024-01-01T00:00:00Z'],
    ['/x/batch-42.a-0001', '/x/batch-42.a-0001'],
  ])('%s -> %s', (text, shown) => {
    expect(redactCprDigits(text, R)).toBe(shown);
  });

  it('a UUID that is no UUID of RFC 9562 (variant 0) is text: only the number holding the CPR number goes', () => {
    expect(redactCprDigits('/c/00000000-0000-4000-0000-002512481234/r', R)).toBe(`/c/${R}/r`);
    expect(redactCprDigits('/c/abcdefab-cdef-4abc-0abc-ab2512481234/r', R)).toBe(`/c/abcdefab-cdef-4abc-0abc-ab${R}/r`);
  });

  it('redacts until nothing more goes, so a redacted text redacted again is unchanged (found by cpr-like-property)', () => {
    // The UUID is glued to the digits before it, so it is text, and 320148-1234 only the end of a 41-digit number. Once
    // those digits are redacted the UUID stands whole and 320148-1234 alone: a mistyped CPR number, which wholeAnyDate takes.
    const text = '251248-1234a0000000-0000-1000-8000-000000000000-320148-1234';
    const once = redactCprDigits(text, R, { wholeAnyDate: true });
    expect(once).toBe(`${R}a0000000-0000-1000-8000-000000000000-${R}`);
    expect(redactCprDigits(once, R, { wholeAnyDate: true })).toBe(once);
    expect(redactCprDigits(text, R)).toBe(`${R}a0000000-0000-1000-8000-000000000000-320148-1234`); // a real date is still needed without it
  });
});

describe("a problem's instance (problemInstance): decoded as UTF-8, then redacted", () => {
  it('decodes percent-escapes as UTF-8 and keeps an escape that is no part of well-formed UTF-8 as written', () => {
    expect(decodePercentUtf8('/x/251248%E2%80%931234')).toBe('/x/251248\u20131234');
    expect(decodePercentUtf8('/x/%C3%A6%C3%B8%C3%A5%2D%zz')).toBe('/x/\u00e6\u00f8\u00e5-%zz');
    expect(decodePercentUtf8('/x/%FF%C3%41%ED%A0%80')).toBe('/x/%FF%C3A%ED%A0%80'); // a lone byte, a cut sequence, a surrogate
  });

  it.each([
    ['/x/251248%E2%80%931234', '/x/[redacted]'],
    ['/x/12512481234', '/x/[redacted]'],
    ['/x/320148-1234', '/x/[redacted]'], // the whole shape, whatever its date
    ['/x/3201481234', '/x/[redacted]'],
    ['/x/%32%35%31%32%34%38%2D1234', '/x/[redacted]'],
    ['/consultations/00000000-0000-4000-8000-000000000000', '/consultations/00000000-0000-4000-8000-000000000000'],
    ['/x/%C3%A6', '/x/\u00e6'],
    ['/x/1.2.3.12345678901234', '/x/1.2.3.12345678901234'], // digits inside a longer number need a real date
    // Control and bidi-format characters stay escaped: a NUL or a right-to-left override decoded into the instance
    // went on into logs and tickets (a fuzzer's /experts/a%00b, /systems/%E2%80%AE).
    ['/experts/a%00b', '/experts/a%00b'],
    ['/systems/%E2%80%AEcba', '/systems/%E2%80%AEcba'],
    ['/x/a%0D%0Ab%7F%C2%85%E2%80%8B', '/x/a%0D%0Ab%7F%C2%85%E2%80%8B'],
  ])('%s -> %s', (url, shown) => {
    expect(problemInstance(url)).toBe(shown);
  });

  it('the refusals keep the date check: ten digits that are no date are no CPR number there', () => {
    expect(both('3201481234')).toMatchObject({ refused: false, replaced: false });
    expect(redactCprDigits('3201481234', R)).toBe('3201481234');
    expect(redactCprDigits('3201481234', R, { wholeAnyDate: true })).toBe(R);
  });
});

describe('loggableId: an id as it may go into a log line', () => {
  it('keeps ids, the hub\'s random ones whatever their digits, and an id with digits that read as no CPR number', () => {
    const uuid = randomUUID();
    for (const id of ['desk-1099', 'corr-17', uuid, `corr-${uuid}`, 'order-17-2026', 'city-b:e1', 'a/b.c_d:e-f']) expect(loggableId(id)).toBe(id);
  });

  it('leaves out what the contracts take but may hold a CPR number glued into other digits, as the views redact it', () => {
    // holdsCprNumber lets these through (no CPR number standing alone), so a message or a consultation carries them.
    for (const id of ['order-202512481234', '12512481234', 'order-202612021030-17']) {
      expect(holdsCprNumber(id)).toBe(false);
      expect(loggableId(id)).toBeUndefined();
    }
    expect(loggableId('251248-1234')).toBeUndefined();
  });

  it('leaves out what is no id: other characters, empty, too long, not a string', () => {
    for (const value of ['', 'a b', 'x'.repeat(101), 'naïve', '<script>', 17, null, undefined, { id: 'x' }]) expect(loggableId(value)).toBeUndefined();
    expect(loggableId('x'.repeat(100))).toBe('x'.repeat(100));
  });
});
