import { lookup, type LookupAddress } from 'node:dns';
import { devLoginEnabled, isLoopbackAddress, isLoopbackListenHost } from './auth-config';
import { ConfigError, type Config } from './config';

type ListenSettings = Pick<Config, 'RTS_AUTH' | 'RTS_AUTH_DEV_LOGIN' | 'RTS_HTTP_HOST' | 'RTS_EVENT_STORE' | 'RTS_AUTH_JWKS_URL' | 'RTS_AUTH_JWT_SECRET'>;

/**
 * RTS_AUTH=off, and the development login on by default, rely on nobody else reaching the hub. loadConfig checks how
 * RTS_HTTP_HOST is spelt; this checks where the listen will go, before it does: what the name resolves to (localhost
 * in a hosts file that says otherwise), and a Config that startHub, a library entry, got built by hand rather than
 * from loadConfig. A name that does not resolve is left to the listen, which says so.
 */
export const requireLoopbackListen = async (config: ListenSettings): Promise<void> => {
  const setting = config.RTS_AUTH === 'off' ? 'RTS_AUTH' : config.RTS_AUTH_DEV_LOGIN === undefined && devLoginEnabled(config) ? 'RTS_AUTH_DEV_LOGIN' : null;
  if (setting === null) return;
  const refused = new ConfigError([
    `${setting}: ${setting === 'RTS_AUTH' ? 'off' : 'its default (on)'} only where RTS_HTTP_HOST is loopback (127.0.0.1, ::1, localhost resolving to them), and it is not: anyone who reaches the hub could read and erase every patient's data`,
  ]);
  if (!isLoopbackListenHost(config.RTS_HTTP_HOST)) throw refused;
  const addresses = await new Promise<LookupAddress[] | null>((resolve) => lookup(config.RTS_HTTP_HOST, { all: true }, (error, found) => resolve(error ? null : found)));
  if (addresses !== null && addresses.some((a) => !isLoopbackAddress(a.address))) throw refused;
};
