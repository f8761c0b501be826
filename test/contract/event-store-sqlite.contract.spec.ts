import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';
import { eventStoreContract } from './event-store.contract';

eventStoreContract('SQLite (file, WAL, group commit)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rts-es-contract-'));
  const store = SqliteEventStore.open({ file: join(dir, 'events.db') });
  return {
    store,
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
