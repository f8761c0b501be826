import { EventStoreDbEventStore } from '../../src/adapters/event-store/esdb/eventstoredb-event-store';
import { eventStoreContract } from './event-store.contract';

// Needs a running EventStoreDB (none can run on the development machine), e.g.
//   EVENTSTORE_CONNECTION_STRING='esdb://admin:changeit@localhost:2113?tls=false' npx jest test/contract/event-store-esdb
// The suite uses fresh random stream names, so a shared database is fine.
const connectionString = process.env['EVENTSTORE_CONNECTION_STRING'];

if (connectionString) {
  eventStoreContract('EventStoreDB', async () => {
    const store = await EventStoreDbEventStore.open({ connectionString });
    return { store, close: () => store.close() };
  });
} else {
  console.warn('EventStoreDB contract suite skipped: EVENTSTORE_CONNECTION_STRING is not set (no EventStoreDB server to test against).');
  describe.skip('EventStoreDB contract (skipped: EVENTSTORE_CONNECTION_STRING not set)', () => {
    it('runs the shared event store contract suite against EventStoreDB', () => undefined);
  });
}
