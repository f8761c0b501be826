#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ROLES, type Role } from '../application/access/policy';
import { signToken } from '../adapters/auth/tokens';
import { ConfigError, loadConfig } from './config';
import { authSecret } from './security-module';

/**
 * Mint a token signed with the hub's HS256 secret (RTS_AUTH_JWT_SECRET, else $RTS_DATA_DIR/auth.secret):
 *
 *   node dist/bootstrap/token.js --role operator
 *   node dist/bootstrap/token.js --role patient --patient 251248-1234 [--ttl 3600]
 *   node dist/bootstrap/token.js --role clinician --system aarhus --sub dr-jensen
 *
 * Prints the token only (use it as `Authorization: Bearer <token>`, or RTS_TOKEN for the CLI).
 */
const main = async (): Promise<void> => {
  const { values } = parseArgs({ options: { role: { type: 'string' }, patient: { type: 'string' }, system: { type: 'string' }, sub: { type: 'string' }, ttl: { type: 'string' } } });
  const role = values.role as Role | undefined;
  if (!role || !ROLES.includes(role)) throw new Error(`--role must be one of ${ROLES.join(', ')}`);
  if (role === 'patient' && !values.patient) throw new Error('--patient CPR is required for --role patient');
  if ((role === 'clinician' || role === 'system') && !values.system) throw new Error('--system ID is required for this role');
  const config = loadConfig();
  const secret = authSecret(config.RTS_AUTH_JWT_SECRET, config.RTS_DATA_DIR);
  const token = await signToken(
    secret,
    { sub: values.sub ?? `${role}-${values.system ?? 'local'}`, role, ...(values.patient ? { patient: values.patient } : {}), ...(values.system ? { systemId: values.system } : {}) },
    { issuer: config.RTS_AUTH_ISSUER, audience: config.RTS_AUTH_AUDIENCE, ttlSeconds: Number(values.ttl ?? 3600) },
  );
  process.stdout.write(`${token}\n`);
};

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`rts token: ${error instanceof ConfigError ? error.message : (error as Error).message}\n`);
    process.exit(2);
  });
}
