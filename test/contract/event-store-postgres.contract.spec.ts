import { randomBytes } from 'node:crypto';
import { PostgresEventStore } from '../../src/adapters/event-store/postgres/postgres-event-store';
import { dropSchema } from '../support/postgres-schema';
import { eventStoreContract } from './event-store.contract';

// A fresh schema per test file, dropped at the end, so parallel runs and other suites never share tables.
const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

eventStoreContract('PostgreSQL', async () => {
  const schema = `rts_contract_${process.pid}_${randomBytes(4).toString('hex')}`;
  let store = await PostgresEventStore.open({ connectionString, schema });
  return {
    store,
    // The model-based test closes the store and opens another on the same schema between groups.
    reopen: async () => {
      await store.close();
      store = await PostgresEventStore.open({ connectionString, schema });
      return store;
    },
    close: async () => {
      await store.close();
      await dropSchema(connectionString, schema);
    },
  };
});
