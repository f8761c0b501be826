// A hub process that talks to the broker with another RTS_MESSAGE_SECURITY than the store's other messaging
// processes would dead-letter what they accept and publish its downlink copies in clear: startHub refuses it
// (a ConfigError: main.ts exits 78), against the real broker, unless the whole deployment switches on purpose.
jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import pino from 'pino';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { MESSAGE_SECURITY_OFF_WARNING } from '../../src/bootstrap/message-security';
import { startBroker, type TestBroker } from '../support/activemq';
import { tempDataDir } from '../support/hub-process';

jest.setTimeout(120_000);

let broker: TestBroker;
const data = tempDataDir('rts-message-security-');
beforeAll(async () => {
  broker = await startBroker();
});
afterAll(async () => {
  await broker?.destroy();
  data.remove();
});

/** The warn lines of every start since the last `warnings()` call. */
let warned: string[] = [];
const warnings = (): string[] => {
  const lines = warned;
  warned = [];
  return lines;
};
const logger = pino({ level: 'warn' }, { write: (line: string) => void warned.push((JSON.parse(line) as { msg: string }).msg) });
const start = (env: Record<string, string>) =>
  startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'warn', RTS_AUTH: 'off', RTS_BROKER_URL: broker.url, ...env }), logger);

it('records the mode of the first messaging hub, refuses the other, and takes a deliberate switch once', async () => {
  await (await start({ RTS_MESSAGE_SECURITY: 'jose' })).stop();
  expect(warnings()).not.toContain(MESSAGE_SECURITY_OFF_WARNING);

  const refused = start({ RTS_MESSAGE_SECURITY: 'off' });
  await expect(refused).rejects.toBeInstanceOf(ConfigError);
  await expect(refused).rejects.toThrow(/RTS_MESSAGE_SECURITY: this store's hub processes message with jose, this one would with off/);

  // Without a broker nothing is sent or received: no check, and nothing to warn of.
  warnings();
  await (await start({ RTS_MESSAGE_SECURITY: 'off', RTS_BROKER_URL: '' })).stop();
  expect(warnings()).not.toContain(MESSAGE_SECURITY_OFF_WARNING);

  // The whole deployment switched: the first start says so, the next find the new mode. Each warns what off means.
  await (await start({ RTS_MESSAGE_SECURITY: 'off', RTS_MESSAGE_SECURITY_CHANGE: 'on' })).stop();
  expect(warnings().filter((m) => m === MESSAGE_SECURITY_OFF_WARNING)).toHaveLength(1);
  await (await start({ RTS_MESSAGE_SECURITY: 'off' })).stop();
  expect(warnings().filter((m) => m === MESSAGE_SECURITY_OFF_WARNING)).toHaveLength(1);
  await expect(start({ RTS_MESSAGE_SECURITY: 'jose' })).rejects.toBeInstanceOf(ConfigError);
});
