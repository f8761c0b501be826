// `node dist/bootstrap/token.js`: a token the hub accepts, or a clear refusal, and never a secret of its own.
jest.mock('jose', () => {
  // jose's ESM build, loaded through require as tokens.unit.spec.ts does (jest's module system has no import()).
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import { writeFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTokenVerifier, patientSubject } from '../../src/adapters/auth/tokens';
import { HmacPatientKeys } from '../../src/adapters/system/hmac-patient-keys';
import { pseudonymSecret } from '../../src/bootstrap/secret';
import { parseCpr } from '../../src/domain/monitoring/cpr';
import { loadConfig } from '../../src/bootstrap/config';
import { authSecret } from '../../src/bootstrap/security-module';
import { runToken } from '../../src/bootstrap/token';

const collector = () => {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
};

describe('token.js', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'rts-token-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const mint = async (argv: string[], env: NodeJS.ProcessEnv = { RTS_DATA_DIR: dir }) => {
    const out = collector();
    const err = collector();
    const code = await runToken(argv, { stdout: out, stderr: err, env });
    return { code, stdout: out.text(), stderr: err.text() };
  };

  /** The hub's own verifier, with the secret the hub made at its first start in `dir`. */
  const verify = (token: string, secret = authSecret(undefined, dir)) => {
    const config = loadConfig({ RTS_DATA_DIR: dir });
    return createTokenVerifier({ issuer: config.RTS_AUTH_ISSUER, audience: config.RTS_AUTH_AUDIENCE, secret })(token);
  };

  it('mints a patient token that the hub verifies, valid for --ttl seconds', async () => {
    authSecret(undefined, dir); // the hub's first start
    pseudonymSecret(undefined, dir);
    const res = await mint(['--role', 'patient', '--patient', '251248-1234', '--ttl', '600']);
    expect(res).toMatchObject({ code: 0, stderr: '' });
    const token = res.stdout.trim();
    expect(res.stdout).toBe(`${token}\n`);
    await expect(verify(token)).resolves.toMatchObject({ role: 'patient', patientKey: expect.stringMatching(/^p[0-9a-f]{32}$/), sub: expect.stringMatching(/^patient-[0-9a-f]{12}$/) });
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { iat: number; exp: number };
    expect(payload.exp - payload.iat).toBe(600);
  });

  it("names the patient by the hub's pseudonymous key, not the CPR number, and gives each a sub of their own, dev-login's", async () => {
    authSecret(undefined, dir);
    const secret = pseudonymSecret(undefined, dir); // the hub's first start
    const keyOf = (cpr: string) => new HmacPatientKeys(secret).keyFor(parseCpr(cpr));
    const claimsOf = async (cpr: string, env?: NodeJS.ProcessEnv) => {
      const res = await mint(['--role', 'patient', '--patient', cpr], env);
      expect(res).toMatchObject({ code: 0, stderr: '' });
      const token = res.stdout.trim();
      expect(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')).not.toMatch(/251248|010203|2512481234/);
      return verify(token);
    };
    const a = await claimsOf('251248-1234');
    expect(a).toMatchObject({ patientKey: keyOf('251248-1234'), sub: patientSubject(keyOf('251248-1234')) });
    expect(a).not.toHaveProperty('patient');
    expect((await claimsOf('010203-2345')).patientKey).toBe(keyOf('010203-2345'));
    // The hub's RTS_PSEUDONYM_SECRET, given here, gives the same key.
    const withEnvSecret = await mint(['--role', 'patient', '--patient', '251248-1234'], { RTS_DATA_DIR: dir, RTS_PSEUDONYM_SECRET: secret.toString('hex') });
    await expect(verify(withEnvSecret.stdout.trim())).resolves.toMatchObject({ patientKey: keyOf('251248-1234') });
    // --sub still names whom it is told to; the key is the patient's all the same.
    const named = await mint(['--role', 'patient', '--patient', '251248-1234', '--sub', 'anna']);
    await expect(verify(named.stdout.trim())).resolves.toMatchObject({ sub: 'anna', patientKey: keyOf('251248-1234') });
  });

  it("mints no patient's token without the hub's pseudonym secret (a key under another would reach nobody): exit 78", async () => {
    authSecret(undefined, dir); // the auth secret, but not pseudonym.secret (the hub was given RTS_PSEUDONYM_SECRET)
    const res = await mint(['--role', 'patient', '--patient', '251248-1234']);
    expect(res).toMatchObject({ code: 78, stdout: '' });
    expect(res.stderr).toContain('no pseudonym secret of the hub');
    expect(res.stderr).toContain('RTS_PSEUDONYM_SECRET');
    expect(res.stderr).not.toContain('251248');
    expect(existsSync(join(dir, 'pseudonym.secret'))).toBe(false);
  });

  it('takes the CPR number from stdin (--patient -) or RTS_PATIENT, not only from the command line', async () => {
    authSecret(undefined, dir);
    const key = new HmacPatientKeys(pseudonymSecret(undefined, dir)).keyFor(parseCpr('251248-1234'));
    const readStdin = jest.fn(() => '251248-1234\n');
    const out = collector();
    expect(await runToken(['--role', 'patient', '--patient', '-'], { stdout: out, stderr: collector(), env: { RTS_DATA_DIR: dir }, readStdin })).toBe(0);
    await expect(verify(out.text().trim())).resolves.toMatchObject({ patientKey: key });
    expect(readStdin).toHaveBeenCalledTimes(1);
    const fromEnv = await mint(['--role', 'patient'], { RTS_DATA_DIR: dir, RTS_PATIENT: '251248-1234' });
    await expect(verify(fromEnv.stdout.trim())).resolves.toMatchObject({ patientKey: key });
    // RTS_PATIENT, set for rts in the same shell, is no patient for an operator's token.
    const operator = await mint(['--role', 'operator'], { RTS_DATA_DIR: dir, RTS_PATIENT: '251248-1234' });
    await expect(verify(operator.stdout.trim())).resolves.not.toHaveProperty('patientKey');
    const bad = await mint(['--role', 'patient'], { RTS_DATA_DIR: dir, RTS_PATIENT: '2512481234' });
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toContain('RTS_PATIENT must be a CPR number');
    expect(bad.stderr).not.toContain('2512481234');
  });

  it('signs with RTS_AUTH_JWT_SECRET when the hub has one configured', async () => {
    const hex = 'ab'.repeat(32);
    const res = await mint(['--role', 'clinician', '--system', 'aarhus', '--sub', 'dr-jensen'], { RTS_DATA_DIR: dir, RTS_AUTH_JWT_SECRET: hex });
    expect(res.code).toBe(0);
    await expect(verify(res.stdout.trim(), Buffer.from(hex, 'hex'))).resolves.toMatchObject({ role: 'clinician', systemId: 'aarhus', sub: 'dr-jensen' });
  });

  it('makes no secret of its own where the hub has none: exit 78, and nothing is written', async () => {
    const elsewhere = join(dir, 'not-the-hubs');
    const res = await mint(['--role', 'operator'], { RTS_DATA_DIR: elsewhere });
    expect(res.code).toBe(78);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain(`${elsewhere}/auth.secret does not exist`);
    expect(res.stderr).toContain("Run this with the hub's RTS_DATA_DIR");
    expect(existsSync(elsewhere)).toBe(false);
  });

  it('says an empty or damaged secret file is one (exit 78, naming it), as the hub does: it was "unexpected error", exit 1', async () => {
    writeFileSync(join(dir, 'auth.secret'), '');
    const empty = await mint(['--role', 'operator']);
    expect(empty).toMatchObject({ code: 78, stdout: '' });
    expect(empty.stderr).toContain('auth.secret in the data directory');
    expect(empty.stderr).toContain('is empty');
    rmSync(join(dir, 'auth.secret'));
    authSecret(undefined, dir);
    writeFileSync(join(dir, 'pseudonym.secret'), 'abc');
    const patient = await mint(['--role', 'patient', '--patient', '251248-1234']);
    expect(patient).toMatchObject({ code: 78, stdout: '' });
    expect(patient.stderr).toContain('pseudonym.secret in the data directory');
    expect(patient.stderr).not.toContain('251248');
  });

  it('refuses where the hub takes tokens from an identity provider', async () => {
    authSecret(undefined, dir);
    const res = await mint(['--role', 'operator'], { RTS_DATA_DIR: dir, RTS_AUTH_JWKS_URL: 'https://idp.example/jwks.json' });
    expect(res.code).toBe(78);
    expect(res.stderr).toContain('identity provider');
  });

  it.each([
    [[], 'missing --role'],
    [['--role', 'admin'], '--role must be one of patient, clinician, system, operator'],
    [['--role', 'patient'], 'missing --patient'],
    [['--role', 'patient', '--patient', '2512481234'], '--patient must be a CPR number of the form ddmmyy-ssss'],
    [['--role', 'patient', '--patient', '310248-1234'], '--patient is not a valid CPR number'],
    [['--role', 'operator', '--patient', '251248-1234'], '--patient belongs to --role patient'],
    [['--role', 'system'], 'missing --system'],
    [['--role', 'operator', '--system', 'aarhus'], '--system belongs to --role clinician or system'],
    [['--role', 'system', '--system', 'Aarhus Hospital'], '--system must be a system id'],
    [['--role', 'operator', '--ttl', 'abc'], '--ttl must be a whole number of seconds from 60 to 31536000'],
    [['--role', 'operator', '--ttl', '99999999'], '--ttl must be a whole number of seconds'],
    [['--role', 'operator', '--251248-1234'], 'unknown option'],
    [['--role', 'patient', '--patient', '251248-1234', '--sub', '251248-1234'], '--sub must not be a CPR number'],
    [['--role', 'operator', '--sub', '2512481234'], '--sub must not be a CPR number'],
    [['--role', 'operator', '--sub', 'pt.251248.1234'], '--sub must not be a CPR number'],
    [['--role', 'operator', '--sub', '19481225-1234'], '--sub must not be a CPR number'],
    [['--role', 'system', '--system', '251248-1234'], '--system must not be a CPR number'],
    [['--role', 'clinician', '--system', '2512481234', '--sub', 'clin-1'], '--system must not be a CPR number'],
  ])('%j: exit 2, "%s", with no typed CPR number repeated', async (argv, message) => {
    authSecret(undefined, dir);
    pseudonymSecret(undefined, dir);
    const res = await mint(argv);
    expect(res.code).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr).toContain(message);
    expect(res.stderr).toContain("Run 'node dist/bootstrap/token.js --help' for usage.");
    expect(res.stderr).not.toMatch(/251248|310248|2512481234/);
  });

  it('answers --help', async () => {
    const res = await mint(['--help'], {});
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('Usage: node dist/bootstrap/token.js --role ROLE');
    expect(res.stdout).toContain('78  ');
  });
});
