// What a broker login says about the sender of a message, on the real ActiveMQ with the RTS accounts: nothing the
// hub can read. The broker checks who may send to the uplink queue, but hands an AMQP message's `user_id` on as its
// sender set it, and sets none itself. (Its populateJMSXUserID does not change that: tried by hand on 5.18.3 with
// populateJMSXUserID and useAuthenticatedPrincipalForJMSXUserID on, an AMQP consumer still got the user_id the
// sender set, or none.) So without message security the envelope's systemId is the only word
// on who sent a message, which is what the hub's RTS_MESSAGE_SECURITY=off warning says
// (src/bootstrap/message-security.ts, MESSAGE_SECURITY_OFF_WARNING). Should a broker one day stamp or check it, this
// test fails, and that warning and the README's "Consultations and message security" are to be revisited.
import { create_container, type Connection, type Message } from 'rhea';
import { startBroker, type BrokerUser, type TestBroker } from '../support/activemq';

jest.setTimeout(120_000);

const HUB: BrokerUser = { name: 'hub', password: 'hub-secret', hub: true };
const CHENGDU: BrokerUser = { name: 'chengdu', password: 'chengdu-secret' };
const MIANYANG: BrokerUser = { name: 'mianyang', password: 'mianyang-secret' };
const QUEUE = 'rts.uplink';

let broker: TestBroker;
const connections: Connection[] = [];
beforeAll(async () => {
  broker = await startBroker({ users: [HUB, CHENGDU, MIANYANG] });
});
afterAll(async () => {
  for (const c of connections) c.close();
  await broker?.destroy();
});

const connect = (user: BrokerUser): Connection => {
  const connection = create_container().connect({ host: '127.0.0.1', port: broker.amqpPort, username: user.name, password: user.password, reconnect: false });
  connections.push(connection);
  return connection;
};

/** Sends each message durably from `user`'s login; resolves once the broker accepted them all, rejects on any refusal. */
const sendAs = (user: BrokerUser, messages: readonly Message[]): Promise<void> =>
  new Promise((resolve, reject) => {
    const connection = connect(user);
    connection.on('connection_error', (ctx) => reject(new Error(`connection refused: ${JSON.stringify(ctx.connection.error)}`)));
    const sender = connection.open_sender({ target: { address: QUEUE } });
    let sent = false;
    let accepted = 0;
    sender.on('sendable', () => {
      if (sent) return;
      sent = true;
      for (const m of messages) sender.send({ durable: true, ...m });
    });
    sender.on('accepted', () => {
      if (++accepted === messages.length) resolve();
    });
    sender.on('rejected', (ctx) => reject(new Error(`rejected: ${JSON.stringify(ctx.delivery?.remote_state)}`)));
    sender.on('sender_error', (ctx) => reject(new Error(`sender refused: ${JSON.stringify(ctx.sender?.error)}`)));
  });

/** The next `n` messages of the uplink queue, as the hub's login receives them. */
const receiveAsHub = (n: number): Promise<Message[]> =>
  new Promise((resolve, reject) => {
    const received: Message[] = [];
    const receiver = connect(HUB).open_receiver({ source: { address: QUEUE }, credit_window: n });
    receiver.on('message', (ctx) => {
      received.push(ctx.message);
      if (received.length === n) resolve(received);
    });
    receiver.on('receiver_error', (ctx) => reject(new Error(`receiver refused: ${JSON.stringify(ctx.receiver?.error)}`)));
  });

/** rhea's typings say string; an AMQP user_id is binary, and arrives as a Buffer. */
const userIdOf = (m: Message): string | undefined => {
  const id = m.user_id as unknown;
  return id === undefined ? undefined : Buffer.isBuffer(id) ? id.toString('utf8') : String(id);
};

it("hands the hub a message's user_id as its sender set it, and none of the login it came from", async () => {
  const claim = JSON.stringify({ id: 'm-1', type: 'experts.registered', version: 1, systemId: MIANYANG.name, payload: {} });
  // Chengdu's login, saying it is Mianyang, and once saying nothing.
  await sendAs(CHENGDU, [
    { message_id: 'claims-mianyang', user_id: MIANYANG.name, application_properties: { systemId: MIANYANG.name }, body: claim },
    { message_id: 'says-nothing', body: claim },
  ]);

  const received = await receiveAsHub(2);
  const byId = new Map(received.map((m) => [m.message_id, m]));
  expect(userIdOf(byId.get('claims-mianyang')!)).toBe(MIANYANG.name);
  expect(byId.get('claims-mianyang')!.application_properties).toEqual({ systemId: MIANYANG.name });
  expect(userIdOf(byId.get('says-nothing')!)).toBeUndefined();
  for (const m of received) expect(m.body).toBe(claim);
});
