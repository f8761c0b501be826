jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import dns from 'node:dns';
import net from 'node:net';
import pino from 'pino';
import { ConfigError, loadConfig } from '../../src/bootstrap/config';
import { startHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * RTS_AUTH=off (and the development login's default) only where nobody else reaches the hub: the address the hub
 * listens on, not only how RTS_HTTP_HOST is spelt. A name is what the resolver says it is (a hosts entry, a search
 * domain's wildcard), and startHub is a library entry that takes a Config built by hand. No listen happens here:
 * net.Server's listen is stubbed to refuse, so a check that comes too late fails without opening a port.
 */
describe('startHub with RTS_AUTH=off refuses an address that is not loopback, before it listens', () => {
  const data = tempDataDir('rts-auth-off-');
  const listened: unknown[] = [];
  beforeAll(() => {
    jest.spyOn(net.Server.prototype, 'listen').mockImplementation(function (this: net.Server, ...args: unknown[]) {
      listened.push(args[0]);
      throw Object.assign(new Error('listen stubbed by the test'), { code: 'ESTUBBED' });
    });
  });
  afterAll(() => {
    jest.restoreAllMocks();
    data.remove();
  });
  const base = () => loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', RTS_AUTH: 'off' });

  it('a Config built by hand, on 0.0.0.0', async () => {
    await expect(startHub({ ...base(), RTS_HTTP_HOST: '0.0.0.0' }, pino({ level: 'silent' }))).rejects.toThrow(ConfigError);
    expect(listened).toEqual([]);
  });

  it('localhost, when the resolver says it is another address', async () => {
    const lookup = dns.lookup;
    const spy = jest.spyOn(dns, 'lookup').mockImplementation(((host: string, options: unknown, callback: unknown) => {
      if (host !== 'localhost') return (lookup as (...a: unknown[]) => void)(host, options, callback);
      const cb = (typeof options === 'function' ? options : callback) as (...a: unknown[]) => void;
      const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true;
      process.nextTick(() => (all ? cb(null, [{ address: '192.0.2.7', family: 4 }]) : cb(null, '192.0.2.7', 4)));
    }) as typeof dns.lookup);
    try {
      await expect(startHub({ ...base(), RTS_HTTP_HOST: 'localhost' }, pino({ level: 'silent' }))).rejects.toThrow(/RTS_AUTH/);
      expect(listened).toEqual([]);
    } finally {
      spy.mockRestore();
    }
  });
});
