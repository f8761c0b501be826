import { z } from 'zod';
import { wholeNumberSetting } from './setting-numbers';
import { readFileSync } from 'node:fs';
import type { AmqpEndpoint, AmqpSasl, AmqpTls } from '../adapters/amqp/connection';
import { parseBrokerUrl } from '../adapters/messaging/amqp-broker-url';
import { parseDiscoveryUri, type DiscoverySettings } from '../adapters/amqp/discovery-provider';
import { authSettings, requireLoopbackWithoutAuth } from './auth-config';
import { issueMessage } from '../adapters/validation/zod-issues';
import { nearName } from '../adapters/validation/near-name';
import { DEFAULT_STALL_AFTER_MS } from '../application/downlink/downlink-lag';
import { isOid } from '../application/ids';

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
const port = wholeNumberSetting(0, 65535);

export const EVENT_STORES = ['sqlite', 'postgres', 'eventstoredb'] as const;
export type EventStoreKind = (typeof EVENT_STORES)[number];

/** The files a PostgreSQL URL may name for TLS (node-postgres reads them when it connects). */
const POSTGRES_TLS_FILES = ['sslrootcert', 'sslcert', 'sslkey'] as const;

/**
 * What is wrong with a postgres:// URL that node-postgres would only find at the first connection ("Invalid URL",
 * ENOENT of a certificate), said without the value: it holds the password.
 */
const postgresUrlProblems = (value: string): string[] => {
  let url: URL;
  try {
    url = parsePostgresUrl(value);
  } catch {
    return ['is not a valid URL (check the port, 1-65535, and percent-encode special characters of the user name and password)'];
  }
  const problems: string[] = [];
  if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) problems.push('the port must be 1-65535');
  for (const name of POSTGRES_TLS_FILES) {
    const file = url.searchParams.get(name);
    if (file === null) continue;
    try {
      readFileSync(file);
    } catch (error) {
      problems.push(`${name}: cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  return problems;
};

const NO_HOST = 'no-host.invalid';
/** As node-postgres parses it (pg-connection-string): spaces and stray % encoded, an empty host (`user@/db`) allowed. */
const parsePostgresUrl = (value: string): URL => {
  const text = / |%[^a-f0-9]|%[a-f0-9][^a-f0-9]/i.test(value) ? encodeURI(value).replace(/%25(\d\d)/g, '%$1') : value;
  try {
    return new URL(text);
  } catch {
    return new URL(text.replace('@/', `@${NO_HOST}/`));
  }
};

/** Where a postgres:// URL points, for messages: host and port, never the user or the password. */
export const postgresAddress = (value: string): string => {
  try {
    const url = parsePostgresUrl(value);
    const named = url.hostname === NO_HOST ? '' : decodeURIComponent(url.hostname);
    const host = named !== '' ? named : (url.searchParams.get('host') ?? 'localhost');
    return `${host}:${url.port !== '' ? url.port : '5432'}`;
  } catch {
    return 'the address given';
  }
};

/** The settings that choose and reach the event store, with the rule tying them together. */
const storeSettings = {
  RTS_EVENT_STORE: z.enum(EVENT_STORES, { error: `must be one of ${EVENT_STORES.join(', ')}` }).default('sqlite'),
  /** e.g. postgres://user:password@host:5432/db; never logged. */
  RTS_POSTGRES_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// connection URL')
    .superRefine((value, ctx) => {
      for (const problem of postgresUrlProblems(value)) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional(),
  /** Schema holding the event store's and the projections' tables; created if missing. */
  RTS_POSTGRES_SCHEMA: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain SQL identifier (letters, digits, _; at most 63)')
    .default('public'),
  /**
   * How long a connection to PostgreSQL may take (TCP, TLS, login), and a wait for a free pooled connection: past
   * it the start ends with exit 69 and a request with 503 storage_unavailable. Raise it for a far or slow server.
   */
  RTS_POSTGRES_CONNECT_TIMEOUT_MS: wholeNumberSetting(100, 600_000).default(10_000),
  /**
   * How long one statement may go unanswered before its caller gets 503 storage_unavailable and its connection is
   * dropped (a hung server, a proxy that stopped forwarding). Migrations, VACUUM and a registry rebuild's deletes
   * are not bounded by it (see sql.ts). Raise it if ordinary statements of a large deployment take that long.
   */
  RTS_POSTGRES_QUERY_TIMEOUT_MS: wholeNumberSetting(100, 3_600_000).default(30_000),
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
  // A store's connection given while another store is chosen: RTS_EVENT_STORE forgotten, or set empty (an empty
  // value counts as unset) in a unit's environment file, started a hub on a private SQLite store without a word.
  if (value.RTS_EVENT_STORE === 'sqlite' && value.RTS_POSTGRES_URL !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['RTS_POSTGRES_URL'], message: 'set, but RTS_EVENT_STORE is sqlite (its default when unset or empty): set RTS_EVENT_STORE=postgres, or leave RTS_POSTGRES_URL out' });
  }
  if (value.RTS_EVENT_STORE !== 'eventstoredb' && value.RTS_EVENTSTORE_CONNECTION_STRING !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['RTS_EVENTSTORE_CONNECTION_STRING'], message: `set, but RTS_EVENT_STORE is ${value.RTS_EVENT_STORE}: set RTS_EVENT_STORE=eventstoredb, or leave RTS_EVENTSTORE_CONNECTION_STRING out` });
  }
};

const StoreSelectionSchema = z.object(storeSettings).superRefine(requireStoreConnection);

/**
 * Messaging over ActiveMQ (AMQP 1.0). Without RTS_BROKER_URL the hub runs without messaging (the embedded
 * profile): the directory's HTTP API works, nothing is consumed or published. Defaults are applied by
 * `messagingConfig` so a config without a broker stays as small as before.
 */
/** A path to a readable PEM file holding `marker`; the file is read again where it is used. */
const pemFile = (marker: string, what: string) =>
  z
    .string()
    .min(1)
    .superRefine((value, ctx) => {
      let text: string;
      try {
        text = readFileSync(value, 'utf8');
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `cannot read the file (${(error as NodeJS.ErrnoException).code ?? 'error'})` });
        return;
      }
      if (!text.includes(marker)) ctx.addIssue({ code: 'custom', message: `the file holds no ${what}` });
    });
const queueName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, 'must be a queue name: letters, digits . _ : - (at most 200)');
const messagingSettings = {
  /** amqp://host:port, a comma list, or failover:(amqp://a:5673,amqp://b:5673). */
  RTS_BROKER_URL: z.string().superRefine((value, ctx) => {
    try {
      parseBrokerUrl(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  }).optional(),
  /** multicast://239.255.2.3:6155?group=rts&interface=10.0.0.5 (or multicast://default): brokers found by their announcements; with RTS_BROKER_URL too, both are offered. */
  RTS_BROKER_DISCOVERY: z.string().superRefine((value, ctx) => {
    try {
      parseDiscoveryUri(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
    }
  }).optional(),
  /**
   * For amqps:// brokers whose certificate is not signed by a CA the system trusts: a PEM file of the CA
   * certificate(s) to trust instead. The broker's certificate is verified either way.
   */
  RTS_BROKER_TLS_CA: pemFile('CERTIFICATE-----', 'PEM certificate (-----BEGIN CERTIFICATE-----)').optional(),
  /**
   * For brokers that ask for client certificates (mutual TLS): this hub's certificate and its private key, PEM
   * files, both or neither. The key file is read at start; it is never logged.
   */
  RTS_BROKER_TLS_CERT: pemFile('CERTIFICATE-----', 'PEM certificate (-----BEGIN CERTIFICATE-----)').optional(),
  RTS_BROKER_TLS_KEY: pemFile('PRIVATE KEY-----', 'PEM private key (-----BEGIN ... PRIVATE KEY-----)').optional(),
  /** SASL PLAIN when given (with RTS_BROKER_PASSWORD); never logged. */
  RTS_BROKER_USERNAME: z.string().min(1).max(200).optional(),
  RTS_BROKER_PASSWORD: z.string().min(1).max(1000).optional(),
  RTS_UPLINK_QUEUE: queueName.optional(),
  RTS_DEAD_LETTER_QUEUE: queueName.optional(),
  /** Downlink queue of system X: `${prefix}X`. */
  RTS_DOWNLINK_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,150}$/, 'must be a queue name prefix: letters, digits . _ : -').optional(),
  /** Handler attempts per uplink message before it is dead-lettered. */
  RTS_UPLINK_MAX_ATTEMPTS: wholeNumberSetting(1, 100).optional(),
  /** Uplink messages held unsettled at once (= concurrent handlers) per hub process. */
  RTS_UPLINK_PREFETCH: wholeNumberSetting(1, 1000).optional(),
  /** First wait before a retried uplink message is handed back, doubling per attempt, at most 5 s (0: at once). */
  RTS_UPLINK_RETRY_DELAY_MS: wholeNumberSetting(0, 5000).optional(),
  /** How long one handling of an uplink message may run (from its turn, not while it waits) before it counts as a failed attempt. */
  RTS_UPLINK_HANDLER_TIMEOUT_MS: wholeNumberSetting(1_000, 600_000).optional(),
  /** A downlink publisher behind the store whose checkpoint has not moved for this long: /health `downlink: "stalled"`. */
  RTS_DOWNLINK_STALL_AFTER_MS: wholeNumberSetting(10_000, 3_600_000).optional(),
  /** How often the dead letter queue's depth is read from the broker (rts_dead_letters). */
  RTS_DEAD_LETTER_DEPTH_EVERY_MS: wholeNumberSetting(1_000, 600_000).optional(),
};

type MessagingSettings = Partial<Record<'RTS_BROKER_USERNAME' | 'RTS_BROKER_PASSWORD' | 'RTS_BROKER_TLS_CERT' | 'RTS_BROKER_TLS_KEY', string | undefined>>;
const requireCredentialPair = (value: MessagingSettings, ctx: z.RefinementCtx): void => {
  const pairs = [
    ['RTS_BROKER_USERNAME', 'RTS_BROKER_PASSWORD'],
    ['RTS_BROKER_TLS_CERT', 'RTS_BROKER_TLS_KEY'],
  ] as const;
  for (const [a, b] of pairs) {
    if (value[a] !== undefined && value[b] === undefined) ctx.addIssue({ code: 'custom', path: [b], message: `required when ${a} is set` });
    if (value[b] !== undefined && value[a] === undefined) ctx.addIssue({ code: 'custom', path: [a], message: `required when ${b} is set` });
  }
};
const MessagingSelectionSchema = z.object(messagingSettings).superRefine(requireCredentialPair);

export const ConfigSchema = z
  .object({
    RTS_HTTP_HOST: z.string().min(1).default('127.0.0.1'),
    RTS_HTTP_PORT: port.default(8080),
    /**
     * HTTP connections held open at once; one more is closed as it is accepted. Default (when unset): 1024, or the
     * process's open-file limit less 128 when lower; one the limit cannot hold stops the start (http-connections.ts).
     */
    RTS_HTTP_MAX_CONNECTIONS: wholeNumberSetting(1, 1_000_000).optional(),
    RTS_DATA_DIR: z.string().min(1).default('./data'),
    ...storeSettings,
    RTS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /**
     * Secret of the patient pseudonyms (hex, at least 32 hex digits, two per byte, as pseudonym.secret). Default:
     * generated once into the data dir. An odd count was taken, and Buffer.from(hex) dropped the last digit unseen.
     */
    RTS_PSEUDONYM_SECRET: z.string().regex(/^(?:[0-9a-fA-F]{2}){16,}$/, 'must be at least 32 hex digits, two per byte (an even number of them); builds before 2026-12-06 took an odd count and used it without its last digit: drop that digit to keep the same secret').optional(),
    /** OID of the repository that receives new documents: at most 64 characters, XDS's limit for an OID, as uniqueIds. */
    RTS_REPOSITORY_UNIQUE_ID: z.string().refine(isOid, 'must be an OID (digits and dots, such as 1.2.208.176.1) of at most 64 characters, as XDS takes it').default('2.25.151837495613302811512427370916935098473'),
    RTS_BODY_LIMIT_BYTES: wholeNumberSetting(1024, 10 * 1024 * 1024).default(16 * 1024),
    /**
     * How long GET /health waits for the store before answering 503 storage_unavailable: a load balancer's probe
     * should get that answer, not its own timeout. Keep it below the probe's timeout.
     */
    RTS_HEALTH_TIMEOUT_MS: wholeNumberSetting(100, 60_000).default(2_000),
    /** How long SIGTERM waits for in-flight requests before closing anyway. */
    RTS_SHUTDOWN_GRACE_MS: wholeNumberSetting(0, 3_600_000).default(10_000),
    /**
     * Message security on the queues: 'jose' (every message signed by its sender and encrypted for its receiver,
     * JWS inside JWE) or 'off' (plain JSON). Default jose: personal data must never cross the broker in clear,
     * so turning it off has to be explicit (tests of the plaintext flows, a trusted lab broker). Read it with
     * messageSecurity(config).
     */
    RTS_MESSAGE_SECURITY: z.enum(['jose', 'off']).optional(),
    /** The hub's own message keys (JSON of private JWKs); default: generated once into RTS_DATA_DIR/hub-keys.json. Share one file among hub processes. */
    RTS_HUB_KEYS_FILE: z.string().min(1).optional(),
    /**
     * on: accept, for this start, hub keys that share none with those the store's hub processes last recorded
     * (every hub key replaced at once, or a lost key file); see application/security/hub-keys-check.ts.
     */
    RTS_HUB_KEYS_ACCEPT_NEW: z.enum(['on', 'off'], { error: 'must be on or off' }).default('off'),
    /**
     * on: accept, for this start, an RTS_MESSAGE_SECURITY other than the one the store's messaging hub processes
     * last recorded (the whole deployment switched); see application/security/message-security-check.ts.
     */
    RTS_MESSAGE_SECURITY_CHANGE: z.enum(['on', 'off'], { error: 'must be on or off' }).default('off'),
    /** Access control, rate limits, data keys: see auth-config.ts. */
    ...authSettings,
    ...messagingSettings,
  })
  .superRefine(requireStoreConnection)
  .superRefine(requireCredentialPair)
  .superRefine(requireLoopbackWithoutAuth);

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  /** Stable, for callers that tell errors apart by code (the RtsErrors have one too). */
  readonly code = 'invalid_configuration';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const describe = (issues: readonly z.core.$ZodIssue[]): string[] => issues.map((i) => `${i.path.join('.')}: ${issueMessage(i)}`);

/**
 * The rts CLI's own variables (src/adapters/cli): a shell that runs both the CLI and the hub has them set, and they
 * are no misspelt setting. RTS_URL is one word short of RTS_BROKER_URL and RTS_POSTGRES_URL.
 */
export const CLI_VARIABLES: readonly string[] = ['RTS_URL', 'RTS_TOKEN', 'RTS_PATIENT', 'RTS_TIMEOUT', 'RTS_NO_CHART', 'RTS_DEBUG', 'RTS_INSECURE_HTTP'];

/** Whether a setting's name, with one of its words after RTS_ left out, is `name` (RTS_HTTP_PORT -> RTS_PORT). */
const oneWordShort = (name: string, setting: string): boolean => {
  const words = setting.split('_');
  if (name.split('_').length !== words.length - 1) return false;
  for (let i = 1; i < words.length; i++) if ([...words.slice(0, i), ...words.slice(i + 1)].join('_') === name) return true;
  return false;
};

/**
 * RTS_* names that are no setting but near one: within two edits (RTS_EVENT_STOR), or one word short
 * (RTS_PORT for RTS_HTTP_PORT, RTS_STORE for RTS_EVENT_STORE). RTS_EVENT_STOR=postgres started a hub on a private
 * SQLite store, beside the deployment's broker, without a word; RTS_PORT=9000 a hub on 8080. Other RTS_* names
 * (the CLI's RTS_URL, the broker scripts' RTS_BROKER_PORT, ...) are left alone.
 */
const misspelt = (names: readonly string[]): string[] => {
  const known = Object.keys(ConfigSchema.shape);
  return names.flatMap((name) => {
    if (known.includes(name) || CLI_VARIABLES.includes(name)) return [];
    const near = nearName(name, known) ?? known.find((k) => oneWordShort(name, k));
    return near === undefined ? [] : [`${name}: not a setting; did you mean ${near}?`];
  });
};

/** Only RTS_* variables are read, and values are never echoed (a secret could be among them). */
export const loadConfig = (env: NodeJS.ProcessEnv = process.env): Config => {
  const relevant = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('RTS_') && v !== undefined && v !== ''));
  const result = ConfigSchema.safeParse(relevant);
  const typos = misspelt(Object.keys(relevant));
  if (result.success && typos.length === 0) return result.data;
  if (result.success) throw new ConfigError(typos);
  // zod skips an object's refinement once a field failed; check the store rule on its own so a bad port and a
  // missing RTS_POSTGRES_URL are reported together.
  const problems = [...describe(result.error.issues), ...typos];
  const store = StoreSelectionSchema.safeParse(relevant);
  if (!store.success) for (const p of describe(store.error.issues)) if (!problems.includes(p)) problems.push(p);
  const messaging = MessagingSelectionSchema.safeParse(relevant);
  if (!messaging.success) for (const p of describe(messaging.error.issues)) if (!problems.includes(p)) problems.push(p);
  throw new ConfigError(problems);
};

/** The hub's messaging settings with their defaults; null in the embedded profile (no RTS_BROKER_URL). */
export type MessagingConfig = Readonly<{
  /** The static list (RTS_BROKER_URL); empty when only discovery is configured. */
  endpoints: readonly AmqpEndpoint[];
  /** RTS_BROKER_DISCOVERY, parsed. */
  discovery?: DiscoverySettings;
  sasl: AmqpSasl;
  /** For amqps:// endpoints: the CA certificates of RTS_BROKER_TLS_CA (else the system's). */
  tls?: AmqpTls;
  uplinkQueue: string;
  deadLetterQueue: string;
  downlinkQueuePrefix: string;
  uplinkMaxAttempts: number;
  uplinkPrefetch: number;
  uplinkRetryDelayMs: number;
  uplinkHandlerTimeoutMs: number;
  downlinkStallAfterMs: number;
  deadLetterDepthEveryMs: number;
}>;

export const DEFAULT_UPLINK_QUEUE = 'rts.uplink';
export const DEFAULT_DEAD_LETTER_QUEUE = 'rts.dlq';
export const DEFAULT_DOWNLINK_QUEUE_PREFIX = 'rts.downlink.';

export const messagingConfig = (config: Config): MessagingConfig | null => {
  if (config.RTS_BROKER_URL === undefined && config.RTS_BROKER_DISCOVERY === undefined) return null;
  return {
    endpoints: config.RTS_BROKER_URL === undefined ? [] : parseBrokerUrl(config.RTS_BROKER_URL),
    ...(config.RTS_BROKER_DISCOVERY === undefined ? {} : { discovery: parseDiscoveryUri(config.RTS_BROKER_DISCOVERY) }),
    // ActiveMQ's AMQP connector wants SASL (ANONYMOUS unless users are configured), unless non-SASL is allowed.
    sasl:
      config.RTS_BROKER_USERNAME !== undefined && config.RTS_BROKER_PASSWORD !== undefined
        ? { mechanism: 'plain', username: config.RTS_BROKER_USERNAME, password: config.RTS_BROKER_PASSWORD }
        : { mechanism: 'anonymous' },
    ...(config.RTS_BROKER_TLS_CA === undefined && config.RTS_BROKER_TLS_CERT === undefined
      ? {}
      : {
          tls: {
            ...(config.RTS_BROKER_TLS_CA === undefined ? {} : { ca: readFileSync(config.RTS_BROKER_TLS_CA, 'utf8') }),
            ...(config.RTS_BROKER_TLS_CERT === undefined || config.RTS_BROKER_TLS_KEY === undefined
              ? {}
              : { cert: readFileSync(config.RTS_BROKER_TLS_CERT, 'utf8'), key: readFileSync(config.RTS_BROKER_TLS_KEY, 'utf8') }),
          },
        }),
    uplinkQueue: config.RTS_UPLINK_QUEUE ?? DEFAULT_UPLINK_QUEUE,
    deadLetterQueue: config.RTS_DEAD_LETTER_QUEUE ?? DEFAULT_DEAD_LETTER_QUEUE,
    downlinkQueuePrefix: config.RTS_DOWNLINK_QUEUE_PREFIX ?? DEFAULT_DOWNLINK_QUEUE_PREFIX,
    uplinkMaxAttempts: config.RTS_UPLINK_MAX_ATTEMPTS ?? 5,
    // 200: the handlers' appends then fill larger group-commit batches; at 50 the hub waited on the broker
    // (bench/README.md, hub end-to-end, 2026-11-29: 0.55-0.63 of a bare consumer at 50 credits; at 200 seven runs
    // gave 0.67-0.83, median 0.71).
    uplinkPrefetch: config.RTS_UPLINK_PREFETCH ?? 200,
    // Retries spaced out (0.25, 0.5, 1, 2 s with 5 attempts): handed back at once, all attempts of a change whose
    // registration another hub process was still applying ran out within ~20 ms.
    uplinkRetryDelayMs: config.RTS_UPLINK_RETRY_DELAY_MS ?? 250,
    // A minute, amqp-uplink-consumer's HANDLER_TIMEOUT_MS (not imported: the embedded profile loads no messaging
    // module): a handling appends a few events; one that takes longer waits on a store that is not answering.
    uplinkHandlerTimeoutMs: config.RTS_UPLINK_HANDLER_TIMEOUT_MS ?? 60_000,
    // A minute: a page of the publisher's events (200) goes out in seconds, even to a slow broker; a hub cut off
    // from its broker shows as disconnected first.
    downlinkStallAfterMs: config.RTS_DOWNLINK_STALL_AFTER_MS ?? DEFAULT_STALL_AFTER_MS,
    // 15 s: one Prometheus scrape interval; a reading is one small request and reply whatever the depth.
    deadLetterDepthEveryMs: config.RTS_DEAD_LETTER_DEPTH_EVERY_MS ?? 15_000,
  };
};

/** RTS_MESSAGE_SECURITY with its default: 'jose' unless set to 'off'. */
export const messageSecurity = (config: Config): 'jose' | 'off' => config.RTS_MESSAGE_SECURITY ?? 'jose';
