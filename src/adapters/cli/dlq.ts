import { commandsHint, DEFAULT_TIMEOUT_S, fail, hubUrlOf, MAX_TIMEOUT_S, parseFlagsAndArguments, timeoutOf } from './args';
import { EXIT, EXIT_CODES_HELP, type ExitCode } from './exit-codes';
import { z } from 'zod';
import { answerFailure, createHubRequester, HubRefusedError, HubUnreachableError, notTheHubsAnswer, readJson } from './hub-client';
import { reportHubTrouble, type Output } from './run';

/** The most dead letters one list shows (the hub's MAX_LIST_LIMIT). */
const MAX_LIST_LIMIT = 1000;

/** --timeout in an operator's command's help, as upload's and review's say it: a line of its own. */
export const TIMEOUT_HELP = `--timeout S is how many seconds to wait for the hub's answer, 1-${MAX_TIMEOUT_S}
(default: $RTS_TIMEOUT, else ${DEFAULT_TIMEOUT_S})`;

/**
 * `rts dlq`: the operators' dead letter commands, over the hub's HTTP API (GET /dead-letters,
 * GET /dead-letters/{id}, POST /dead-letters/{id}/replay, POST /dead-letters/{id}/discard). Same exit codes as the
 * rest of `rts`.
 */
export const DLQ_HELP = `Usage:
  rts dlq list [--limit N] [--json] [--url URL] [--timeout S]
  rts dlq show ID [--json] [--url URL] [--timeout S]
  rts dlq replay ID [--by NAME] [--reason TEXT] [--url URL] [--timeout S]
  rts dlq discard ID --reason TEXT [--url URL] [--timeout S]

  list     the dead-lettered messages (browsed, not consumed), oldest first
  show     one, by its dead letter id, envelope id, message id or content
           id: reason, source queue, attempts, body, and the replays
           recorded for it
  replay   send it back to the queue it came from (recorded in the hub's
           event store under the token's subject; --by, default $USER, is
           kept as a note beside it; neither it nor --reason may hold a CPR
           number)
  discard  remove it from the dead letter queue for good, after review
           (garbage, a duplicate, a message with personal data that must not
           be kept); by its envelope id, every copy of the message. Recorded
           in the hub's event store (never the body) under the token's
           subject, with --reason (required, no CPR number), and in the audit
           trail. Not sent twice: after a lost answer, look with show first

The hub is found at --url, else $RTS_URL, else http://127.0.0.1:8080 (https://,
or http:// to this machine; another one needs RTS_INSECURE_HTTP=on).
${TIMEOUT_HELP}.
The commands need an operator's token in $RTS_TOKEN (mint one with:
node dist/bootstrap/token.js --role operator); without one, a local hub's
development login is used.

${EXIT_CODES_HELP}
`;

export type DlqDependencies = Readonly<{
  stdout: Output;
  stderr: Output;
  env: Readonly<Record<string, string | undefined>>;
  fetch?: typeof fetch;
}>;

type Summary = {
  id: string;
  envelopeId: string | null;
  type: string | null;
  systemId: string | null;
  reason: string | null;
  sourceQueue: string | null;
  attempts: number | null;
  deadLetteredAt: string | null;
  replayCount: number;
};

const ID = /^[A-Za-z0-9._:-]{1,200}$/;

/**
 * Each command's answer, checked as far as it is printed: a 200 that is not the hub's (a wrong URL that answers `{}`)
 * is exit 5, never "The dead letter queue is empty." nor an unexpected error.
 */
const ANSWERS = {
  list: z.object({ items: z.array(z.object({ id: z.string(), replayCount: z.number() }).passthrough()), more: z.boolean().optional() }).passthrough(),
  show: z.object({ id: z.string(), body: z.string(), applicationProperties: z.record(z.string(), z.unknown()), replays: z.array(z.object({}).passthrough()) }).passthrough(),
  replay: z.object({ id: z.string(), sourceQueue: z.string(), moved: z.number(), recordedIn: z.string() }).passthrough(),
  discard: z.object({ id: z.string(), removed: z.number(), recordedIn: z.string() }).passthrough(),
} as const;

/** What to do about a 401 or 403: dead letters are the operators'. */
const TOKEN_HINT = "dead letters need an operator's token: set RTS_TOKEN (node dist/bootstrap/token.js --role operator)";

const OPTIONS = {
  url: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  by: { type: 'string' },
  reason: { type: 'string' },
  timeout: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The command line (args.ts's wording: no typed value is repeated); a UsageError for what is wrong. */
const parse = (argv: readonly string[], env: DlqDependencies['env']) => {
  const { values, positionals } = parseFlagsAndArguments(argv, OPTIONS);
  const [action, id, ...extra] = positionals;
  if (values.help || action === undefined || action === 'help') return { kind: 'help' as const };
  const actions = ['list', 'show', 'replay', 'discard'];
  if (!actions.includes(action)) fail(`unknown dlq command${commandsHint(action, actions)}`);
  if (extra.length > 0) fail('too many arguments');
  if (action !== 'list' && (id === undefined || !ID.test(id))) fail(`${action} needs the ID of a dead letter (letters, digits . _ : -)`);
  if (action === 'list' && id !== undefined) fail('list takes no ID');
  let limit: number | undefined;
  if (values.limit !== undefined) {
    limit = /^\d{1,4}$/.test(values.limit) ? Number(values.limit) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIST_LIMIT)) fail(`--limit must be a whole number from 1 to ${MAX_LIST_LIMIT}`);
  }
  if (values.by !== undefined && !/^.{1,100}$/.test(values.by)) fail('--by must be 1-100 characters');
  if (values.reason !== undefined && !/^.{1,500}$/.test(values.reason)) fail('--reason must be 1-500 characters');
  if (action === 'discard') {
    if (values.reason === undefined || values.reason.trim() === '') fail('discard needs --reason TEXT: why the message is discarded (it is recorded)');
    if (values.by !== undefined) fail("discard takes no --by: it is recorded under your token's subject");
  }
  let url = '';
  try {
    url = hubUrlOf(values.url, env);
  } catch (e) {
    fail((e as Error).message);
  }
  const timeoutMs = timeoutOf(values.timeout, env);
  return { kind: action as 'list' | 'show' | 'replay' | 'discard', id: id ?? '', url, timeoutMs, limit, json: values.json === true, by: values.by, reason: values.reason };
};

type DiscardRecord = { at: string; by: string; reason: string };
const discardLine = (r: DiscardRecord): string => `discarded ${r.at} by ${r.by} (${r.reason})`;

const line = (d: Summary): string =>
  [d.id, d.deadLetteredAt ?? '-', d.sourceQueue ?? '-', `attempts=${d.attempts ?? '-'}`, d.type ?? '-', d.systemId ?? '-', d.replayCount > 0 ? `replayed=${d.replayCount}` : '', `reason: ${d.reason ?? '-'}`]
    .filter(Boolean)
    .join('  ');

export const runDlq = async (argv: readonly string[], deps: DlqDependencies): Promise<ExitCode> => {
  let cmd: ReturnType<typeof parse>;
  try {
    cmd = parse(argv, deps.env);
  } catch (e) {
    const message = (e as Error).message;
    deps.stderr.write(`rts: ${message}\nRun 'rts dlq --help' for usage.\n`);
    return EXIT.usage;
  }
  if (cmd.kind === 'help') {
    deps.stdout.write(DLQ_HELP);
    return EXIT.ok;
  }
  const post = cmd.kind === 'replay' || cmd.kind === 'discard';
  const path =
    cmd.kind === 'list'
      ? `/dead-letters${cmd.limit !== undefined ? `?limit=${cmd.limit}` : ''}`
      : `/dead-letters/${encodeURIComponent(cmd.id)}${post ? `/${cmd.kind}` : ''}`;
  const payload =
    cmd.kind === 'replay'
      ? { ...(cmd.by !== undefined ? { by: cmd.by } : { by: deps.env.USER ?? 'operator' }), ...(cmd.reason !== undefined ? { reason: cmd.reason } : {}) }
      : cmd.kind === 'discard'
        ? { reason: cmd.reason }
        : undefined;
  const requester = createHubRequester(cmd.url, {
    timeoutMs: cmd.timeoutMs,
    token: deps.env.RTS_TOKEN || null,
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
  });
  let res: Response;
  try {
    ({ res } = await requester.send(
      path,
      {
        method: post ? 'POST' : 'GET',
        headers: { accept: 'application/json', ...(post ? { 'content-type': 'application/json' } : {}) },
        ...(payload !== undefined ? { body: JSON.stringify(payload) } : {}),
      },
      { role: 'operator' },
      // A replay or discard whose answer was lost may have taken the message off the queue already: not sent twice.
      { retry: !post },
    ));
  } catch (e) {
    if (!(e instanceof HubUnreachableError)) throw e;
    // Sent, and no answer: the hub may have done it. Sent again blindly, a replay would find the message gone (404),
    // or a discard after a replay another's; so it says what to look at first.
    const maybeDone = post && e.maybeDelivered
      ? `  The ${cmd.kind} was sent and may have been done: run 'rts dlq show ${cmd.id}' before you ${cmd.kind} it again (a dead letter it took is gone from the list).\n`
      : '';
    deps.stderr.write(`rts: ${e.message}\n${maybeDone}`);
    return EXIT.unreachable;
  }
  const json = await readJson(res);
  if (res.status < 200 || res.status >= 300) {
    // As the other commands read answers: a wrong URL (a 404 or another 4xx that is not the hub's) is exit 4, a busy
    // hub (429) or a proxy's error page exit 5; only the hub's own refusal is exit 3.
    const failure = answerFailure(res, json, cmd.url);
    if (!(failure instanceof HubRefusedError)) return reportHubTrouble(failure, deps.stderr);
    const p = failure.problem;
    deps.stderr.write(`rts: the hub refused the request: ${p.title} (HTTP ${res.status}${p.code ? `, ${p.code}` : ''})\n${p.detail ? `  ${p.detail}\n` : ''}`);
    if (res.status === 401 || res.status === 403) deps.stderr.write(`  ${TOKEN_HINT}\n`);
    const discarded = (json as { discard?: DiscardRecord } | undefined)?.discard;
    if (res.status === 410 && discarded) deps.stderr.write(`  ${discardLine(discarded)}\n`);
    return EXIT.refused;
  }
  if (!ANSWERS[cmd.kind].safeParse(json).success) return reportHubTrouble(notTheHubsAnswer(res, cmd.url), deps.stderr);
  const body = json as Record<string, unknown>;
  if (cmd.json) {
    deps.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return EXIT.ok;
  }
  if (cmd.kind === 'list') {
    const items = (body.items ?? []) as Summary[];
    // A list cut at its limit says so: on-call must not read "100 dead letter(s)" as the size of the queue.
    const more = body.more === true ? `${items.length} dead letter(s) shown, the oldest; more are on the queue (--limit, at most ${MAX_LIST_LIMIT}, shows more)` : `${items.length} dead letter(s)`;
    deps.stdout.write(items.length === 0 ? 'The dead letter queue is empty.\n' : `${items.map(line).join('\n')}\n${more}\n`);
  } else if (cmd.kind === 'show') {
    const d = body as unknown as Summary & { body: string; applicationProperties: Record<string, unknown>; replays: { at: string; by: string; note?: string | null; reason: string | null }[]; discards?: DiscardRecord[] };
    deps.stdout.write(
      [
        `id:            ${d.id}`,
        `envelope id:   ${d.envelopeId ?? '-'}`,
        `type:          ${d.type ?? '-'}   system: ${d.systemId ?? '-'}`,
        `reason:        ${d.reason ?? '-'}`,
        `source queue:  ${d.sourceQueue ?? '-'}   attempts: ${d.attempts ?? '-'}   at: ${d.deadLetteredAt ?? '-'}`,
        `properties:    ${JSON.stringify(d.applicationProperties)}`,
        `replays:       ${d.replays.length === 0 ? 'none' : d.replays.map((r) => `${r.at} by ${r.by}${r.note ? ` [${r.note}]` : ''}${r.reason ? ` (${r.reason})` : ''}`).join('; ')}`,
        ...((d.discards ?? []).length > 0 ? [`discards:      ${d.discards!.map(discardLine).join('; ')} (earlier copies)`] : []),
        'body:',
        d.body,
        '',
      ].join('\n'),
    );
  } else if (cmd.kind === 'replay') {
    const r = body as { id: string; sourceQueue: string; moved: number; recordedIn: string };
    deps.stdout.write(`Replayed ${r.id} to ${r.sourceQueue} (${r.moved} message${r.moved === 1 ? '' : 's'} moved); recorded in ${r.recordedIn}\n`);
  } else {
    const r = body as { id: string; removed: number; recordedIn: string };
    deps.stdout.write(`Discarded ${r.id} (${r.removed} message${r.removed === 1 ? '' : 's'} removed from the dead letter queue); recorded in ${r.recordedIn}\n`);
  }
  return EXIT.ok;
};
