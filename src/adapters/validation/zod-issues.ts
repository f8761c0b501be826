import type { z } from 'zod';

/**
 * A key the caller sent, fit to be quoted back: a plain field name as this API spells its own (starting with a
 * lower-case letter), with no run of three digits or more. Anything else (a CPR number or a name sent as a key:
 * `cpr_0707894821`, `Ingeborg_Zylstra`, free text) is not repeated, in a message or a path: the message reaches
 * operators too (dead-letter reasons, logs).
 */
const quotable = (key: string): boolean => /^[a-z][A-Za-z0-9_]{0,39}$/.test(key) && !/\d{3}/.test(key);
/** A segment of an issue's path as it may be shown: a field name or an index, else '(a key)'. */
export const issuePath = (key: PropertyKey): string => (typeof key === 'number' || quotable(String(key)) ? String(key) : '(a key)');
const withArticle = (noun: string): string => `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`;

/**
 * zod's own wording for a missing or mistyped field, a value outside a list or a range, and an unknown key, in this
 * project's (HTTP problems, dead-letter details and configuration errors alike): "is required", "must be a number
 * (not a string)", "must be one of a, b", "must be at most 65535", "unknown field: heartRate". zod's "Unrecognized
 * key" quoted every key sent, whatever it held. A schema's own messages are kept as they are.
 */
export const issueMessage = (issue: z.core.$ZodIssue): string => {
  const typed = /^Invalid input: expected (\w+), received (-?\w+)$/.exec(issue.message);
  if (issue.code === 'invalid_type' && typed !== null) {
    const [, expected, received] = typed as unknown as [string, string, string];
    if (received === 'undefined') return `is required (${withArticle(expected)})`;
    // zod's words for 1.5 where an integer is asked ("expected int, received number"), and for Infinity (1e400 in
    // JSON) where a number is: "received Infinity" (or -Infinity) in zod 4.6, "received number" in 4.1.
    if (expected === 'int') return received === 'number' ? 'must be a whole number' : `must be a whole number (not ${withArticle(received)})`;
    if (expected === 'number' && (received === 'number' || received === 'Infinity' || received === '-Infinity')) return 'must be a finite number';
    return received === 'NaN' ? `must be ${withArticle(expected)}` : `must be ${withArticle(expected)} (not ${withArticle(received)})`;
  }
  if (issue.code === 'invalid_value' && issue.message.startsWith('Invalid option') && issue.values.length > 1) {
    return `must be one of ${issue.values.map(String).join(', ')}`;
  }
  if ((issue.code === 'too_small' || issue.code === 'too_big') && /^Too (small|big): expected /.test(issue.message)) {
    const small = issue.code === 'too_small';
    const limit = String(small ? issue.minimum : issue.maximum);
    const bound = small ? (issue.inclusive ? 'at least' : 'more than') : issue.inclusive ? 'at most' : 'less than';
    if (issue.origin === 'string') return `must have ${bound} ${limit} characters`;
    if (issue.origin === 'array' || issue.origin === 'set') return `must have ${bound} ${limit} items`;
    if (issue.origin === 'number' || issue.origin === 'bigint') return `must be ${bound} ${limit}`;
  }
  if (issue.code === 'unrecognized_keys') {
    const named = issue.keys.filter(quotable);
    const unnamed = issue.keys.length - named.length;
    // "1 whose name is not repeated here" read as a field named "1" (a city system's developer).
    const others = unnamed === 0 ? [] : [`${unnamed} ${named.length > 0 ? 'more ' : ''}field${unnamed === 1 ? ' whose name is' : 's whose names are'} not repeated here`];
    const list = named.length > 0 && others.length > 0 ? `${named.join(', ')} and ${others[0]}` : [...named, ...others].join(', ');
    return `unknown ${issue.keys.length === 1 ? 'field' : 'fields'}: ${list}`;
  }
  return issue.message;
};
