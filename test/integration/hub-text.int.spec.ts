// Text through the real broker as city systems of a Chinese province send it: Chinese, Danish, emoji and combining
// marks in expert profiles, the same name in NFC and NFD, a name NFC makes longer than the contract allows, and what
// legacy systems put on the wire with bare rhea: a byte order mark, GBK bytes typed as an AMQP string, a binary body
// labelled with a GBK charset, a JSON lone surrogate escape. Each is applied whole or dead-lettered with its reason;
// none is stored mangled, and what the hub accepts reaches the other systems (a name NFC made longer than the
// contract was accepted, then skipped as undeliverable in every downlink message and snapshot batch holding it).
import { create_container, message as rheaMessage, types, type Connection, type EventContext, type Message } from 'rhea';
import type { UplinkEnvelope } from '../../src/application/directory/directory-messages';
import type { RunningHub } from '../../src/bootstrap/main';
import { serializeUplink } from '../../src/adapters/messaging/messages';
import { DownlinkCollector, UPLINK, getJson, joinSystem, profile, startInProcessHub, tempDir, until, uplink, useBroker } from './hub-support';

jest.setTimeout(180_000);

const amq = useBroker();

/** Sends one durable message with bare rhea, as a system written in another language would; resolves when accepted. */
const sendBare = (connection: Connection, message: Message): Promise<void> =>
  new Promise((resolve, reject) => {
    const sender = connection.open_sender({ target: { address: UPLINK } });
    sender.once('sendable', () => {
      const delivery = sender.send({ durable: true, ...message });
      void delivery;
    });
    sender.once('accepted', () => (sender.close(), resolve()));
    sender.once('rejected', (context: EventContext) => reject(new Error(`rejected: ${String(context.delivery?.remote_state?.error)}`)));
    sender.once('sender_error', (context: EventContext) => reject(new Error(`sender error: ${String(context.sender?.error)}`)));
  });

type Letter = { id: string; envelopeId: string | null; reason: string; sourceQueue: string; attempts: number };

const chinese = profile(0, {
  name: '李伟',
  title: '主任医师',
  specialties: ['心血管内科'],
  location: { city: '成都', hospital: '四川大学华西医院' },
  languages: ['zh'],
});
const danish = profile(1, { name: 'Søren Ærø-Åberg 👨‍⚕️', title: 'Overlæge', specialties: ['Kardiologi'], location: { city: 'Århus', hospital: 'Aarhus Universitetshospital' }, languages: ['da', 'zh'] });

let hub: RunningHub | undefined;
let bare: Connection | undefined;
const data = tempDir('rts-hub-text-');

afterAll(async () => {
  bare?.close();
  await hub?.stop();
  data.remove();
});

it('applies CJK, Danish, emoji and NFD names whole; dead-letters what no text is, with its reason; the downlink keeps flowing', async () => {
  hub = await startInProcessHub(amq.broker, data.dir);
  await joinSystem(hub.url, amq.sender, 'chengdu');
  await joinSystem(hub.url, amq.sender, 'mianyang');
  const collector = new DownlinkCollector(amq.connection, 'mianyang');
  await collector.start();
  bare = create_container({ id: 'legacy-city' }).connect({ host: amq.broker.host, port: amq.broker.amqpPort, reconnect: false });
  try {
    const send = (env: UplinkEnvelope) => sendBare(bare!, { body: serializeUplink(env) });
    // A name NFC makes three times longer (200 x U+FB2C, 600 after NFC): over the contract's 200, refused.
    const expanding = uplink.registered('chengdu', 'e-fb2c', profile(2, { name: '\uFB2C'.repeat(200) }));
    await send(expanding);
    // Plain Chinese, with a byte order mark before the JSON and a content encoding that says nothing about an AMQP
    // string (always UTF-8): applied.
    const li = uplink.registered('chengdu', 'li-wei', chinese);
    await sendBare(bare, { body: `\uFEFF${serializeUplink(li)}`, content_encoding: 'gb18030', content_type: 'application/json; charset=gb18030' });
    // Danish with emoji, sent decomposed (NFD): stored in NFC, one expert; the NFC spelling again changes nothing.
    const nfd = { ...danish, name: danish.name.normalize('NFD'), location: { ...danish.location, city: danish.location.city.normalize('NFD') } };
    expect(nfd.name).not.toBe(danish.name);
    await send(uplink.registered('chengdu', 'soren', nfd));
    await send(uplink.registered('chengdu', 'soren', danish));
    // GBK bytes typed as an AMQP string (a legacy encoder): rhea reads them as U+FFFD, which is refused.
    const gbkEnv = uplink.registered('chengdu', 'gbk-1', profile(3, { location: { city: '成都', hospital: 'H' } }));
    const [before, after] = serializeUplink(gbkEnv).split('成都') as [string, string];
    const gbkBytes = Buffer.concat([Buffer.from(before, 'utf8'), Buffer.from('b3c9b6bc', 'hex'), Buffer.from(after, 'utf8')]);
    await sendBare(bare, { body: { toRheaTyped: () => (types as unknown as { Str32(b: Buffer): unknown }).Str32(gbkBytes) } as unknown as Message['body'] });
    // The same JSON as a binary body (a data section) labelled GBK: refused, as any body that is no AMQP string.
    const binary = uplink.registered('chengdu', 'bin-1', profile(4));
    await sendBare(bare, { body: rheaMessage.data_section(Buffer.from(serializeUplink(binary), 'utf8')), content_type: 'application/json; charset=gbk' });
    // A lone surrogate escape in the JSON (valid JSON, no character).
    const surrogate = uplink.registered('chengdu', 'sur-1', profile(5, { name: 'LIWEI-SURROGATE' }));
    await sendBare(bare, { body: serializeUplink(surrogate).replace('LIWEI-SURROGATE', 'Li\\ud800Wei') });
    // A name of zero-width and other invisible characters (it showed as a blank directory entry). Sent as raw JSON:
    // the SDK's serializeUplink refuses to send it.
    const invisible = uplink.registered('chengdu', 'zw-1', profile(7, { name: '\u200B\u2060\uFEFF\u00AD\u200E' }));
    await sendBare(bare, { body: JSON.stringify(invisible) });
    // A system's name on join and a consultation's clinician that show nothing, as raw JSON likewise.
    const head = { version: 1, systemId: 'chengdu', correlationId: 'corr-zw', time: '2026-11-23T09:30:00.000+08:00' };
    const join = { ...head, id: '7d0e2b1c-4f5a-4b6c-8d7e-9f0a1b2c3d01', type: 'system.join.requested', payload: { name: '\u200B\u2060', expectedBatches: 0, expectedExperts: 0 } };
    await sendBare(bare, { body: JSON.stringify(join) });
    const consultation = {
      ...head,
      id: '7d0e2b1c-4f5a-4b6c-8d7e-9f0a1b2c3d02',
      type: 'consultation.requested',
      payload: { consultationId: '7d0e2b1c-4f5a-4b6c-8d7e-9f0a1b2c3d03', applicantClinician: '\uFEFF\u00AD', candidates: ['mianyang:e-0'], clinicalQuestion: 'Chest pain?', summary: '', attachments: [] },
    };
    await sendBare(bare, { body: JSON.stringify(consultation) });
    // After all of them, one more: it must reach the other system (the downlink did not stop at any of the above).
    const last = uplink.registered('chengdu', 'zhang-min', profile(6, { name: '张敏', location: { city: '绵阳', hospital: '绵阳市中心医院' } }));
    await send(last);

    await until('the last expert reaches mianyang', () => collector.upsertedExperts().has('chengdu:zhang-min'), 30_000, 50, () => collector.describe());
    let letters: Letter[] = [];
    await until('7 dead letters', async () => (letters = (await getJson(hub!.url, '/dead-letters')).body.items).length >= 7, 30_000);
    const reasonOf = (envelopeId: string) => letters.find((l) => l.envelopeId === envelopeId)?.reason;
    expect(reasonOf(expanding.id)).toMatch(/^invalid_expert_profile: .*profile\.name at most 200 characters \(after Unicode normalisation, NFC\)/);
    expect(reasonOf(gbkEnv.id)).toMatch(/^bad_json: the body holds U\+FFFD/);
    // (The queue consumer's own reason, before any decoding: docs/messaging.md.)
    expect(letters.map((l) => l.reason)).toContain('body is not an AMQP value string');
    expect(reasonOf(surrogate.id)).toBe('bad_json: payload.profile.name: holds a lone surrogate (a \\ud800-\\udfff escape not part of a pair), which is no Unicode character');
    expect(reasonOf(invisible.id)).toMatch(/^bad_schema: payload\.profile\.name: must show a visible character: it holds only white space, format or other invisible characters/);
    expect(reasonOf(join.id)).toMatch(/^bad_schema: payload\.name: must show a visible character/);
    expect(reasonOf(consultation.id)).toMatch(/^bad_schema: payload\.applicantClinician: must show a visible character/);
    expect(letters).toHaveLength(7);

    // Stored and sent on whole: the directory and the other system's downlink hold the texts as sent (NFC).
    expect((await getJson(hub.url, '/experts/chengdu:li-wei')).body.profile).toMatchObject(chinese);
    const soren = (await getJson(hub.url, '/experts/chengdu:soren')).body;
    expect(soren.profile).toMatchObject({ name: danish.name, location: danish.location });
    expect(soren.revision).toBe(1);
    const upserts = collector.distinct('directory.expert.upserted').map((e) => e.payload as { expertId: string; profile: { name: string } });
    expect(upserts.filter((p) => p.expertId === 'chengdu:soren').map((p) => p.profile.name)).toEqual([danish.name]);
    expect(upserts.find((p) => p.expertId === 'chengdu:li-wei')?.profile).toMatchObject(chinese);
    for (const refused of ['chengdu:e-fb2c', 'chengdu:gbk-1', 'chengdu:bin-1', 'chengdu:sur-1', 'chengdu:zw-1']) expect((await getJson(hub.url, `/experts/${refused}`)).status).toBe(404);
    expect(collector.bad).toEqual([]);

    // Search as a user types it: the city decomposed, or in another case, finds the expert stored in NFC.
    for (const city of ['Århus'.normalize('NFD'), 'århus', '成都']) {
      const found = await getJson(hub.url, `/experts?city=${encodeURIComponent(city)}`);
      expect({ city, ids: found.body.items.map((e: { id: string }) => e.id) }).toEqual({ city, ids: [city === '成都' ? 'chengdu:li-wei' : 'chengdu:soren'] });
    }
  } finally {
    await collector.stop();
  }
});
