import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigSchema, loadConfig, messagingConfig } from '../../src/bootstrap/config';

/**
 * Every setting the hub reads is named in the README, the operator's only list of them: a setting added to the
 * schema and not to the README is one nobody knows to set (or finds when a start names it as wrong).
 */
const README = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');
/** As code: `RTS_X` in a table or text, or `RTS_X=on` where a one-start switch is explained. */
const named = (setting: string): boolean => README.includes(`\`${setting}\``) || README.includes(`\`${setting}=`);

describe('configuration: the README names every setting', () => {
  const settings = Object.keys(ConfigSchema.shape);

  it('reads the settings from the schema', () => {
    expect(settings).toEqual(expect.arrayContaining(['RTS_HTTP_PORT', 'RTS_DATA_DIR', 'RTS_BROKER_URL', 'RTS_UPLINK_HANDLER_TIMEOUT_MS']));
  });

  it.each(settings)('%s', (setting) => {
    expect(named(setting)).toBe(true);
  });

  it('would catch one that is not named', () => {
    expect(named('RTS_NO_SUCH_SETTING')).toBe(false);
  });

  // Named in prose was not enough: a review found 14 settings in no table, and an operator reads the tables.
  it('gives every setting a row of a configuration table', () => {
    const rows = README.split('\n').filter((line) => line.startsWith('| `RTS_'));
    const inTable = (setting: string) => rows.some((row) => row.split('|')[1]!.includes(`\`${setting}\``));
    expect(settings.filter((setting) => !inTable(setting))).toEqual([]);
    expect(inTable('RTS_NO_SUCH_SETTING')).toBe(false);
  });
});

/**
 * The README's configuration tables give each setting's default in their second column. Where that cell is one code
 * literal (`8080`, `rts.uplink`) it must be the default the hub applies: the schema's own, or for the messaging
 * settings the one messagingConfig fills in (the schema leaves those optional, so an unset one reads as unset).
 */
describe("configuration: the README's defaults are the hub's", () => {
  const defaultCell = (setting: string): string | undefined => {
    const row = README.split('\n').find((line) => line.startsWith(`| \`${setting}\` |`));
    const cell = row?.split('|')[2]?.trim();
    return cell !== undefined && /^`[^`]+`$/.test(cell) ? cell.slice(1, -1) : undefined;
  };
  const schemaDefault = (setting: string): unknown => {
    const def = (ConfigSchema.shape as Record<string, { _zod: { def: { type: string; defaultValue?: unknown } } }>)[setting]!._zod.def;
    return def.type === 'default' ? def.defaultValue : undefined;
  };
  const messaging = messagingConfig(loadConfig({ RTS_BROKER_URL: 'amqp://127.0.0.1:5673' }))!;
  const MESSAGING_FIELD: Readonly<Record<string, keyof typeof messaging>> = {
    RTS_UPLINK_QUEUE: 'uplinkQueue',
    RTS_DEAD_LETTER_QUEUE: 'deadLetterQueue',
    RTS_DOWNLINK_QUEUE_PREFIX: 'downlinkQueuePrefix',
    RTS_UPLINK_MAX_ATTEMPTS: 'uplinkMaxAttempts',
    RTS_UPLINK_PREFETCH: 'uplinkPrefetch',
    RTS_UPLINK_RETRY_DELAY_MS: 'uplinkRetryDelayMs',
    RTS_UPLINK_HANDLER_TIMEOUT_MS: 'uplinkHandlerTimeoutMs',
    RTS_DOWNLINK_STALL_AFTER_MS: 'downlinkStallAfterMs',
    RTS_DEAD_LETTER_DEPTH_EVERY_MS: 'deadLetterDepthEveryMs',
  };
  const stated = Object.keys(ConfigSchema.shape).filter((setting) => defaultCell(setting) !== undefined);

  it('finds the stated defaults, the messaging ones among them', () => {
    expect(stated).toEqual(expect.arrayContaining(['RTS_HTTP_PORT', 'RTS_DATA_DIR', ...Object.keys(MESSAGING_FIELD)]));
  });

  it.each(stated)('%s', (setting) => {
    const applied = setting in MESSAGING_FIELD ? messaging[MESSAGING_FIELD[setting]!] : schemaDefault(setting);
    expect({ setting, default: String(applied) }).toEqual({ setting, default: defaultCell(setting) });
  });
});

/**
 * A number setting's row states the range the hub takes, as `(min-max` in its last column (`(1-1000000)`,
 * `(0-3600000 ms)`, `(100-60000; ...)`): the range the schema checks at start. Five rows stated none, so an operator
 * learned of RTS_UPLINK_PREFETCH's 1000 or RTS_BODY_LIMIT_BYTES's 10 MiB only from a start that stopped on it.
 */
describe("configuration: the README states each number setting's range, the schema's", () => {
  type Def = { type: string; innerType?: { _zod: { def: Def } }; out?: { _zod: { def: Def }; minValue: number | null; maxValue: number | null } };
  const rangeOf = (setting: string): { min: number; max: number } | undefined => {
    let def = (ConfigSchema.shape as unknown as Record<string, { _zod: { def: Def } }>)[setting]!._zod.def;
    while ((def.type === 'default' || def.type === 'optional') && def.innerType) def = def.innerType._zod.def;
    // wholeNumberSetting and decimalSetting: digits, piped into a number with its bounds.
    if (def.type !== 'pipe' || def.out?._zod.def.type !== 'number') return undefined;
    const { minValue, maxValue } = def.out;
    return minValue === null || maxValue === null || !Number.isFinite(minValue) || !Number.isFinite(maxValue) ? undefined : { min: minValue, max: maxValue };
  };
  const rowOf = (setting: string): string | undefined => README.split('\n').find((line) => line.startsWith('| `RTS_') && line.split('|')[1]!.includes(`\`${setting}\``));
  /** Every `(a-b` the row holds (a range in parentheses, its bounds written in plain digits). */
  const statedRanges = (row: string): string[] => [...row.matchAll(/\((\d+(?:\.\d+)?-\d+(?:\.\d+)?)(?=[ ;,)])/g)].map((m) => m[1]!);
  const ranged = Object.keys(ConfigSchema.shape).filter((setting) => rangeOf(setting) !== undefined);

  it('finds the number settings and their bounds', () => {
    expect(ranged).toEqual(expect.arrayContaining(['RTS_HTTP_PORT', 'RTS_BODY_LIMIT_BYTES', 'RTS_RATE_LIMIT_PER_SECOND', 'RTS_UPLINK_PREFETCH']));
    expect(rangeOf('RTS_BODY_LIMIT_BYTES')).toEqual({ min: 1024, max: 10 * 1024 * 1024 });
    expect(rangeOf('RTS_RATE_LIMIT_PER_SECOND')).toEqual({ min: 0.1, max: 100_000 });
    expect(rangeOf('RTS_LOG_LEVEL')).toBeUndefined();
    expect(statedRanges('| `RTS_X` | `5` | a (1-100; see b) and (0-3600000 ms), not 2026-12-06 |')).toEqual(['1-100', '0-3600000']);
  });

  it.each(ranged)('%s', (setting) => {
    const { min, max } = rangeOf(setting)!;
    expect({ setting, stated: statedRanges(rowOf(setting) ?? '') }).toEqual({ setting, stated: [`${min}-${max}`] });
  });
});
