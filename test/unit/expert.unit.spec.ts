import { DeciderSpec } from '../support/decider-spec';
import { expertDecider, expertStreamName, normalizeExpertProfile, parseExpertId, type ExpertCommand, type ExpertEvent, type ExpertProfile } from '../../src/domain/directory/expert';
import { foldEvents } from '../../src/domain/shared/decider';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../../src/domain/shared/errors';

const profile: ExpertProfile = {
  name: 'Li Wei',
  title: 'Chief physician',
  specialties: ['Cardiology'],
  location: { city: 'Chengdu', hospital: 'West China Hospital' },
  languages: ['zh', 'en'],
  availability: 'available',
};
const now = '2024-05-01T10:00:00.000Z';
const base = { homeSystemId: 'chengdu', localExpertId: 'e-1', bySystemId: 'chengdu', now };
const ids = { expertId: 'chengdu:e-1', homeSystemId: 'chengdu', localExpertId: 'e-1' };

const register = (messageId: string, p: ExpertProfile = profile, by = 'chengdu'): ExpertCommand => ({ ...base, type: 'RegisterExpert', profile: p, messageId, bySystemId: by });
const change = (messageId: string, p: ExpertProfile): ExpertCommand => ({ ...base, type: 'ChangeExpertProfile', profile: p, messageId });
const retire = (messageId: string, by = 'chengdu'): ExpertCommand => ({ ...base, type: 'RetireExpert', messageId, bySystemId: by });

const registered: ExpertEvent = { type: 'ExpertRegistered', data: { ...ids, profile, registeredAt: now, messageId: 'm1' } };
const moved: ExpertProfile = { ...profile, location: { city: 'Chongqing', hospital: 'Xinqiao' } };
const changed: ExpertEvent = { type: 'ExpertProfileChanged', data: { ...ids, profile: moved, changedAt: now, messageId: 'm2' } };
const retired: ExpertEvent = { type: 'ExpertRetired', data: { ...ids, retiredAt: now, messageId: 'm3' } };

const spec = DeciderSpec.for(expertDecider);

describe('Expert decider', () => {
  it('registers a new expert', () => spec.given([]).when(register('m1')).then([registered]));

  it('re-registering the same profile changes nothing (idempotent): it only records the message id', () =>
    spec.given([registered]).when(register('m9')).then([{ type: 'ExpertProfileChanged', data: { ...ids, profile, changedAt: now, messageId: 'm9', unchanged: true } }]));

  it('re-registering another profile is a profile change', () =>
    spec.given([registered]).when(register('m2', moved)).then([{ type: 'ExpertProfileChanged', data: { ...ids, profile: moved, changedAt: now, messageId: 'm2' } }]));

  it('changes a profile; a change to the same profile only records the message id, and its repeat nothing', () => {
    spec.given([registered]).when(change('m2', moved)).then([changed]);
    const same: ExpertEvent = { type: 'ExpertProfileChanged', data: { ...ids, profile: moved, changedAt: now, messageId: 'm4', unchanged: true } };
    spec.given([registered, changed]).when(change('m4', moved)).then([same]);
    spec.given([registered, changed, same]).when(change('m4', moved)).thenNothing();
    expect(foldEvents(expertDecider, [registered, changed, same])).toMatchObject({ status: 'Active', profile: moved });
  });

  it('a repeat of an applied message changes nothing, even after later changes', () => {
    // m1 registered the first profile; m2 moved the expert; m1 delivered again must not move the expert back.
    spec.given([registered, changed]).when(register('m1')).thenNothing();
    spec.given([registered, changed, retired]).when(change('m2', moved)).thenNothing();
  });

  it('a repeat of a message that changed nothing stays nothing after later changes (it does not move the expert back)', () => {
    // Over a real broker: m2 sent the profile the expert had, m3 moved it, m2 redelivered moved it back at revision 3
    // and every other system got the old profile. m2 changed nothing, so nothing remembered its id.
    const state = (events: readonly ExpertEvent[]) => events.reduce(expertDecider.evolve, expertDecider.initialState());
    const history: ExpertEvent[] = [registered];
    for (const command of [change('m2', profile), change('m3', moved)]) history.push(...expertDecider.decide(command, state(history)));
    expect(expertDecider.decide(change('m2', profile), state(history))).toEqual([]);
    expect(expertDecider.decide(register('m2', profile), state(history))).toEqual([]);
    expect(state(history)).toMatchObject({ status: 'Active', profile: moved });

    // The same for a join batch re-sent after a later change (a RegisterExpert of the profile the expert had).
    const joined: ExpertEvent[] = [registered];
    for (const command of [register('batch-again', profile), change('m3', moved)]) joined.push(...expertDecider.decide(command, state(joined)));
    expect(expertDecider.decide(register('batch-again', profile), state(joined))).toEqual([]);
    expect(state(joined)).toMatchObject({ status: 'Active', profile: moved });
  });

  it('retires, and retiring again changes nothing', () => {
    spec.given([registered]).when(retire('m3')).then([retired]);
    spec.given([registered, retired]).when(retire('m5')).thenNothing();
  });

  it('refuses to change or re-register a retired expert', () => {
    spec.given([registered, retired]).when(change('m6', moved)).thenThrows(ConflictError, 'expert_retired');
    spec.given([registered, retired]).when(register('m7', moved)).thenThrows(ConflictError, 'expert_retired');
  });

  it('refuses changing or retiring an unknown expert', () => {
    spec.given([]).when(change('m2', moved)).thenThrows(NotFoundError, 'expert_not_found');
    spec.given([]).when(retire('m2')).thenThrows(NotFoundError, 'expert_not_found');
  });

  it('only the home system registers, changes or retires its experts', () => {
    spec.given([]).when(register('m1', profile, 'beijing')).thenThrows(ForbiddenError, 'expert_owned_by_other_system');
    spec.given([registered]).when(retire('m8', 'beijing')).thenThrows(ForbiddenError, 'expert_owned_by_other_system');
  });

  it('normalizes profiles and refuses blank ones', () => {
    const n = normalizeExpertProfile({ ...profile, name: '  Li   Wei ', specialties: ['Cardiology', 'cardiology', ' Surgery '], languages: ['ZH', 'zh', 'en-GB'] });
    expect(n).toMatchObject({ name: 'Li Wei', specialties: ['Cardiology', 'Surgery'], languages: ['zh', 'en-gb'] });
    spec.given([]).when(register('m1', { ...profile, name: '  ' })).thenThrows(ValidationError, 'invalid_expert_profile');
    spec.given([]).when(register('m1', { ...profile, specialties: [] })).thenThrows(ValidationError, 'invalid_expert_profile');
  });

  it('filters out blank specialties and languages (after trimming), keeping the others in order', () => {
    const n = normalizeExpertProfile({ ...profile, specialties: ['  ', 'Cardiology', '', ' \t '], languages: [' ', 'ZH', '', 'en'] });
    expect(n.specialties).toEqual(['Cardiology']);
    expect(n.languages).toEqual(['zh', 'en']);
  });

  it('refuses a blank city, no languages, an unknown availability, saying which field', () => {
    const refusal = (p: ExpertProfile) => {
      try {
        normalizeExpertProfile(p);
      } catch (e) {
        expect(e).toBeInstanceOf(ValidationError);
        return e as ValidationError;
      }
      throw new Error('expected the profile to be refused');
    };
    const cases: [ExpertProfile, { path: string; message: string }][] = [
      [{ ...profile, name: ' ' }, { path: 'profile.name', message: 'must not be blank' }],
      [{ ...profile, specialties: [' '] }, { path: 'profile.specialties', message: 'needs at least one specialty' }],
      [{ ...profile, location: { city: '  ', hospital: 'West China Hospital' } }, { path: 'profile.location.city', message: 'must not be blank' }],
      [{ ...profile, languages: [] }, { path: 'profile.languages', message: 'needs at least one language' }],
      [{ ...profile, languages: ['  '] }, { path: 'profile.languages', message: 'needs at least one language' }],
      [{ ...profile, availability: 'on holiday' as ExpertProfile['availability'] }, { path: 'profile.availability', message: 'must be one of available, limited, unavailable' }],
    ];
    for (const [p, detail] of cases) {
      const e = refusal(p);
      expect(e.code).toBe('invalid_expert_profile');
      expect(e.details).toEqual([detail]);
      expect(e.message).toContain(`${detail.path} ${detail.message}`);
      spec.given([]).when(register('m1', p)).thenThrows(ValidationError, 'invalid_expert_profile');
    }
    // A blank hospital is allowed.
    expect(normalizeExpertProfile({ ...profile, location: { city: 'Chengdu', hospital: ' ' } }).location).toEqual({ city: 'Chengdu', hospital: '' });
  });

  it('counts the text limits after NFC: a name that normalises longer than 200 is refused, one of 200 CJK characters is not', () => {
    // U+FB2C is one code unit that NFC makes three: 200 of them passed the contract's 200 and were stored as 600,
    // which the hub's own downlink messages could not carry (their schema is the same 200): skipped for every system.
    expect('\uFB2C'.normalize('NFC')).toHaveLength(3);
    spec.given([]).when(register('m1', { ...profile, name: '\uFB2C'.repeat(200) })).thenThrows(ValidationError, 'invalid_expert_profile');
    spec.given([]).when(change('m1', { ...profile, location: { city: 'Chengdu', hospital: '\uFB2C'.repeat(67) } })).thenThrows(ValidationError, 'invalid_expert_profile');
    try {
      normalizeExpertProfile({ ...profile, specialties: ['Cardiology', '\uFB2C'.repeat(34)] });
      throw new Error('expected the profile to be refused');
    } catch (e) {
      expect((e as ValidationError).details).toEqual([{ path: 'profile.specialties.1', message: 'at most 100 characters (after Unicode normalisation, NFC)' }]);
    }
    const cjk = normalizeExpertProfile({ ...profile, name: '李'.repeat(200), title: '主任医师'.repeat(25), location: { city: '成'.repeat(100), hospital: '院'.repeat(200) } });
    expect(cjk.name).toHaveLength(200);
  });

  it('refuses control characters in a profile\'s texts (NUL failed the append on PostgreSQL), naming the field', () => {
    let error: ValidationError | undefined;
    try {
      normalizeExpertProfile({ ...profile, name: 'Dr\u0000Li', location: { city: 'Chengdu', hospital: 'West\u0007' } });
    } catch (e) {
      error = e as ValidationError;
    }
    expect(error?.details).toEqual([
      { path: 'profile.name', message: 'holds a control character' },
      { path: 'profile.location.hospital', message: 'holds a control character' },
    ]);
    // White space, line breaks included, is folded to one space as before.
    expect(normalizeExpertProfile({ ...profile, name: 'Dr\r\n\tLi' }).name).toBe('Dr Li');
  });

  it('refuses bidirectional overrides and isolates in a profile\'s texts (a name shown reordered as another\'s), takes RLM', () => {
    for (const mark of ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069']) {
      let error: ValidationError | undefined;
      try {
        normalizeExpertProfile({ ...profile, title: `Dr ${mark}ecnaS` });
      } catch (e) {
        error = e as ValidationError;
      }
      expect(error?.details).toEqual([{ path: 'profile.title', message: 'holds a control character' }]);
    }
    // A right-to-left name's marks are text, not reordering: taken.
    expect(normalizeExpertProfile({ ...profile, name: 'د. \u200fمحمد\u200e Li\u061c' }).name).toBe('د. \u200fمحمد\u200e Li\u061c');
  });

  it('counts code points, as the contract\'s maxLength and zod do: 200 emoji are a name of 200, 201 are refused', () => {
    // zod 4.6 counts code points at the edge; the decider counted UTF-16 units, so 101-200 emoji passed the
    // message's schema and were then refused here as "at most 200 characters".
    expect(normalizeExpertProfile({ ...profile, name: '\u{1F600}'.repeat(200) }).name).toHaveLength(400);
    spec.given([]).when(register('m1', { ...profile, name: '\u{1F600}'.repeat(201) })).thenThrows(ValidationError, 'invalid_expert_profile');
  });

  it('the same name in NFD and NFC is one profile: a re-registration in NFD changes nothing', () => {
    const danish: ExpertProfile = { ...profile, name: 'Søren Åberg-Ærø', location: { city: 'Århus', hospital: 'Aarhus Universitetshospital' } };
    const nfd: ExpertProfile = { ...danish, name: danish.name.normalize('NFD'), location: { ...danish.location, city: danish.location.city.normalize('NFD') } };
    expect(nfd.name).not.toBe(danish.name);
    const first: ExpertEvent = { type: 'ExpertRegistered', data: { ...ids, profile: normalizeExpertProfile(danish), registeredAt: now, messageId: 'm1' } };
    spec.given([]).when(register('m1', nfd)).then([first]);
    spec.given([first]).when(register('m2', nfd)).then([{ type: 'ExpertProfileChanged', data: { ...ids, profile: first.data.profile, changedAt: now, messageId: 'm2', unchanged: true } }]);
  });

  it('a change of any single field is a change, not a repeat', () => {
    const twoSpecialties: ExpertEvent = { type: 'ExpertRegistered', data: { ...ids, profile: { ...profile, specialties: ['Cardiology', 'Surgery'] }, registeredAt: now, messageId: 'm1' } };
    const variants: [string, ExpertEvent, ExpertProfile][] = [
      ['name', registered, { ...profile, name: 'Li Wen' }],
      ['title', registered, { ...profile, title: 'Attending physician' }],
      ['availability', registered, { ...profile, availability: 'limited' }],
      ['city', registered, { ...profile, location: { ...profile.location, city: 'Chongqing' } }],
      ['hospital', registered, { ...profile, location: { ...profile.location, hospital: 'Huaxi' } }],
      ['a specialty more', registered, { ...profile, specialties: ['Cardiology', 'Surgery'] }],
      ['a specialty fewer', twoSpecialties, profile],
      ['another specialty', registered, { ...profile, specialties: ['Surgery'] }],
      ['another second specialty', twoSpecialties, { ...profile, specialties: ['Cardiology', 'Neurology'] }],
      ['a language more', registered, { ...profile, languages: ['zh', 'en', 'fr'] }],
      ['a language fewer', registered, { ...profile, languages: ['zh'] }],
      ['another second language', registered, { ...profile, languages: ['zh', 'fr'] }],
      ['languages reordered', registered, { ...profile, languages: ['en', 'zh'] }],
    ];
    for (const [field, given, p] of variants) {
      const expected = [field, [{ type: 'ExpertProfileChanged', data: { ...ids, profile: p, changedAt: now, messageId: 'm2' } }]];
      expect([field, spec.given([given]).when(change('m2', p)).events()]).toEqual(expected);
      expect([field, spec.given([given]).when(register('m2', p)).events()]).toEqual(expected);
      // The same profile again changes nothing (it only records the message id).
      const had = given.type === 'ExpertRegistered' ? given.data.profile : p;
      expect([field, spec.given([given]).when(change('m2', had)).events()]).toEqual([field, [{ type: 'ExpertProfileChanged', data: { ...ids, profile: had, changedAt: now, messageId: 'm2', unchanged: true } }]]);
    }
  });

  it('refuses a malformed local expert id, naming the field', () => {
    const e = spec.given([]).when({ ...register('m1'), localExpertId: 'a:b' } as ExpertCommand).thenThrows(ValidationError, 'invalid_expert_id');
    expect((e as ValidationError).details).toEqual([{ path: 'localExpertId', message: 'invalid' }]);
  });

  it('refuses a new expert whose local id looks like a CPR number (it goes to every system and outlives erasure)', () => {
    for (const localExpertId of ['251248-1234', 'dr-2512481234', '25.12.48-1234']) {
      const e = spec.given([]).when({ ...register('m1'), localExpertId } as ExpertCommand).thenThrows(ValidationError, 'invalid_expert_id');
      expect((e as ValidationError).details).toEqual([{ path: 'localExpertId', message: 'looks like a CPR number' }]);
    }
    // Digits that are no CPR number are an id like any other.
    spec.given([]).when({ ...register('m1'), localExpertId: 'dr-0042' } as ExpertCommand).then([{ ...registered, data: { ...registered.data, expertId: 'chengdu:dr-0042', localExpertId: 'dr-0042' } }]);
  });

  it('an expert registered before that rule can still be changed and retired', () => {
    const old = { ...base, localExpertId: '251248-1234' };
    const oldIds = { expertId: 'chengdu:251248-1234', homeSystemId: 'chengdu', localExpertId: '251248-1234' };
    const was: ExpertEvent = { type: 'ExpertRegistered', data: { ...oldIds, profile, registeredAt: now, messageId: 'm1' } };
    spec.given([was]).when({ ...old, type: 'ChangeExpertProfile', profile: moved, messageId: 'm2' }).then([{ type: 'ExpertProfileChanged', data: { ...oldIds, profile: moved, changedAt: now, messageId: 'm2' } }]);
    spec.given([was]).when({ ...old, type: 'RetireExpert', messageId: 'm3' }).then([{ type: 'ExpertRetired', data: { ...oldIds, retiredAt: now, messageId: 'm3' } }]);
  });

  it('names the field of each text over its limit: name, title, city, hospital', () => {
    const over = normalizeExpertProfile.bind(null, {
      ...profile,
      name: 'n'.repeat(201),
      title: 't'.repeat(101),
      location: { city: 'c'.repeat(101), hospital: 'h'.repeat(201) },
    });
    expect(over).toThrow(
      expect.objectContaining({
        code: 'invalid_expert_profile',
        details: ['profile.name', 'profile.title', 'profile.location.city', 'profile.location.hospital'].map((path) => ({
          path,
          message: expect.stringMatching(/^at most \d+ characters/),
        })),
      }),
    );
  });

  it('is Active once registered and Retired once retired; a change or retirement of an expert never registered leaves no expert', () => {
    expect(foldEvents(expertDecider, [registered])).toMatchObject({ status: 'Active', profile });
    expect(foldEvents(expertDecider, [registered, changed, retired])).toMatchObject({ status: 'Retired', profile: moved });
    expect(foldEvents(expertDecider, [changed])).toEqual({ status: 'None' });
    expect(foldEvents(expertDecider, [retired])).toEqual({ status: 'None' });
  });

  it('keeps each expert in a stream of its own, named by home system and local id (expert-<home>.<local>)', () => {
    expect(expertStreamName('chengdu', 'e-1')).toBe('expert-chengdu.e-1');
    expect(expertStreamName('chengdu', 'e-2')).not.toBe(expertStreamName('chengdu', 'e-1'));
  });

  it('parses expert ids', () => {
    expect(parseExpertId('chengdu:e-1')).toEqual({ homeSystemId: 'chengdu', localExpertId: 'e-1' });
    expect(parseExpertId('chengdu')).toBeNull();
    expect(parseExpertId('Chengdu:e-1')).toBeNull();
  });
});
