import { isCalendarDate } from '../shared/iso-instant';

/**
 * The hub's one notion of "may be a CPR number", for what is stored or echoed in clear where erasure cannot reach it
 * (a token's sub and systemId, system ids, request and correlation ids, free text about systems and people, a
 * problem's `instance`, the dead-letter views). Broader than parseCpr on purpose (no century rule, other spellings):
 * refusing or replacing there costs little, a CPR number there stays for good.
 *
 * Text is read as *numbers*: maximal runs of ASCII digits in which 1-3 separators may stand between two digits.
 * Separators: - . _ : / + any white space (NBSP and the thin spaces included) and the other dashes (U+2010-2015 hyphen,
 * non-breaking hyphen, figure, en and em dash, bar; U+2212 minus; U+FE58, U+FE63, U+FF0D). A number holds a CPR
 * number when, starting at any of its digits (so glued to other digits, and to letters on either side:
 * 12512481234, 2512481234x, 20261201251248-1234), it reads as one of
 *   ddmmyy ssss     251248-1234, 2512481234, 25.12.48-1234, 25 12 48 1234, 251248–1234 (en dash), 251248--1234
 *   ddmmyyyy ssss   25-12-1948-1234
 *   yyyymmdd ssss   19481225-1234, 1948-12-25-1234
 * with separators only between those groups, or (a mistyped split) with one separator anywhere among ten digits and
 * no other (25124-81234), and whose date is a real calendar date: ddmmyy in 19yy or 20yy (29 February when yy is
 * divisible by 4), a four-digit year in 1800-2099. Two separators inside a group (251248-12-34, 2-51248-1234) are no
 * CPR number; nor are clock times (2024-01-01 12:00:00: the serial split by a colon).
 *
 * Ids the hub makes from random or keyed bits are not looked into, matched exactly and only as a whole (not next to
 * a letter or digit): a UUID as RFC 9562 lays it out (8-4-4-4-12 hex digits, version 1-8, variant 10, as
 * CONSULTATION_ID_PATTERN), a UUID's OID (2.25.<the UUID as an integer>, the same version and variant: a document's
 * uniqueId), a patient's pseudonymous key (p and 32 hex digits) and the sub the hub gives a patient (patient- and 12
 * hex digits). About one random UUID in 260 holds ten decimal digits with a real date somewhere among its groups
 * (test/unit/cpr-like.unit.spec.ts measures it): refusing or cutting those would refuse the ids clients should send.
 * Anything else with hex letters next to its digits is text like any other (about one random 24-hex-digit id in 200
 * holds such a run).
 *
 * Cheap: a text with fewer than ten digits is answered at once; otherwise a linear scan per number.
 */
const SEPARATOR = '[-._:/+\\s\\u2010-\\u2015\\u2212\\uFE58\\uFE63\\uFF0D]';
const NUMBER = new RegExp(`\\d+(?:${SEPARATOR}{1,3}\\d+)*`, 'g');
const IS_SEPARATOR = new RegExp(`^${SEPARATOR}$`);

const HEX = '[0-9a-fA-F]';
const UUID_TEXT = `${HEX}{8}-${HEX}{4}-[1-8]${HEX}{3}-[89abAB]${HEX}{3}-${HEX}{12}`;
/** The hub's own random or keyed ids, each as a whole; a UUID's OID is checked further (uuidOid). */
const HUB_ID = new RegExp(`(?<![0-9A-Za-z.])(?:${UUID_TEXT}|p[0-9a-f]{32}|patient-[0-9a-f]{12}|2\\.25\\.(?:0|[1-9]\\d{0,38}))(?![0-9A-Za-z]|\\.\\d)`, 'g');
const UUID_MAX = 1n << 128n;
/** 2.25.<n>: a UUID (X.667) of version 1-8 and variant 10, as the hub makes a document's uniqueId from one. */
const isUuidOid = (oid: string): boolean => {
  const n = BigInt(oid.slice(5));
  if (n >= UUID_MAX) return false;
  const version = Number((n >> 76n) & 0xfn);
  return version >= 1 && version <= 8 && ((n >> 62n) & 0x3n) === 0x2n;
};
const masked = (text: string): string =>
  text.replace(HUB_ID, (id) => (id.startsWith('2.25.') && !isUuidOid(id) ? id : '#'.repeat(id.length)));

const isDigitCode = (code: number): boolean => code >= 48 && code <= 57;
const hasTenDigits = (text: string): boolean => {
  let count = 0;
  for (let i = 0; i < text.length && count < 10; i++) if (isDigitCode(text.charCodeAt(i))) count++;
  return count >= 10;
};

/** Group lengths of each spelling, and where its date's parts are (by group). */
type Form = Readonly<{ groups: readonly number[]; realDate: (g: readonly number[]) => boolean }>;
const twoDigitYearDate = (day: number, month: number, yy: number): boolean => isCalendarDate(2000 + yy, month, day) || isCalendarDate(1900 + yy, month, day);
const fourDigitYearDate = (year: number, month: number, day: number): boolean => year >= 1800 && year <= 2099 && isCalendarDate(year, month, day);
const FORMS: readonly Form[] = [
  { groups: [2, 2, 2, 4], realDate: ([d, m, y]) => twoDigitYearDate(d!, m!, y!) },
  { groups: [2, 2, 4, 4], realDate: ([d, m, y]) => fourDigitYearDate(y!, m!, d!) },
  { groups: [4, 2, 2, 4], realDate: ([y, m, d]) => fourDigitYearDate(y!, m!, d!) },
];
/** Digit counts after which a form may have a separator (the ends of its groups but the last). */
const boundariesOf = (groups: readonly number[]): ReadonlySet<number> => new Set(groups.slice(0, -1).map((_, i) => groups.slice(0, i + 1).reduce((a, b) => a + b, 0)));
const BOUNDARIES = FORMS.map((f) => boundariesOf(f.groups));

/**
 * Whether a CPR number starts at `digits[start]`: a form whose groups the separators fit, with a real date (or, with
 * `anyDate`, any date: see redactCprLike). `gapBefore[i]`: whether separators stand between digit i-1 and i.
 */
const cprAt = (digits: string, gapBefore: readonly boolean[], start: number, anyDate = false): boolean =>
  FORMS.some((form, f) => {
    const length = form.groups.reduce((a, b) => a + b, 0);
    if (start + length > digits.length) return false;
    const gaps: number[] = [];
    for (let k = 1; k < length; k++) if (gapBefore[start + k]) gaps.push(k);
    const fits = gaps.every((k) => BOUNDARIES[f]!.has(k)) || (length === 10 && gaps.length === 1);
    if (!fits) return false;
    if (anyDate) return true;
    const parts: number[] = [];
    let at = start;
    for (const size of form.groups) {
      parts.push(Number(digits.slice(at, at + size)));
      at += size;
    }
    return form.realDate(parts);
  });

/**
 * Whether a number (a match of NUMBER) holds a CPR number anywhere in it; with `wholeAnyDate`, also when the number
 * as a whole has a CPR number's shape (10 digits, or 12 with a four-digit year), whatever its date.
 */
const numberHoldsCpr = (number: string, wholeAnyDate = false): boolean => {
  let digits = '';
  const gapBefore: boolean[] = [];
  let gap = false;
  for (const c of number) {
    if (isDigitCode(c.charCodeAt(0))) {
      digits += c;
      gapBefore.push(gap);
      gap = false;
    } else if (IS_SEPARATOR.test(c)) gap = true;
  }
  if (digits.length < 10) return false;
  if (wholeAnyDate && (digits.length === 10 || digits.length === 12) && cprAt(digits, gapBefore, 0, true)) return true;
  for (let start = 0; start + 10 <= digits.length; start++) if (cprAt(digits, gapBefore, start)) return true;
  return false;
};

/** Whether `text` may hold a CPR number anywhere in it (see above). */
export const isCprLike = (text: string): boolean => {
  if (!hasTenDigits(text)) return false;
  for (const [number] of masked(text).matchAll(NUMBER)) if (numberHoldsCpr(number)) return true;
  return false;
};

/**
 * `text` with each number that holds a CPR number replaced, as a whole (from its first digit to its last), by
 * `replacement`: nothing else is touched, so a UUID's hex groups, the letters next to a number and the separators
 * around it stay as they were. With `wholeAnyDate` (an echo of what a caller typed: a problem's `instance`), a number
 * that has a CPR number's shape as a whole goes whatever its date: 320148-1234 is a mistyped CPR number, still
 * somebody's. Digits inside a longer number need a real date either way (a document's OID arcs are long runs).
 */
export const redactCprLike = (text: string, replacement: string, options: Readonly<{ wholeAnyDate?: boolean }> = {}): string => {
  if (!hasTenDigits(text)) return text;
  const spans: [number, number][] = [];
  for (const m of masked(text).matchAll(NUMBER)) if (numberHoldsCpr(m[0], options.wholeAnyDate)) spans.push([m.index, m.index + m[0].length]);
  let out = '';
  let from = 0;
  for (const [start, end] of spans) {
    out += text.slice(from, start) + replacement;
    from = end;
  }
  return out + text.slice(from);
};
