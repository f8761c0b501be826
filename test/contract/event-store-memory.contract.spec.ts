import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { eventStoreContract } from './event-store.contract';

eventStoreContract('in-memory', async () => {
  const store = new InMemoryEventStore();
  return { store, close: () => store.close() };
});
