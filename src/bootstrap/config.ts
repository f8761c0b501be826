import { z } from 'zod';

/**
 * Configuration from environment variables, validated at start. Defaults need nothing: `npm start` serves on
 * 127.0.0.1:8080 with the embedded SQLite store under ./data. A bad setting stops the start with its name.
 *
 * The event store is chosen by RTS_EVENT_STORE:
 *   sqlite        (default) a file under RTS_DATA_DIR; the registry projection in the same file.
 *   postgres      RTS_POSTGRES_URL (required), RTS_POSTGRES_SCHEMA (default public); the registry projection in
 *                 the same schema, shared by every hub process on that database.
 *   eventstoredb  RTS_EVENTSTORE_CONNECTION_STRING (required); the registry projection in memory, rebuilt from
 *                 $all at start, unless RTS_POSTGRES_URL is also given: then in PostgreSQL (RTS_POSTGRES_SCHEMA).
 */
const port = z.coerce.number().int().min(0).max(65535);

export const EVENT_STORES = ['sqlite', 'postgres', 'eventstoredb'] as const;
export type EventStoreKind = (typeof EVENT_STORES)[number];

/** The settings that choose and reach the event store, with the rule tying them together. */
const storeSettings = {
  RTS_EVENT_STORE: z.enum(EVENT_STORES, { error: `must be one of ${EVENT_STORES.join(', ')}` }).default('sqlite'),
  /** e.g. postgres://user:password@host:5432/db; never logged. */
  RTS_POSTGRES_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// connection URL')
    .optional(),
  /** Schema holding the event store's and the projections' tables; created if missing. */
  RTS_POSTGRES_SCHEMA: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain SQL identifier (letters, digits, _; at most 63)')
    .default('public'),
  /** e.g. esdb://admin:changeit@localhost:2113?tls=false; never logged. */
  RTS_EVENTSTORE_CONNECTION_STRING: z
    .string()
    .regex(/^esdb(\+discover)?:\/\/\S+$/, 'must be an esdb:// or esdb+discover:// connection string')
    .optional(),
};

type StoreSettings = { RTS_EVENT_STORE: EventStoreKind; RTS_POSTGRES_URL?: string | undefined; RTS_EVENTSTORE_CONNECTION_STRING?: string | undefined };

/** Names the missing setting: "RTS_POSTGRES_URL: required when RTS_EVENT_STORE=postgres". */
const requireStoreConnection = (value: StoreSettings, ctx: z.RefinementCtx): void => {
  if (value.RTS_EVENT_STORE === 'postgres' && value.RTS_POSTGRES_URL === undefined) {
    ctx.addIssue({ code: 'custom', path: ['RTS_POSTGRES_URL'], message: 'required when RTS_EVENT_STORE=postgres' });
  }
  if (value.RTS_EVENT_STORE === 'eventstoredb' && value.RTS_EVENTSTORE_CONNECTION_STRING === undefined) {
    ctx.addIssue({ code: 'custom', path: ['RTS_EVENTSTORE_CONNECTION_STRING'], message: 'required when RTS_EVENT_STORE=eventstoredb' });
  }
};

const StoreSelectionSchema = z.object(storeSettings).superRefine(requireStoreConnection);

export const ConfigSchema = z
  .object({
    RTS_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
    RTS_HTTP_PORT: port.default(8080),
    RTS_DATA_DIR: z.string().min(1).default('./data'),
    ...storeSettings,
    RTS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Secret of the patient pseudonyms (hex, at least 32 hex digits). Default: generated once into the data dir. */
    RTS_PSEUDONYM_SECRET: z.string().regex(/^[0-9a-fA-F]{32,}$/, 'must be at least 32 hex digits').optional(),
    /** OID of the repository that receives new documents. */
    RTS_REPOSITORY_UNIQUE_ID: z.string().regex(/^[0-2](\.(0|[1-9]\d*))+$/, 'must be an OID').default('2.25.151837495613302811512427370916935098473'),
    RTS_BODY_LIMIT_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(16 * 1024),
    /** How long SIGTERM waits for in-flight requests before closing anyway. */
    RTS_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  })
  .superRefine(requireStoreConnection);

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const describe = (issues: readonly z.core.$ZodIssue[]): string[] => issues.map((i) => `${i.path.join('.')}: ${i.message}`);

/** Only RTS_* variables are read, and values are never echoed (a secret could be among them). */
export const loadConfig = (env: NodeJS.ProcessEnv = process.env): Config => {
  const relevant = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('RTS_') && v !== undefined && v !== ''));
  const result = ConfigSchema.safeParse(relevant);
  if (result.success) return result.data;
  // zod skips an object's refinement once a field failed; check the store rule on its own so a bad port and a
  // missing RTS_POSTGRES_URL are reported together.
  const problems = describe(result.error.issues);
  const store = StoreSelectionSchema.safeParse(relevant);
  if (!store.success) for (const p of describe(store.error.issues)) if (!problems.includes(p)) problems.push(p);
  throw new ConfigError(problems);
};
