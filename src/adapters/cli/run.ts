import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fchmodSync, fsyncSync, lstatSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DateTime, IANAZone } from 'luxon';
import { MAX_DAYS, parseCommandLine, type Command, type ReadStdin } from './args';
import { EXIT, type ExitCode } from './exit-codes';
import { HubFailedError, HubRefusedError, HubUnreachableError, createHubClient, type HubClientOptions, type ObservationList, type ProblemDetails } from './hub-client';
import { renderReview } from './review-report';

/** Where `run` writes; process.stdout fits, and so does a string collector in a test. */
export type Output = { write(text: string): unknown; columns?: number | undefined; isTTY?: boolean | undefined };

export type RunDependencies = Readonly<{
  stdout: Output;
  stderr: Output;
  env: Readonly<Record<string, string | undefined>>;
  fetch?: typeof fetch;
  now?: () => Date;
  /** IANA zone for printed times; default the machine's. */
  zone?: string;
  newObservationId?: () => string;
  http?: Omit<HubClientOptions, 'fetch'>;
  /** Told the observation id just before an upload is sent: main.ts names it if the process ends with no answer. */
  onUploadSending?: (hint: string) => void;
  /** For `--patient -`: a line of stdin (the process's: readStdinLine); without it, `-` is a usage error. */
  readStdin?: ReadStdin;
}>;

type Upload = Extract<Command, { kind: 'upload' }>;
type Review = Extract<Command, { kind: 'review' }>;
type Export = Extract<Command, { kind: 'export' }>;

const versionOf = (): string => {
  try {
    // src/adapters/cli and dist/adapters/cli both sit three levels below the package root.
    return (JSON.parse(readFileSync(join(__dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
};

/**
 * The zone for printed times: the caller's, else this machine's. A TZ no zone database knows made node fall back to
 * UTC without a word, and the times were printed as "local time, UTC+00:00": said once, and labelled as UTC.
 */
const zoneChoice = (deps: RunDependencies): { zone: string; unknown: string | null } => {
  if (deps.zone) return { zone: deps.zone, unknown: null };
  const tz = deps.env.TZ?.replace(/^:/, '');
  if (!tz || IANAZone.isValidZone(tz)) return { zone: 'local', unknown: null };
  // A zoneinfo file's path (TZ=/usr/share/zoneinfo/Asia/Kolkata, as glibc and node take it; some container images set
  // TZ so): the zone the file is named after. It was warned about and every time printed in UTC, while node itself
  // showed them in that zone.
  const named = /^\/(?:[^/]+\/)*zoneinfo\/(.+)$/.exec(tz)?.[1];
  if (named !== undefined && IANAZone.isValidZone(named)) return { zone: named, unknown: null };
  return { zone: 'UTC', unknown: tz };
};

const zoneFor = (deps: RunDependencies): string => {
  const { zone, unknown } = zoneChoice(deps);
  if (unknown !== null) {
    const shown = /^[A-Za-z0-9_+\/-]{1,40}$/.test(unknown) ? ` (${unknown})` : '';
    deps.stderr.write(`rts: warning: TZ${shown} is not a time zone this machine knows (e.g. Europe/Copenhagen): times are shown in UTC\n`);
  }
  return zone;
};

/**
 * Box-drawing characters only where the terminal can show them: under LANG=C they came out as mojibake. ASCII when
 * TERM=dumb (a terminal that promises nothing, as screen readers' and editors' shells often are), and when no
 * locale is set at all (LC_ALL, LC_CTYPE and LANG unset or empty: the POSIX default, "C"), as well as when the
 * locale in force (LC_ALL, else LC_CTYPE, else LANG) does not name UTF-8.
 * Also under a Chinese, Japanese or Korean locale (zh_CN.UTF-8, ja_JP.UTF-8, ko_KR.UTF-8): the chart's marks and box
 * lines (▲ ▼ ◆ │ ─ ┤) are of ambiguous East Asian width, which the terminals of those locales commonly draw two
 * columns wide, so a chart laid out for --width 80 took up to 160 and its columns no longer lined up.
 */
export const asciiOnly = (env: RunDependencies['env']): boolean => {
  if (env.TERM === 'dumb') return true;
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG;
  return locale === undefined || locale === '' || !/utf-?8/i.test(locale) || /^(zh|ja|ko)([_.@-]|$)/i.test(locale);
};

/** The columns the output fits in: --width, else $COLUMNS (a pipe too), else the terminal's, else 80. */
export const outputColumns = (width: number | undefined, env: RunDependencies['env'], stdout: Output): number => {
  if (width !== undefined) return width;
  const columns = /^\s*\d{1,4}\s*$/.test(env.COLUMNS ?? '') ? Number(env.COLUMNS) : 0;
  if (columns > 0) return columns;
  return stdout.isTTY && stdout.columns ? stdout.columns : 80;
};

const localTime = (iso: string, zone: string): string => DateTime.fromISO(iso, { setZone: true }).setZone(zone).toFormat('yyyy-LL-dd HH:mm:ss ZZ');

/** A server error's lines: what failed, and the request id for the hub's log when the answer named one. */
const hubFailedLine = (e: HubFailedError): string =>
  `rts: the hub failed: ${e.problem ? describeProblem(e.problem) : `HTTP ${e.status}`}\n${e.requestId ? `  request id ${e.requestId} (for the hub's log)\n` : ''}`;

/** How to send a reading again that may be stored already, so that it is stored once: with its observation id. */
const resendHint = (observationId: string, given: boolean): string =>
  given
    ? `  Run the same command again (with the same --id) to find out: it is stored only once.\n`
    : `  Its observation id is ${observationId}. Run the same command again with --id ${observationId}: it is stored only once.\n`;

const upload = async (cmd: Upload, deps: RunDependencies): Promise<ExitCode> => {
  const client = createHubClient(cmd.url, clientOptions(deps, cmd));
  // An id of our own when none was given: our retry of a lost request then cannot store the reading twice.
  const observationId = cmd.observationId ?? (deps.newObservationId ?? (() => `rts-${randomUUID()}`))();
  const resend = resendHint(observationId, cmd.observationId !== undefined);
  deps.onUploadSending?.(resend);
  let result;
  try {
    result = await client.upload({
      observationId,
      patientId: cmd.patientId,
      systolic: cmd.systolic,
      diastolic: cmd.diastolic,
      ...(cmd.measuredAt !== undefined ? { measuredAt: cmd.measuredAt } : {}),
    });
  } catch (e) {
    // A server error, or an answer that is not the hub's (a proxy's 502 or 504, the hub's 503 after a commit that
    // may have gone through): the reading may be stored all the same. Said with its id, as for a lost answer, so a
    // re-run does not store it twice. Not for a 429 (refused before anything) nor a redirect (no hub answered).
    if (e instanceof HubFailedError && e.status !== 429 && !(e.status >= 300 && e.status < 400)) {
      deps.stderr.write(`${hubFailedLine(e)}  The reading may be stored all the same.\n${resend}`);
      return EXIT.serverError;
    }
    if (!(e instanceof HubUnreachableError && e.maybeDelivered)) throw e;
    // Sent, and no answer came: the hub may have stored it. A re-run with a new id would store it a second
    // time, so the id goes to the user (an id, not patient data; the hub takes the same id and values once).
    const why = e.reason.startsWith('no answer within ') ? ` ${e.reason.slice('no answer '.length)}` : ` (${e.reason})`;
    deps.stderr.write(
      `rts: the reading was sent to the hub at ${e.baseUrl}, but no answer came${why}${e.retried ? ', also after one retry' : ''}: it may be stored.\n${resend}`,
    );
    return EXIT.unreachable;
  }
  // The message first, the 39-digit id on a line of its own: a screen reader read it out in the middle of the message.
  const what = `${cmd.systolic}/${cmd.diastolic} mmHg at ${localTime(result.measuredAt, zoneFor(deps))}`;
  deps.stdout.write(result.created ? `Uploaded: ${what}\n` : `Already stored, nothing added: ${what}; observation id ${observationId} was uploaded before\n`);
  deps.stdout.write(`Document id: ${result.uniqueId}\n`);
  if (result.currentUniqueId) deps.stdout.write(`It was corrected since: these values are replaced. Current document id: ${result.currentUniqueId}\n`);
  return EXIT.ok;
};

/** A --from alone so far back that the interval up to now is wider than the hub takes (a usage error, exit 2). */
class FromTooEarly extends Error {}

/** How far this machine's clock may be off the hub's before `rts review --days` counts by the hub's. */
const CLOCK_SKEW_TOLERANCE_MS = 60_000;

/** The widest chart drawn when --width does not ask for more. */
const CHART_MAX_WIDTH = 100;

const review = async (cmd: Review, deps: RunDependencies): Promise<ExitCode> => {
  const client = createHubClient(cmd.url, clientOptions(deps, cmd));
  const localNow = (deps.now ?? (() => new Date()))();
  // The last N days ending 10 minutes ahead of now, as the web page does: the hub stores readings up to 5 minutes
  // ahead of its clock, and one it has just accepted must be listed (left to the hub, the interval ended at its
  // present second). Never wider than the hub's 366 days: --days 366 starts 10 minutes later. "Now" is the hub's
  // clock: the first answer's Date header tells it, and when this machine's clock is more than a minute off, the
  // interval is asked again by the hub's (a clock 20 minutes slow left out the newest readings).
  const endAt = (now: Date) => DateTime.fromJSDate(now).toUTC().startOf('second').plus({ minutes: 10 });
  const daysEndingAt = (now: Date, days: number) => {
    const end = endAt(now);
    return {
      from: DateTime.max(end.minus({ days, minutes: 10 }), end.minus({ days: MAX_DAYS })).toISO({ suppressMilliseconds: true })!,
      to: end.toISO({ suppressMilliseconds: true })!,
    };
  };
  // --from without --to ends where --days does, 10 minutes ahead of the hub's now (left to the hub it ended at its
  // present second, and hid a reading stored a few minutes ahead). A --from up to 10 minutes more than 366 days back
  // starts 366 days back, as --days 366 does. A --from later than that end is sent alone: the hub says what is wrong
  // with it (a --to of ours would be the field it named).
  const fromEndingAt = (now: Date, from: string) => {
    const end = endAt(now);
    const start = DateTime.fromISO(from, { setZone: true });
    if (Math.floor(start.toSeconds()) >= end.toSeconds()) return { from };
    const earliest = end.minus({ days: MAX_DAYS });
    // Further back the interval would be wider than the hub takes: refused here, naming the flag given (the hub
    // named body.to, a field the user never gave).
    if (start < earliest.minus({ minutes: 10 })) throw new FromTooEarly();
    const moved = start < earliest;
    return { from: moved ? earliest.toISO({ suppressMilliseconds: true })! : from, to: end.toISO({ suppressMilliseconds: true })! };
  };
  const given = cmd.range;
  const onlyFrom = given.kind === 'between' && given.to === undefined ? given.from : undefined;
  // The intervals that end by the clock (--days, --from alone), asked again by the hub's when ours is off.
  const byClock = given.kind === 'days' ? (now: Date) => daysEndingAt(now, given.days) : onlyFrom !== undefined ? (now: Date) => fromEndingAt(now, onlyFrom) : null;
  let list: ObservationList;
  try {
    const range = byClock?.(localNow) ?? (given.kind === 'between' ? { ...(given.from !== undefined ? { from: given.from } : {}), ...(given.to !== undefined ? { to: given.to } : {}) } : {});
    const sent = performance.now();
    let answer = await client.observations(cmd.patientId, range);
    // The Date header is the hub's clock during the request, to the second: only what lies beyond a minute is skew.
    const skewMs = answer.hubTime === undefined ? 0 : answer.hubTime.getTime() - localNow.getTime() - (performance.now() - sent) / 2;
    if (byClock !== null && answer.hubTime !== undefined && Math.abs(skewMs) > CLOCK_SKEW_TOLERANCE_MS) {
      const minutes = Math.round(Math.abs(skewMs) / 60_000);
      const counted = given.kind === 'days' ? `the last ${given.days} ${given.days === 1 ? 'day is' : 'days are'} counted by the hub's clock` : "the interval from --from is counted up to the hub's clock";
      deps.stderr.write(`rts: this machine's clock is ${minutes} minute${minutes === 1 ? '' : 's'} ${skewMs > 0 ? 'behind' : 'ahead of'} the hub's: ${counted}\n`);
      answer = await client.observations(cmd.patientId, byClock(answer.hubTime));
    }
    list = answer;
  } catch (e) {
    if (e instanceof FromTooEarly) {
      deps.stderr.write(`rts: --from lies more than ${MAX_DAYS} days back: give --to as well (at most ${MAX_DAYS} days after --from), or a later --from\n`);
      return EXIT.usage;
    }
    // A patient with no reading uploaded yet is known to the hub by nothing: no readings, as the web page says.
    if (!(e instanceof HubRefusedError && e.problem.code === 'unknown_patient')) throw e;
    deps.stdout.write('No readings have been uploaded for this patient yet.\n');
    return EXIT.ok;
  }
  const width = outputColumns(cmd.width, deps.env, deps.stdout);
  const chartWidth = cmd.width ?? Math.min(CHART_MAX_WIDTH, width);
  deps.stdout.write(renderReview(list, { width, chartWidth, chart: cmd.chart, zone: zoneFor(deps), notLocal: zoneChoice(deps).unknown !== null, ascii: cmd.ascii || asciiOnly(deps.env) }));
  return EXIT.ok;
};

/**
 * `text` into a new file of mode 0600 (an export is personal data): created exclusively (an existing file, or a
 * symlink planted in its place, is never written through) and fsynced; on failure nothing of it is left.
 */
export const writePrivateFile = (file: string, text: string): void => {
  const fd = openSync(file, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600); // whatever the umask left
    const bytes = Buffer.from(text, 'utf8');
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
    fsyncSync(fd);
    closeSync(fd);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* closed already */
    }
    rmSync(file, { force: true });
    throw e;
  }
};

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

const lstatOrNull = (path: string): ReturnType<typeof lstatSync> | null => {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
};

const exportPatient = async (cmd: Export, deps: RunDependencies): Promise<ExitCode> => {
  // The file is checked before the request, so a wrong --out costs no export (and no audit entry); never named in a
  // message, as a path may hold the CPR number (export-251248-1234.json).
  if (cmd.out !== undefined) {
    const parent = dirname(resolve(cmd.out));
    // lstat, not exists: a symlink whose target is missing is there too, and the exclusive open would refuse it only
    // after the export had been made (and audited).
    if (lstatOrNull(cmd.out) !== null) {
      deps.stderr.write(`rts: the file given with --out exists already: the export is not written over a file; give a new name\nRun 'rts export --help' for usage.\n`);
      return EXIT.usage;
    }
    if (!existsSync(parent) || !statSync(parent).isDirectory()) {
      deps.stderr.write(`rts: the directory of the file given with --out does not exist\nRun 'rts export --help' for usage.\n`);
      return EXIT.usage;
    }
  }
  const client = createHubClient(cmd.url, clientOptions(deps, cmd));
  const exported = await client.exportPatient(cmd.patientId);
  const text = `${JSON.stringify(exported, null, 2)}\n`;
  if (cmd.out === undefined) deps.stdout.write(text);
  else {
    try {
      writePrivateFile(cmd.out, text);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      deps.stderr.write(`rts: the export could not be written to the file given with --out${code ? ` (${code})` : ''}: nothing of it was left there; run the command again\n`);
      return EXIT.files;
    }
  }
  const counts = [
    plural(exported.observations.length, 'reading', 'readings'),
    plural(exported.consultations.length, 'consultation', 'consultations'),
    plural(exported.audit.entries.length, 'audit entry', 'audit entries'),
  ].join(', ');
  const erased = exported.erasure ? `The patient was erased${exported.erasure.erasedAt ? ` at ${localTime(exported.erasure.erasedAt, zoneFor(deps))}` : ''}: their readings no longer exist. ` : '';
  deps.stderr.write(`${erased}Exported ${counts}${cmd.out !== undefined ? ' to the file given with --out (mode 0600)' : ''}.\n`);
  return EXIT.ok;
};

/** The token of this command's environment (RTS_TOKEN) and its --timeout, unless the caller's options give them. */
const clientOptions = (deps: RunDependencies, cmd: Readonly<{ timeoutMs: number }>): HubClientOptions => ({
  token: deps.env.RTS_TOKEN || null,
  timeoutMs: cmd.timeoutMs,
  ...deps.http,
  ...(deps.fetch ? { fetch: deps.fetch } : {}),
});

/** What to do about a 401 or 403, which the hub's own words ("send a bearer token") do not tell a CLI user. */
const accessHint = (status: number, env: RunDependencies['env']): string | null => {
  if (status === 401) {
    return env.RTS_TOKEN
      ? 'the token in RTS_TOKEN was not accepted (expired, or made for another hub)'
      : 'no token was sent (this hub has no development login): set RTS_TOKEN to your access token';
  }
  if (status === 403 && env.RTS_TOKEN) return 'the token in RTS_TOKEN does not allow this (it is for another patient, or another role)';
  return null;
};

/** The hub's names of the fields it checks, as the user typed them: the flags of each command. */
const flagsOf = (cmd: Command): Readonly<Record<string, string>> => {
  if (cmd.kind === 'upload') return { patientId: '--patient', systolic: '--systolic', diastolic: '--diastolic', measuredAt: '--at', observationId: '--id' };
  if (cmd.kind === 'review') {
    return {
      patientId: '--patient',
      from: cmd.range.kind === 'days' ? '--days' : '--from',
      ...(cmd.range.kind === 'between' && cmd.range.to !== undefined ? { to: '--to' } : {}),
      ...(cmd.range.kind === 'days' ? { days: '--days' } : {}),
    };
  }
  if (cmd.kind === 'export') return { patientId: '--patient' };
  return {};
};

type FieldError = NonNullable<ProblemDetails['errors']>[number];

/** What to do about the field errors a user meets most, in the CLI's words. */
const suggestionFor = (field: string, e: FieldError, flag: string | undefined): string | null => {
  if (field === 'measuredAt' && /in the future/.test(e.message)) return 'Give the time you measured, or leave --at out (the time is then now).';
  if (field === 'measuredAt' && /date of birth/.test(e.message)) return 'Check the date in --at (its year), and the CPR number.';
  if (field === 'systolic' && /above the diastolic/.test(e.message)) return 'The systolic pressure is the higher number: check that --systolic and --diastolic are not swapped.';
  if ((field === 'systolic' || field === 'diastolic') && /must be between/.test(e.message)) return `Check the number given with ${flag ?? `--${field}`}.`;
  return null;
};

/**
 * Title, then the detail, then one line per field error, named by the flag that gave the field (measuredAt is
 * --at), with a suggestion for the common ones. The hub's detail for invalid input restates the field errors in
 * one sentence ("the observation is not valid: systolic must be above ..."): where every field error is already in
 * it, the list says the same more clearly, and the detail is left out.
 */
const describeProblem = (p: ProblemDetails, flags: Readonly<Record<string, string>> = {}): string => {
  const lines = [`${p.title} (HTTP ${p.status}${p.code ? `, ${p.code}` : ''})`];
  const errors = p.errors ?? [];
  const restated = errors.length > 0 && p.detail !== undefined && errors.every((e) => p.detail!.includes(e.message));
  if (p.detail && !restated) lines.push(`  ${p.detail}`);
  for (const e of errors) {
    // "body.from", "systolic.unit": the field is the part after a body./query. prefix, up to the next dot.
    const path = e.path.replace(/^(?:body|query)\./, '');
    const [field = path, ...rest] = path.split('.');
    const flag = Object.hasOwn(flags, field) ? flags[field] : undefined;
    lines.push(`  - ${flag !== undefined ? `${flag}${rest.length > 0 ? ` (${rest.join('.')})` : ''}` : e.path}: ${e.message}`);
    const suggestion = suggestionFor(field, e, flag);
    if (suggestion !== null) lines.push(`    ${suggestion}`);
  }
  return lines.join('\n');
};

/**
 * A hub that was not reached, or failed, or was someone else (a wrong URL, a proxy): said on stderr, with its exit
 * code (4 or 5). For every command that calls the hub, so that `rts dlq` and `rts erasures apply` answer as the
 * exit codes in their help say.
 */
export const reportHubTrouble = (e: HubUnreachableError | HubFailedError, stderr: Output): ExitCode => {
  if (e instanceof HubUnreachableError) {
    stderr.write(`rts: ${e.message}\n`);
    return EXIT.unreachable;
  }
  if (e.status >= 300 && e.status < 400) stderr.write(`rts: ${e.problem?.title ?? `the server redirects (HTTP ${e.status})`}\n`);
  else if (e.status === 429) stderr.write(`rts: the hub is busy (HTTP 429, rate limited) and did not take the request: send it again in a moment (it is safe to)\n`);
  else stderr.write(hubFailedLine(e));
  return EXIT.serverError;
};

/** `rts ...`: parse, act, print; resolves with the exit code. Never throws, never prints a stack. */
export const run = async (argv: readonly string[], deps: RunDependencies): Promise<ExitCode> => {
  const parsed = parseCommandLine(argv, deps.env, deps.readStdin);
  if (!parsed.ok) {
    deps.stderr.write(`rts: ${parsed.message}\nRun '${parsed.helpCommand}' for usage.\n`);
    return EXIT.usage;
  }
  const cmd = parsed.command;
  try {
    switch (cmd.kind) {
      case 'help':
        deps.stdout.write(cmd.text);
        return EXIT.ok;
      case 'version':
        deps.stdout.write(`rts ${versionOf()}\n`);
        return EXIT.ok;
      case 'upload':
        return await upload(cmd, deps);
      case 'review':
        return await review(cmd, deps);
      case 'export':
        return await exportPatient(cmd, deps);
      default: {
        const never: never = cmd;
        throw new Error(`unhandled command ${(never as Command).kind}`);
      }
    }
  } catch (e) {
    if (e instanceof HubRefusedError) {
      const hint = accessHint(e.problem.status, deps.env);
      deps.stderr.write(`rts: the hub refused the request: ${describeProblem(e.problem, flagsOf(cmd))}\n${hint ? `  ${hint}\n` : ''}`);
      return EXIT.refused;
    }
    if (e instanceof HubUnreachableError || e instanceof HubFailedError) return reportHubTrouble(e, deps.stderr);
    deps.stderr.write(`rts: unexpected error: ${(e as Error)?.name ?? 'Error'}${deps.env.RTS_DEBUG ? `\n${(e as Error)?.stack ?? String(e)}` : ''}\n`);
    return EXIT.internal;
  }
};
