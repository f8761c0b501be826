import { BackupError } from '../backup/data-dir-backup';
import { IncompleteErasureRecordError, readRecordedErasures, type ErasureSource, type RecordedErasure } from '../backup/recorded-erasures';
import { commandsHint, fail, hubUrlOf, parseFlagsAndArguments, timeoutOf } from './args';
import { redactCprDigits } from '../../domain/monitoring/cpr-like';
import { EXIT, EXIT_CODES_HELP, type ExitCode } from './exit-codes';
import { answerFailure, createHubRequester, HubRefusedError, HubUnreachableError, notTheHubsAnswer, readJson } from './hub-client';
import { TIMEOUT_HELP, type DlqDependencies } from './dlq';
import { reportHubTrouble } from './run';

/**
 * `rts erasures`: repeating, on a hub restored from a backup, the erasures made after that backup was taken. The
 * hub keeps no CPR numbers, so the erasures are repeated by pseudonymous key, read from a record of them: the
 * live data directory or a newer backup, a saved answer of GET /erasures, or the hub's log
 * (recorded-erasures.ts). `list` reads the record (files only); `apply` sends each key to the hub
 * (PUT /erasures/{patientKey}, operator), which is idempotent: a key already erased there is only counted.
 * A consultation's content erased by id (DELETE /consultations/{id}/content, no patient's erasure reaches it) is in
 * the same record and repeated the same way; one the restored copy does not have (requested after the backup) is
 * counted as not present, not a failure: there is nothing of it to erase.
 */
export const ERASURES_HELP = `Usage:
  rts erasures list --from SOURCE
  rts erasures apply --from SOURCE [--url URL] [--timeout S]

  list    print the erasures SOURCE records, one JSON line each:
    {"event":"PatientErased","patientKey":"p…","erasedAt":"…"}
    {"event":"ConsultationContentErased","consultationId":"…","erasedAt":"…"}
          (a consultation's content erased by id; those erased with their
          patient are not listed: the patient's erasure repeats them)
  apply   erase each of them at the hub: a patient by pseudonymous key (PUT
          /erasures/{patientKey}), a consultation's content by id (DELETE
          /consultations/{id}/content); those already erased there are
          counted, not changed, and consultations the hub does not have are
          counted as not present. Run it on a hub restored from a backup,
          before others reach it

SOURCE is one of
  a backup directory (checked against its backup.json) or a data directory
    (read only; a running hub's may be read): the erasures in its events,
    and the erased keys of its key file (one erased while a backup ran)
  a file: a saved answer of GET /erasures, the output of 'rts erasures list',
    or the hub's log (its "patient erased" and "consultation content erased"
    lines; other lines are skipped)

Only pseudonymous keys, consultation ids and times are read or printed; no CPR
number is needed.
apply needs an operator's token in $RTS_TOKEN (node dist/bootstrap/token.js
--role operator); without one, a local hub's development login is used. The
hub is found at --url, else $RTS_URL, else http://127.0.0.1:8080 (https://, or
http:// to this machine; another one needs RTS_INSECURE_HTTP=on).
${TIMEOUT_HELP}, for each erasure.

${EXIT_CODES_HELP}
`;

/** What an operator's command against the hub's HTTP API is given: the same as `rts dlq`'s. */
export type ErasuresDependencies = DlqDependencies;

const OPTIONS = { from: { type: 'string' }, url: { type: 'string' }, timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;

type Parsed = Readonly<{ kind: 'help' }> | Readonly<{ kind: 'list'; from: string }> | Readonly<{ kind: 'apply'; from: string; url: string; timeoutMs: number }>;

const parse = (argv: readonly string[], env: ErasuresDependencies['env']): Parsed => {
  const { values, positionals } = parseFlagsAndArguments(argv, OPTIONS);
  const [action, ...extra] = positionals;
  if (values.help || action === undefined || action === 'help') return { kind: 'help' };
  if (action !== 'list' && action !== 'apply') fail(`unknown erasures command${commandsHint(action, ['list', 'apply'])}`);
  if (extra.length > 0) fail('too many arguments');
  if (!values.from) fail('missing --from: a backup, a data directory, or a file of erasures');
  if (action === 'list') {
    for (const flag of ['url', 'timeout'] as const) if (values[flag] !== undefined) fail(`--${flag} belongs to rts erasures apply; list reads files only`);
    return { kind: 'list', from: values.from! };
  }
  let url = '';
  try {
    url = hubUrlOf(values.url, env);
  } catch (e) {
    fail((e as Error).message);
  }
  return { kind: 'apply', from: values.from!, url, timeoutMs: timeoutOf(values.timeout, env) };
};

/** A message naming a path, CPR-like digits in it redacted, as the hub redacts them in what it answers. */
const withoutCpr = (message: string): string => redactCprDigits(message, '[redacted]');

const describeSource = (s: ErasureSource): string => {
  const consultations = s.erasures.filter((e) => e.kind === 'consultation').length;
  const kinds = consultations > 0 ? ` (${s.erasures.length - consultations} of patients, ${consultations} of consultations' content)` : '';
  return `${s.erasures.length} erasure(s)${kinds} recorded in the ${s.kind === 'data_dir' ? 'data directory' : s.kind}${s.skippedLines > 0 ? ` (${s.skippedLines} other line(s) skipped)` : ''}`;
};

/** The line `list` prints of an erasure: as the hub logs it, so a list and a log read the same. */
const listLine = (e: RecordedErasure): string =>
  JSON.stringify(e.kind === 'patient' ? { event: 'PatientErased', patientKey: e.patientKey, erasedAt: e.erasedAt } : { event: 'ConsultationContentErased', consultationId: e.consultationId, erasedAt: e.erasedAt });

export const runErasures = async (argv: readonly string[], deps: ErasuresDependencies): Promise<ExitCode> => {
  let cmd: Parsed;
  try {
    cmd = parse(argv, deps.env);
  } catch (e) {
    deps.stderr.write(`rts: ${(e as Error).message}\nRun 'rts erasures --help' for usage.\n`);
    return EXIT.usage;
  }
  if (cmd.kind === 'help') {
    deps.stdout.write(ERASURES_HELP);
    return EXIT.ok;
  }
  let source: ErasureSource;
  try {
    source = readRecordedErasures(cmd.from);
  } catch (e) {
    // Messages name the source's path, which may hold a CPR number (erasure-251248-1234.json): its digits are left out.
    if (e instanceof BackupError) {
      deps.stderr.write(`rts: ${withoutCpr(e.message)}\n`);
      return e.code === 'damaged' || e.code === 'check_failed' ? EXIT.files : EXIT.usage;
    }
    if (e instanceof IncompleteErasureRecordError) {
      deps.stderr.write(`rts: ${withoutCpr(e.message)}\n  nothing was applied\n`);
      return EXIT.files;
    }
    deps.stderr.write(`rts: ${withoutCpr(`${cmd.from} could not be read: ${(e as Error).message}`)}\n`);
    return EXIT.files;
  }
  if (cmd.kind === 'list') {
    for (const e of source.erasures) deps.stdout.write(`${listLine(e)}\n`);
    deps.stderr.write(`${describeSource(source)}\n`);
    return EXIT.ok;
  }

  deps.stdout.write(`${describeSource(source)}; applying them at ${cmd.url}:\n`);
  const requester = createHubRequester(cmd.url, { timeoutMs: cmd.timeoutMs, token: deps.env.RTS_TOKEN || null, ...(deps.fetch ? { fetch: deps.fetch } : {}) });
  const counts = { erased: 0, already: 0, unknownHere: 0, notPresent: 0 };
  for (const [i, e] of source.erasures.entries()) {
    let res: Response;
    const [path, method, what] =
      e.kind === 'patient' ? [`/erasures/${e.patientKey}`, 'PUT', e.patientKey] : [`/consultations/${encodeURIComponent(e.consultationId)}/content`, 'DELETE', `consultation ${e.consultationId}'s content`];
    try {
      // Idempotent, so safe to send again after a lost answer.
      ({ res } = await requester.send(path, { method, headers: { accept: 'application/json' } }, { role: 'operator' }, { retry: true }));
    } catch (error) {
      if (!(error instanceof HubUnreachableError)) throw error;
      deps.stderr.write(`rts: ${error.message}\n  ${i} of ${source.erasures.length} applied; run the same command again (it is idempotent)\n`);
      return EXIT.unreachable;
    }
    const body = (await readJson(res)) as { erased?: unknown; alreadyErased?: boolean; known?: boolean; code?: string } | undefined;
    // A consultation requested after the backup: this copy has nothing of it to erase.
    if (e.kind === 'consultation' && res.status === 404 && body?.code === 'consultation_not_found') {
      counts.notPresent++;
      continue;
    }
    const rerun = `  ${i} of ${source.erasures.length} applied; run the same command again (it is idempotent)\n`;
    // Only the hub's own refusal is exit 3: a wrong URL is exit 4, a busy hub or a proxy's page exit 5; and a 200 that
    // is not the hub's answer (a server answering `{}`) is no erasure, never counted as done.
    const failure =
      res.status < 200 || res.status >= 300
        ? answerFailure(res, body, cmd.url)
        : body?.erased !== true || typeof body.alreadyErased !== 'boolean'
          ? notTheHubsAnswer(res, cmd.url)
          : null;
    if (failure !== null && !(failure instanceof HubRefusedError)) {
      const code = reportHubTrouble(failure, deps.stderr);
      deps.stderr.write(`  the erasure of ${what} was not confirmed\n${rerun}`);
      return code;
    }
    if (failure !== null) {
      deps.stderr.write(
        `rts: the hub refused the erasure of ${what}: ${failure.problem.title}${failure.problem.code ? ` (${failure.problem.code})` : ''}\n${failure.problem.detail ? `  ${failure.problem.detail}\n` : ''}` +
          (res.status === 401 || res.status === 403 ? "  erasing needs an operator's token: set RTS_TOKEN (node dist/bootstrap/token.js --role operator)\n" : '') +
          rerun,
      );
      return EXIT.refused;
    }
    // The hub's answer (checked above: erased, and whether before).
    if (body?.alreadyErased) counts.already++;
    else counts.erased++;
    if (body?.known === false) counts.unknownHere++;
  }
  deps.stdout.write(
    `Done: ${counts.erased} erased now, ${counts.already} already erased here` +
      (counts.unknownHere > 0 ? `; ${counts.unknownHere} of them had nothing in this copy (recorded, so their uploads stay refused)` : '') +
      (counts.notPresent > 0
        ? `; ${counts.notPresent} consultation(s) not present in this copy (requested after the backup: nothing to erase; should one arrive again, erase its content again)`
        : '') +
      '.\n',
  );
  return EXIT.ok;
};
