// The broker's own dead letters of the uplink queue (DLQ.rts.uplink, the individualDeadLetterStrategy of
// scripts/activemq/broker.sh): the hub reads back only the copies ActiveMQ moved there as a duplicate paged in from
// its cursor (which may be the only copy of a registration: README, "High availability"), through the uplink's own
// path, idempotent by envelope id; everything else there stays for the operators.
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { serializeUplink, type UplinkEnvelope } from '../../src/adapters/messaging/messages';
import type { RunningHub } from '../../src/bootstrap/main';
import { getJson, jsonLines, postJson, profile, registerSystem, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();
const BROKER_DLQ = 'DLQ.rts.uplink';
/** What ActiveMQ 6.3.1's RegionBroker sets: the Throwable of Queue.doPageInForDispatch, toString(). */
const CURSOR_DUPLICATE = 'java.lang.Throwable: duplicate paged in from cursor for queue://rts.uplink';

/** The envelope on the broker's dead letter queue as the broker leaves it there: the sender's properties and a cause. */
const putOnBrokerDlq = (env: UplinkEnvelope, cause: string): Promise<void> =>
  amq.sender.send(BROKER_DLQ, {
    body: serializeUplink(env),
    messageId: env.id,
    applicationProperties: { messageId: env.id, type: env.type, systemId: env.systemId, dlqDeliveryFailureCause: cause },
  });

const acceptedFromBrokerDlq = async (base: string): Promise<number> => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('rts_uplink_accepted_total{queue="broker_dlq"}'));
  return line ? Number(line.split(' ').pop()) : 0;
};

it("handles the broker's cursor-duplicate copies once, as uplink, and leaves its other dead letters on the queue", async () => {
  const data = tempDir('rts-hub-broker-dlq-');
  const { logger, lines } = jsonLines('warn');
  let hub: RunningHub | undefined = await startInProcessHub(amq.broker, data.dir, { logger });
  const browse = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: BROKER_DLQ });
  try {
    await registerSystem(hub.url, 'city-a');
    await sendUplink(amq.sender, uplink.join('city-a', 0, 0));
    await until('city-a joined', async () => (await getJson(hub!.url, '/systems/city-a')).body.status === 'joined');

    // Another cause (here one the broker gives an expired message): not the hub's to take.
    const other = uplink.registered('city-a', 'kept', profile(2));
    await putOnBrokerDlq(other, 'java.lang.Throwable: message expired');
    // The cursor duplicate: the only copy of this registration.
    const lost = uplink.registered('city-a', 'x1', profile(1));
    await putOnBrokerDlq(lost, CURSOR_DUPLICATE);
    await until('the copy applied', async () => (await getJson(hub!.url, '/experts/city-a:x1')).status === 200);
    expect((await getJson(hub.url, '/experts/city-a:x1')).body.profile.name).toBe(profile(1).name);

    // A repeat of the handled envelope (same id), with another profile: a duplicate, nothing changes.
    await putOnBrokerDlq({ ...lost, payload: { ...lost.payload, profile: profile(3) } } as UplinkEnvelope, CURSOR_DUPLICATE);
    await until('the repeat taken off the queue', async () => (await acceptedFromBrokerDlq(hub!.url)) === 2);
    expect((await getJson(hub.url, '/experts/city-a:x1')).body.profile.name).toBe(profile(1).name);
    expect((await getJson(hub.url, '/systems/city-a')).body.activeExperts).toBe(1);

    // The other stays, unconsumed, and its expert was never registered.
    const left = await browse.browse(10);
    expect(left.map((l) => l.envelopeId)).toEqual([other.id]);
    expect((await getJson(hub.url, '/experts/city-a:kept')).status).toBe(404);
    // Each copy read back is a warning naming its envelope id.
    const warned = lines.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith("uplink message read back from the broker's dead letter queue"));
    expect(warned.map((l) => l['id'])).toEqual([lost.id, lost.id]);

    // A hub restarted on the same broker still leaves it there.
    await hub.stop();
    hub = await startInProcessHub(amq.broker, data.dir);
    const again = uplink.registered('city-a', 'x2', profile(4));
    await putOnBrokerDlq(again, CURSOR_DUPLICATE);
    await until('the second copy applied', async () => (await getJson(hub!.url, '/experts/city-a:x2')).status === 200);
    expect((await browse.browse(10)).map((l) => l.envelopeId)).toEqual([other.id]);
  } finally {
    await hub?.stop();
    data.remove();
  }
});

it("dead-letters a copy read back that the uplink refuses to the hub's own queue, naming rts.uplink, and a replay sends it there", async () => {
  const data = tempDir('rts-hub-broker-dlq-');
  const hub = await startInProcessHub(amq.broker, data.dir);
  try {
    // A system the hub does not know: the uplink dead-letters its message at once (unknown_system).
    const stranger = uplink.registered('city-unknown', 'x9', profile(5));
    await putOnBrokerDlq(stranger, CURSOR_DUPLICATE);
    let listed: any[] = [];
    await until('its dead letter listed', async () => (listed = (await getJson(hub.url, '/dead-letters')).body.items ?? []).some((d: any) => d.envelopeId === stranger.id));
    const dead = listed.find((d: any) => d.envelopeId === stranger.id);
    expect(dead.sourceQueue).toBe('rts.uplink');
    expect(dead.deadLetterId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(/^rts_uplink_dead_lettered_total\{queue="broker_dlq",reason="[a-z_]+"\} 1$/m);
    expect(metrics).not.toMatch(/^rts_uplink_dead_lettered_total\{queue="uplink"/m);
    // The broker's queue no longer holds it, and the replay target is the uplink queue (allowed).
    expect((await new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: BROKER_DLQ }).browse(10)).map((d) => d.envelopeId)).not.toContain(stranger.id);
    const replay = await postJson(hub.url, `/dead-letters/${dead.deadLetterId}/replay`, { by: 'alice', reason: 'try again' });
    expect(replay.status).toBe(200);
    expect(replay.body.sourceQueue ?? replay.body.event?.sourceQueue).toBe('rts.uplink');
  } finally {
    await hub.stop();
    data.remove();
  }
});
