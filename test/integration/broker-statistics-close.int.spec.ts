// A statistics reading (the dead letter and downlink depths) under way when the hub closes its broker connection
// ends then, as a lost connection: rhea says nothing of a connection closed from our side, and the reading waited
// for its own timeout (5 s in the hub), holding a stopped hub's process (found by the test environment that names
// what a file leaves: test/support/settling-environment.js).
import { AmqpConnection } from '../../src/adapters/amqp';
import { DepthUnknownError, requestStatistics } from '../../src/adapters/messaging/broker-statistics';
import { startBroker, type TestBroker } from '../support/activemq';

jest.setTimeout(120_000);

let broker: TestBroker;

beforeAll(async () => {
  broker = await startBroker();
});

afterAll(async () => {
  await broker?.destroy();
});

it('answers while the connection is open (the broker has the statistics plugin)', async () => {
  const connection = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });
  try {
    await connection.waitConnected(30_000);
    const answer = await requestStatistics(connection, { destination: 'rts.uplink', timeoutMs: 10_000 });
    expect(answer.ended).toBe(true);
  } finally {
    await connection.close();
  }
});

it('a reading under way when the connection is closed ends at once as connection_lost, not at its timeout', async () => {
  const connection = AmqpConnection.open({ endpoints: [{ host: broker.host, port: broker.amqpPort }] });
  await connection.waitConnected(30_000);
  // A timeout longer than this test's own guard: a reading not ended by the close would lose the race below.
  const reading = requestStatistics(connection, { destination: 'rts.uplink', timeoutMs: 60_000 }).then(
    () => 'answered',
    (error: unknown) => error,
  );
  const closed = connection.close();
  let guard: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([reading, new Promise((resolve) => (guard = setTimeout(() => resolve('still waiting 10 s after the close'), 10_000)))]);
  clearTimeout(guard);
  await closed;
  expect(outcome).toBeInstanceOf(DepthUnknownError);
  expect((outcome as DepthUnknownError).reason).toBe('connection_lost');
  expect((outcome as DepthUnknownError).message).toContain('closed during the reading');
});
