// Text in messages as legacy city systems send it: Chinese, Danish, emoji, combining marks, a byte order mark, lone
// surrogates, GBK bytes decoded as UTF-8, binary bodies. Each is taken whole or refused with a reason; none is
// stored mangled.
import { parseDownlink, parseUplink, serializeDownlink, serializeUplink, type UplinkEnvelope } from '../../src/adapters/messaging/messages';
import { parseConsultationUplink } from '../../src/adapters/messaging/consultation-messages';
import { parseHubUplink } from '../../src/adapters/messaging/hub-codec';
import { illFormedTextPath, mayHoldIllFormedText } from '../../src/adapters/validation/unicode-text';

const profile = {
  name: '李伟 (Søren Ærø) 👩‍⚕️ e\u0301',
  title: '主任医师',
  specialties: ['心血管内科', 'Kardiologi'],
  location: { city: '成都', hospital: '四川大学华西医院' },
  languages: ['zh', 'da'],
  availability: 'available',
} as const;

const registered = (p: unknown = profile): UplinkEnvelope =>
  ({
    id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abcd',
    type: 'expert.registered',
    version: 1,
    systemId: 'chengdu',
    correlationId: 'corr-1',
    time: '2024-05-01T12:00:00+08:00',
    payload: { localExpertId: 'e-1', profile: p },
  }) as UplinkEnvelope;

describe('message text', () => {
  it('takes Chinese, Danish, emoji and combining marks as sent, through serialize and parse', () => {
    const parsed = parseUplink(serializeUplink(registered()));
    expect(parsed).toEqual({ ok: true, message: registered() });
  });

  it('ignores a byte order mark before the JSON, on either contract (the HTTP API ignores it too)', () => {
    expect(parseUplink(`\uFEFF${serializeUplink(registered())}`)).toEqual({ ok: true, message: registered() });
    const accept = { id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abce', type: 'consultation.accept', version: 1, systemId: 'chengdu', correlationId: 'c-1', time: '2024-05-01T12:00:00+08:00', payload: { consultationId: '0b1c2a7e-8b3d-4c5e-9f01-23456789abcd', expertId: 'chengdu:e-1' } };
    const hub = parseHubUplink(`\uFEFF${JSON.stringify(accept)}`);
    expect(hub.ok ? hub.message.type : hub).toBe('consultation.accept');
    expect(parseConsultationUplink(`\uFEFF${JSON.stringify(accept)}`).ok).toBe(true);
  });

  it('refuses a lone surrogate (a valid JSON escape, no character) with the field at fault, in a value or a key', () => {
    const body = serializeUplink(registered()).replace('"主任医师"', '"主任\\ud800医师"');
    expect(parseUplink(body)).toMatchObject({ ok: false, reason: 'bad_json', detail: expect.stringMatching(/^payload\.profile\.title: holds a lone surrogate/) });
    const inKey = serializeUplink(registered()).replace('"title"', '"ti\\udc00tle"');
    expect(parseUplink(inKey)).toMatchObject({ ok: false, reason: 'bad_json', detail: expect.stringMatching(/^payload\.profile\.\(a key\): holds a lone surrogate/) });
    // A pair written as two escapes is one character, and is taken.
    const pair = serializeUplink(registered()).replace('"主任医师"', '"\\ud83d\\ude00"');
    expect(parseUplink(pair)).toMatchObject({ ok: true, message: { payload: { profile: { title: '😀' } } } });
    // The downlink parser (the SDK's) refuses it too, and the senders refuse to send it.
    expect(() => serializeUplink(registered({ ...profile, name: 'Li\ud800' }))).toThrow(/payload\.profile\.name: holds a lone surrogate/);
    const upserted = { ...registered(), type: 'directory.expert.upserted', payload: { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', profile: { ...profile, location: { city: 'x\udbff', hospital: '' } }, revision: 1 } };
    expect(() => serializeDownlink(upserted as never)).toThrow(/lone surrogate/);
    expect(parseDownlink(JSON.stringify(upserted))).toMatchObject({ ok: false, reason: 'bad_json' });
  });

  it('walks a deeply nested body without overflowing the stack', () => {
    const deep = `${"[".repeat(100_000)}"\\ud800"${"]".repeat(100_000)}`;
    expect(illFormedTextPath(JSON.parse(deep))).toBe('0.0.0.0.0.0.0.0...(99992 levels more)');
    expect(parseUplink(deep)).toMatchObject({ ok: false, reason: 'bad_json' });
  });

  it('refuses an uplink body holding U+FFFD: GBK bytes sent as an AMQP string arrive as it (rhea decodes them so)', () => {
    // 成都 in GBK (and GB18030): B3C9 B6BC, as a legacy system's own encoding writes it.
    const chengduGbk = Buffer.from('b3c9b6bc', 'hex');
    expect(new TextDecoder('gbk').decode(chengduGbk)).toBe('成都');
    const [before, after] = serializeUplink(registered()).split('成都') as [string, string];
    const gbk = Buffer.concat([Buffer.from(before, 'utf8'), chengduGbk, Buffer.from(after, 'utf8')]);
    const asRheaDecodesIt = gbk.toString('utf8');
    expect(asRheaDecodesIt).toContain('\uFFFD');
    expect(parseHubUplink(asRheaDecodesIt)).toMatchObject({ ok: false, reason: 'bad_json', detail: expect.stringContaining('U+FFFD') });
  });
});

describe('mayHoldIllFormedText: whether a JSON text needs the walk of its value', () => {
  it('is true for every way a lone surrogate reaches a JSON text, and false for well-formed text without such escapes', () => {
    expect(mayHoldIllFormedText(JSON.stringify({ name: 'a\ud800b' }))).toBe(true); // JSON.stringify writes it as \ud800
    expect(mayHoldIllFormedText('{"name":"\\uDFFF"}')).toBe(true);
    expect(mayHoldIllFormedText('{"name":"a\ud800"}')).toBe(true); // a raw lone surrogate in the string itself
    expect(mayHoldIllFormedText(JSON.stringify(profile))).toBe(false); // Chinese, Danish, an emoji pair, a combining mark
    expect(mayHoldIllFormedText('{"name":"\\u00e6\\u4e2d"}')).toBe(false);
    // A pair written as escapes is well-formed, but the text cannot tell without the walk: true, and the walk finds nothing.
    expect(mayHoldIllFormedText('{"e":"\\ud83d\\ude00"}')).toBe(true);
    expect(illFormedTextPath(JSON.parse('{"e":"\\ud83d\\ude00"}'))).toBeNull();
  });
});
