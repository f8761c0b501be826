import { z } from 'zod';
import { holdsCprNumber } from '../domain/monitoring/cpr-like';
import { PATIENT_KEY_PATTERN } from '../application/ports/patient-keys';
import { ValidationError } from '../domain/shared/errors';
import { IDEMPOTENCY_KEY_FORM } from '../domain/shared/idempotency-key';
import { nearName } from '../adapters/validation/near-name';
import { holdsOneLineControl } from '../domain/shared/text-limits';

/**
 * The library's options, checked at its edge as HTTP checks its requests: they go into events in clear, which an
 * erasure does not reach. A correlation id is a request id's form (HTTP replaces one that may hold CPR digits,
 * mayHoldCprDigits, with its own; the library refuses one that holds a CPR number, holdsCprNumber, since the caller
 * chose it and a refusal costs the call: digits glued into a timestamp are let through); `by` is a token subject's
 * (1-200 characters, one line, not a CPR number). The ids (observationId, correctionId) are checked further down, against the reading's patient.
 */
const correlationId = z
  .string()
  .regex(IDEMPOTENCY_KEY_FORM, { message: '1-64 characters of A-Z a-z 0-9 . _ : -', abort: true })
  .refine((v) => !holdsCprNumber(v), 'must not hold a CPR number (it is stored in clear)');
const id = z.string();

export const RECORD_OPTIONS = z.strictObject({ observationId: id.optional(), correlationId: correlationId.optional(), measuredAtDefaulted: z.boolean().optional() });
export const SUBMIT_OPTIONS = z.strictObject({ observationId: id.optional(), correlationId: correlationId.optional() });
export const CORRECTION_OPTIONS = z.strictObject({ correctionId: id.optional(), correlationId: correlationId.optional() });
const byWho = (what: string) =>
  z
    .string()
    .trim()
    .min(1, `must name who asked for the ${what}`)
    .max(200, 'at most 200 characters')
    // One line, as a token's subject is over HTTP: a line break or a bidirectional override is shown in the trail.
    .refine((v) => !holdsOneLineControl(v), 'no control characters, line breaks or bidirectional overrides')
    .refine((v) => !holdsCprNumber(v), 'a name or pseudonym, not a CPR number (it is stored in clear and outlives the erasure)');
const by = byWho('erasure');
export const ERASURE_OPTIONS = z.strictObject({ by, correlationId: correlationId.optional(), ifUnknown: z.enum(['refuse', 'erase']).optional() });
export const ERASURE_BY_KEY_OPTIONS = z.strictObject({ by, correlationId: correlationId.optional() });
/** `by` becomes the audit entry's subject, as a token's subject does over HTTP (the trail, like an event, outlives the erasure). */
export const EXPORT_OPTIONS = z.strictObject({ by: byWho('export'), correlationId: correlationId.optional() });
export const PATIENT_KEY = z.string().regex(PATIENT_KEY_PATTERN, 'a pseudonymous patient key: p and 32 hex digits');
/** As GET /erasures pages them. */
export const MAX_ERASURES_PAGE = 10_000;
export const LIST_ERASURES_OPTIONS = z.strictObject({
  // A position the store can hold (a signed 64-bit integer): a larger one reached SQLite's binding (RangeError), as
  // GET /erasures?after= once answered 500.
  after: z.bigint().nonnegative().max(2n ** 63n - 1n, 'at most 2^63 - 1 (a store position)').optional(),
  limit: z.number().int().min(1).max(MAX_ERASURES_PAGE).optional(),
});

/**
 * What zod found wrong with an option object called `name`, each naming the option (`name.field`) and what is wrong,
 * never the value itself (it may be the personal data it was refused for); an unknown key is named only when it is a
 * plain name. checkedOptions and openOptionProblems word their problems alike through it.
 */
const optionIssues = (issues: readonly z.core.$ZodIssue[], name: string, known: readonly string[]): { path: string; message: string }[] =>
  issues.map((issue) =>
    issue.code === 'unrecognized_keys'
      ? { path: name, message: `unknown option${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.map((k) => unknownKey(k, known)).join(', ')}` }
      : { path: [name, ...issue.path.map(String)].join('.'), message: issue.code === 'invalid_type' ? `must be ${issue.expected === 'object' ? 'an object' : `a ${issue.expected}`}` : issue.message },
  );

/** An unknown key as a problem names it: a plain name, with the option it is a typo of (`dataDr (did you mean dataDir?)`). */
const unknownKey = (key: string, known: readonly string[]): string => {
  if (!/^[A-Za-z_]{1,40}$/.test(key)) return '(a name not repeated here)';
  const near = nearName(key, known);
  return near === undefined ? key : `${key} (did you mean ${near}?)`;
};

/** The options an object schema takes (none for another schema). */
const keysOf = (...schemas: readonly z.ZodType[]): string[] => schemas.flatMap((schema) => (schema instanceof z.ZodObject ? Object.keys(schema.shape) : []));

/**
 * `value` as `schema` reads it, or ValidationError `invalid_request` naming the option (`name.field`) and what is
 * wrong, never the value itself (it may be the personal data it was refused for).
 */
export const checkedOptions = <S extends z.ZodType>(schema: S, value: unknown, name: string): z.output<S> => {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const details = optionIssues(result.error.issues, name, keysOf(schema));
  throw new ValidationError('invalid_request', `${name} is not valid: ${details.map((d) => `${d.path} ${d.message}`).join('; ')}`, details);
};

/** A logger the library can use: pino's methods, which it calls (a `console` lacks `child`, and an erasure that had
 * happened then threw). */
const LOGGER = z.custom<unknown>(
  (v) => typeof v === 'object' && v !== null && ['child', 'trace', 'debug', 'info', 'warn', 'error', 'fatal'].every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
  'must be a pino logger (child, trace, debug, info, warn, error, fatal)',
);
/** openTeleMed's options: one of the two forms, nothing else (an unknown key, or both forms at once, was ignored). */
// The secret's length checked here, by the option's name: as RTS_PSEUDONYM_SECRET's it was refused by the variable's.
const PSEUDONYM_SECRET = z.instanceof(Buffer, { message: 'must be a Buffer' }).refine((b) => b.length >= 16, 'must be at least 16 bytes (32 hex digits)');
const IN_MEMORY_OPTIONS = z.strictObject({ inMemory: z.literal(true), pseudonymSecret: PSEUDONYM_SECRET.optional(), logger: LOGGER.optional() });
const DATA_DIR_OPTIONS = z.strictObject({
  dataDir: z.string(),
  // RTS_* names, as the server reads them from its environment; a lower-case or other name was silently ignored.
  settings: z.record(z.string().regex(/^RTS_[A-Z0-9_]+$/), z.string()).optional(),
  logger: LOGGER.optional(),
  inMemory: z.literal(false).optional(),
});

/** What is wrong with `given` as openTeleMed's options (a ConfigError's problems), or none. */
export const openOptionProblems = (given: unknown): string[] => {
  if (typeof given !== 'object' || given === null) return ['options: an object, { dataDir } or { inMemory: true }'];
  const inMemory = (given as { inMemory?: unknown }).inMemory === true;
  // Not a boolean ('true' from an environment variable): said as that, not as "dataDir: must be a string" and
  // "expected false", which the other form's schema answered.
  const flag = (given as { inMemory?: unknown }).inMemory;
  if (flag !== undefined && typeof flag !== 'boolean') return ['inMemory: must be true (everything in memory) or left out with a dataDir; a boolean, not a string'];
  if (inMemory && 'dataDir' in given) return ['options: { inMemory: true } keeps everything in memory; it takes no dataDir (give one or the other)'];
  const result = (inMemory ? IN_MEMORY_OPTIONS : DATA_DIR_OPTIONS).safeParse(given);
  if (result.success) return [];
  return result.error.issues.map((issue) => {
    if (issue.code === 'invalid_key') {
      const key = String(issue.path.at(-1));
      return `settings: ${/^[A-Za-z0-9_]{1,40}$/.test(key) ? `${key} is not` : 'a key given is not'} a setting: settings are named RTS_... in capitals, as the server reads them`;
    }
    const [problem] = optionIssues([issue], 'options', keysOf(IN_MEMORY_OPTIONS, DATA_DIR_OPTIONS));
    return `${problem!.path.replace(/^options\./, '')}: ${problem!.message}`;
  });
};
