import { DLQ_HELP } from '../../src/adapters/cli/dlq';
import { ERASURES_HELP } from '../../src/adapters/cli/erasures';
import { DEFAULT_URL, EXPORT_HELP, MAIN_HELP, REVIEW_HELP, UPLOAD_HELP, parseCommandLine, type Command } from '../../src/adapters/cli/args';
import { EXIT } from '../../src/adapters/cli/exit-codes';
import { run } from '../../src/adapters/cli/run';

const CPR = '251248-1234';

const parsed = (argv: string[], env: Record<string, string> = {}): Command => {
  const result = parseCommandLine(argv, env);
  if (!result.ok) throw new Error(`usage error: ${result.message}`);
  return result.command;
};

const usageError = (argv: string[], env: Record<string, string> = {}): string => {
  const result = parseCommandLine(argv, env);
  if (result.ok) throw new Error(`parsed as ${result.command.kind}`);
  return result.message;
};

/** run() with collected output and a fetch that must not be called. */
const runLocally = async (argv: string[]) => {
  let out = '';
  let err = '';
  const fetch = jest.fn(() => Promise.reject(new Error('no request may be sent')));
  const code = await run(argv, { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {}, fetch: fetch as unknown as typeof globalThis.fetch });
  return { code, out, err, fetch };
};

describe('rts command line: upload', () => {
  it('reads the seed reading with its flags', () => {
    expect(parsed(['upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70'])).toEqual({
      kind: 'upload',
      url: DEFAULT_URL,
      patientId: CPR,
      systolic: 126,
      diastolic: 70,
      timeoutMs: 60_000,
    });
  });

  it('takes --at, --id, --url and the --flag=value form', () => {
    expect(parsed(['upload', `--patient=${CPR}`, '--systolic=126.5', '--diastolic', '70', '--at', '2026-05-10T08:15:00+02:00', '--id', 'meter-7:0042', '--url', 'https://hub.example:9000/'])).toEqual({
      kind: 'upload',
      url: 'https://hub.example:9000',
      patientId: CPR,
      systolic: 126.5,
      diastolic: 70,
      measuredAt: '2026-05-10T08:15:00+02:00',
      observationId: 'meter-7:0042',
      timeoutMs: 60_000,
    });
  });

  it('waits for the hub longer than its own worst case (PostgreSQL: connect 10 s and a statement 30 s), or --timeout / $RTS_TIMEOUT', () => {
    const base = ['upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70'];
    expect((parsed(base) as { timeoutMs: number }).timeoutMs).toBeGreaterThan(40_000);
    expect(parsed(base, { RTS_TIMEOUT: '90' })).toMatchObject({ timeoutMs: 90_000 });
    expect(parsed([...base, '--timeout', '120'], { RTS_TIMEOUT: '90' })).toMatchObject({ timeoutMs: 120_000 });
    expect(parsed(['review', '--patient', CPR, '--timeout', '5'])).toMatchObject({ timeoutMs: 5_000 });
    expect(usageError([...base, '--timeout', '0'])).toMatch(/--timeout must be a whole number from 1 to 600/);
    expect(usageError(base, { RTS_TIMEOUT: 'soon' })).toMatch(/RTS_TIMEOUT must be a whole number/);
  });

  it('finds the hub at --url, else $RTS_URL, else the default', () => {
    const base = ['upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70'];
    expect(parsed(base)).toMatchObject({ url: 'http://127.0.0.1:8080' });
    expect(parsed(base, { RTS_URL: 'https://hub.example' })).toMatchObject({ url: 'https://hub.example' });
    expect(parsed([...base, '--url', 'https://other:1234'], { RTS_URL: 'https://hub.example' })).toMatchObject({ url: 'https://other:1234' });
    expect(usageError(base, { RTS_URL: 'ftp://hub.example' })).toMatch(/RTS_URL must be an http/);
    expect(usageError([...base, '--url', 'not a url'])).toMatch(/--url is not a URL/);
  });

  it('refuses plain http to another machine (CPR numbers, readings and the token in clear) unless RTS_INSECURE_HTTP=on', () => {
    const base = ['upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70'];
    for (const url of ['http://hub.example:8080', 'http://10.0.0.7:8080', 'http://127.0.0.1.hub.example', 'http://localhost.hub.example']) {
      expect(usageError([...base, '--url', url])).toMatch(/^--url http:\/\/\S+ is plain http to another machine: .* Use https:\/\/ .* RTS_INSECURE_HTTP=on/);
      expect(usageError(base, { RTS_URL: url })).toMatch(/^RTS_URL http:\/\/\S+ is plain http to another machine/);
      expect(parsed([...base, '--url', url], { RTS_INSECURE_HTTP: 'on' })).toMatchObject({ url: url.replace(/\/$/, '') });
    }
    expect(usageError([...base, '--url', 'http://hub.example'], { RTS_INSECURE_HTTP: 'yes' })).toMatch(/plain http to another machine/); // only "on"
    for (const url of ['http://127.0.0.1:8080', 'http://127.1.2.3:9', 'http://localhost:8080', 'http://[::1]:8080', 'https://hub.example']) expect(parsed([...base, '--url', url])).toMatchObject({ url });
    for (const kind of [['review', '--patient', CPR], ['export', '--patient', CPR]]) expect(usageError([...kind, '--url', 'http://hub.example'])).toMatch(/plain http to another machine/);
  });

  it.each([
    [['--systolic', '126', '--diastolic', '70'], /missing --patient/],
    [['--patient', CPR, '--diastolic', '70'], /missing --systolic/],
    [['--patient', CPR, '--systolic', '126'], /missing --diastolic/],
    [['--patient', '2512481234', '--systolic', '126', '--diastolic', '70'], /--patient must be a CPR number of the form ddmmyy-ssss/],
    [['--patient', '320248-1234', '--systolic', '126', '--diastolic', '70'], /not a real date/],
    [['--patient', CPR, '--systolic', 'high', '--diastolic', '70'], /--systolic must be a number/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '-70'], /--diastolic/],
    [['--patient', CPR, '--systolic', '1e2', '--diastolic', '70'], /--systolic must be a number/],
    [['--patient', CPR, '--systolic', '126.123', '--diastolic', '70'], /--systolic must be a number of mmHg with at most two decimals/],
    [['--patient', CPR, '--systolic', '126,5', '--diastolic', '70'], /--systolic takes a decimal point, not a comma/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--id', '19481225-1234'], /--id must not hold the patient's CPR number/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-05-10 08:15'], /--at must be an ISO-8601 date-time with an offset/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-05-10T08:15:00'], /--at must be an ISO-8601/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--id', 'has space'], /--id must be 1-64 characters/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--colour'], /unknown option --colour/],
    [['--Patient', CPR, '--systolic', '126', '--diastolic', '70'], /unknown option --Patient \(did you mean --patient\?\)/],
    [['--patient'], /option --patient needs a value/],
    // Checked here, not by the hub (exit 2, nothing sent): a day that does not exist, 24:00, an id that is a CPR number.
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-02-30T23:30:00+01:00'], /--at must be an ISO-8601/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-02-10T24:00:00+01:00'], /--at must be an ISO-8601/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--id', CPR], /--id must not be a CPR number/],
    // The hub's refusals (exit 3) of what can be known here: an offset past 23:59, an id holding the patient's number.
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-11-30T08:00:00+24:00'], /--at must be an ISO-8601/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--at', '2026-11-30T08:00:00+05:60'], /--at must be an ISO-8601/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--id', 'bp:2512481234'], /--id must not hold the patient's CPR number/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--id', '251248-1234-a'], /--id must not hold the patient's CPR number/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--help=yes'], /option --help takes no value/],
    // A flag given twice took its last value: the reading went to the second patient.
    [['--patient', CPR, '--patient', '181111-1234', '--systolic', '126', '--diastolic', '70'], /--patient is given more than once/],
    [['--patient', CPR, '--systolic', '120', '--systolic', '130', '--diastolic', '70'], /--systolic is given more than once/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--url', 'http://user:pw@127.0.0.1:8080'], /--url must not hold a user name or password/],
    [['--patient', CPR, '--systolic', '126', '--diastolic', '70', '--url', 'http://127.0.0.1:8080/#'], /--url must not have a query or fragment/],
  ])('refuses %j', (flags, message) => {
    expect(usageError(['upload', ...flags])).toMatch(message);
  });

  it('never repeats a password given in --url', () => {
    expect(usageError(['upload', '--patient', CPR, '--systolic', '126', '--diastolic', '70', '--url', 'http://user:s3cret@127.0.0.1:8080'])).not.toContain('s3cret');
  });

  it('never repeats the CPR number typed, in any message', () => {
    const typed = ['upload', CPR, '--patient', '251248-12345', `--${CPR}`];
    for (let i = 1; i < typed.length; i++) expect(usageError(['upload', typed[i]!])).not.toContain('251248');
    expect(usageError(['upload', '--patient', '999999-9999', '--systolic', '1', '--diastolic', '1'])).not.toContain('999999');
  });
});

describe('rts command line: review', () => {
  it('reviews the last 7 days by default', () => {
    expect(parsed(['review', '--patient', CPR])).toEqual({ kind: 'review', url: DEFAULT_URL, patientId: CPR, range: { kind: 'days', days: 7 }, ascii: false, chart: true, timeoutMs: 60_000 });
  });

  it('leaves the chart out with --no-chart, or RTS_NO_CHART set (not empty, not 0)', () => {
    expect(parsed(['review', '--patient', CPR, '--no-chart'])).toMatchObject({ chart: false });
    expect(parsed(['review', '--patient', CPR], { RTS_NO_CHART: '1' })).toMatchObject({ chart: false });
    expect(parsed(['review', '--patient', CPR], { RTS_NO_CHART: 'yes' })).toMatchObject({ chart: false });
    for (const value of ['', '0']) expect(parsed(['review', '--patient', CPR], { RTS_NO_CHART: value })).toMatchObject({ chart: true });
    expect(usageError(['review', '--patient', CPR, '--no-chart=yes'])).toMatch(/--no-chart takes no value/);
  });

  it('takes a --width down to the chart\'s narrowest, 30 columns', () => {
    expect(parsed(['review', '--patient', CPR, '--width', '30'])).toMatchObject({ width: 30 });
  });

  it('takes --days, or --from and --to, --width and --ascii', () => {
    expect(parsed(['review', '--patient', CPR, '--days', '30'])).toMatchObject({ range: { kind: 'days', days: 30 } });
    expect(parsed(['review', '--patient', CPR, '--from', '2026-05-01T00:00:00Z', '--to', '2026-05-08T00:00:00+02:00', '--width', '100', '--ascii'])).toMatchObject({
      range: { kind: 'between', from: '2026-05-01T00:00:00Z', to: '2026-05-08T00:00:00+02:00' },
      width: 100,
      ascii: true,
    });
    expect(parsed(['review', '--patient', CPR, '--from', '2026-05-01T00:00:00Z'])).toMatchObject({ range: { kind: 'between', from: '2026-05-01T00:00:00Z' } });
    // 366 days exactly is the hub's widest; 23:59 its largest offset.
    expect(parsed(['review', '--patient', CPR, '--from', '2025-01-01T00:00:00Z', '--to', '2026-01-02T00:00:00Z'])).toMatchObject({ range: { kind: 'between' } });
    expect(parsed(['review', '--patient', CPR, '--from', '2025-01-01T00:00:00+23:59'])).toMatchObject({ range: { kind: 'between' } });
  });

  it.each([
    [['--days', '7'], /missing --patient/],
    [['--patient', CPR, '--days', '0'], /--days must be a whole number from 1 to 366/],
    [['--patient', CPR, '--days', 'week'], /--days must be a whole number/],
    [['--patient', CPR, '--days', '400'], /--days must be a whole number/],
    [['--patient', CPR, '--days', '3', '--from', '2026-05-01T00:00:00Z'], /either --days or --from\/--to/],
    [['--patient', CPR, '--from', '2026-05-08T00:00:00Z', '--to', '2026-05-01T00:00:00Z'], /--to must lie after --from/],
    [['--patient', CPR, '--from', 'yesterday'], /--from must be an ISO-8601/],
    [['--patient', CPR, '--from', '2025-01-01T00:00:00Z', '--to', '2026-01-02T00:00:01Z'], /at most 366 days apart/],
    [['--patient', CPR, '--from', '2026-05-01T00:00:00+24:00'], /--from must be an ISO-8601/],
    // The hub's own rule for a date-time: the offset with its colon, at most 40 characters.
    [['--patient', CPR, '--from', '2026-05-01T00:00:00+0200'], /--from must be an ISO-8601/],
    [['--patient', CPR, '--to', `2026-05-01T00:00:00.${'0'.repeat(30)}Z`], /--to must be an ISO-8601/],
    [['--patient', CPR, '--width', '10'], /--width must be a whole number from 30 to 200/],
    [['--patient', CPR, '--systolic', '120'], /unknown option --systolic/],
  ])('refuses %j', (flags, message) => {
    expect(usageError(['review', ...flags])).toMatch(message);
  });

  it('refuses --from and --to within one second, as the hub compares whole seconds: exit 2, nothing sent (was exit 3 invalid_interval)', async () => {
    for (const [from, to] of [['2026-11-30T10:00:00.1Z', '2026-11-30T10:00:00.9Z'], ['2026-11-30T10:00:00Z', '2026-11-30T10:00:00.999Z'], ['2026-11-30T11:00:00.5+01:00', '2026-11-30T10:00:00.7Z']]) {
      expect(usageError(['review', '--patient', CPR, '--from', from!, '--to', to!])).toMatch(/^--to must lie after --from \(at least a whole second/);
      const ran = await runLocally(['review', '--patient', CPR, '--from', from!, '--to', to!]);
      expect(ran.code).toBe(EXIT.usage);
      expect(ran.err).toMatch(/--to must lie after --from/);
      expect(ran.fetch).not.toHaveBeenCalled();
    }
    // The next whole second is an interval of one second.
    expect(parsed(['review', '--patient', CPR, '--from', '2026-11-30T10:00:00.9Z', '--to', '2026-11-30T10:00:01Z'])).toMatchObject({ range: { kind: 'between' } });
  });
});

describe('rts command line: the patient off the command line (ps and shell history show argv)', () => {
  const reading = ['--systolic', '126', '--diastolic', '70'];
  const withStdin = (argv: string[], stdin: string | (() => string), env: Record<string, string> = {}) => {
    const readStdin = jest.fn(typeof stdin === 'function' ? stdin : () => stdin);
    return { result: parseCommandLine(argv, env, readStdin), readStdin };
  };

  it('reads the CPR number from one line of stdin for --patient -, for upload and review', () => {
    for (const line of [`${CPR}\n`, `${CPR}\r\n`, ` ${CPR} `, CPR]) {
      expect(withStdin(['upload', '--patient', '-', ...reading], line).result).toEqual({ ok: true, command: expect.objectContaining({ kind: 'upload', patientId: CPR }) });
    }
    expect(withStdin(['review', '--patient=-', '--days', '30'], `${CPR}\n`).result).toEqual({ ok: true, command: expect.objectContaining({ kind: 'review', patientId: CPR, range: { kind: 'days', days: 30 } }) });
  });

  it('reads stdin only for --patient -, and only once the other flags are right', () => {
    expect(withStdin(['upload', '--patient', CPR, ...reading], CPR).readStdin).not.toHaveBeenCalled();
    const early = withStdin(['upload', '--patient', '-', '--systolic', 'high', '--diastolic', '70'], CPR);
    expect(early.result).toMatchObject({ ok: false, message: expect.stringMatching(/--systolic must be a number/) });
    expect(early.readStdin).not.toHaveBeenCalled();
  });

  it('says what is wrong with the line on stdin without repeating it', () => {
    const messageOf = (stdin: string | (() => string)) => {
      const { result } = withStdin(['upload', '--patient', '-', ...reading], stdin);
      if (result.ok) throw new Error('parsed');
      return result.message;
    };
    expect(messageOf('')).toMatch(/--patient -: stdin held no CPR number/);
    expect(messageOf('2512481234\n')).toBe('--patient - (stdin) must be a CPR number of the form ddmmyy-ssss (six digits, a hyphen, four digits)');
    expect(messageOf('320248-1234\n')).toMatch(/--patient - \(stdin\) is not a valid CPR number/);
    expect(messageOf(() => { throw new Error('EIO 251248-1234'); })).toBe('--patient -: stdin could not be read');
    expect([messageOf('2512481234'), messageOf('320248-1234')].join()).not.toMatch(/2512481234|320248/);
    // A caller that cannot read stdin (no reader given) is told so.
    expect(usageError(['upload', '--patient', '-', ...reading])).toMatch(/--patient -: stdin cannot be read here/);
  });

  it('takes RTS_PATIENT when --patient is not given; --patient given wins', () => {
    expect(parsed(['upload', ...reading], { RTS_PATIENT: CPR })).toMatchObject({ patientId: CPR });
    expect(parsed(['review'], { RTS_PATIENT: CPR })).toMatchObject({ patientId: CPR });
    expect(parsed(['review', '--patient', '010203-2345'], { RTS_PATIENT: CPR })).toMatchObject({ patientId: '010203-2345' });
    expect(usageError(['review'], { RTS_PATIENT: '2512481234' })).toBe('RTS_PATIENT must be a CPR number of the form ddmmyy-ssss (six digits, a hyphen, four digits)');
    expect(usageError(['review'])).toMatch(/missing --patient .*--patient - to read it from stdin, or RTS_PATIENT/);
  });

  it('gives the advice in the help texts', () => {
    for (const help of [MAIN_HELP, UPLOAD_HELP, REVIEW_HELP, EXPORT_HELP]) expect(help).toContain('kept in your\nshell\'s history');
    for (const help of [UPLOAD_HELP, REVIEW_HELP, EXPORT_HELP]) expect(help).toContain('$RTS_PATIENT');
  });
});

describe('rts command line: commands, help and version', () => {
  it('answers --help, <cmd> --help, help <cmd> and --version', () => {
    expect(parsed(['--help'])).toMatchObject({ kind: 'help', text: expect.stringContaining('Exit codes:') });
    expect(parsed(['-h'])).toMatchObject({ kind: 'help' });
    expect(parsed(['upload', '--help'])).toMatchObject({ kind: 'help', text: expect.stringContaining('Usage: rts upload') });
    expect(parsed(['review', '-h'])).toMatchObject({ kind: 'help', text: expect.stringContaining('Usage: rts review') });
    expect(parsed(['help', 'review'])).toMatchObject({ kind: 'help', text: expect.stringContaining('Usage: rts review') });
    expect(parsed(['--version'])).toEqual({ kind: 'version' });
  });

  it('fits every help text in 80 columns', () => {
    for (const help of [MAIN_HELP, UPLOAD_HELP, REVIEW_HELP, EXPORT_HELP, DLQ_HELP, ERASURES_HELP]) for (const line of help.split('\n')) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('refuses a missing or unknown command', () => {
    expect(usageError([])).toMatch(/missing command/);
    expect(usageError(['uplaod'])).toMatch(/unknown command 'uplaod'/);
    expect(usageError([CPR])).toBe('unknown command; the commands are upload, review, export, dlq, backup, restore and erasures');
  });

  it('names the command or option a typo is near, and only a name of its own', () => {
    expect(usageError(['uplaod'])).toBe("unknown command 'uplaod' (did you mean upload?); the commands are upload, review, export, dlq, backup, restore and erasures");
    expect(usageError(['reveiw'])).toMatch(/\(did you mean review\?\)/);
    expect(usageError(['erasure'])).toMatch(/\(did you mean erasures\?\)/);
    expect(usageError(['frobnicate'])).not.toMatch(/did you mean/);
    expect(usageError(['upload', '--patient', CPR, '--sytolic', '126', '--diastolic', '70'])).toBe('unknown option --sytolic (did you mean --systolic?)');
    expect(usageError(['review', '--patient', CPR, '--day', '7'])).toBe('unknown option --day (did you mean --days?)');
    expect(usageError(['upload', '--patient', CPR, '--colour'])).toBe('unknown option --colour');
  });
});

describe('rts command line: export', () => {
  it('reads the patient, --out, --url and --timeout; the patient as for the other commands', () => {
    expect(parsed(['export', '--patient', CPR])).toEqual({ kind: 'export', url: DEFAULT_URL, patientId: CPR, timeoutMs: 60_000 });
    expect(parsed(['export', '--patient', CPR, '--out', 'a.json', '--url', 'https://hub:9000/', '--timeout', '120'])).toEqual({ kind: 'export', url: 'https://hub:9000', patientId: CPR, out: 'a.json', timeoutMs: 120_000 });
    expect(parsed(['export'], { RTS_PATIENT: CPR })).toMatchObject({ patientId: CPR });
    expect(parseCommandLine(['export', '--patient', '-'], {}, () => `${CPR}\n`)).toMatchObject({ ok: true, command: { patientId: CPR } });
    expect(parsed(['export', '--help'])).toMatchObject({ kind: 'help', text: expect.stringContaining('Usage: rts export') });
  });

  it('refuses a malformed CPR number (never repeated), an empty --out and stray arguments', () => {
    const message = usageError(['export', '--patient', '2512481234']);
    expect(message).toMatch(/--patient must be a CPR number/);
    expect(message).not.toContain('2512481234');
    expect(usageError(['export', '--patient', CPR, '--out', ''])).toBe('--out needs a file name');
    expect(usageError(['export', '--patient', CPR, 'extra'])).toMatch(/unexpected argument/);
    expect(usageError(['export'])).toMatch(/missing --patient/);
  });
});

describe('run: usage errors', () => {
  it('exits 2 with the message and where to find the usage, before any request', async () => {
    const { code, out, err, fetch } = await runLocally(['upload', '--patient', '25124-1234', '--systolic', '126', '--diastolic', '70']);
    expect(code).toBe(EXIT.usage);
    expect(out).toBe('');
    expect(err).toBe("rts: --patient must be a CPR number of the form ddmmyy-ssss (six digits, a hyphen, four digits)\nRun 'rts upload --help' for usage.\n");
    expect(fetch).not.toHaveBeenCalled();
  });

  it('exits 2 for no command at all, 0 for help and version', async () => {
    expect((await runLocally([])).code).toBe(EXIT.usage);
    const help = await runLocally(['--help']);
    expect(help.code).toBe(EXIT.ok);
    expect(help.out).toMatch(/3 {2}the hub refused the input \(4xx\)/);
    const version = await runLocally(['--version']);
    expect(version.code).toBe(EXIT.ok);
    expect(version.out).toMatch(/^rts \d+\.\d+\.\d+\n$/);
  });
});
