import { holdsCprNumber } from '../monitoring/cpr-like';
import { ValidationError } from './errors';

/**
 * A client-chosen idempotency key (an upload's observationId, a correction's correctionId): 1-64 characters of
 * A-Z a-z 0-9 . _ : -, and not a CPR number (ten digits, or six, a dash and four). The key is stored in clear with
 * the document's entry and in the events' metadata, where no personal data may go; a meter's serial or a UUID is
 * what it is for. Only a key that is a CPR number as a whole is refused: about one UUID in a hundred holds six hex
 * digits, a dash and four that are all decimal, and refusing those would refuse the ids clients should send.
 */
export const IDEMPOTENCY_KEY_FORM = /^[A-Za-z0-9._:-]{1,64}$/;
/**
 * A character no key has, as the API documents' `not: {pattern}` beside IDEMPOTENCY_KEY_FORM's `pattern`: every engine
 * finds one alike, where the form's final `$` differs: Python's `re` (jsonschema) and Java's find() let a final line
 * break through (2026-11-30-0001\n), which the hub refuses.
 */
export const NOT_A_KEY_CHARACTER = '[^A-Za-z0-9._:-]';
const CPR_WHOLE = /^[0-9]{6}-?[0-9]{4}$/;

/**
 * A key that is, as a whole, a CPR number in any spelling (010203_4321, 01.02.03-4321, 01-02-2003-4321): only
 * separators besides its 10 (or, with a four-digit year after day and month, 12) digits. Never a UUID, nor a longer
 * id with digits in it, nor a date-stamped id (2026-11-30-0001): holdsCprNumber takes those (yyyymmdd-ssss, a number
 * inside a longer id), but here a refusal costs an upload, and the key with the patient's own number is refused below.
 */
const isWholeCpr = (value: string): boolean => {
  const digits = value.replace(/[-._:]/g, '');
  if (!/^\d+$/.test(digits)) return false;
  if (digits.length === 10) return holdsCprNumber(value);
  // ddmmyyyyssss read as ddmmyyssss: the century goes, the date check stays.
  return digits.length === 12 && holdsCprNumber(`${digits.slice(0, 4)}${digits.slice(6)}`);
};

/**
 * The keys isWholeCpr and CPR_WHOLE refuse, as one regular expression (ECMA-262 without lookaround, so that RE2 and
 * Java take it too): what the OpenAPI document says with `not: {pattern}`, so that a client generated from it does
 * not send a key the hub refuses (test/unit/idempotency-key-pattern.unit.spec.ts holds it to idempotencyKeyProblem).
 * Built from the rule above, not written out: ddmmyy with a real date in 19yy or 20yy (29 February when yy is
 * divisible by 4), 1-3 separators at the groups' edges or one run anywhere among the ten digits, any separators
 * around them; or twelve digits, separators anywhere, read as ddmm yyyy ssss with that date; or CPR_WHOLE, any date.
 */
const wholeCprKeyPattern = (): string => {
  // [0-9], not \d: Python's \d takes any script's digits.
  const any = '[0-9]';
  const dayMonths = (days: string[][], months: string[][]): string[][] => days.flatMap((d) => months.map((m) => [...d, ...m]));
  // Each real ddmmyy as six one-digit classes.
  const dates: string[][] = [
    ...dayMonths([['0', '[1-9]'], ['[12]', any], ['3', '[01]']], [['0', '[13578]'], ['1', '[02]']]).map((dm) => [...dm, any, any]),
    ...dayMonths([['0', '[1-9]'], ['[12]', any], ['3', '0']], [['0', '[469]'], ['1', '1']]).map((dm) => [...dm, any, any]),
    ...dayMonths([['0', '[1-9]'], ['1', any], ['2', '[0-8]']], [['0', '2']]).map((dm) => [...dm, any, any]),
    ...[['[02468]', '[048]'], ['[13579]', '[26]']].map((yy) => ['2', '9', '0', '2', ...yy]),
  ];
  const run = '[-._:]{1,3}';
  /** The ten digits (date and serial), with `gapAt(k)` before the k-th digit. */
  const tenDigits = (gapAt: (k: number) => string): string =>
    `(?:${dates.map((date) => [...date, any, any, any, any].map((digit, k) => (k === 0 ? digit : gapAt(k) + digit)).join('')).join('|')})`;
  const layouts = [
    tenDigits((k) => (k === 2 || k === 4 || k === 6 ? `(?:${run})?` : '')),
    ...[1, 3, 5, 7, 8, 9].map((at) => tenDigits((k) => (k === at ? run : ''))),
  ];
  // Twelve digits: the century (digits 5 and 6) is dropped, separators anywhere.
  const twelve = `(?:${dates.map(([d1, d2, m1, m2, y1, y2]) => [d1, d2, m1, m2, any, any, y1, y2, any, any, any, any].join('[-._:]*')).join('|')})`;
  return `^(?:[-._:]*(?:${layouts.join('|')})[-._:]*|[-._:]*${twelve}[-._:]*|${CPR_WHOLE.source.slice(1, -1)})$`;
};
export const WHOLE_CPR_KEY_PATTERN = wholeCprKeyPattern();

/** Why `value` is not a valid key, or null when it is. */
export const idempotencyKeyProblem = (value: unknown): string | null => {
  if (typeof value !== 'string' || !IDEMPOTENCY_KEY_FORM.test(value)) return '1-64 characters of A-Z a-z 0-9 . _ : -';
  if (CPR_WHOLE.test(value) || isWholeCpr(value)) return 'must not be a CPR number (it is stored in clear)';
  return null;
};

/** The key, checked; ValidationError `code` naming the field at `path` otherwise. */
export const checkIdempotencyKey = (value: unknown, path: string, code = 'invalid_request'): string => {
  const problem = idempotencyKeyProblem(value);
  if (problem !== null) throw new ValidationError(code, `${path} is not a valid id: ${problem}`, [{ path, message: problem }]);
  return value as string;
};

/**
 * The patient's own number in each spelling of "What looks like a CPR number" (ddmmyy ssss, ddmmyyyy ssss,
 * yyyymmdd ssss), as digits only. ddmmyyssss has no century: each a CPR number's year can have (1800-2099) is tried.
 */
const patientSpellings = (patientDigits: string): string[] => {
  const [dd, mm, yy, serial] = [patientDigits.slice(0, 2), patientDigits.slice(2, 4), patientDigits.slice(4, 6), patientDigits.slice(6)];
  const spellings = [patientDigits];
  for (const century of ['18', '19', '20']) spellings.push(`${dd}${mm}${century}${yy}${serial}`, `${century}${yy}${mm}${dd}${serial}`);
  return spellings;
};

/**
 * The key, checked, and not holding the patient's own CPR number in any spelling ("bp:2512481234",
 * "251248-1234-a", "19481225-1234", "obs-25-12-1948-1234"): a client that builds its ids from the patient's number
 * would put it in clear. Only the request's own patient is looked for, so a UUID or a date-stamped id is never
 * refused by chance (ten or twelve given digits in a row: ~1e-11).
 */
export const checkPatientIdempotencyKey = (value: unknown, patientDigits: string, path: string, code = 'invalid_request'): string => {
  const key = checkIdempotencyKey(value, path, code);
  const digits = key.replace(/[._:-]/g, '');
  if (patientSpellings(patientDigits).some((spelling) => digits.includes(spelling))) {
    const message = "must not hold the patient's CPR number (it is stored in clear)";
    throw new ValidationError(code, `${path} is not a valid id: ${message}`, [{ path, message }]);
  }
  return key;
};
