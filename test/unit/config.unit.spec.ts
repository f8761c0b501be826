import { devLoginEnabled } from '../../src/bootstrap/auth-config';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CLI_VARIABLES, ConfigError, ConfigSchema, loadConfig } from '../../src/bootstrap/config';

/** loadConfig: defaults need nothing; every bad or missing setting stops the start naming the variable. */
const problemsOf = (env: Record<string, string>): readonly string[] => {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
};

describe('loadConfig', () => {
  it('needs nothing: the embedded SQLite profile on 127.0.0.1:8080', () => {
    expect(loadConfig({})).toEqual({
      RTS_HTTP_HOST: '127.0.0.1',
      RTS_AUTH: 'on',
      RTS_AUDIT_ANCHOR_SECONDS: 3600,
      RTS_AUTH_JWKS_MAX_STALE_SECONDS: 3600,
      RTS_AUTH_ISSUER: 'telemed-rts',
      RTS_AUTH_AUDIENCE: 'telemed-rts',
      RTS_RATE_LIMIT_PER_SECOND: 50,
      RTS_RATE_LIMIT_BURST: 200,
      RTS_PATIENT_KEY_CACHE_SIZE: 10000,
      RTS_HTTP_PORT: 8080,
      RTS_DATA_DIR: './data',
      RTS_EVENT_STORE: 'sqlite',
      RTS_POSTGRES_SCHEMA: 'public',
      RTS_POSTGRES_CONNECT_TIMEOUT_MS: 10_000,
      RTS_POSTGRES_QUERY_TIMEOUT_MS: 30_000,
      RTS_HEALTH_TIMEOUT_MS: 2_000,
      RTS_LOG_LEVEL: 'info',
      RTS_REPOSITORY_UNIQUE_ID: '2.25.151837495613302811512427370916935098473',
      RTS_BODY_LIMIT_BYTES: 16 * 1024,
      RTS_SHUTDOWN_GRACE_MS: 10_000,
      RTS_HUB_KEYS_ACCEPT_NEW: 'off',
      RTS_MESSAGE_SECURITY_CHANGE: 'off',
      RTS_AUTH_CHANGE: 'off',
    });
  });

  it('timeouts: milliseconds within bounds, else the start stops naming the variable', () => {
    expect(loadConfig({ RTS_POSTGRES_CONNECT_TIMEOUT_MS: '2500', RTS_POSTGRES_QUERY_TIMEOUT_MS: '120000', RTS_HEALTH_TIMEOUT_MS: '500' })).toMatchObject({
      RTS_POSTGRES_CONNECT_TIMEOUT_MS: 2500,
      RTS_POSTGRES_QUERY_TIMEOUT_MS: 120_000,
      RTS_HEALTH_TIMEOUT_MS: 500,
    });
    for (const [name, value] of [['RTS_POSTGRES_CONNECT_TIMEOUT_MS', '0'], ['RTS_POSTGRES_QUERY_TIMEOUT_MS', 'soon'], ['RTS_HEALTH_TIMEOUT_MS', '120000']] as const) {
      expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`${name}: `));
    }
  });

  it("takes an identity provider's JWKS over https, or http to this machine only (the hub trusts whatever keys it answers)", () => {
    for (const url of ['https://idp.example/jwks.json', 'http://127.0.0.1:8443/jwks', 'http://localhost/jwks', 'http://[::1]:9/jwks']) {
      expect(loadConfig({ RTS_AUTH_JWKS_URL: url }).RTS_AUTH_JWKS_URL).toBe(url);
    }
    for (const url of ['http://idp.example/jwks.json', 'http://10.0.0.7/jwks', 'ftp://idp.example/jwks']) {
      expect(() => loadConfig({ RTS_AUTH_JWKS_URL: url })).toThrow(/RTS_AUTH_JWKS_URL: must be an/);
    }
  });

  it("refuses a JWKS URL whose user name holds ':' (HTTP Basic cannot carry it), naming the setting and nothing of the credentials", () => {
    for (const url of ['https://hub%3Acity:s3cr3t@idp.example/jwks', 'https://hub%3a:s3cr3t@idp.example/jwks', 'https://%3A@idp.example/jwks', 'http://a%3Ab@127.0.0.1:8443/jwks']) {
      let message = '';
      try {
        loadConfig({ RTS_AUTH_JWKS_URL: url });
      } catch (error) {
        message = (error as Error).message;
      }
      // Before, taken: the provider was sent 'hub' as the user and 'city:s3cr3t' as the password.
      expect(message).toMatch(/RTS_AUTH_JWKS_URL: the user name written into it holds ':' \(%3A\), which HTTP Basic cannot carry \(RFC 7617/);
      expect(message).not.toMatch(/s3cr3t|hub%3A|a%3Ab/i);
    }
    // A colon in the password is HTTP Basic's own (the first colon splits); one in the host's port is no credential;
    // a stray % (not an escape) is sent as written, so holds no colon.
    for (const url of ['https://hub:pa%3Ass:w0rd@idp.example/jwks', 'https://hub%40city:p%C3%A5ss@idp.example:8443/jwks', 'https://hub%zz3A:x@idp.example/jwks', 'https://:secret@idp.example/jwks']) {
      expect(loadConfig({ RTS_AUTH_JWKS_URL: url }).RTS_AUTH_JWKS_URL).toBe(url);
    }
  });

  it('numbers are digits only: an exponent, hex, a sign, spaces or a unit stop the start naming the variable', () => {
    // z.coerce.number() (Number()) took all of these: 1e4 started the hub with a 10 s grace nobody wrote down.
    for (const value of ['1e4', '0x10', ' 2000', '2000 ', '+5000', '-1', '5000ms', '5_000', '1.5']) {
      expect(() => loadConfig({ RTS_SHUTDOWN_GRACE_MS: value })).toThrow(/RTS_SHUTDOWN_GRACE_MS: must be a whole number written in digits/);
      expect(() => loadConfig({ RTS_HTTP_PORT: value })).toThrow(/RTS_HTTP_PORT: /);
    }
    expect(loadConfig({ RTS_SHUTDOWN_GRACE_MS: '2500', RTS_HTTP_PORT: '0' })).toMatchObject({ RTS_SHUTDOWN_GRACE_MS: 2500, RTS_HTTP_PORT: 0 });
    expect(() => loadConfig({ RTS_SHUTDOWN_GRACE_MS: '3600001' })).toThrow(/RTS_SHUTDOWN_GRACE_MS: /);
  });

  it('reads only RTS_* variables and treats empty values as unset', () => {
    const config = loadConfig({ PATH: '/bin', HOME: '/root', RTS_HTTP_PORT: '', RTS_DATA_DIR: '/var/lib/rts' });
    expect(config.RTS_HTTP_PORT).toBe(8080);
    expect(config.RTS_DATA_DIR).toBe('/var/lib/rts');
    expect(Object.keys(config).every((k) => k.startsWith('RTS_'))).toBe(true);
  });

  it('selects PostgreSQL with its URL and schema', () => {
    const config = loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://rts:pw@db:5432/rts', RTS_POSTGRES_SCHEMA: 'hub_1' });
    expect(config).toMatchObject({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://rts:pw@db:5432/rts', RTS_POSTGRES_SCHEMA: 'hub_1' });
    expect(loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgresql://db/rts' }).RTS_POSTGRES_SCHEMA).toBe('public');
  });

  it('selects EventStoreDB with its connection string, optionally with a PostgreSQL registry', () => {
    const esdb = 'esdb://admin:changeit@localhost:2113?tls=false';
    expect(loadConfig({ RTS_EVENT_STORE: 'eventstoredb', RTS_EVENTSTORE_CONNECTION_STRING: esdb })).toMatchObject({
      RTS_EVENT_STORE: 'eventstoredb',
      RTS_EVENTSTORE_CONNECTION_STRING: esdb,
    });
    expect(loadConfig({ RTS_EVENT_STORE: 'eventstoredb', RTS_EVENTSTORE_CONNECTION_STRING: 'esdb+discover://a,b,c', RTS_POSTGRES_URL: 'postgres://db/x' })).toMatchObject({
      RTS_POSTGRES_URL: 'postgres://db/x',
    });
  });

  it('names the missing connection setting of the chosen store', () => {
    expect(problemsOf({ RTS_EVENT_STORE: 'postgres' })).toEqual(['RTS_POSTGRES_URL: required when RTS_EVENT_STORE=postgres']);
    expect(problemsOf({ RTS_EVENT_STORE: 'eventstoredb' })).toEqual(['RTS_EVENTSTORE_CONNECTION_STRING: required when RTS_EVENT_STORE=eventstoredb']);
    // The other store's connection is no stand-in, and is a mistake of its own.
    expect(problemsOf({ RTS_EVENT_STORE: 'postgres', RTS_EVENTSTORE_CONNECTION_STRING: 'esdb://x:2113' })).toEqual([
      'RTS_POSTGRES_URL: required when RTS_EVENT_STORE=postgres',
      'RTS_EVENTSTORE_CONNECTION_STRING: set, but RTS_EVENT_STORE is postgres: set RTS_EVENT_STORE=eventstoredb, or leave RTS_EVENTSTORE_CONNECTION_STRING out',
    ]);
    expect(problemsOf({ RTS_EVENT_STORE: 'eventstoredb', RTS_POSTGRES_URL: 'postgres://db/x' })).toEqual([
      'RTS_EVENTSTORE_CONNECTION_STRING: required when RTS_EVENT_STORE=eventstoredb',
    ]);
  });

  it('refuses a store connection without its store: RTS_EVENT_STORE forgotten or empty started a private SQLite hub', () => {
    const url = 'postgres://rts:s3cret@db:5432/rts';
    const sqliteWithUrl = 'RTS_POSTGRES_URL: set, but RTS_EVENT_STORE is sqlite (its default when unset or empty): set RTS_EVENT_STORE=postgres, or leave RTS_POSTGRES_URL out';
    expect(problemsOf({ RTS_POSTGRES_URL: url, RTS_POSTGRES_SCHEMA: 'rts' })).toEqual([sqliteWithUrl]);
    expect(problemsOf({ RTS_EVENT_STORE: '', RTS_POSTGRES_URL: url })).toEqual([sqliteWithUrl]);
    expect(problemsOf({ RTS_EVENT_STORE: 'sqlite', RTS_POSTGRES_URL: url })).toEqual([sqliteWithUrl]);
    expect(problemsOf({ RTS_EVENTSTORE_CONNECTION_STRING: 'esdb://x:2113' })).toEqual([
      'RTS_EVENTSTORE_CONNECTION_STRING: set, but RTS_EVENT_STORE is sqlite: set RTS_EVENT_STORE=eventstoredb, or leave RTS_EVENTSTORE_CONNECTION_STRING out',
    ]);
    expect(() => loadConfig({ RTS_POSTGRES_URL: url })).toThrow(expect.objectContaining({ message: expect.not.stringContaining('s3cret') }));
  });

  it('refuses a PostgreSQL URL node-postgres could not use, naming RTS_POSTGRES_URL and never echoing it (it holds the password)', () => {
    // Were "failed to start: Invalid URL" and an ENOENT with exit 1, found only at the first connection.
    const postgres = (url: string) => problemsOf({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url });
    const badPort = postgres('postgres://u:s3cret@127.0.0.1:99999/db');
    expect(badPort).toEqual([expect.stringMatching(/^RTS_POSTGRES_URL: is not a valid URL \(check the port, 1-65535/)]);
    expect(postgres('postgres://u:s3cret@127.0.0.1:0/db')).toEqual(['RTS_POSTGRES_URL: the port must be 1-65535']);
    const noCa = postgres('postgres://u:s3cret@db.example.org/db?sslmode=verify-full&sslrootcert=/nonexist.pem');
    expect(noCa).toEqual(['RTS_POSTGRES_URL: sslrootcert: cannot read the file (ENOENT)']);
    for (const p of [...badPort, ...noCa]) expect(p).not.toMatch(/s3cret|nonexist|127\.0\.0\.1|example/);
    // What node-postgres takes stays taken: a socket directory, an empty host, an IPv6 address.
    for (const url of ['postgres:///rts?host=/var/run/postgresql', 'postgres://rts@/rts', 'postgresql://[::1]:5433/rts']) {
      expect(loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: url }).RTS_POSTGRES_URL).toBe(url);
    }
  });

  it('reports a missing connection setting together with other bad settings', () => {
    const problems = problemsOf({ RTS_EVENT_STORE: 'postgres', RTS_HTTP_PORT: 'eighty' });
    expect(problems).toHaveLength(2);
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(/^RTS_HTTP_PORT: /), 'RTS_POSTGRES_URL: required when RTS_EVENT_STORE=postgres']));
  });

  it.each([
    ['RTS_EVENT_STORE', 'mysql', /one of sqlite, postgres, eventstoredb/],
    ['RTS_POSTGRES_URL', 'mysql://db/x', /postgres:\/\//],
    ['RTS_POSTGRES_SCHEMA', 'rts; DROP TABLE events', /identifier/],
    ['RTS_POSTGRES_SCHEMA', 'x'.repeat(64), /identifier/],
    ['RTS_EVENTSTORE_CONNECTION_STRING', 'http://localhost:2113', /esdb:\/\//],
    ['RTS_HTTP_PORT', '70000', /^RTS_HTTP_PORT: must be at most 65535$/],
    ['RTS_HTTP_PORT', 'eighty', /^RTS_HTTP_PORT: must be a whole number written in digits/],
    ['RTS_LOG_LEVEL', 'loud', /^RTS_LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent$/],
    ['RTS_PSEUDONYM_SECRET', 'abc', /hex/],
    ['RTS_REPOSITORY_UNIQUE_ID', 'not-an-oid', /OID/],
    ['RTS_REPOSITORY_UNIQUE_ID', `1.2.${'1'.repeat(61)}`, /at most 64 characters/],
    ['RTS_BODY_LIMIT_BYTES', '10', /^RTS_BODY_LIMIT_BYTES: must be at least 1024$/],
    ['RTS_SHUTDOWN_GRACE_MS', '-1', /^RTS_SHUTDOWN_GRACE_MS: must be a whole number written in digits/],
    ['RTS_AUDIT_ANCHOR_SECONDS', '90000', /./],
    ['RTS_AUTH_JWKS_MAX_STALE_SECONDS', '59', /must be at least 60$/],
    ['RTS_AUTH_JWKS_MAX_STALE_SECONDS', '86401', /must be at most 86400$/],
    ['RTS_AUTH_JWKS_MAX_STALE_SECONDS', '1h', /whole number written in digits/],
  ])('refuses a bad %s, naming it', (name, value, message) => {
    const base: Record<string, string> = name.startsWith('RTS_POSTGRES')
      ? { RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://db/x' }
      : name.startsWith('RTS_EVENTSTORE')
        ? { RTS_EVENT_STORE: 'eventstoredb' }
        : {};
    const problems = problemsOf({ ...base, [name]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name}: `));
    expect(problems[0]).toMatch(message);
  });

  it('refuses a misspelt setting, naming the one it is near; leaves the other tools\' RTS_* names alone', () => {
    expect(problemsOf({ RTS_EVENT_STOR: 'postgres', RTS_POSTGRES_URL: 'postgres://h/db' })).toEqual([
      expect.stringMatching(/^RTS_POSTGRES_URL: set, but RTS_EVENT_STORE is sqlite/),
      'RTS_EVENT_STOR: not a setting; did you mean RTS_EVENT_STORE?',
    ]);
    expect(problemsOf({ RTS_HTTP_PROT: '9000', RTS_HTTP_PORT: 'x' })).toEqual([expect.stringMatching(/^RTS_HTTP_PORT: /), 'RTS_HTTP_PROT: not a setting; did you mean RTS_HTTP_PORT?']);
    // The CLI's, the broker scripts' and the benches' variables are no misspelt setting.
    expect(() => loadConfig({ RTS_URL: 'http://127.0.0.1:8080', RTS_TOKEN: 't', RTS_BROKER_PORT: '61616', RTS_BROKER_USERS_FILE: 'u', RTS_HA_NODES: '2', RTS_BENCH_DIST: 'd' })).not.toThrow();
  });

  it('refuses a setting one word short, naming the one it is short of', () => {
    // RTS_PORT=9000 started a hub on 8080 without a word: five edits from RTS_HTTP_PORT, past the rule above.
    expect(problemsOf({ RTS_PORT: '9000' })).toEqual(['RTS_PORT: not a setting; did you mean RTS_HTTP_PORT?']);
    expect(problemsOf({ RTS_HOST: '0.0.0.0' })).toEqual(['RTS_HOST: not a setting; did you mean RTS_HTTP_HOST?']);
    expect(problemsOf({ RTS_STORE: 'postgres' })).toEqual(['RTS_STORE: not a setting; did you mean RTS_EVENT_STORE?']);
    // Two words short, or a word too many, is no longer near enough to guess.
    expect(() => loadConfig({ RTS_GRACE: '1', RTS_HTTP_PORT_NUMBER: '1' })).not.toThrow();
  });

  it("flags none of the RTS_* names the project's CLI, scripts, benches and tests read or set", () => {
    // RTS_URL (the CLI's) is one word short of RTS_BROKER_URL: a shell that runs the CLI and then the hub must not
    // stop the hub. Every RTS_* name in these places is either a setting or left alone.
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((entry) => {
        const path = join(dir, entry);
        if (entry === 'node_modules' || entry === 'results' || entry.startsWith('.data')) return [];
        return statSync(path).isDirectory() ? files(path) : /\.(ts|js|sh|json|py|md)$|^run$/.test(entry) ? [path] : [];
      });
    const root = join(__dirname, '..', '..');
    const places = ['scripts', 'bench', 'examples', 'test/support', 'test/e2e', 'test/integration', 'src/adapters/cli', 'src/sdk', '.ci'];
    const names = new Set<string>();
    for (const place of places) for (const file of files(join(root, place))) for (const n of readFileSync(file, 'utf8').match(/\bRTS_[A-Z0-9_]*[A-Z0-9]\b/g) ?? []) names.add(n);
    const settings = Object.keys(ConfigSchema.shape);
    const others = [...names].filter((n) => !settings.includes(n));
    expect(others).toEqual(expect.arrayContaining([...CLI_VARIABLES, 'RTS_BROKER_PORT', 'RTS_REQUIRE_CHROMIUM']));
    // A bad port beside each name makes every start refuse, so that its problems can be read: none may be about the name.
    expect(others.filter((n) => problemsOf({ [n]: 'x', RTS_HTTP_PORT: 'not a port' }).some((p) => p.startsWith(`${n}: `)))).toEqual([]);
  });

  it('serves the development login only to the embedded profile on loopback with its own secret', () => {
    expect(devLoginEnabled(loadConfig({}))).toBe(true);
    // A secret given as a setting is a deployment's: no tokens for anyone on the machine, unless asked for.
    expect(devLoginEnabled(loadConfig({ RTS_AUTH_JWT_SECRET: 'ab'.repeat(32) }))).toBe(false);
    expect(devLoginEnabled(loadConfig({ RTS_AUTH_JWT_SECRET: 'ab'.repeat(32), RTS_AUTH_DEV_LOGIN: 'on' }))).toBe(true);
    expect(devLoginEnabled(loadConfig({ RTS_HTTP_HOST: '0.0.0.0' }))).toBe(false);
    expect(devLoginEnabled(loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'postgres://h/db' }))).toBe(false);
  });

  it('refuses RTS_AUTH=off on an address other than loopback: anyone who reaches it reads and erases every patient', () => {
    expect(problemsOf({ RTS_AUTH: 'off', RTS_HTTP_HOST: '0.0.0.0' })).toEqual([expect.stringMatching(/^RTS_AUTH: off only with a loopback RTS_HTTP_HOST/)]);
    expect(problemsOf({ RTS_AUTH: 'off', RTS_HTTP_HOST: '10.0.0.5' })).toEqual([expect.stringMatching(/^RTS_AUTH: /)]);
    expect(problemsOf({ RTS_AUTH: 'off', RTS_HTTP_HOST: 'hub.example.org' })).toEqual([expect.stringMatching(/^RTS_AUTH: /)]);
    // No IPv4 address, so a host name the resolver looks up (a hosts entry, a search domain's wildcard): anything.
    for (const host of ['127.0.0.300', '127.0.0.08', '127.0.0.1 ']) expect(problemsOf({ RTS_AUTH: 'off', RTS_HTTP_HOST: host })).toEqual([expect.stringMatching(/^RTS_AUTH: /)]);
    expect(devLoginEnabled({ RTS_AUTH: 'on', RTS_HTTP_HOST: '127.0.0.300', RTS_EVENT_STORE: 'sqlite' })).toBe(false);
    // Tests and local experiments: on this machine only, as before.
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) expect(loadConfig({ RTS_AUTH: 'off', RTS_HTTP_HOST: host }).RTS_AUTH).toBe('off');
    expect(loadConfig({ RTS_AUTH: 'off' }).RTS_AUTH).toBe('off');
    expect(loadConfig({ RTS_HTTP_HOST: '0.0.0.0' }).RTS_AUTH).toBe('on');
  });

  it("refuses an API key's system id that holds a CPR number, as a token's systemId and POST /systems do, never echoing it", () => {
    const digest = 'a'.repeat(64);
    for (const id of ['251248-1234', '2512481234', 'lab-251248-1234']) {
      const problems = problemsOf({ RTS_API_KEYS: JSON.stringify({ [id]: digest }) });
      expect(problems).toEqual([expect.stringMatching(/^RTS_API_KEYS\b.*CPR number/)]);
      expect(problems.join()).not.toContain('1234');
    }
    expect(loadConfig({ RTS_API_KEYS: JSON.stringify({ 'lab-7': digest, 'order-202612021030': digest }) }).RTS_API_KEYS).toEqual({ 'lab-7': digest, 'order-202612021030': digest });
  });

  it('refuses a secret with an odd number of hex digits: its last digit would be dropped unseen', () => {
    // Buffer.from(hex) stops at the last whole byte: 33 digits were read as the first 32, a key nobody wrote down
    // (the same secret in pseudonym.secret or auth.secret is refused already: two digits per byte).
    expect(problemsOf({ RTS_PSEUDONYM_SECRET: `${'ab'.repeat(16)}c` })).toEqual([expect.stringMatching(/^RTS_PSEUDONYM_SECRET: .*two per byte/)]);
    expect(problemsOf({ RTS_AUTH_JWT_SECRET: `${'ab'.repeat(32)}c` })).toEqual([expect.stringMatching(/^RTS_AUTH_JWT_SECRET: .*two per byte/)]);
    // A hub that ran with such a secret keeps its pseudonyms and tokens by dropping the digit, and is told so.
    expect(problemsOf({ RTS_PSEUDONYM_SECRET: `${'ab'.repeat(16)}c` })).toEqual([expect.stringMatching(/without its last digit: drop that digit/)]);
    expect(loadConfig({ RTS_PSEUDONYM_SECRET: 'ab'.repeat(17), RTS_AUTH_JWT_SECRET: 'AB'.repeat(33) })).toMatchObject({ RTS_PSEUDONYM_SECRET: 'ab'.repeat(17) });
  });

  it('never echoes a value (a password or secret could be in it)', () => {
    const error = (() => {
      try {
        loadConfig({ RTS_EVENT_STORE: 'postgres', RTS_POSTGRES_URL: 'mysql://admin:hunter2@db/x', RTS_PSEUDONYM_SECRET: 'sekrit-sekrit' });
      } catch (e) {
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(error.message).toMatch(/RTS_POSTGRES_URL/);
    expect(error.message).toMatch(/RTS_PSEUDONYM_SECRET/);
    expect(error.message).not.toMatch(/hunter2|sekrit|mysql/);
  });
});
