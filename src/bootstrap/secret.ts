import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DATA_FILES } from '../adapters/system/data-dir';
import { makeDirectory } from '../adapters/system/make-directory';
import { writeFileWhole } from '../adapters/system/write-file-whole';
import { secretTextProblem } from '../adapters/system/secret-text';
import { ConfigError } from './config';

/** The secret a hub wrote into `file`, checked (secretTextProblem), else a ConfigError naming the file. */
export const readSecretFile = (file: string, whatIfLost: string, minHexDigits = 32): Buffer => {
  const text = readFileSync(file, 'utf8');
  const problem = secretTextProblem(text, minHexDigits);
  if (problem !== null) {
    throw new ConfigError([`${basename(file)} in the data directory (RTS_DATA_DIR, the library's dataDir): ${problem}, cut short at a first start (a full disk, a power loss) or changed by hand; ${whatIfLost}`]);
  }
  return Buffer.from(text.trim(), 'hex');
};

const PSEUDONYM_LOST =
  'restore it from your backup (rts backup keeps it): a new one would make every patient a stranger to their data. Only if the data directory holds no data yet, delete it and start again';

/**
 * The pseudonym secret: from configuration when given, else generated once and kept beside the data (0600).
 * Losing it would change every patient's key, so it lives with the store it belongs to, and a damaged file stops
 * the start (it is never replaced by a new one).
 */
export const pseudonymSecret = (configured: string | undefined, dataDir: string): Buffer => {
  if (configured) return Buffer.from(configured, 'hex');
  const file = join(dataDir, DATA_FILES.pseudonymSecret);
  if (existsSync(file)) return readSecretFile(file, PSEUDONYM_LOST);
  makeDirectory(dataDir);
  const secret = randomBytes(32);
  // Another process on the same data directory wrote it first: that one is the secret.
  if (!writeFileWhole(file, secret.toString('hex'), { exclusive: true })) return readSecretFile(file, PSEUDONYM_LOST);
  return secret;
};
