/**
 * How the hub counts a text against its limit: in Unicode code points, as JSON Schema's `maxLength` (the
 * `/openapi.json` and `asyncapi.yaml` contracts), zod 4.6 and Python's `len` count, so a text a client checked
 * against the published contract is the text the hub takes (`😀` is one, not JavaScript's two).
 */
export const codePointLength = (text: string): number => {
  let n = text.length;
  for (let i = 0; i < text.length - 1; i++) {
    const hi = text.charCodeAt(i);
    if (hi >= 0xd800 && hi <= 0xdbff) {
      const lo = text.charCodeAt(i + 1);
      if (lo >= 0xdc00 && lo <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
};

/** Whether `text` has more than `max` code points (a text of at most `max` UTF-16 units never has). */
export const longerThan = (text: string, max: number): boolean => text.length > max && codePointLength(text) > max;

/**
 * C0 control characters other than tab, line feed and carriage return. JSON writes each as a six-byte escape
 * (\u0007), so a report of 110,000 of them became a downlink message over the broker's 1 MiB frame: accepted
 * over HTTP, then never delivered. No clinical text needs one.
 */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
export const holdsControlCharacter = (text: string): boolean => CONTROL.test(text);

/**
 * Any control character (C0, DEL, C1: NEL among them), the Unicode line and paragraph separators, or a bidirectional
 * embedding, override or isolate (U+202A-U+202E, U+2066-U+2069): none belongs in a one-line text (a name, a title, a
 * token's subject). NUL broke the append on PostgreSQL (jsonb holds no \u0000), and a line break in a name splits a
 * line wherever it is shown. An override reorders everything after it on the line where the name is shown: an
 * expert's name, a directory listing or an audit entry's subject could read as another's ("Trojan Source"). The
 * marks a right-to-left name may need (LRM, RLM, ALM: U+200E, U+200F, U+061C) are taken.
 */
const ONE_LINE_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
export const holdsOneLineControl = (text: string): boolean => ONE_LINE_CONTROL.test(text);

/**
 * Characters that show nothing where a text is shown: white space of any kind (White_Space and the separators Zs, Zl,
 * Zp), controls (Cc), format characters (Cf: zero-width space U+200B, the joiners U+200C and U+200D, word joiner
 * U+2060, BOM U+FEFF, soft hyphen U+00AD, the bidirectional marks, embeddings, overrides and isolates, tag
 * characters) and Unicode's other default-ignorable code points (Hangul fillers such as U+3164, variation selectors,
 * the combining grapheme joiner U+034F).
 */
const INVISIBLE_ONLY = /^[\p{White_Space}\p{Cc}\p{Cf}\p{Z}\p{Default_Ignorable_Code_Point}]*$/u;
/**
 * The format characters that show a sign: Unicode's Prepended_Concatenation_Mark (PropList.txt of Unicode 17, the
 * version of Node 20's ICU 78; no regular expression engine knows the property, so it is listed here). The Arabic
 * number, year, footnote and page signs, the end of ayah, the Syriac abbreviation mark, the Arabic pound and piastre
 * marks, the Kaithi number signs: each is drawn, spanning the digits after it, so a text of one shows it.
 */
const PREPENDED_CONCATENATION_MARK = /[\u0600-\u0605\u06dd\u070f\u0890\u0891\u08e2\u{110bd}\u{110cd}]/u;
/**
 * Whether `text` is blank: nothing is left of it without the characters above (an empty text is blank), the
 * prepended concatenation marks being visible. A name of zero-width spaces passed trim() and showed as an empty
 * entry in every system's directory. Such characters inside a visible text are kept (a soft hyphen, a ZWJ emoji, RLM
 * in a mixed-script name).
 */
export const isBlankText = (text: string): boolean => INVISIBLE_ONLY.test(text) && !PREPENDED_CONCATENATION_MARK.test(text);

/**
 * The rule for a text people read where it is shown (an expert's profile, a system's name and area, a consultation's
 * clinician, question, summary, report and reasons), one for the edge (shown-text.ts: HTTP bodies, uplink messages,
 * the SDK) and the domain (the deciders, which code calling the services directly reaches past the edge): a text
 * that holds something must show something. A text that trimmed is empty is left to each field's own rule (refused
 * where one is required; an empty title, summary or reason says there is none). Only where a text comes in: what was
 * stored before the rule is read, replayed and sent on as stored.
 */
export const showsNothing = (text: string): boolean => text.trim() !== '' && isBlankText(text);
/** The refusal's message for such a text, with its field's path (the edge's and the domain's). */
export const INVISIBLE_TEXT_MESSAGE = 'must show a visible character: it holds only white space, format or other invisible characters (zero-width, bidi controls, soft hyphen, ...)';

/**
 * The rules above and zod's trim() as JSON Schema patterns, for the API documents, where a client generated from them
 * checks a text before sending it. Written so that every engine such a client may use reads them alike: ECMA-262
 * (ajv), Python's `re` (jsonschema), Java's Pattern and RE2 (Go's regexp, which refuses `\u` escapes). So no `\u`
 * escape (a character above U+00FF is written as itself), no `\s`/`\S` (ASCII only in Java and RE2, and in Python
 * also U+001C-U+001F and U+0085 but not U+FEFF), no `$` where a final line break would pass (Python's `$` matches
 * before one), and no pattern that backtracks: `^\s*[^c]*[^\sc][^c]*\s*$` took 0.8 s in V8 on 20,000 spaces, and
 * in Python 34 ms on 2,000 and minutes on 20,000. (test/integration/text-patterns-python.int.spec.ts holds them to it.)
 *
 * A text with one of holdsOneLineControl's characters (`not: {pattern}`: a one-line text is one this never finds). */
export const ONE_LINE_CONTROL_PATTERN = '[\\x00-\\x1f\\x7f-\\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]';
/** What String.prototype.trim() (zod's trim()) removes, ECMA-262's WhiteSpace and LineTerminator: the control characters among them. */
const TRIMMED_CONTROLS = '\\t\\n\\x0b\\f\\r\u2028\u2029';
/** ...and the others. */
const TRIMMED_SPACES = ' \\xa0\u1680\u2000-\u200a\u202f\u205f\u3000\ufeff';
/** A text that trimmed (zod's trim()) is not empty: one with a character other than white space (`pattern`). */
export const NOT_BLANK_PATTERN = `[^${TRIMMED_CONTROLS}${TRIMMED_SPACES}]`;
/** A character that is neither white space nor a one-line control: what a trimmed one-line text begins and ends with. */
const SHOWN = `[^${TRIMMED_CONTROLS}${TRIMMED_SPACES}\\x00-\\x1f\\x7f-\\x9f\u202a-\u202e\u2066-\u2069]`;
/**
 * A text that, trimmed, is not empty and one line (oneLine in dead-letter-routes.ts: trim, then min(1) and
 * holdsOneLineControl): white space around it, line breaks there too, as trim() removes them; none inside. Each
 * character has one place to go but for the spaces after the last shown one, so it does not backtrack.
 */
export const TRIMMED_ONE_LINE_PATTERN = `^[${TRIMMED_CONTROLS}${TRIMMED_SPACES}]*${SHOWN}(?:[${TRIMMED_SPACES}]*${SHOWN})*[${TRIMMED_CONTROLS}${TRIMMED_SPACES}]*$`;
