// `rts dlq` against the real hub and broker, each command on the answers the hub really gives: an empty queue, a
// message a sender put on the dead letter queue itself (no body, a replay count no number holds), one the hub
// dead-lettered (show, replay, back again, a list cut at its limit, discard, discarded again). The CLI checks every
// answer against what the hub sends (a 200 of something else is exit 5): none of these may be taken for another's.
import { runDlq } from '../../src/adapters/cli/dlq';
import { EXIT } from '../../src/adapters/cli/exit-codes';
import { AmqpDeadLetterQueue } from '../../src/adapters/messaging/dead-letters';
import { serializeUplink } from '../../src/adapters/messaging/messages';
import type { RunningHub } from '../../src/bootstrap/main';
import { DLQ, UPLINK, getJson, plainUuid, profile, sendUplink, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(120_000);

const amq = useBroker();
const data = tempDir('rts-hub-dlq-cli-');
let hub: RunningHub | undefined;

beforeAll(async () => {
  hub = await startInProcessHub(amq.broker, data.dir);
});
afterAll(async () => {
  await hub?.stop();
  data.remove();
});

const dlq = async (...argv: string[]) => {
  let out = '';
  let err = '';
  const code = await runDlq([...argv, '--url', hub!.url], { stdout: { write: (s: string) => (out += s) }, stderr: { write: (s: string) => (err += s) }, env: {} });
  return { code, out, err };
};
type Summary = { id: string; envelopeId: string | null; brokerMessageId: string | null; replayCount: number };
const listed = async (): Promise<Summary[]> => (await getJson(hub!.url, '/dead-letters')).body.items;

it('every rts dlq command takes the hub\'s own answers', async () => {
  expect(await dlq('list')).toEqual({ code: EXIT.ok, out: 'The dead letter queue is empty.\n', err: '' });
  const json = await dlq('list', '--json');
  expect(json.code).toBe(EXIT.ok);
  expect(JSON.parse(json.out)).toEqual({ items: [], count: 0, more: false });

  // Put on the dead letter queue by a sender: no body at all, and a replay count of 400 digits.
  await amq.sender.sendRaw(DLQ, { body: undefined, message_id: 'sender-1', application_properties: { 'x-dlq-source-queue': UPLINK, 'x-dlq-reason': 'given up by a city system', 'x-replay-count': '9'.repeat(400) } });
  const ghost = uplink.registered('ghost-sys', 'g1', profile(1));
  await sendUplink(amq.sender, ghost);
  await until('both on the dead letter queue', async () => (await listed()).length === 2);

  const list = await dlq('list');
  expect(list).toMatchObject({ code: EXIT.ok, err: '' });
  expect(list.out).toContain('sender-1');
  expect(list.out).toContain('unknown_system');
  expect(list.out).toContain('\n2 dead letter(s)\n');
  const cut = await dlq('list', '--limit', '1');
  expect(cut).toMatchObject({ code: EXIT.ok, err: '' });
  expect(cut.out).toContain('1 dead letter(s) shown, the oldest; more are on the queue');

  const bodiless = await dlq('show', 'sender-1');
  expect(bodiless).toMatchObject({ code: EXIT.ok, err: '' });
  expect(bodiless.out).toContain('reason:        given up by a city system');
  const shown = await dlq('show', ghost.id);
  expect(shown).toMatchObject({ code: EXIT.ok, err: '' });
  expect(shown.out).toContain(`envelope id:   ${ghost.id}`);
  expect(shown.out).toContain('replays:       none');

  // The system is still unknown: the replay is dead-lettered again, with its replay recorded.
  const replayed = await dlq('replay', ghost.id, '--by', 'alice', '--reason', 'try again');
  expect(replayed).toMatchObject({ code: EXIT.ok, err: '' });
  expect(replayed.out).toMatch(/^Replayed \S+ to rts\.uplink \(1 message moved\); recorded in dead-letter-/);
  await until('the replayed registration dead-lettered again', async () => (await listed()).some((l) => l.envelopeId === ghost.id && l.replayCount === 1));
  const again = await dlq('show', ghost.id);
  expect(again).toMatchObject({ code: EXIT.ok, err: '' });
  expect(again.out).toMatch(/replays: {7}\S+ by anonymous \[alice\] \(try again\)/);

  const discarded = await dlq('discard', ghost.id, '--reason', 'a system that never registers');
  expect(discarded).toMatchObject({ code: EXIT.ok, err: '' });
  expect(discarded.out).toMatch(/^Discarded \S+ \(1 message removed from the dead letter queue\)/);
  const twice = await dlq('discard', ghost.id, '--reason', 'again');
  expect(twice.code).toBe(EXIT.refused);
  expect(twice.err).toContain('(HTTP 410, dead_letter_discarded)');
  expect(twice.err).toContain('by anonymous (a system that never registers)');

  const left = await dlq('list');
  expect(left).toMatchObject({ code: EXIT.ok, err: '' });
  expect(left.out).toContain('\n1 dead letter(s)\n');
});

it('one bad message the hub dead-letters twice (the same delivery again, as after a lost accept) is one dead letter: listed once, replayed once', async () => {
  const raw = new AmqpDeadLetterQueue(amq.connection, amq.sender, { queue: DLQ });
  const copiesOf = async (envelopeId: string) => (await raw.browse(1000)).filter((d) => d.envelopeId === envelopeId);
  const twice = uplink.registered('twice-sys', 't1', profile(2));
  // Alike to the byte, message id and properties too: what the broker gives again when the hub's dead letter copy
  // reached the queue but its accept did not reach the hub (or the hub restarted before it settled the original).
  await sendUplink(amq.sender, twice);
  await sendUplink(amq.sender, twice);
  await until('both copies on the dead letter queue', async () => (await copiesOf(twice.id)).length === 2);
  const [first, second] = await copiesOf(twice.id);
  expect(first!.deadLetterId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(second!.deadLetterId).toBe(first!.deadLetterId);
  expect((await listed()).filter((l) => l.envelopeId === twice.id)).toHaveLength(1);
  const list = await dlq('list');
  expect(list.out.split(first!.deadLetterId!)).toHaveLength(2); // named once

  const replayed = await dlq('replay', first!.deadLetterId!, '--by', 'alice');
  expect(replayed).toMatchObject({ code: EXIT.ok, err: '' });
  expect(replayed.out).toContain('(1 message moved)');
  expect((await copiesOf(twice.id)).filter((d) => d.replayCount === 0)).toEqual([]); // both copies taken off
  await until('the replay dead-lettered again', async () => (await copiesOf(twice.id)).some((d) => d.replayCount === 1));
});

it("finds the dead letter of a message whose messageId property is not its envelope's id by the envelope's id, and takes it by that id", async () => {
  const liar = uplink.registered('liar-sys', 'l1', profile(3));
  const claimed = plainUuid();
  await amq.sender.send(UPLINK, { body: serializeUplink(liar), messageId: liar.id, applicationProperties: { messageId: claimed, type: liar.type, systemId: liar.systemId } });
  await until('dead-lettered', async () => (await listed()).some((l) => l.envelopeId === liar.id));
  const shown = await dlq('show', liar.id);
  expect(shown).toMatchObject({ code: EXIT.ok, err: '' });
  expect(shown.out).toContain(`envelope id:   ${liar.id}`);
  expect((await dlq('show', claimed)).code).toBe(EXIT.refused); // not by what the sender claimed
  const discarded = await dlq('discard', liar.id, '--reason', 'a system that never registers');
  expect(discarded).toMatchObject({ code: EXIT.ok, err: '' });
  expect(discarded.out).toMatch(/^Discarded \S+ \(1 message removed from the dead letter queue\)/);
});
