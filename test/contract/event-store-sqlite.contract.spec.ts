import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { eventStoreContract } from './event-store.contract';

eventStoreContract('SQLite (file, WAL, group commit)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rts-es-contract-'));
  let store = SqliteEventStore.open({ file: join(dir, 'events.db') });
  return {
    store,
    // The model-based test closes and opens the file between groups: what was acknowledged must be there.
    reopen: async () => {
      await store.close();
      store = SqliteEventStore.open({ file: join(dir, 'events.db') });
      return store;
    },
    close: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

eventStoreContract('SQLite (:memory:)', async () => {
  const store = SqliteEventStore.open({ file: ':memory:' });
  return { store, close: () => store.close() };
});
