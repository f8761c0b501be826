import { z } from 'zod';

/**
 * Configuration from environment variables, validated at start. Defaults need nothing: `npm start` serves on
 * 127.0.0.1:8080 with the embedded SQLite store under ./data. A bad setting stops the start with its name.
 */
const port = z.coerce.number().int().min(0).max(65535);

export const ConfigSchema = z.object({
  RTS_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  RTS_HTTP_PORT: port.default(8080),
  RTS_DATA_DIR: z.string().min(1).default('./data'),
  RTS_EVENT_STORE: z.enum(['sqlite']).default('sqlite'),
  RTS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Secret of the patient pseudonyms (hex, at least 32 hex digits). Default: generated once into the data dir. */
  RTS_PSEUDONYM_SECRET: z.string().regex(/^[0-9a-fA-F]{32,}$/, 'must be at least 32 hex digits').optional(),
  /** OID of the repository that receives new documents. */
  RTS_REPOSITORY_UNIQUE_ID: z.string().regex(/^[0-2](\.(0|[1-9]\d*))+$/, 'must be an OID').default('2.25.151837495613302811512427370916935098473'),
  RTS_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(16 * 1024),
  /** How long SIGTERM waits for in-flight requests before closing anyway. */
  RTS_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Only RTS_* variables are read, and values are never echoed (a secret could be among them). */
export const loadConfig = (env: NodeJS.ProcessEnv = process.env): Config => {
  const relevant = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('RTS_') && v !== undefined && v !== ''));
  const result = ConfigSchema.safeParse(relevant);
  if (!result.success) throw new ConfigError(result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  return result.data;
};
