/**
 * Child process for the SQLite durability test: appends to a few streams as fast as it can and prints one line
 * per ACKNOWLEDGED append (after its promise resolved, i.e. after COMMIT):
 *   ack <eventId> <globalPosition> <streamName> <streamVersion>
 * The parent kills it with SIGKILL mid-stream and checks every acknowledged event survived.
 * Run with: node -r ./test/support/ts-register.js test/support/sqlite-append-child.ts <file>
 */
import { randomUUID } from 'node:crypto';
import type { ExpectedVersion } from '../../src/application/ports/event-store';
import { SqliteEventStore } from '../../src/adapters/event-store/sqlite/sqlite-event-store';

const file = process.argv[2];
if (file === undefined) throw new Error('usage: sqlite-append-child.ts <database file>');
const store = SqliteEventStore.open({ file });

async function writer(stream: string): Promise<void> {
  let expectedVersion: ExpectedVersion = 'no_stream';
  for (;;) {
    const id = randomUUID();
    const result = await store.appendToStream(stream, [{ id, type: 'Tick', data: { at: Date.now() } }], { expectedVersion });
    expectedVersion = result.nextExpectedVersion;
    // Writes to a pipe are synchronous on Linux: a line that was written reached the parent.
    process.stdout.write(`ack ${id} ${result.lastGlobalPosition} ${stream} ${result.nextExpectedVersion}\n`);
  }
}

process.stdout.write('ready\n');
for (let w = 0; w < 8; w++) void writer(`child-${process.pid}-${w}`);
