#!/usr/bin/env node
import { readSecretFile } from './secret';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROLES, type Role } from '../application/access/policy';
import { holdsCprNumber, patientSubject, signToken } from '../adapters/auth/tokens';
import { DATA_FILES } from '../adapters/system/data-dir';
import { HmacPatientKeys } from '../adapters/system/hmac-patient-keys';
import { parseCpr } from '../domain/monitoring/cpr';
import { fail, parseFlags, patientFrom, UsageError } from '../adapters/cli/args';
import { readPatientLine } from '../adapters/cli/stdin';
import { SYSTEM_ID_PATTERN } from '../domain/directory/connected-system';
import { ConfigError, loadConfig } from './config';
import { existingAuthSecret } from './security-module';

/**
 * Mint a token signed with the hub's HS256 secret (RTS_AUTH_JWT_SECRET, else $RTS_DATA_DIR/auth.secret):
 *
 *   node dist/bootstrap/token.js --role operator
 *   node dist/bootstrap/token.js --role patient --patient - [--ttl 3600] < cpr.txt     (or RTS_PATIENT)
 *   node dist/bootstrap/token.js --role clinician --system aarhus --sub dr-jensen
 *
 * Prints the token only (use it as `Authorization: Bearer <token>`, or RTS_TOKEN for the CLI).
 */
export const TOKEN_HELP = `Usage: node dist/bootstrap/token.js --role ROLE [--patient CPR|-] [--system ID] [--sub NAME] [--ttl SECONDS]

Mint an access token for the hub, signed with its HS256 secret: RTS_AUTH_JWT_SECRET, else the file
$RTS_DATA_DIR/auth.secret that the hub wrote at its first start. Run it with the hub's settings.
Prints the token only: send it as "Authorization: Bearer <token>", or give it to rts as RTS_TOKEN.

A patient's token names the patient by their pseudonymous key (from the hub's pseudonym secret:
RTS_PSEUDONYM_SECRET, else $RTS_DATA_DIR/pseudonym.secret), never by the CPR number.

Options:
  --role ROLE      ${ROLES.join(', ')}
  --patient CPR    the patient's CPR number, ddmmyy-ssss (--role patient only, and required there).
                   Other local users see a command line (ps, /proc): prefer "--patient -", which
                   reads it from stdin, or leave --patient out and set RTS_PATIENT
  --system ID      the system acted for (--role clinician and system only, and required there)
  --sub NAME       whom the token names, never a CPR number (default: <role>-<system or local>;
                   for a patient, their own pseudonym patient-<12 hex>, as the hub's dev-login gives it)
  --ttl SECONDS    how long it is valid, 60 to 31536000 seconds (365 days; default 3600)
  -h, --help       this text

Exit codes:
  0   the token is printed
  2   bad or missing flags
  78  the hub's settings are invalid, or no secret of the hub's is found here (the auth secret; for a
      patient's token also the pseudonym secret)
`;

const OPTIONS = {
  role: { type: 'string' },
  patient: { type: 'string' },
  system: { type: 'string' },
  sub: { type: 'string' },
  ttl: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const MIN_TTL = 60;
const MAX_TTL = 365 * 86_400;
/** --sub: a user or service name, as an identity provider's `sub` would be. */
const NAME = /^[A-Za-z0-9._:@-]{1,64}$/;

type Output = { write(text: string): unknown };
export type TokenDependencies = Readonly<{
  stdout: Output;
  stderr: Output;
  env: NodeJS.ProcessEnv;
  /** A line of stdin, for `--patient -`; read only then. */
  readStdin?: () => string;
}>;

/** A setting or the secret: the hub's configuration, not the flags (exit 78, as the hub's own start). */
class SettingsError extends Error {}

const claimsOf = (argv: readonly string[], deps: TokenDependencies) => {
  const values = parseFlags(argv, OPTIONS);
  if (values.help) return null;
  const role = values.role as Role | undefined;
  if (role === undefined) fail(`missing --role (${ROLES.join(', ')})`);
  if (!ROLES.includes(role!)) fail(`--role must be one of ${ROLES.join(', ')}`);
  // RTS_PATIENT is read for a patient's token only: the same shell may have it set for rts.
  if (role !== 'patient' && values.patient !== undefined) fail('--patient belongs to --role patient');
  const needsSystem = role === 'clinician' || role === 'system';
  if (needsSystem && !values.system) fail(`missing --system: a ${role} token acts for a system`);
  if (!needsSystem && values.system !== undefined) fail('--system belongs to --role clinician or system');
  if (values.system !== undefined && !SYSTEM_ID_PATTERN.test(values.system)) fail('--system must be a system id: 2-32 characters of a-z 0-9 -, starting with a letter or digit');
  // The hub refuses such a token (as POST /systems refuses such an id): the systemId goes into the audit trail too.
  if (values.system !== undefined && holdsCprNumber(values.system)) fail('--system must not be a CPR number: the system id is recorded in the audit trail, which erasure cannot reach');
  if (values.sub !== undefined && !NAME.test(values.sub)) fail('--sub must be 1-64 of A-Z a-z 0-9 . _ : @ -');
  // The hub refuses such a token: its sub goes into the audit trail, which erasure cannot reach.
  if (values.sub !== undefined && holdsCprNumber(values.sub)) fail('--sub must not be a CPR number: the sub is recorded in the audit trail, which erasure cannot reach');
  const ttl = values.ttl === undefined ? 3600 : /^\d{1,9}$/.test(values.ttl) ? Number(values.ttl) : NaN;
  if (!(ttl >= MIN_TTL && ttl <= MAX_TTL)) fail(`--ttl must be a whole number of seconds from ${MIN_TTL} to ${MAX_TTL}`);
  // Last: stdin is read only once every flag is known to be right.
  const patient = role === 'patient' ? patientFrom(values.patient, deps.env, deps.readStdin) : undefined;
  return {
    claims: { ...(values.sub !== undefined ? { sub: values.sub } : {}), role: role!, ...(values.system ? { systemId: values.system } : {}) },
    patient,
    ttl,
  };
};

/**
 * The patient's pseudonymous key, as the hub makes it: HMAC of the CPR number under the hub's pseudonym secret
 * (RTS_PSEUDONYM_SECRET, else $RTS_DATA_DIR/pseudonym.secret). The token carries it instead of the CPR number, and
 * its default sub is made from it as dev-login makes it. Never a new pseudonym secret: that would be the hub's next
 * start's, and a key under any other secret reaches no patient's data.
 */
const patientKeyOf = (cpr: string, config: { RTS_PSEUDONYM_SECRET?: string | undefined; RTS_DATA_DIR: string }): string => {
  const file = join(config.RTS_DATA_DIR, DATA_FILES.pseudonymSecret);
  // The file as the hub reads it: an empty or damaged one is said so (exit 78), not hashed as a secret of no bytes.
  const secret = config.RTS_PSEUDONYM_SECRET ? Buffer.from(config.RTS_PSEUDONYM_SECRET, 'hex') : existsSync(file) ? settingsOf(() => readSecretFile(file, 'run this with a data directory whose secret is whole')) : null;
  if (secret === null) {
    throw new SettingsError(
      `no pseudonym secret of the hub's here: RTS_PSEUDONYM_SECRET is not set and ${file} does not exist. A patient's token names the patient by the key the hub's pseudonym secret gives: run this with the hub's RTS_DATA_DIR (or its RTS_PSEUDONYM_SECRET)`,
    );
  }
  return new HmacPatientKeys(secret).keyFor(parseCpr(cpr));
};

/** A ConfigError (a damaged secret file) as the settings problem it is: its message and exit 78, not "unexpected error". */
const settingsOf = <T>(read: () => T): T => {
  try {
    return read();
  } catch (error) {
    if (error instanceof ConfigError) throw new SettingsError(error.problems.join('; '));
    throw error;
  }
};

/** `token.js ...`: print a token, or say what is wrong; resolves with the exit code. */
export const runToken = async (argv: readonly string[], deps: TokenDependencies): Promise<number> => {
  try {
    const wanted = claimsOf(argv, deps);
    if (wanted === null) {
      deps.stdout.write(TOKEN_HELP);
      return 0;
    }
    let config;
    try {
      config = loadConfig(deps.env);
    } catch (error) {
      if (error instanceof ConfigError) throw new SettingsError(error.message);
      throw error;
    }
    if (config.RTS_AUTH_JWKS_URL !== undefined) {
      throw new SettingsError('this hub takes tokens from an identity provider (RTS_AUTH_JWKS_URL is set): get them there');
    }
    // Never a new secret: a token signed with one the hub does not have would only be refused.
    const secret = settingsOf(() => existingAuthSecret(config.RTS_AUTH_JWT_SECRET, config.RTS_DATA_DIR));
    if (secret === null) {
      throw new SettingsError(
        `no secret of the hub's here: RTS_AUTH_JWT_SECRET is not set and ${config.RTS_DATA_DIR}/auth.secret does not exist. Run this with the hub's RTS_DATA_DIR (or its RTS_AUTH_JWT_SECRET)`,
      );
    }
    const patientKey = wanted.patient !== undefined ? patientKeyOf(wanted.patient, config) : undefined;
    const claims = {
      ...wanted.claims,
      ...(patientKey !== undefined ? { patientKey } : {}),
      sub: wanted.claims.sub ?? (patientKey !== undefined ? patientSubject(patientKey) : `${wanted.claims.role}-${wanted.claims.systemId ?? 'local'}`),
    };
    const token = await signToken(secret, claims, { issuer: config.RTS_AUTH_ISSUER, audience: config.RTS_AUTH_AUDIENCE, ttlSeconds: wanted.ttl });
    deps.stdout.write(`${token}\n`);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      deps.stderr.write(`rts token: ${error.message}\nRun 'node dist/bootstrap/token.js --help' for usage.\n`);
      return 2;
    }
    if (error instanceof SettingsError) {
      deps.stderr.write(`rts token: ${error.message}\n`);
      return 78;
    }
    deps.stderr.write(`rts token: unexpected error: ${(error as Error)?.name ?? 'Error'}\n`);
    return 1;
  }
};

if (require.main === module) {
  void runToken(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, readStdin: readPatientLine }).then((code) => {
    process.exitCode = code;
  });
}
