// A broker with accounts, as production brokers have them (scripts/activemq/broker.sh, RTS_BROKER_USERS_FILE): SASL
// PLAIN logins only, and the RTS access map (hubs may do anything; a system sends uplink and dead letters and
// consumes only its own downlink queue). Before, SASL PLAIN was never run against a broker that checks it, and a
// refused login was not even reported: the hub logged "write after end", never tried again, and /health said only
// "disconnected"; the SDK's connect waited its whole 30 s and then said the connection was not established.
import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { create_container, type Connection as RheaConnection, type EventContext } from 'rhea';
import { AmqpConnection } from '../../src/adapters/amqp/connection';
import { DurableSender } from '../../src/adapters/amqp/durable-sender';
import { AmqpDeadLetterDepthReader, DepthUnknownError } from '../../src/adapters/messaging/dead-letter-depth';
import { AmqpDownlinkDepthReader } from '../../src/adapters/messaging/downlink-queue-depth';
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { AmqpLoginRefusedError, RtsClient } from '../../src/sdk';
import { startBroker, type BrokerUser, type TestBroker } from '../support/activemq';
import { directoryRoundTrip, failureOf, freePort, getJson, postJson, profile, registerSystem, startChildHub, tempDir, until, type ChildHub } from './hub-support';

jest.setTimeout(180_000);

const HUB: BrokerUser = { name: 'hub', password: 'hub-secret', hub: true };
const CHENGDU: BrokerUser = { name: 'chengdu', password: 'chengdu-secret' };
const MIANYANG: BrokerUser = { name: 'mianyang', password: 'mianyang-secret' };

const loginUrl = (broker: TestBroker, user: BrokerUser, password = user.password) =>
  `amqp://${encodeURIComponent(user.name)}:${encodeURIComponent(password)}@127.0.0.1:${broker.amqpPort}`;
const hubLogin = (password: string) => ({ RTS_BROKER_USERNAME: HUB.name, RTS_BROKER_PASSWORD: password });
/** For a wait that times out after a broker restart: what the hub and the broker said (the broker's folder goes with the test). */
const logsOf = (hub: ChildHub | undefined, broker: TestBroker | undefined) => `hub's log:\n${hub?.output() ?? '(no hub)'}\nbroker's log:\n${broker?.log().slice(-20_000) ?? '(no broker)'}`;

/** A bare rhea connection as `user` (no reconnect), once the broker has opened it. */
const connectAs = (broker: TestBroker, user: BrokerUser): Promise<RheaConnection> =>
  new Promise((resolve, reject) => {
    const connection = create_container({ id: `rts-accounts-${user.name}-${randomUUID()}` }).connect({ host: '127.0.0.1', port: broker.amqpPort, username: user.name, password: user.password, reconnect: false });
    connection.once('connection_open', () => resolve(connection));
    connection.once('connection_error', (context: EventContext) => reject(new Error(`${user.name}'s connection refused: ${String(context.connection.error)}`)));
    connection.once('disconnected', () => reject(new Error(`${user.name}'s connection lost`)));
  });
const closeAll = (connections: readonly RheaConnection[]): Promise<unknown> =>
  Promise.all(connections.map((c) => (c.is_closed() ? undefined : new Promise((resolve) => {
    c.once('connection_close', resolve);
    c.once('disconnected', resolve);
    c.close();
  }))));
type Attach = { attached: true } | { attached: false; condition: string | undefined; description: string | undefined };
/**
 * A receiver (or sender) on `address`: attached, or refused with the broker's error. ActiveMQ refuses a link by
 * answering the attach with a null terminus and detaching it at once with the reason; a link still attached 1 s after
 * a real terminus came back is taken as attached (and closed again).
 */
const attach = (connection: RheaConnection, address: string, role: 'receiver' | 'sender' = 'receiver', onMessage?: (context: EventContext) => void): Promise<Attach> =>
  new Promise((resolve) => {
    const link = role === 'receiver' ? connection.open_receiver({ source: { address } }) : connection.open_sender({ target: { address } });
    if (onMessage) link.on('message', onMessage);
    let timer: NodeJS.Timeout | undefined;
    link.once(`${role}_open`, () => {
      const terminus = (role === 'receiver' ? link.source : link.target) as { address?: unknown } | undefined;
      if (typeof terminus?.address === 'string') timer = setTimeout(() => resolve({ attached: true }), 1000);
    });
    link.once(`${role}_close`, () => {
      clearTimeout(timer);
      const error = link.error as { condition?: string; description?: string } | undefined;
      resolve({ attached: false, condition: error?.condition, description: error?.description });
    });
  });

describe('a broker with accounts and the RTS access map', () => {
  let broker: TestBroker;
  let hub: ChildHub | undefined;
  const clients: RtsClient[] = [];
  const data = tempDir('rts-broker-accounts-');

  beforeAll(async () => {
    broker = await startBroker({ users: [HUB, CHENGDU, MIANYANG] });
  });
  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    await hub?.stop();
    await broker?.destroy();
    data.remove();
  });

  it('lets the hub and each system in with their own login; the directory goes round as without accounts', async () => {
    hub = await startChildHub(broker, data.dir, undefined, hubLogin(HUB.password));
    await until('hub consuming', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming');
    expect((await getJson(hub.url, '/health')).body.broker).toBe('connected');
    // Mianyang's own downlink queue, which only it (and hubs) may read, brings chengdu's expert.
    await directoryRoundTrip(hub.url, (systemId) => RtsClient.connect({ systemId, url: loginUrl(broker, systemId === 'chengdu' ? CHENGDU : MIANYANG) }), clients);
    // broker.sh makes its files owner-only: the generated activemq.xml holds every account's password in clear,
    // KahaDB the messages.
    const config = join(broker.dataDir, 'conf', 'activemq.xml');
    expect(readFileSync(config, 'utf8')).toContain(HUB.password);
    expect(statSync(config).mode & 0o077).toBe(0);
    const kahadb = readdirSync(join(broker.dataDir, 'kahadb')).map((f) => join(broker.dataDir, 'kahadb', f));
    expect(kahadb.length).toBeGreaterThan(0);
    for (const f of kahadb) expect([f, statSync(f).mode & 0o077]).toEqual([f, 0]);
  });

  it("keeps a system out of another system's downlink queue, and says why", async () => {
    // Chengdu's login, posing as mianyang: the broker refuses the link to rts.downlink.mianyang.
    const impostor = await RtsClient.connect({ systemId: 'mianyang', url: loginUrl(broker, CHENGDU) });
    clients.push(impostor);
    const refusal = await failureOf(impostor.subscribe({ onExpertUpserted: async () => undefined }));
    expect(refusal).toBeInstanceOf(Error);
    expect(refusal!.message).toMatch(/not authorized to read from: queue:\/\/rts\.downlink\.mianyang/);
  });

  // The statistics plugin (the hub's rts_dead_letters and rts_downlink_queue_depth) comes before the access map, so only
  // a hub account may ask for a queue's depth: a system would otherwise learn the sizes of every queue, other systems'
  // downlink queues included.
  it("answers a hub account's reading of the dead letter queue's and the downlink queues' depths, and refuses a system's", async () => {
    const open = (user: BrokerUser) => AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: broker.amqpPort }], sasl: { mechanism: 'plain', username: user.name, password: user.password } });
    const asHub = open(HUB);
    const asChengdu = open(CHENGDU);
    const sender = new DurableSender(asHub);
    try {
      await asHub.waitConnected();
      await asChengdu.waitConnected();
      await sender.sendRaw('rts.dlq', { body: 'a dead letter', durable: true });
      const browsed = await new AmqpDeadLetterQueue(asHub, sender, { queue: 'rts.dlq' }).browse(1000);
      expect(browsed.length).toBeGreaterThan(0);
      expect(await new AmqpDeadLetterDepthReader(asHub, { queue: 'rts.dlq' }).read()).toBe(browsed.length);
      const refused = await failureOf(new AmqpDeadLetterDepthReader(asChengdu, { queue: 'rts.dlq' }).read());
      expect(refused).toBeInstanceOf(DepthUnknownError);
      expect((refused as DepthUnknownError).reason).toBe('refused');
      expect(refused!.message).toMatch(/not authorized to write to: queue:\/\/ActiveMQ\.Statistics\.Destination\.rts\.dlq/);
      // The downlink queues' depth (rts_downlink_queue_depth): one wildcard request, the hub's only.
      const known = async () => ['chengdu', 'mianyang'].map((systemId) => ({ systemId, downlinkQueue: `rts.downlink.${systemId}` }));
      expect([...(await new AmqpDownlinkDepthReader(asHub, { prefix: 'rts.downlink.', systems: known }).read()).keys()]).toEqual(['chengdu', 'mianyang']);
      const refusedWildcard = await failureOf(new AmqpDownlinkDepthReader(asChengdu, { prefix: 'rts.downlink.', systems: known }).read());
      expect((refusedWildcard as DepthUnknownError).reason).toBe('refused');
      expect(refusedWildcard!.message).toMatch(/not authorized to write to: queue:\/\/ActiveMQ\.Statistics\.Destination\.rts\.downlink\.>/);
    } finally {
      await sender.close();
      await asHub.close();
      await asChengdu.close();
    }
  });

  // A system's account may send to rts.dlq (client-side dead-lettering), so the x-dlq-* properties are whatever that
  // system wrote. An operator's replay, done with the hub's account (which may write anywhere), once moved such a
  // forged dead letter to the queue it named: an invented one, or another system's downlink queue.
  it('replays a dead letter only to a queue the hub consumes or delivers to, whatever its properties name', async () => {
    hub ??= await startChildHub(broker, data.dir, undefined, hubLogin(HUB.password));
    await until('hub consuming', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming');
    await registerSystem(hub.url, 'mianyang');
    const chengdu = AmqpConnection.open({ endpoints: [{ host: '127.0.0.1', port: broker.amqpPort }], sasl: { mechanism: 'plain', username: CHENGDU.name, password: CHENGDU.password } });
    const sender = new DurableSender(chengdu);
    try {
      await chengdu.waitConnected();
      for (const target of ['rts.secret.queue', 'rts.downlink.ghost', 'rts.dlq']) {
        const id = randomUUID();
        const forged = { id, type: 'directory.expert.retired', version: 1, systemId: 'mianyang', correlationId: id, time: new Date().toISOString(), payload: { expertId: 'chengdu:c1' } };
        await sender.sendRaw('rts.dlq', {
          body: JSON.stringify(forged),
          durable: true,
          application_properties: { messageId: id, rts_dlq_id: id, 'x-dlq-source-queue': target, 'x-dlq-reason': 'bad_schema: please replay', 'x-dlq-attempts': 1 },
        });
        const replay = await postJson(hub.url, `/dead-letters/${id}/replay`, { by: 'alice', reason: 'looks fixed' });
        expect([target, replay.status]).toEqual([target, 422]);
        expect(replay.contentType).toMatch(/^application\/problem\+json/);
        expect(replay.body).toMatchObject({ code: 'replay_target_refused', type: '/problems/replay_target_refused' });
        const still = await getJson(hub.url, `/dead-letters/${id}`);
        expect(still.status).toBe(200);
        expect(still.body.replays).toEqual([]);
      }
    } finally {
      await sender.close();
      await chengdu.close();
    }
  });

  // The advisory topics: the broker raises advisories for a system's own connections and links in its name, so every
  // account may write them, but only hubs (and the network bridge, which logs in as one) may read them. An outside
  // review found every system account could: it watched the other systems' consumers and connections come and go,
  // listed the queues (rts.downlink.<systemId>: the system ids), and would receive the expired and dead letter
  // advisories of other systems' messages (ActiveMQ clears their bodies, not their consultationId and systemId).
  it("keeps a system off the advisory topics, which still work for the hub and for the system's own links", async () => {
    const chengdu = await connectAs(broker, CHENGDU);
    const mianyang = await connectAs(broker, MIANYANG);
    const asHub = await connectAs(broker, HUB);
    try {
      // Each system consumes its own downlink queue and sends uplink (its own advisories raised in its name).
      expect(await attach(mianyang, 'rts.downlink.mianyang')).toEqual({ attached: true });
      expect(await attach(chengdu, 'rts.downlink.chengdu')).toEqual({ attached: true });
      expect(await attach(chengdu, 'rts.uplink', 'sender')).toEqual({ attached: true });
      for (const address of [
        'topic://ActiveMQ.Advisory.Consumer.Queue.rts.downlink.mianyang',
        'topic://ActiveMQ.Advisory.Queue',
        'topic://ActiveMQ.Advisory.Connection',
        'topic://ActiveMQ.Advisory.Producer.Queue.rts.uplink',
        'topic://ActiveMQ.Advisory.Expired.Queue.rts.downlink.mianyang',
        'topic://ActiveMQ.Advisory.MessageDLQd.Queue.rts.downlink.mianyang',
        'topic://ActiveMQ.Advisory.TempQueue',
        'topic://ActiveMQ.Advisory.>',
      ]) {
        const refused = await attach(chengdu, address);
        expect([address, refused]).toEqual([address, { attached: false, condition: 'amqp:unauthorized-access', description: `User chengdu is not authorized to read from: ${address}` }]);
      }
      // Refusing the links left chengdu's connection and its own links alone.
      expect(chengdu.is_open()).toBe(true);
      expect(await attach(chengdu, 'rts.downlink.chengdu')).toEqual({ attached: true });
      // The hub still reads them: the broker replays an advisory of mianyang's consumers (this one, and the first
      // test's client's when it ran), with their count.
      const counts: unknown[] = [];
      const onAdvisory = (context: EventContext) => void counts.push((context.message?.application_properties as Record<string, unknown> | undefined)?.consumerCount);
      expect(await attach(asHub, 'topic://ActiveMQ.Advisory.Consumer.Queue.rts.downlink.mianyang', 'receiver', onAdvisory)).toEqual({ attached: true });
      await until('the consumer advisory', () => counts.length > 0);
      expect(counts.every((n) => typeof n === 'number' && n >= 1)).toBe(true);
    } finally {
      await closeAll([chengdu, mianyang, asHub]);
    }
  });

  it('refuses a system with a wrong password or none at once, with an error that says so', async () => {
    const wrong = await failureOf(RtsClient.connect({ systemId: 'chengdu', url: loginUrl(broker, CHENGDU, 'not-the-password') }));
    expect(wrong).toBeInstanceOf(AmqpLoginRefusedError);
    expect(wrong!.message).toBe(`127.0.0.1:${broker.amqpPort} refused the login of user "chengdu": the user name or the password is not what the broker has`);
    expect(wrong!.message).not.toContain('not-the-password');

    // rhea prints a frame it cannot take to stderr (with the bytes) unless the connection listens for it: it does.
    const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    // (It reads the broker's answer after connect() has rejected: the spy stays a moment longer.)
    let lines: string[] = [];
    const none = await failureOf(RtsClient.connect({ systemId: 'chengdu', url: `amqp://127.0.0.1:${broker.amqpPort}` })).finally(async () => {
      await new Promise((r) => setTimeout(r, 1000));
      lines = printed.mock.calls.map((c) => c.join(' '));
      printed.mockRestore();
    });
    expect(none).toBeInstanceOf(AmqpLoginRefusedError);
    expect(none!.message).toMatch(/refused the connection without credentials: it requires a login/);
    expect(lines).toEqual([]);

    // SASL ANONYMOUS (what the hub sends without RTS_BROKER_USERNAME) is refused the same way.
    const anonymous = await failureOf(RtsClient.connect({ systemId: 'chengdu', url: `amqp://127.0.0.1:${broker.amqpPort}`, sasl: { mechanism: 'anonymous' } }));
    expect(anonymous).toBeInstanceOf(AmqpLoginRefusedError);
    expect((anonymous as AmqpLoginRefusedError).code).toBe('login_refused');
    expect(anonymous!.message).toMatch(/refused the connection without credentials: it requires a login/);
  });
});

describe('a hub whose login the broker does not have (yet)', () => {
  let broker: TestBroker | undefined;
  let hub: ChildHub | undefined;
  let client: RtsClient | undefined;
  const data = tempDir('rts-broker-refused-');

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await hub?.stop();
    await broker?.destroy();
    data.remove();
  });

  it('serves HTTP, reports login_refused once, and gets in without a restart once the broker has the account', async () => {
    const port = await freePort();
    const brokerData = tempDir('rts-broker-refused-amq-');
    try {
      // The broker's accounts are behind the hub's: the hub already has its new password, the broker not yet.
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [{ ...HUB, password: 'old-secret' }, CHENGDU] });
      // rhea's own account of its connects and events goes into the hub's output, printed if the wait below times out:
      // in one full run of 2026-12-05 the hub did not get in within 60 s and its log said nothing after the refusals.
      hub = await startChildHub(broker, data.dir, undefined, { ...hubLogin('new-secret'), DEBUG: 'rhea:reconnect,rhea:events,rhea:io' });
      await until('login_refused', async () => (await getJson(hub!.url, '/health')).body.broker === 'login_refused');
      expect((await getJson(hub.url, '/health')).body.uplink).toBe('not_consuming');
      // Two more tries (every 10 s) while refused: still one line about it.
      await new Promise((r) => setTimeout(r, 21_000));
      expect((await getJson(hub.url, '/health')).body.broker).toBe('login_refused');
      const log = hub.output();
      expect(log.match(/the broker refused the hub's login: RTS_BROKER_USERNAME and RTS_BROKER_PASSWORD must name an account the broker has/g) ?? []).toHaveLength(1);
      expect(log.match(/"amqp disconnected"/g) ?? []).toHaveLength(1);
      expect(log).toContain(`refused the login of user \\"hub\\"`);
      expect(log).not.toContain('new-secret');
      expect(log).not.toContain('write after end');

      // The operator gives the broker the hub's new password and restarts it, on the same port and store.
      await broker.stop();
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [{ ...HUB, password: 'new-secret' }, CHENGDU] });
      await until('connected', async () => (await getJson(hub!.url, '/health')).body.broker === 'connected', 60_000, 50, () => logsOf(hub, broker));
      // And it consumes: a system's join goes through.
      await registerSystem(hub.url, 'chengdu');
      client = await RtsClient.connect({ systemId: 'chengdu', url: loginUrl(broker, CHENGDU) });
      await client.joinWithExperts([{ localExpertId: 'c1', ...profile(1) }]);
      await until('chengdu joined', async () => (await getJson(hub!.url, '/systems/chengdu')).body.status === 'joined');
      expect((await getJson(hub.url, '/health')).body.uplink).toBe('consuming');
    } finally {
      await client?.close().catch(() => undefined);
      client = undefined;
      await broker?.destroy();
      broker = undefined;
      brokerData.remove();
    }
  });
});

describe('a hub whose broker account may not read the uplink queue', () => {
  it('says so once, shows it in /health and /metrics, and consumes again without a restart once the account may', async () => {
    const port = await freePort();
    const brokerData = tempDir('rts-broker-uplink-amq-');
    const data = tempDir('rts-broker-uplink-');
    let broker: TestBroker | undefined;
    let hub: ChildHub | undefined;
    let client: RtsClient | undefined;
    const metric = async () => /^rts_uplink_consuming (\d)$/m.exec(await (await fetch(`${hub!.url}/metrics`)).text())?.[1];
    try {
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [HUB, CHENGDU] });
      hub = await startChildHub(broker, data.dir, undefined, hubLogin(HUB.password));
      await until('consuming', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming');
      expect(await metric()).toBe('1');

      // An operator's mistake: the broker comes back with the hub's account set up as a system's (no 'hub' mark).
      // It may log in and send, not read rts.uplink: the link the hub had is refused when it attaches it again.
      await broker.stop();
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [{ ...HUB, hub: false }, CHENGDU] });
      await until('lost link logged', () => hub!.output().includes('the uplink consumer lost its link'), 60_000);
      expect((await getJson(hub.url, '/health')).body).toMatchObject({ broker: 'connected', uplink: 'not_consuming' });
      expect(await metric()).toBe('0');
      await new Promise((r) => setTimeout(r, 11_000)); // one more try, refused again: no more lines about it
      const log = hub.output();
      expect(log.match(/the uplink consumer lost its link/g) ?? []).toHaveLength(1);
      expect(log).not.toContain('the uplink consumer could not attach');
      expect(log).toContain('User hub is not authorized to read from: queue://rts.uplink');

      // The operator marks the account as a hub's again and restarts the broker.
      await broker.stop();
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [HUB, CHENGDU] });
      await until('consuming again', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming', 60_000, 50, () => logsOf(hub, broker));
      await registerSystem(hub.url, 'chengdu');
      client = await RtsClient.connect({ systemId: 'chengdu', url: loginUrl(broker, CHENGDU) });
      await client.joinWithExperts([{ localExpertId: 'c1', ...profile(1) }]);
      await until('chengdu joined', async () => (await getJson(hub!.url, '/systems/chengdu')).body.status === 'joined');
      expect(await metric()).toBe('1');
    } finally {
      await client?.close().catch(() => undefined);
      await hub?.stop();
      await broker?.destroy();
      brokerData.remove();
      data.remove();
    }
  });

  it('is refused at the start too: one line, and it consumes once the account may', async () => {
    const port = await freePort();
    const brokerData = tempDir('rts-broker-uplink-start-amq-');
    const data = tempDir('rts-broker-uplink-start-');
    let broker: TestBroker | undefined;
    let hub: ChildHub | undefined;
    try {
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [{ ...HUB, hub: false }] });
      hub = await startChildHub(broker, data.dir, undefined, hubLogin(HUB.password));
      await until('refused link logged', () => hub!.output().includes('the uplink consumer could not attach'));
      expect((await getJson(hub.url, '/health')).body).toMatchObject({ broker: 'connected', uplink: 'not_consuming' });
      expect(hub.output()).not.toContain('"msg":"consuming uplink"');
      await broker.stop();
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [HUB] });
      await until('consuming', async () => (await getJson(hub!.url, '/health')).body.uplink === 'consuming', 60_000, 50, () => logsOf(hub, broker));
      expect(hub.output().match(/the uplink consumer could not attach/g) ?? []).toHaveLength(1);
    } finally {
      await hub?.stop();
      await broker?.destroy();
      brokerData.remove();
      data.remove();
    }
  });
});

describe("an SDK subscription whose queue the broker no longer lets it read", () => {
  it('ends with onEnded and the broker\'s reason, and the client may subscribe again', async () => {
    const port = await freePort();
    const brokerData = tempDir('rts-broker-sdk-ended-amq-');
    let broker: TestBroker | undefined;
    let client: RtsClient | undefined;
    try {
      // The account reads every queue while it is marked as a hub's; after the restart it is a plain system, which
      // may read only rts.downlink.chengdu, not the mianyang queue this client reads.
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [{ ...CHENGDU, hub: true }] });
      client = await RtsClient.connect({ systemId: 'mianyang', url: loginUrl(broker, CHENGDU) });
      const ended: Error[] = [];
      await client.subscribe({ onExpertUpserted: async () => undefined }, { onEnded: (error) => void ended.push(error) });
      await broker.stop();
      broker = await startBroker({ port, dataDir: brokerData.dir, users: [CHENGDU] });
      await until('subscription ended', () => ended.length > 0, 60_000);
      expect(ended).toHaveLength(1);
      expect(ended[0]!.message).toMatch(/not authorized to read from: queue:\/\/rts\.downlink\.mianyang/);
      // The client itself is still connected, and may subscribe again (here refused at once, with the same reason).
      expect(client.isConnected()).toBe(true);
      const again = await failureOf(client.subscribe({ onExpertUpserted: async () => undefined }));
      expect(again?.message).toMatch(/not authorized to read from: queue:\/\/rts\.downlink\.mianyang/);
    } finally {
      await client?.close().catch(() => undefined);
      await broker?.destroy();
      brokerData.remove();
    }
  });
});
