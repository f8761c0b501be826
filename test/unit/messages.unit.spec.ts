import {
  DOWNLINK_TYPES,
  MAX_BATCH_EXPERTS,
  UPLINK_TYPES,
  downlinkMessageId,
  parseDownlink,
  parseUplink,
  serializeDownlink,
  serializeUplink,
  type DownlinkEnvelope,
  type UplinkEnvelope,
} from '../../src/adapters/messaging/messages';
import { parseHubUplink } from '../../src/adapters/messaging/hub-codec';

const profile = {
  name: 'Li Wei',
  title: 'Chief physician',
  specialties: ['Cardiology'],
  location: { city: 'Chengdu', hospital: 'West China Hospital' },
  languages: ['zh'],
  availability: 'available',
} as const;

const envelope = (type: string, payload: unknown, extra: Record<string, unknown> = {}) => ({
  id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abcd',
  type,
  version: 1,
  systemId: 'chengdu',
  correlationId: 'corr-1',
  time: '2024-05-01T12:00:00+08:00',
  payload,
  ...extra,
});

const validUplinks: Record<(typeof UPLINK_TYPES)[number], unknown> = {
  'system.join.requested': { name: 'Chengdu City', expectedBatches: 2, expectedExperts: 700 },
  'experts.batch': { batchIndex: 0, batchCount: 2, experts: [{ localExpertId: 'e-1', ...profile }, { localExpertId: 'e-2', ...profile }] },
  'expert.registered': { localExpertId: 'e-1', profile },
  'expert.changed': { localExpertId: 'e-1', homeSystemId: 'chengdu', profile },
  'expert.retired': { localExpertId: 'e-1' },
};

const expectFailure = (json: string, reason: 'bad_json' | 'bad_schema' | 'unknown_type', detail?: RegExp) => {
  const result = parseUplink(json);
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.reason).toBe(reason);
  if (detail) expect(result.detail).toMatch(detail);
  return result;
};

describe('message contract: uplink', () => {
  it.each(UPLINK_TYPES)('parses a valid %s', (type) => {
    const result = parseUplink(JSON.stringify(envelope(type, validUplinks[type])));
    expect(result).toMatchObject({ ok: true, message: { type, systemId: 'chengdu', version: 1 } });
  });

  it.each(UPLINK_TYPES)('refuses %s with a payload missing its fields', (type) => {
    expectFailure(JSON.stringify(envelope(type, { unexpected: true })), 'bad_schema');
  });

  it('names a missing or mistyped field, and quotes back no key that is not a field name', () => {
    const missing = expectFailure(JSON.stringify(envelope('expert.retired', {})), 'bad_schema');
    expect(missing?.detail).toBe('payload.localExpertId: is required (a string)');
    const mistyped = expectFailure(JSON.stringify(envelope('expert.retired', { localExpertId: 7 })), 'bad_schema');
    expect(mistyped?.detail).toBe('payload.localExpertId: must be a string (not a number)');
    const extra = expectFailure(JSON.stringify(envelope('expert.retired', { localExpertId: 'e-1', note: 'x', '251248-1234': true })), 'bad_schema');
    expect(extra?.detail).toBe('payload: unknown fields: note and 1 more field whose name is not repeated here');
  });

  it('takes a correlationId that is an id, not free text or a CPR number (it is logged and passed on)', () => {
    for (const correlationId of ['070789-4821', '0707894821', '070789-4821 Bodil Qvortrup-Lindahl', 'Karen Blixholm 290292-3315', 'case.070789.4821', 'pt-070789-4821', '070789_4821', '07.07.89-4821']) {
      const failure = expectFailure(JSON.stringify({ ...envelope('expert.retired', { localExpertId: 'e-1' }), correlationId }), 'bad_schema');
      expect(failure?.detail).toMatch(/^correlationId: /);
      expect(failure?.detail).not.toContain('0707');
    }
    for (const correlationId of ['corr-A', 'consultation/3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10', '0b9f6f5e-3c1a-4d8e-9f4b-1a2b3c4d5e01']) {
      expect(parseUplink(JSON.stringify({ ...envelope('expert.retired', { localExpertId: 'e-1' }), correlationId }))).toMatchObject({ ok: true });
    }
  });

  it("refuses a CPR number in a system's or an expert's free text (stored in clear in events erasure cannot reach), naming the field only", () => {
    const location = profile.location;
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, name: 'Dr. Hansen 251248-1234' } }, /^payload\.profile\.name: must not hold a CPR number/],
      ['expert.changed', { localExpertId: 'e-1', profile: { ...profile, title: '2512481234' } }, /^payload\.profile\.title: /],
      ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, specialties: ['cardiology', 'pt 25.12.48-1234'] } }, /^payload\.profile\.specialties\.1: /],
      ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, location: { ...location, hospital: 'ward 251248_1234' } } }, /^payload\.profile\.location\.hospital: /],
      ['system.join.requested', { expectedBatches: 0, expectedExperts: 0, name: 'clinic 251248-1234' }, /^payload\.name: /],
      // A new expert's id: in clear in the directory, URLs, group-ids and its stream's name.
      ['expert.registered', { localExpertId: '251248-1234', profile }, /^payload\.localExpertId: must not hold a CPR number/],
      ['experts.batch', { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'dr-2512481234', ...profile }] }, /^payload\.experts\.0\.localExpertId: /],
    ];
    for (const [type, payload, detail] of cases) {
      const failure = expectFailure(JSON.stringify(envelope(type, payload)), 'bad_schema', detail);
      expect(failure?.detail).not.toMatch(/2512|25\.12/);
    }
    // An expert registered before that rule is still changed and retired by its id.
    expect(parseUplink(JSON.stringify(envelope('expert.changed', { localExpertId: '251248-1234', profile })))).toMatchObject({ ok: true });
    expect(parseUplink(JSON.stringify(envelope('expert.retired', { localExpertId: '251248-1234' })))).toMatchObject({ ok: true });
    // An expert's name with digits that are no CPR number is kept.
    expect(parseUplink(JSON.stringify(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, name: 'Dr. Hansen (ext. 4412)' } })))).toMatchObject({ ok: true });
  });

  it('refuses bad JSON without quoting it, and never throws', () => {
    const r = expectFailure('{"id": "secret-value"', 'bad_json');
    expect(r?.detail).not.toContain('secret');
    expectFailure('', 'bad_json');
    expect(() => parseUplink(undefined as unknown as string)).not.toThrow();
  });

  it('refuses envelopes that break the contract, naming the field and keeping what could be read', () => {
    const base = validUplinks['expert.retired'];
    expectFailure(JSON.stringify(envelope('expert.retired', base, { version: 2 })), 'bad_schema', /version/);
    expectFailure(JSON.stringify(envelope('expert.exploded', base)), 'unknown_type', /^type: must be one of /);
    expectFailure(JSON.stringify(envelope('expert.retired', base, { id: 'not-a-uuid' })), 'bad_schema', /id/);
    expectFailure(JSON.stringify(envelope('expert.retired', base, { time: '2024-05-01 12:00' })), 'bad_schema', /time/);
    expectFailure(JSON.stringify(envelope('expert.retired', base, { time: '2024-05-01T12:00:00' })), 'bad_schema', /time/);
    expectFailure(JSON.stringify(envelope('expert.retired', base, { systemId: 'Chengdu City' })), 'bad_schema', /systemId/);
    expectFailure(JSON.stringify(envelope('expert.retired', base, { extra: 1 })), 'bad_schema');
    expectFailure('[1,2]', 'bad_schema');
    const r = expectFailure(JSON.stringify(envelope('expert.retired', { localExpertId: 'has:colon' })), 'bad_schema', /payload.localExpertId/);
    expect(r?.envelope).toEqual({ id: '6f1c2a7e-8b3d-4c5e-9f01-23456789abcd', type: 'expert.retired', systemId: 'chengdu' });
  });

  it('refuses semantically broken batches: oversize, index past count, an expert twice', () => {
    const experts = Array.from({ length: MAX_BATCH_EXPERTS + 1 }, (_, i) => ({ localExpertId: `e-${i}`, ...profile }));
    expectFailure(JSON.stringify(envelope('experts.batch', { batchIndex: 0, batchCount: 1, experts })), 'bad_schema', /at most 500/);
    expectFailure(JSON.stringify(envelope('experts.batch', { batchIndex: 2, batchCount: 2, experts: [] })), 'bad_schema', /batchIndex/);
    const twice = [{ localExpertId: 'e-1', ...profile }, { localExpertId: 'e-1', ...profile }];
    expectFailure(JSON.stringify(envelope('experts.batch', { batchIndex: 0, batchCount: 1, experts: twice })), 'bad_schema', /twice/);
  });

  it('refuses a bad profile', () => {
    expectFailure(JSON.stringify(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, availability: 'busy' } })), 'bad_schema', /availability/);
    expectFailure(JSON.stringify(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, specialties: [] } })), 'bad_schema', /specialties/);
    expectFailure(JSON.stringify(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, languages: ['chinese!'] } })), 'bad_schema', /languages/);
  });

  it('refuses profile texts that show nothing (only white space, format or other invisible characters), naming the field', () => {
    // Each shows as a blank entry in every system's directory: zero-width space, joiners, word joiner, BOM, soft
    // hyphen, bidi marks and isolates, a Hangul filler, an ideographic space, NBSP, a line separator, a tag character.
    const invisible = ['\u200B', '\u200C\u200D', '\u2060', '\uFEFF\u200B', '\u00AD', '\u200E\u200F\u061C', '\u2066\u2069', '\u3164', '\u3000\u00A0\u200B', '\u2028\u200B', '\u{E0020}', '\u034F\uFE0F'];
    const location = profile.location;
    for (const blank of invisible) {
      const cases: Array<[string, Record<string, unknown>, RegExp]> = [
        ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, name: blank } }, /^payload\.profile\.name: must show a visible character/],
        ['expert.changed', { localExpertId: 'e-1', profile: { ...profile, title: blank } }, /^payload\.profile\.title: must show a visible character/],
        ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, specialties: ['Cardiology', blank] } }, /^payload\.profile\.specialties\.1: must show a visible character/],
        ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, location: { ...location, city: blank } } }, /^payload\.profile\.location\.city: must show a visible character/],
        ['expert.registered', { localExpertId: 'e-1', profile: { ...profile, location: { ...location, hospital: ` ${blank} ` } } }, /^payload\.profile\.location\.hospital: must show a visible character/],
        ['experts.batch', { batchIndex: 0, batchCount: 1, experts: [{ localExpertId: 'e-1', ...profile, name: blank }] }, /^payload\.experts\.0\.name: must show a visible character/],
      ];
      for (const [type, payload, detail] of cases) {
        const failure = expectFailure(JSON.stringify(envelope(type, payload)), 'bad_schema', detail);
        expect({ blank, detail: failure?.detail.split('; ') }).toEqual({ blank, detail: [expect.stringMatching(detail)] }); // one issue, not also "too small"
      }
      // The SDK validates with the same schemas before it sends: it refuses to send such a message.
      expect(() => serializeUplink(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, name: blank } }) as UplinkEnvelope)).toThrow(/payload\.profile\.name: must show a visible character/);
    }
    // Visible text with such characters in it is kept: a soft hyphen in a long word, a ZWJ emoji, RLM in a mixed name.
    for (const name of ['Hoved\u00ADpine-klinik', 'Søren 👨\u200D⚕️', '\u200Fسارة Li', '李\u200B伟']) {
      expect(parseUplink(JSON.stringify(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, name } })))).toMatchObject({ ok: true });
    }
    // The hub still shares an expert registered before the rule (downlink): refusing it there would skip every
    // upsert and snapshot part holding it.
    const shared = envelope('directory.expert.upserted', { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', profile: { ...profile, name: '\u200B' }, revision: 1 }) as DownlinkEnvelope;
    expect(parseDownlink(serializeDownlink(shared))).toMatchObject({ ok: true });
    // A title or hospital left empty (or white space only, stored empty) stays allowed: it says there is none.
    for (const title of ['', '   ']) {
      expect(parseUplink(JSON.stringify(envelope('expert.registered', { localExpertId: 'e-1', profile: { ...profile, title, location: { ...location, hospital: title } } })))).toMatchObject({ ok: true });
    }
  });

  it('serializes what it parses, and refuses to serialize a broken message', () => {
    const message = envelope('expert.registered', validUplinks['expert.registered']) as UplinkEnvelope;
    const parsed = parseUplink(serializeUplink(message));
    expect(parsed).toEqual({ ok: true, message });
    expect(() => serializeUplink({ ...message, systemId: 'X' } as UplinkEnvelope)).toThrow(TypeError);
  });
});

describe('message contract: downlink', () => {
  const expert = { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', profile, revision: 2 };
  const valid: Record<(typeof DOWNLINK_TYPES)[number], unknown> = {
    'directory.expert.upserted': expert,
    'directory.expert.retired': { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', revision: 3 },
    'directory.snapshot': { snapshotId: '0f1c2a7e-8b3d-5c5e-9f01-23456789abcd', batchIndex: 0, batchCount: 1, experts: [expert] },
    'system.joined': { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu' },
  };

  it.each(DOWNLINK_TYPES)('round-trips %s', (type) => {
    const message = envelope(type, valid[type], { systemId: 'beijing' }) as DownlinkEnvelope;
    expect(parseDownlink(serializeDownlink(message))).toEqual({ ok: true, message });
  });

  it('reads tolerantly: fields a newer hub adds are dropped, not refused', () => {
    const message = envelope('system.joined', { ...(valid['system.joined'] as object), region: 'west' }, { systemId: 'beijing', hubVersion: '2' });
    const result = parseDownlink(JSON.stringify(message));
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.message.payload).toEqual(valid['system.joined']);
  });

  it('derives message ids from the source event and the target, deterministically', () => {
    const a = downlinkMessageId('11111111-1111-4111-8111-111111111111', 'beijing');
    expect(a).toBe(downlinkMessageId('11111111-1111-4111-8111-111111111111', 'beijing'));
    expect(a).not.toBe(downlinkMessageId('11111111-1111-4111-8111-111111111111', 'shanghai'));
    expect(a).not.toBe(downlinkMessageId('11111111-1111-4111-8111-111111111111', 'beijing', 'snapshot/0'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('parseHubUplink: an unknown type names every type the hub takes on the uplink', () => {
  // Each contract's parser listed only its own types: a directory typo read as if consultations were not taken,
  // a consultation typo as if nothing else were.
  it.each(['expert.exploded', 'consultation.requestt'])('%s', (type) => {
    const result = parseHubUplink(JSON.stringify(envelope(type, {})));
    expect(result).toMatchObject({ ok: false, reason: 'unknown_type' });
    const detail = (result as { detail: string }).detail;
    for (const known of ['expert.registered', 'experts.batch', 'consultation.requested', 'consultation.report']) expect(detail).toContain(known);
  });
});
