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
const ONE_LINE_CONTROLS = '\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069';
const ONE_LINE_CONTROL = new RegExp(`[${ONE_LINE_CONTROLS}]`);
export const holdsOneLineControl = (text: string): boolean => ONE_LINE_CONTROL.test(text);
/**
 * The same rule as JSON Schema patterns (ECMA-262, no lookaround), for the API documents, where a client generated
 * from them checks a text before sending it (a pattern is the only way a schema can say it): a text with none of
 * those characters; and one that, trimmed of white space at its ends as zod's trim() does, is not empty and has none.
 */
/** A text that trimmed (zod's trim()) is not empty: one with a character other than white space. */
export const NOT_BLANK_PATTERN = '\\S';
export const ONE_LINE_PATTERN = `^[^${ONE_LINE_CONTROLS}]*$`;
export const TRIMMED_ONE_LINE_PATTERN = `^\\s*[^${ONE_LINE_CONTROLS}]*[^\\s${ONE_LINE_CONTROLS}][^${ONE_LINE_CONTROLS}]*\\s*$`;
