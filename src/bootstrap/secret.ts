import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DATA_FILES } from '../adapters/system/data-dir';
import { makeDirectory } from '../adapters/system/make-directory';

/**
 * The pseudonym secret: from configuration when given, else generated once and kept beside the data (0600).
 * Losing it would change every patient's key, so it lives with the store it belongs to.
 */
export const pseudonymSecret = (configured: string | undefined, dataDir: string): Buffer => {
  if (configured) return Buffer.from(configured, 'hex');
  const file = join(dataDir, DATA_FILES.pseudonymSecret);
  if (existsSync(file)) return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  makeDirectory(dataDir);
  const secret = randomBytes(32);
  try {
    writeFileSync(file, secret.toString('hex'), { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // Another process on the same data directory wrote it first: that one is the secret.
    if ((error as { code?: string }).code !== 'EEXIST') throw error;
    return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  }
  chmodSync(file, 0o600);
  return secret;
};
