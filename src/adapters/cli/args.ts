import { parseArgs, type ParseArgsConfig } from 'node:util';
import { birthDateOf } from '../../domain/monitoring/cpr';
import { ValidationError } from '../../domain/shared/errors';
import { offsetDateTimeMillis } from '../../domain/shared/iso-instant';
import { checkPatientIdempotencyKey, idempotencyKeyProblem } from '../../domain/shared/idempotency-key';
import { MAX_INTERVAL_DAYS } from '../../domain/monitoring/time-interval';
import { EXIT_CODES_HELP } from './exit-codes';
import { nearName } from '../validation/near-name';
import { isLoopbackHost } from '../validation/loopback-host';

/**
 * The command line of `rts`, parsed and checked without any I/O. Everything that can be known to be wrong
 * before a request is sent (a missing flag, a CPR number of the wrong form, a word where a number belongs) is
 * a usage error here; what only the hub can judge (plausible ranges, systolic above diastolic) is left to it.
 *
 * Messages never repeat the values typed: the patient's CPR number is personal data, and a terminal's
 * scroll-back or a wrapper's log is no place for it.
 */
export const DEFAULT_URL = 'http://127.0.0.1:8080';
export const DEFAULT_DAYS = 7;
export const MAX_DAYS = 366;
/** --width: the narrowest is the chart's (chart.ts CHART_MIN_WIDTH). */
export const MIN_WIDTH = 30;
export const MAX_WIDTH = 200;
/** How long a request waits for the hub's answer: above the hub's own worst case (see hub-client's DEFAULT_TIMEOUT_MS). */
export const DEFAULT_TIMEOUT_S = 60;
export const MAX_TIMEOUT_S = 600;

export type ReviewRange = Readonly<{ kind: 'days'; days: number }> | Readonly<{ kind: 'between'; from?: string; to?: string }>;

export type Command =
  | Readonly<{ kind: 'help'; text: string }>
  | Readonly<{ kind: 'version' }>
  | Readonly<{
      kind: 'upload';
      url: string;
      patientId: string;
      systolic: number;
      diastolic: number;
      measuredAt?: string;
      observationId?: string;
      timeoutMs: number;
    }>
  | Readonly<{ kind: 'review'; url: string; patientId: string; range: ReviewRange; width?: number; ascii: boolean; chart: boolean; timeoutMs: number }>
  | Readonly<{ kind: 'export'; url: string; patientId: string; out?: string; timeoutMs: number }>;

export type ParseResult = Readonly<{ ok: true; command: Command }> | Readonly<{ ok: false; message: string; /** Where the full usage is: `rts upload --help`. */ helpCommand: string }>;

const CPR_FORM = /^\d{6}-\d{4}$/;
const OBSERVATION_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const PRESSURE = /^\d{1,3}(\.\d{1,2})?$/;

/** Why not --patient CPR: said in every help text that takes a patient. */
const PATIENT_ADVICE = `
A command line is shown to every user of this machine (ps) and kept in your
shell's history: give the CPR number on stdin (--patient - < FILE, or type it
after --patient - and press Enter) or in RTS_PATIENT rather than on it.
`;

export const MAIN_HELP = `rts - the TeleMed HomeClient: upload and review blood pressure readings

Usage:
  rts upload --patient CPR --systolic MMHG --diastolic MMHG
             [--at ISO] [--id ID] [--url URL] [--timeout S]
  rts review --patient CPR [--days N | --from ISO --to ISO] [--url URL]
             [--timeout S] [--width N] [--ascii] [--no-chart]
  rts export --patient CPR [--out FILE] [--url URL] [--timeout S]
  rts <command> --help
  rts --help | --version

Commands:
  upload   send one reading (systolic/diastolic in mmHg) to the hub
  review   list and chart the readings of an interval (default: last 7 days)
  export   everything the hub holds of one patient, as JSON (their right of
           access): readings, consultations, audit trail, erasure

For the hub's operators (rts <command> --help for each):
  dlq      list, show, replay and discard dead-lettered messages
  backup   copy the hub's data directory while it runs; restore puts it back
  erasures list the erasures a backup, data directory or log records, and
           apply them to a restored hub (by pseudonymous key)

The hub is found at --url, else $RTS_URL, else ${DEFAULT_URL}:
https://, or http:// to this machine (another one needs RTS_INSECURE_HTTP=on).
${PATIENT_ADVICE}

${EXIT_CODES_HELP}
`;

export const UPLOAD_HELP = `Usage: rts upload --patient CPR --systolic MMHG --diastolic MMHG
                  [--at ISO] [--id ID] [--url URL] [--timeout S]

Send one blood pressure reading to the hub.

Options:
  --patient CPR      the patient's CPR number, ddmmyy-ssss; "-" reads it from
                     stdin (one line); without --patient: $RTS_PATIENT
  --systolic MMHG    systolic pressure in mmHg, e.g. 126
  --diastolic MMHG   diastolic pressure in mmHg, e.g. 70
  --at ISO           when it was measured (default: now), ISO-8601 with offset,
                     e.g. 2026-05-10T08:15:00+02:00
  --id ID            observation id, 1-64 of A-Za-z0-9._:- (default: random).
                     The same id sent again is stored once: "already stored".
  --url URL          the hub (default: $RTS_URL, else ${DEFAULT_URL})
  --timeout S        seconds to wait for the hub's answer, 1-${MAX_TIMEOUT_S} (default:
                     $RTS_TIMEOUT, else ${DEFAULT_TIMEOUT_S})
  -h, --help         this text

On success it prints the reading, then the document's id on a line of its
own ("Document id: 2.25..."). A refusal names each refused value by its flag
(--at for a time in the future) and says what to do.

A network error is retried once with the same observation id, so a reading is
never stored twice. When no answer came, the observation id is printed: give
it with --id when you send the reading again, and it is stored once.
${PATIENT_ADVICE}

${EXIT_CODES_HELP}
`;

export const REVIEW_HELP = `Usage: rts review --patient CPR [--days N | --from ISO --to ISO] [--url URL]
                  [--timeout S] [--width N] [--ascii] [--no-chart]

List the readings of an interval in local time with a summary (count,
average, lowest and highest, latest), and chart systolic and diastolic
pressure.

Options:
  --patient CPR   the patient's CPR number, ddmmyy-ssss; "-" reads it from
                  stdin (one line); without --patient: $RTS_PATIENT
  --days N        the last N days, 1-${MAX_DAYS} (default: ${DEFAULT_DAYS}), up to 10 minutes
                  after now (a reading taken a little ahead is listed)
  --from ISO      start of the interval (included), ISO-8601 with offset
  --to ISO        end of the interval (excluded), ISO-8601 with offset, at
                  least a second after --from; without it, 10 minutes after
                  now, as for --days
  --width N       columns to fit the output in, ${MIN_WIDTH}-${MAX_WIDTH} (default: $COLUMNS,
                  else the terminal's width, else 80); the chart is at most
                  100 wide unless --width says more
  --ascii         draw the chart with ASCII characters only (the default when
                  TERM=dumb, or the locale is not UTF-8 or not set: LANG=C,
                  or is Chinese, Japanese or Korean: zh_CN.UTF-8)
  --no-chart      leave the chart out: the table and summary only (also when
                  $RTS_NO_CHART is set, and not empty or 0)
  --url URL       the hub (default: $RTS_URL, else ${DEFAULT_URL})
  --timeout S     seconds to wait for the hub's answer, 1-${MAX_TIMEOUT_S} (default:
                  $RTS_TIMEOUT, else ${DEFAULT_TIMEOUT_S})
  -h, --help      this text

An interval with no readings has no chart, and says so. The chart is drawn
also when the output is not a terminal (a pipe, a file): use --no-chart to
leave it out there.
${PATIENT_ADVICE}
${EXIT_CODES_HELP}
`;

export const EXPORT_HELP = `Usage: rts export --patient CPR [--out FILE] [--url URL] [--timeout S]

Export everything the hub holds of one patient, for their right of access
(GDPR art. 15): every reading ever stored (corrected ones too, with what
replaced what), the consultations that name them (their texts unless erased),
every access to their data and every refusal recorded in the audit trail, and
whether and when they were erased. JSON, as POST /patients/export answers it.

Options:
  --patient CPR   the patient's CPR number, ddmmyy-ssss; "-" reads it from
                  stdin (one line); without --patient: $RTS_PATIENT
  --out FILE      write the export to FILE, created with mode 0600 (it is
                  personal data); FILE must not exist yet. Without --out it
                  goes to stdout
  --url URL       the hub (default: $RTS_URL, else ${DEFAULT_URL})
  --timeout S     seconds to wait for the hub's answer, 1-${MAX_TIMEOUT_S} (default:
                  $RTS_TIMEOUT, else ${DEFAULT_TIMEOUT_S})
  -h, --help      this text

The token comes from $RTS_TOKEN: the patient's own, or an operator's (the data
protection officer's: node dist/bootstrap/token.js --role operator); without
one, a local hub's development login is used, as the patient. The export is
recorded in the patient's audit trail (patient.export). A patient the hub holds
nothing of is refused (exit 3, unknown_patient).
${PATIENT_ADVICE}
${EXIT_CODES_HELP}
  (6 also: the export could not be written to --out; nothing is left of it)
`;

const COMMON = {
  url: { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const UPLOAD_OPTIONS = {
  ...COMMON,
  patient: { type: 'string' },
  systolic: { type: 'string' },
  diastolic: { type: 'string' },
  at: { type: 'string' },
  id: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const EXPORT_OPTIONS = {
  ...COMMON,
  patient: { type: 'string' },
  out: { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const REVIEW_OPTIONS = {
  ...COMMON,
  patient: { type: 'string' },
  days: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  width: { type: 'string' },
  ascii: { type: 'boolean' },
  'no-chart': { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** A usage error found before anything is done; its message never repeats a typed value. */
export class UsageError extends Error {}

export const fail = (message: string): never => {
  throw new UsageError(message);
};

/**
 * What to say of an unknown command: ` (did you mean list?)` when what was typed is a typo of one of `names`, then
 * `; the commands are a, b and c`. Only names of the list are shown, never what was typed.
 */
export const commandsHint = (typed: string | undefined, names: readonly string[]): string => {
  const near = typed === undefined ? undefined : nearName(typed, names);
  return `${near === undefined ? '' : ` (did you mean ${near}?)`}; the commands are ${names.slice(0, -1).join(', ')} and ${names.at(-1)}`;
};

/** rts's commands, in the order its help lists them. */
const COMMAND_NAMES = ['upload', 'review', 'export', 'dlq', 'backup', 'restore', 'erasures'];

type FlagValues<O extends NonNullable<ParseArgsConfig['options']>> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>>['values'];

/**
 * node:util's parseArgs, strict, its errors reworded so that no typed value (it could be a CPR number) is repeated:
 * the flags, and the plain arguments of a command that takes some (`rts dlq show ID`).
 */
export const parseFlagsAndArguments = <O extends NonNullable<ParseArgsConfig['options']>>(
  args: readonly string[],
  options: O,
): { values: FlagValues<O>; positionals: string[] } => {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options, strict: true, allowPositionals: true, tokens: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    // Letters and dashes only (a typed value, a CPR number, is never repeated); capitals too: --Patient was
    // answered a bare "unknown option".
    const name = /'(?:-[A-Za-z], )?(--?[A-Za-z][A-Za-z-]*)(?=['\s])/.exec((e as Error).message)?.[1];
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const near = name?.startsWith('--') ? nearName(name.slice(2), Object.keys(options)) : undefined;
      fail(name && name.length <= 20 ? `unknown option ${name}${near === undefined ? '' : ` (did you mean --${near}?)`}` : 'unknown option');
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /does not take an argument/.test((e as Error).message)) fail(name ? `option ${name} takes no value` : 'an option takes no value');
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      fail(name ? `option ${name} needs a value${/ambiguous/.test((e as Error).message) ? ` (write ${name}=VALUE for a value starting with "-")` : ''}` : 'an option is missing its value');
    }
    fail('the options could not be read');
  }
  // A flag given twice took its last value without a word: `--patient A --patient B` stored B's reading.
  const seen = new Set<string>();
  for (const token of parsed!.tokens ?? []) {
    if (token.kind !== 'option' || (options[token.name] as { multiple?: boolean } | undefined)?.multiple) continue;
    if (seen.has(token.name)) fail(`--${token.name} is given more than once: give it once`);
    seen.add(token.name);
  }
  return { values: parsed!.values as FlagValues<O>, positionals: parsed!.positionals };
};

/** node:util's parseArgs for a command that takes options only. */
export const parseFlags = <O extends NonNullable<ParseArgsConfig['options']>>(args: readonly string[], options: O): FlagValues<O> => {
  const { values, positionals } = parseFlagsAndArguments(args, options);
  if (positionals.length > 0) fail(`unexpected argument${positionals.length > 1 ? 's' : ''}; options take the form --name value`);
  return values;
};

const required = (value: string | undefined, flag: string): string => (value === undefined || value === '' ? fail(`missing ${flag}`) : value);

/** A CPR number in the seed's form with a real date (the value is never repeated in the error); `source` names where it came from. */
export const patientOf = (value: string | undefined, source = '--patient'): string => {
  const cpr = required(value, source);
  if (!CPR_FORM.test(cpr)) fail(`${source} must be a CPR number of the form ddmmyy-ssss (six digits, a hyphen, four digits)`);
  if (birthDateOf(cpr) === null) fail(`${source} is not a valid CPR number: ddmmyy is not a real date`);
  return cpr;
};

/** What `--patient -` reads: the first line of stdin. */
export type ReadStdin = () => string;

/**
 * The patient's CPR number, from the first of: `--patient CPR`; `--patient -`, one line read from stdin; RTS_PATIENT.
 * A command line is shown to every local user (ps, /proc/<pid>/cmdline) and kept in shell history; stdin is not, and
 * the environment is readable only by the same user and root (/proc/<pid>/environ). Stdin is read only for `-`.
 */
export const patientFrom = (flag: string | undefined, env: Readonly<Record<string, string | undefined>>, readStdin?: ReadStdin): string => {
  if (flag === '-') {
    if (!readStdin) return fail('--patient -: stdin cannot be read here');
    let line: string;
    try {
      line = readStdin().replace(/\r?\n$/, '').trim();
    } catch {
      return fail('--patient -: stdin could not be read');
    }
    if (line === '') fail('--patient -: stdin held no CPR number (give it as one line, e.g. from a file: --patient - < FILE)');
    return patientOf(line, '--patient - (stdin)');
  }
  if (flag !== undefined) return patientOf(flag);
  if (env.RTS_PATIENT) return patientOf(env.RTS_PATIENT.trim(), 'RTS_PATIENT');
  return fail('missing --patient (the CPR number; or --patient - to read it from stdin, or RTS_PATIENT)');
};

/** The patient, resolved at once, or (for `--patient -`) when called: stdin is read only once every other flag is right. */
const patientAfterFlags = (flag: string | undefined, env: Readonly<Record<string, string | undefined>>, readStdin?: ReadStdin): (() => string) => {
  if (flag === '-') return () => patientFrom(flag, env, readStdin);
  const cpr = patientFrom(flag, env, readStdin);
  return () => cpr;
};

const pressureOf = (value: string | undefined, flag: string): number => {
  const raw = required(value, flag);
  if (/^\d+,\d+$/.test(raw)) fail(`${flag} takes a decimal point, not a comma: e.g. 126.5`);
  if (!PRESSURE.test(raw)) fail(`${flag} must be a number of mmHg with at most two decimals, e.g. 126 or 126.5`);
  return Number(raw);
};

/**
 * As the hub accepts it, by the hub's own rule (the domain's offsetDateTimeMillis): an ISO-8601 date-time with an
 * explicit offset, so "when" never depends on a zone; the offset as RFC 3339 has it (at most 23:59: +24:00 went to
 * the hub and came back a refusal, exit 3), a day that exists, at most 40 characters. A refusal is exit 2 here.
 */
const instantOf = (value: string | undefined, flag: string): string | undefined => {
  if (value === undefined) return undefined;
  // Not Date.parse: that takes 2026-02-30 for 2 March and T24:00 for the next day's midnight.
  if (Number.isNaN(offsetDateTimeMillis(value))) fail(`${flag} must be an ISO-8601 date-time with an offset, e.g. 2026-05-10T08:15:00+02:00`);
  return value;
};

/** Whole seconds since the epoch of a date-time instantOf took: the hub compares bounds at whole seconds. */
const secondsOf = (value: string): number => Math.floor(offsetDateTimeMillis(value) / 1000);

const integerOf = (value: string | undefined, flag: string, min: number, max: number): number | undefined => {
  if (value === undefined) return undefined;
  const n = /^\d{1,4}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) fail(`${flag} must be a whole number from ${min} to ${max}`);
  return n;
};

/** --url, else $RTS_URL, else the default; https:, or http: to loopback (or with RTS_INSECURE_HTTP=on); without a trailing slash. */
export const hubUrlOf = (flag: string | undefined, env: Readonly<Record<string, string | undefined>>): string => {
  const raw = flag ?? (env.RTS_URL || undefined) ?? DEFAULT_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail(`${flag !== undefined ? '--url' : 'RTS_URL'} is not a URL, e.g. ${DEFAULT_URL}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`${flag !== undefined ? '--url' : 'RTS_URL'} must be an http:// or https:// URL`);
  if (url.search || url.hash || raw.includes('#') || raw.includes('?')) fail(`${flag !== undefined ? '--url' : 'RTS_URL'} must not have a query or fragment`);
  // Never repeated: it holds a password. fetch refuses such URLs anyway; a token goes in RTS_TOKEN.
  if (url.username || url.password) fail(`${flag !== undefined ? '--url' : 'RTS_URL'} must not hold a user name or password (give a token in RTS_TOKEN)`);
  // CPR numbers, readings and the token: not across a network in clear. The hub's own machine is fine (the default).
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && env.RTS_INSECURE_HTTP !== 'on') {
    fail(
      `${flag !== undefined ? '--url' : 'RTS_URL'} http://${url.host} is plain http to another machine: CPR numbers, readings and RTS_TOKEN would cross the network in clear. ` +
        'Use https:// (the hub behind its TLS proxy), or set RTS_INSECURE_HTTP=on for a network you control end to end',
    );
  }
  return url.toString().replace(/\/+$/, '');
};

/** --timeout, else $RTS_TIMEOUT, else the default: whole seconds, in milliseconds. Every command that calls the hub takes it. */
export const timeoutOf = (flag: string | undefined, env: Readonly<Record<string, string | undefined>>): number =>
  1000 * (flag !== undefined ? integerOf(flag, '--timeout', 1, MAX_TIMEOUT_S)! : env.RTS_TIMEOUT ? integerOf(env.RTS_TIMEOUT.trim(), 'RTS_TIMEOUT', 1, MAX_TIMEOUT_S)! : DEFAULT_TIMEOUT_S);

const parseUpload = (args: readonly string[], env: Readonly<Record<string, string | undefined>>, readStdin?: ReadStdin): Command => {
  const v = parseFlags(args, UPLOAD_OPTIONS);
  if (v.help) return { kind: 'help', text: UPLOAD_HELP };
  const patient = patientAfterFlags(v.patient, env, readStdin);
  const systolic = pressureOf(v.systolic, '--systolic');
  const diastolic = pressureOf(v.diastolic, '--diastolic');
  const measuredAt = instantOf(v.at, '--at');
  if (v.id !== undefined && !OBSERVATION_ID.test(v.id)) fail('--id must be 1-64 characters of A-Z a-z 0-9 . _ : -');
  if (v.id !== undefined && idempotencyKeyProblem(v.id) !== null) fail(`--id ${idempotencyKeyProblem(v.id)!}`);
  const url = hubUrlOf(v.url, env);
  const timeoutMs = timeoutOf(v.timeout, env);
  const patientId = patient();
  if (v.id !== undefined) {
    // The hub's rule: an id must not hold this patient's CPR number in any spelling (ids are stored in clear).
    try {
      checkPatientIdempotencyKey(v.id, patientId.replace('-', ''), '--id');
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      fail(`--id ${e.details[0]?.message ?? 'is not a valid id'}`);
    }
  }
  return {
    kind: 'upload',
    url,
    timeoutMs,
    patientId,
    systolic,
    diastolic,
    ...(measuredAt !== undefined ? { measuredAt } : {}),
    ...(v.id !== undefined ? { observationId: v.id } : {}),
  };
};

const parseReview = (args: readonly string[], env: Readonly<Record<string, string | undefined>>, readStdin?: ReadStdin): Command => {
  const v = parseFlags(args, REVIEW_OPTIONS);
  if (v.help) return { kind: 'help', text: REVIEW_HELP };
  const patient = patientAfterFlags(v.patient, env, readStdin);
  const days = integerOf(v.days, '--days', 1, MAX_DAYS);
  const from = instantOf(v.from, '--from');
  const to = instantOf(v.to, '--to');
  if (days !== undefined && (from !== undefined || to !== undefined)) fail('give either --days or --from/--to, not both');
  // The hub's rule (whole seconds, at most 366 days), here rather than as its refusal (exit 3): 10:00:00.1 to
  // 10:00:00.9 is an empty interval to the hub, which answered it 422 invalid_interval.
  if (from !== undefined && to !== undefined && secondsOf(to) <= secondsOf(from)) fail('--to must lie after --from (at least a whole second: the hub drops fractions of a second)');
  if (from !== undefined && to !== undefined && secondsOf(to) - secondsOf(from) > MAX_INTERVAL_DAYS * 86_400) {
    fail(`--from and --to may be at most ${MAX_INTERVAL_DAYS} days apart`);
  }
  const width = integerOf(v.width, '--width', MIN_WIDTH, MAX_WIDTH);
  const url = hubUrlOf(v.url, env);
  const timeoutMs = timeoutOf(v.timeout, env);
  const range: ReviewRange =
    from !== undefined || to !== undefined
      ? { kind: 'between', ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) }
      : { kind: 'days', days: days ?? DEFAULT_DAYS };
  // RTS_NO_CHART as NO_COLOR is read (set and not empty), except that 0 means no: RTS_NO_CHART=0 draws it.
  const noChartEnv = env.RTS_NO_CHART !== undefined && env.RTS_NO_CHART.trim() !== '' && env.RTS_NO_CHART.trim() !== '0';
  const chart = !(v['no-chart'] === true || noChartEnv);
  return { kind: 'review', url, patientId: patient(), range, ascii: v.ascii === true, chart, timeoutMs, ...(width !== undefined ? { width } : {}) };
};

const parseExport = (args: readonly string[], env: Readonly<Record<string, string | undefined>>, readStdin?: ReadStdin): Command => {
  const v = parseFlags(args, EXPORT_OPTIONS);
  if (v.help) return { kind: 'help', text: EXPORT_HELP };
  const patient = patientAfterFlags(v.patient, env, readStdin);
  // Whether the file exists is checked by the command, before its request (this parse does no I/O).
  if (v.out !== undefined && v.out.trim() === '') fail('--out needs a file name');
  const url = hubUrlOf(v.url, env);
  const timeoutMs = timeoutOf(v.timeout, env);
  return { kind: 'export', url, timeoutMs, patientId: patient(), ...(v.out !== undefined ? { out: v.out } : {}) };
};

const COMMANDS: Readonly<Record<string, { parse: typeof parseUpload; help: string }>> = {
  upload: { parse: parseUpload, help: UPLOAD_HELP },
  review: { parse: parseReview, help: REVIEW_HELP },
  export: { parse: parseExport, help: EXPORT_HELP },
};

/** argv without node and the script: `['upload', '--patient', ...]`; readStdin serves `--patient -` (and is called only then). */
export const parseCommandLine = (argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}, readStdin?: ReadStdin): ParseResult => {
  const [first, ...rest] = argv;
  if (first === undefined) return { ok: false, message: `missing command${commandsHint(undefined, COMMAND_NAMES)}`, helpCommand: 'rts --help' };
  if (first === '--help' || first === '-h') return { ok: true, command: { kind: 'help', text: MAIN_HELP } };
  if (first === '--version' || first === '-V' || first === '-v') return { ok: true, command: { kind: 'version' } };
  if (first === 'help') {
    const topic = rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    return { ok: true, command: { kind: 'help', text: topic?.help ?? MAIN_HELP } };
  }
  const command = Object.hasOwn(COMMANDS, first) ? COMMANDS[first] : undefined;
  if (!command) {
    const shown = /^[a-z][a-z-]{0,19}$/.test(first) ? ` '${first}'` : '';
    return { ok: false, message: `unknown command${shown}${commandsHint(first, COMMAND_NAMES)}`, helpCommand: 'rts --help' };
  }
  try {
    return { ok: true, command: command.parse(rest, env, readStdin) };
  } catch (e) {
    if (e instanceof UsageError) return { ok: false, message: e.message, helpCommand: `rts ${first} --help` };
    throw e;
  }
};
