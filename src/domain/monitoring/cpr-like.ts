import { isCalendarDate } from '../shared/iso-instant';

/**
 * The hub's notion of "may be a CPR number", for what is stored or echoed in clear where erasure cannot reach it.
 * Broader than parseCpr on purpose (no century rule, other spellings). Two strengths, one set of forms and one date
 * rule, told apart by what a match costs:
 *
 * - holdsCprNumber, for REFUSALS (a token's sub and systemId, dev-login and token.js, system ids, AMQP and library
 *   correlation ids, legacy consultation ids, the free text about systems and people): a form bounded by non-digits on
 *   both sides. Its first digit starts a group of its number (the number's start, or right after a separator) and its
 *   last digit ends one (the number's end, or right before a separator), so it may stand among other groups joined to
 *   it by separators (bed 4 251248-1234, v2-251248-1234, 1.2.2512481234), but not glued to other digits (12512481234).
 *   A refusal costs a user (a 401 on every request, for good) or a message (dead-lettered), so a compact timestamp in
 *   an id (order-202612021030-17: 20261202 and 1030 read as yyyymmdd ssss) is not refused, nor is a 24-hex-digit sub
 *   whose digits happen to hold ten with a date glued to others. Letters next to the form do not matter
 *   (user-2512481234, 2512481234x, cpr:251248-1234). Refused by design though no CPR number: a date and a four-digit
 *   serial written apart (order-20261202-1030-17, 2026-11-30-0001), which a person cannot be told from.
 * - mayHoldCprDigits and redactCprDigits, for REPLACEMENTS and REDACTIONS (a caller's request id, a problem's
 *   `instance`, the dead-letter views, what a discard's event keeps of a sender's headers, an audit entry's resource):
 *   a CPR number starting at any digit of a number, so also glued inside a longer run of digits (12512481234,
 *   20261201251248-1234). A chance match there costs a request id replaced by a UUID or digits shown as [redacted].
 *
 * Text is read as *numbers*: maximal runs of ASCII digits (full-width digits read as them) in which 1-3 separators may stand between two digits.
 * Separators: - . _ : / + any white space (NBSP and the thin spaces included) and the other dashes (U+2010-2015 hyphen,
 * non-breaking hyphen, figure, en and em dash, bar; U+2212 minus; U+FE58, U+FE63, U+FF0D). The forms:
 *   ddmmyy ssss     251248-1234, 2512481234, 25.12.48-1234, 25 12 48 1234, 251248–1234 (en dash), 251248--1234
 *   ddmmyyyy ssss   25-12-1948-1234
 *   yyyymmdd ssss   19481225-1234, 1948-12-25-1234
 * with separators only between those groups, or (a mistyped split) with one separator anywhere among ten digits and
 * no other (25124-81234), and a real calendar date: ddmmyy in 19yy or 20yy (29 February when yy is divisible by 4),
 * a four-digit year in 1800-2099. Two separators inside a group (251248-12-34, 2-51248-1234) are no CPR number; nor
 * are clock times (2024-01-01 12:00:00: the serial split by a colon). For a refusal, the forms with a four-digit year
 * need a separator among their own digits: twelve digits in a row (202612021030, x-202612021030-17) are a compact
 * timestamp far more often than a CPR number. A mistyped split is two groups of ten digits in all, so ten digits
 * with one separator are refused only when the same ten digits unsplit would be.
 *
 * Ids the hub makes from random or keyed bits are not looked into by either strength, matched exactly and only as a
 * whole (not next to a letter or digit): a UUID as RFC 9562 lays it out (8-4-4-4-12 hex digits, version 1-8, variant
 * 10, as CONSULTATION_ID_PATTERN), a UUID's OID (2.25.<the UUID as an integer>, the same version and variant: a
 * document's uniqueId), a patient's pseudonymous key (p and 32 hex digits) and the sub the hub gives a patient
 * (patient- and 12 hex digits). Looked into as text, about one random UUID in 300 holds ten decimal digits with a real
 * date (the replacements' rule) and one in 1,050 a form bounded as a refusal takes it: refusing or cutting those would
 * refuse the ids clients should send. Anything else with hex letters next to its digits is text like any other
 * (test/unit/cpr-like.unit.spec.ts measures both strengths on random UUIDs and 24-hex-digit ids).
 *
 * Cheap: a text with fewer than ten digits is answered at once; otherwise a linear scan per number.
 */
// Also the invisible ones a word processor or an input method leaves in copied text, which show 251248-1234 as it
// is: soft hyphen, combining grapheme joiner, Arabic letter mark, Mongolian vowel separator, zero-width space,
// non-joiner and joiner, left-to-right and right-to-left marks, word joiner and the invisible operators (\s already
// holds the byte order mark); and the dashes a Japanese input method types: the long vowel mark and the wave dashes.
const SEPARATOR = '[-._:/+\\s\\u00AD\\u034F\\u061C\\u180E\\u200B-\\u200F\\u2060-\\u2064\\u2010-\\u2015\\u2212\\u301C\\u30FC\\uFE58\\uFE63\\uFF0D\\uFF5E]';
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

/**
 * Full-width digits (U+FF10-FF19, what a Chinese or Japanese input method types in full-width mode) read as the
 * ASCII digits they are: "２５１２４８-１２３４" passed every check; so do Arabic-Indic digits (U+0660-0669, U+06F0-06F9).
 * One code unit for one, so positions stay.
 */
const withAsciiDigits = (text: string): string => text.replace(/[\uFF10-\uFF19\u0660-\u0669\u06F0-\u06F9]/g, (d) => String.fromCharCode(48 + (d.charCodeAt(0) & 0xf)));

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
 * How a number is read. `bounded` (refusals): a form that starts and ends where the number's groups do (at the
 * number's ends or at a separator), and a four-digit year needs a separator. `window` (replacements): a form starting
 * at any of the number's digits.
 */
type Strength = 'bounded' | 'window';

/**
 * Whether a CPR number starts at `digits[start]`: a form whose groups the separators fit, with a real date (or, with
 * `anyDate`, any date: see redactCprDigits); when `bounded`, starting and ending at a group's edge and, with a
 * four-digit year, holding a separator. `gapBefore[i]`: whether separators stand between digit i-1 and i.
 */
const cprAt = (digits: string, gapBefore: readonly boolean[], start: number, bounded: boolean, anyDate = false): boolean =>
  FORMS.some((form, f) => {
    const length = form.groups.reduce((a, b) => a + b, 0);
    const end = start + length;
    if (end > digits.length) return false;
    if (bounded && !((start === 0 || gapBefore[start]) && (end === digits.length || gapBefore[end]))) return false;
    const gaps: number[] = [];
    for (let k = 1; k < length; k++) if (gapBefore[start + k]) gaps.push(k);
    const fits = gaps.every((k) => BOUNDARIES[f]!.has(k)) || (length === 10 && gaps.length === 1);
    if (!fits || (bounded && length === 12 && gaps.length === 0)) return false;
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
 * Whether a number (a match of NUMBER) holds a CPR number read at `strength`; with `wholeAnyDate`, also when the
 * number as a whole has a CPR number's shape (10 digits, or 12 with a four-digit year), whatever its date.
 */
const numberHoldsCpr = (number: string, strength: Strength, wholeAnyDate = false): boolean => {
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
  const bounded = strength === 'bounded';
  if (wholeAnyDate && (digits.length === 10 || digits.length === 12) && cprAt(digits, gapBefore, 0, false, true)) return true;
  for (let start = 0; start + 10 <= digits.length; start++) if (cprAt(digits, gapBefore, start, bounded)) return true;
  return false;
};

const anyNumberHoldsCpr = (sent: string, strength: Strength): boolean => {
  const text = withAsciiDigits(sent);
  if (!hasTenDigits(text)) return false;
  for (const [number] of masked(text).matchAll(NUMBER)) if (numberHoldsCpr(number, strength)) return true;
  return false;
};

/**
 * For refusals: whether `text` holds a CPR number bounded by non-digits, alone or among other groups of a number
 * (see above). 2512481234x, user-2512481234, 19481225-1234 and bed 4 251248-1234 do; 12512481234, 202612021030 and
 * order-202612021030-17 do not.
 */
export const holdsCprNumber = (text: string): boolean => anyNumberHoldsCpr(text, 'bounded');

/**
 * For replacements and redactions: whether `text` may hold a CPR number anywhere, also glued inside a longer run of
 * digits (see above). Never for a refusal.
 */
export const mayHoldCprDigits = (text: string): boolean => anyNumberHoldsCpr(text, 'window');

/**
 * An id as it may go into a log line: 1-100 characters of A-Z a-z 0-9 . _ : / - and nothing that may hold a CPR
 * number (mayHoldCprDigits: a redaction, so digits glued into a longer run count too); else undefined, and the line
 * leaves the field out. For ids a caller chose (a correlation id, an id a sender set): the contracts refuse only a
 * CPR number bounded by non-digits (holdsCprNumber), so a correlation id they take may still carry one glued to
 * other digits, as a caller's X-Request-Id may (which the hub replaces instead).
 */
export const loggableId = (value: unknown): string | undefined =>
  typeof value === 'string' && /^[A-Za-z0-9._:/-]{1,100}$/.test(value) && (WHOLE_UUID.test(value) || !mayHoldCprDigits(value)) ? value : undefined;
/**
 * An error as it may go into a log line (pino's `err`): its name, code, message and stack, each number in them that
 * may hold a CPR number redacted, and none of its other fields. A store's error names the stream, consultation-<id>,
 * in its message and its `streamName`, and a legacy consultation's id may hold a CPR number (legacy-id.ts).
 */
export const loggableError = (error: unknown): Readonly<{ type: string; code?: string; message?: string; stack?: string }> => {
  if (!(error instanceof Error)) return { type: typeof error };
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    ...(typeof code === 'string' ? { code } : {}),
    message: redactCprDigits(error.message, '[redacted]'),
    ...(error.stack !== undefined ? { stack: redactCprDigits(error.stack, '[redacted]') } : {}),
  };
};
/** A UUID as the whole value: never a match (the hub's own ids, above), and the commonest id; answered without the scan. */
const WHOLE_UUID = new RegExp(`^${UUID_TEXT}$`);

/**
 * `text` with each number that may hold a CPR number (mayHoldCprDigits) replaced, as a whole (from its first digit to
 * its last), by `replacement`: nothing else is touched, so a UUID's hex groups, the letters next to a number and the
 * separators around it stay as they were. With `wholeAnyDate` (an echo of what a caller typed: a problem's
 * `instance`), a number that has a CPR number's shape as a whole goes whatever its date: 320148-1234 is a mistyped
 * CPR number, still somebody's. Digits inside a longer number need a real date either way (a document's OID arcs are
 * long runs).
 */
export const redactCprDigits = (text: string, replacement: string, options: Readonly<{ wholeAnyDate?: boolean }> = {}): string => {
  // Until nothing more goes: a redaction can make what is left read otherwise. In 251248-1234a0000000-...-320148-1234
  // the UUID is glued to the digits before it, so it is text and 320148-1234 only the end of a long number; once those
  // digits are [redacted], the UUID stands whole (one of the hub's ids, not looked into) and 320148-1234 alone, which
  // wholeAnyDate takes. Each pass that changes the text takes at least one number away, so this ends.
  let out = redactOnce(text, replacement, options);
  for (let pass = 0; pass < MAX_REDACTION_PASSES; pass++) {
    const again = redactOnce(out, replacement, options);
    if (again === out) return out;
    out = again;
  }
  return out;
};

/** Enough for any text a caller sends (a pass takes a number away); a bound in case the replacement holds digits. */
const MAX_REDACTION_PASSES = 8;

const redactOnce = (text: string, replacement: string, options: Readonly<{ wholeAnyDate?: boolean }>): string => {
  const ascii = withAsciiDigits(text);
  if (!hasTenDigits(ascii)) return text;
  const spans: [number, number][] = [];
  for (const m of masked(ascii).matchAll(NUMBER)) if (numberHoldsCpr(m[0], 'window', options.wholeAnyDate)) spans.push([m.index, m.index + m[0].length]);
  let out = '';
  let from = 0;
  for (const [start, end] of spans) {
    out += text.slice(from, start) + replacement;
    from = end;
  }
  return out + text.slice(from);
};
