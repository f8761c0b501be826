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

const start = (env: Record<string, string>) =>
  startHub(loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', RTS_AUTH: 'off', RTS_BROKER_URL: broker.url, ...env }), pino({ level: 'silent' }));

it('records the mode of the first messaging hub, refuses the other, and takes a deliberate switch once', async () => {
  await (await start({ RTS_MESSAGE_SECURITY: 'jose' })).stop();

  const refused = start({ RTS_MESSAGE_SECURITY: 'off' });
  await expect(refused).rejects.toBeInstanceOf(ConfigError);
  await expect(refused).rejects.toThrow(/RTS_MESSAGE_SECURITY: this store's hub processes message with jose, this one would with off/);

  // Without a broker nothing is sent or received: no check.
  await (await start({ RTS_MESSAGE_SECURITY: 'off', RTS_BROKER_URL: '' })).stop();

  // The whole deployment switched: the first start says so, the next find the new mode.
  await (await start({ RTS_MESSAGE_SECURITY: 'off', RTS_MESSAGE_SECURITY_CHANGE: 'on' })).stop();
  await (await start({ RTS_MESSAGE_SECURITY: 'off' })).stop();
  await expect(start({ RTS_MESSAGE_SECURITY: 'jose' })).rejects.toBeInstanceOf(ConfigError);
});
