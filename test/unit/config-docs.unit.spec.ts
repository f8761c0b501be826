import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigSchema } from '../../src/bootstrap/config';

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
});
