import { issuePath } from './zod-issues';

/**
 * Text as the hub takes it at its edges (HTTP bodies, AMQP message bodies): Unicode, sent as UTF-8.
 *
 * - `illFormedTextPath(value)`: the path of the first string (or object key) of a parsed JSON value that is not
 *   Unicode text: it holds a lone surrogate (JSON's `"\ud800"` escape, legal JSON syntax, no character). Stored, it
 *   became U+FFFD wherever it was encoded as UTF-8 (a sealed text, a PostgreSQL row, a JOSE payload): mangled
 *   without a word. Null when every string is well-formed. Walks without recursion (a deeply nested body must not
 *   overflow the stack); the path names fields as zod-issues does, never the values.
 * - `withoutBom(text)`: the text without one leading U+FEFF (a byte order mark, written by some Windows tools;
 *   RFC 8259 8.1 lets a parser ignore it, and the HTTP API's parser always has).
 * - `REPLACEMENT_CHARACTER`: U+FFFD, what a decoder leaves for bytes that were not UTF-8 (rhea decodes an AMQP
 *   string so, without an error: GBK bytes sent as an AMQP string arrive as runs of it).
 */
export const REPLACEMENT_CHARACTER = '\uFFFD';

// With the u flag a pair is one code point: only a lone half matches. (String#isWellFormed is ES2024, past our lib.)
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** Whether `text` is Unicode text: no lone surrogate. */
export const isWellFormedText = (text: string): boolean => !LONE_SURROGATE.test(text);

/**
 * Whether a JSON text may parse to a value holding a lone surrogate: it has one itself, or a \uD800-\uDFFF escape
 * (JSON.stringify writes a lone surrogate as such an escape). False for nearly every message and body: the value's
 * walk (illFormedTextPath) is then skipped, a regex scan of the text instead of a walk of a large value.
 */
export const mayHoldIllFormedText = (json: string): boolean => SURROGATE_ESCAPE.test(json) || !isWellFormedText(json);
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/;

export const withoutBom = (text: string): string => (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);

/** A path as a chain to its parent: copying an array per level was quadratic in a body's depth. */
type PathLink = Readonly<{ key: PropertyKey; parent: PathLink | null }> | null;
const shown = (link: PathLink): string => {
  const keys: PropertyKey[] = [];
  for (let at = link; at !== null; at = at.parent) keys.push(at.key);
  if (keys.length === 0) return '(message)';
  // A reason stays short: the first levels of a deep path say where it is.
  const path = keys.reverse();
  return path.length > 8 ? `${path.slice(0, 8).map(issuePath).join('.')}...(${path.length - 8} levels more)` : path.map(issuePath).join('.');
};

export const illFormedTextPath = (value: unknown): string | null => {
  const stack: { value: unknown; path: PathLink }[] = [{ value, path: null }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (typeof v === 'string') {
      if (!isWellFormedText(v)) return shown(path);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], path: { key: i, parent: path } });
    } else if (typeof v === 'object' && v !== null) {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        if (!isWellFormedText(key)) return shown({ key, parent: path });
        stack.push({ value: child, path: { key, parent: path } });
      }
    }
  }
  return null;
};

/** The detail of a refusal for `illFormedTextPath`'s finding. */
export const illFormedTextDetail = (path: string): string =>
  `${path}: holds a lone surrogate (a \\ud800-\\udfff escape not part of a pair), which is no Unicode character`;
