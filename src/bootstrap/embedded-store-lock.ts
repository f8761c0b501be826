import { DataDirInUseError, lockDataDir, type DataDirLock } from '../adapters/system/data-dir-lock';
import { ConfigError, type Config } from './config';

/**
 * One process per embedded store, a hub or a library (data-dir-lock.ts): the held lock, or null for the shared
 * stores (PostgreSQL, EventStoreDB). Another process holding it is a ConfigError naming `setting`, the name the
 * caller knows the data directory by (RTS_DATA_DIR for the hub, dataDir for the library).
 */
export const lockEmbeddedStore = (config: Config, setting: string): DataDirLock | null => {
  if (config.RTS_EVENT_STORE !== 'sqlite') return null;
  try {
    return lockDataDir(config.RTS_DATA_DIR);
  } catch (error) {
    // Said for both cases: a second openTeleMed on one dataDir in the same process was told of "another hub process".
    if (error instanceof DataDirInUseError) throw new ConfigError([`${setting}: ${error.message}: stop or close that one first, or give this one another ${setting}`]);
    throw error;
  }
};
