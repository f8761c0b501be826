import { assertNever, type Decider, type DomainEvent } from '../shared/decider';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../shared/errors';
import { INVISIBLE_TEXT_MESSAGE, holdsOneLineControl, longerThan, showsNothing } from '../shared/text-limits';
import { SYSTEM_ID_PATTERN } from './connected-system';
import { holdsCprNumber } from '../monitoring/cpr-like';

/**
 * Expert: one medical expert of the regional directory, one stream per expert.
 *
 * API
 * - `expertDecider`: decide/evolve/initialState over `ExpertCommand` / `ExpertEvent` / `ExpertState`.
 * - `expertId(home, local)` = `${home}:${local}`; `expertStreamName(home, local)` = `expert-<home>.<local>`;
 *   `parseExpertId(id)` splits an expert id (null when malformed).
 * - `normalizeExpertProfile(profile)`: trims strings, drops duplicate specialties/languages, lower-cases
 *   language tags; throws ValidationError 'invalid_expert_profile' for a profile that is empty where it must not be,
 *   or whose texts are longer than `EXPERT_TEXT_LIMITS` after normalising (NFC).
 *   Every command runs it, so the events only ever hold normalized profiles.
 *
 * Rules
 * - Only the expert's home system registers, changes or retires it: a command whose `bySystemId` differs from
 *   `homeSystemId` is refused with ForbiddenError 'expert_owned_by_other_system'.
 * - Register is an upsert for the home system: a new expert -> ExpertRegistered; another profile ->
 *   ExpertProfileChanged (a re-sent join batch brings the directory up to date).
 * - Change of an unknown expert -> NotFoundError 'expert_not_found'; of a retired one -> ConflictError
 *   'expert_retired' (register too). Retire of a retired expert -> no events.
 * - Every command carries the id of the message that caused it (`messageId`); the state remembers them, so a
 *   repeat of a message (even delivered after later changes) changes nothing: a message id already remembered ->
 *   no events.
 * - The same profile again (register or change of an Active expert, under a new message id) -> one
 *   ExpertProfileChanged with `unchanged: true` and that same profile: it changes nothing but records the message
 *   id. Without it a message that changed nothing was not remembered, and its repeat after a later change was
 *   taken for a new message and moved the expert back to the old profile (the hub sent every system an upsert of
 *   it). Not an event type of its own: a build before it replays expert streams with an exhaustive evolve, and
 *   after a rollback reads this as a change to the same profile (at most a redundant upsert to the others).
 *   Such an event takes a stream version like any other; the downlink sends nothing for it, and the read models
 *   keep the expert's profile, `revision` and `updatedAt` (directory-projection.ts, downlink-planner.ts): the next
 *   change's revision skips that version, which receivers (keeping the highest revision) do not mind.
 *   A retired expert needs none: nothing can follow a retirement, so no repeat can revert anything.
 *
 * Ids: system ids have no '.', local expert ids have no ':', so both names split unambiguously.
 */
export type Availability = 'available' | 'limited' | 'unavailable';
export const AVAILABILITIES: readonly Availability[] = ['available', 'limited', 'unavailable'];

export type ExpertProfile = Readonly<{
  name: string;
  title: string;
  specialties: readonly string[];
  location: Readonly<{ city: string; hospital: string }>;
  /** BCP 47 language tags, lower-cased (e.g. 'zh', 'en', 'zh-hans'). */
  languages: readonly string[];
  availability: Availability;
}>;

export const LOCAL_EXPERT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type ExpertRegistered = DomainEvent<
  'ExpertRegistered',
  { expertId: string; homeSystemId: string; localExpertId: string; profile: ExpertProfile; registeredAt: string; messageId: string }
>;
export type ExpertProfileChanged = DomainEvent<
  'ExpertProfileChanged',
  {
    expertId: string;
    homeSystemId: string;
    localExpertId: string;
    profile: ExpertProfile;
    changedAt: string;
    messageId: string;
    /** The profile was the expert's already: the event only records `messageId` (absent on a real change). */
    unchanged?: true;
  }
>;
export type ExpertRetired = DomainEvent<'ExpertRetired', { expertId: string; homeSystemId: string; localExpertId: string; retiredAt: string; messageId: string }>;
export type ExpertEvent = ExpertRegistered | ExpertProfileChanged | ExpertRetired;

type ExpertCommandBase = Readonly<{
  homeSystemId: string;
  localExpertId: string;
  /** The system that sent the command; must be the home system. */
  bySystemId: string;
  /** Id of the causing message (the uplink envelope id): a repeat of it changes nothing. */
  messageId: string;
  /** ISO-8601 with offset, from the Clock. */
  now: string;
}>;
export type RegisterExpert = ExpertCommandBase & Readonly<{ type: 'RegisterExpert'; profile: ExpertProfile }>;
export type ChangeExpertProfile = ExpertCommandBase & Readonly<{ type: 'ChangeExpertProfile'; profile: ExpertProfile }>;
export type RetireExpert = ExpertCommandBase & Readonly<{ type: 'RetireExpert' }>;
export type ExpertCommand = RegisterExpert | ChangeExpertProfile | RetireExpert;

export type ExpertState =
  | Readonly<{ status: 'None' }>
  | Readonly<{ status: 'Active' | 'Retired'; homeSystemId: string; localExpertId: string; profile: ExpertProfile; messageIds: ReadonlySet<string> }>;

export const expertId = (homeSystemId: string, localExpertId: string): string => `${homeSystemId}:${localExpertId}`;
export const expertStreamName = (homeSystemId: string, localExpertId: string): string => `expert-${homeSystemId}.${localExpertId}`;

export const parseExpertId = (id: string): { homeSystemId: string; localExpertId: string } | null => {
  const at = id.indexOf(':');
  if (at <= 0) return null;
  const homeSystemId = id.slice(0, at);
  const localExpertId = id.slice(at + 1);
  return SYSTEM_ID_PATTERN.test(homeSystemId) && LOCAL_EXPERT_ID_PATTERN.test(localExpertId) ? { homeSystemId, localExpertId } : null;
};

const clean = (s: string): string => s.normalize('NFC').trim().replace(/\s+/g, ' ');

/**
 * The longest texts of a profile, in code points as the message contract counts them (text-limits.ts), checked AFTER
 * normalising (NFC can make a text up to three times longer: 200 x U+FB2C became 600). Stored longer, a name broke
 * the contract of the hub's own downlink messages: the expert was in the hub's directory and accepted, but its
 * upsert, and the whole snapshot batch holding it, were skipped as undeliverable for every other system.
 */
export const EXPERT_TEXT_LIMITS = { name: 200, title: 100, specialty: 100, city: 100, hospital: 200 } as const;

const uniqueBy = (values: readonly string[], key: (s: string) => string): string[] => {
  const seen = new Set<string>();
  return values.filter((v) => {
    const k = key(v);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
};

export const normalizeExpertProfile = (p: ExpertProfile): ExpertProfile => {
  const profile: ExpertProfile = {
    name: clean(p.name),
    title: clean(p.title),
    specialties: uniqueBy(p.specialties.map(clean).filter((s) => s.length > 0), (s) => s.toLowerCase()),
    location: { city: clean(p.location.city), hospital: clean(p.location.hospital) },
    languages: uniqueBy(p.languages.map((l) => clean(l).toLowerCase()).filter((l) => l.length > 0), (l) => l),
    availability: p.availability,
  };
  const problems: { path: string; message: string }[] = [];
  if (profile.name.length === 0) problems.push({ path: 'profile.name', message: 'must not be blank' });
  if (profile.specialties.length === 0) problems.push({ path: 'profile.specialties', message: 'needs at least one specialty' });
  if (profile.location.city.length === 0) problems.push({ path: 'profile.location.city', message: 'must not be blank' });
  if (profile.languages.length === 0) problems.push({ path: 'profile.languages', message: 'needs at least one language' });
  const checkText = (path: string, value: string, max: number): void => {
    // Shown in every system's directory (text-limits.ts); an empty title or hospital says there is none.
    if (showsNothing(value)) problems.push({ path, message: INVISIBLE_TEXT_MESSAGE });
    if (holdsOneLineControl(value)) problems.push({ path, message: 'holds a control character' });
    if (longerThan(value, max)) problems.push({ path, message: `at most ${max} characters (after Unicode normalisation, NFC)` });
  };
  checkText('profile.name', profile.name, EXPERT_TEXT_LIMITS.name);
  checkText('profile.title', profile.title, EXPERT_TEXT_LIMITS.title);
  profile.specialties.forEach((s, i) => checkText(`profile.specialties.${i}`, s, EXPERT_TEXT_LIMITS.specialty));
  checkText('profile.location.city', profile.location.city, EXPERT_TEXT_LIMITS.city);
  checkText('profile.location.hospital', profile.location.hospital, EXPERT_TEXT_LIMITS.hospital);
  if (!AVAILABILITIES.includes(profile.availability)) problems.push({ path: 'profile.availability', message: `must be one of ${AVAILABILITIES.join(', ')}` });
  if (problems.length > 0) throw new ValidationError('invalid_expert_profile', `the expert profile is not valid: ${problems.map((x) => `${x.path} ${x.message}`).join('; ')}`, problems);
  return profile;
};

export const sameProfile = (a: ExpertProfile, b: ExpertProfile): boolean =>
  a.name === b.name &&
  a.title === b.title &&
  a.availability === b.availability &&
  a.location.city === b.location.city &&
  a.location.hospital === b.location.hospital &&
  a.specialties.length === b.specialties.length &&
  a.specialties.every((s, i) => s === b.specialties[i]) &&
  a.languages.length === b.languages.length &&
  a.languages.every((l, i) => l === b.languages[i]);

const checkCommand = (command: ExpertCommand): void => {
  if (command.bySystemId !== command.homeSystemId) {
    throw new ForbiddenError('expert_owned_by_other_system', 'an expert is registered, changed and retired only by its home system');
  }
  if (!LOCAL_EXPERT_ID_PATTERN.test(command.localExpertId)) {
    throw new ValidationError('invalid_expert_id', 'a local expert id is 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit', [
      { path: 'localExpertId', message: 'invalid' },
    ]);
  }
};

type ExpertIds = Readonly<{ expertId: string; homeSystemId: string; localExpertId: string }>;

/** A change to `profile`, or (`unchanged`) the record of a message that sent the profile the expert has. */
const profileChanged = (ids: ExpertIds, profile: ExpertProfile, command: ExpertCommand, unchanged: boolean): ExpertProfileChanged => ({
  type: 'ExpertProfileChanged',
  data: { ...ids, profile, changedAt: command.now, messageId: command.messageId, ...(unchanged ? { unchanged: true as const } : {}) },
});

const decide = (command: ExpertCommand, state: ExpertState): readonly ExpertEvent[] => {
  checkCommand(command);
  if (state.status !== 'None' && state.messageIds.has(command.messageId)) return []; // a repeat of a message already applied
  const ids = { expertId: expertId(command.homeSystemId, command.localExpertId), homeSystemId: command.homeSystemId, localExpertId: command.localExpertId };
  switch (command.type) {
    case 'RegisterExpert': {
      const profile = normalizeExpertProfile(command.profile);
      if (state.status === 'None') {
        // The id goes to every system in clear and outlives any erasure (messages.ts refuses it at the edge too).
        if (holdsCprNumber(command.localExpertId)) {
          throw new ValidationError('invalid_expert_id', 'a local expert id must not look like a CPR number', [{ path: 'localExpertId', message: 'looks like a CPR number' }]);
        }
        return [{ type: 'ExpertRegistered', data: { ...ids, profile, registeredAt: command.now, messageId: command.messageId } }];
      }
      if (state.status === 'Retired') throw new ConflictError('expert_retired', 'the expert was retired; a retired expert is not registered again');
      return [profileChanged(ids, profile, command, sameProfile(state.profile, profile))];
    }
    case 'ChangeExpertProfile': {
      const profile = normalizeExpertProfile(command.profile);
      if (state.status === 'None') throw new NotFoundError('expert_not_found', 'no expert has this id; register it first');
      if (state.status === 'Retired') throw new ConflictError('expert_retired', 'the expert was retired and can no longer be changed');
      return [profileChanged(ids, profile, command, sameProfile(state.profile, profile))];
    }
    case 'RetireExpert': {
      if (state.status === 'None') throw new NotFoundError('expert_not_found', 'no expert has this id');
      if (state.status === 'Retired') return [];
      return [{ type: 'ExpertRetired', data: { ...ids, retiredAt: command.now, messageId: command.messageId } }];
    }
    default:
      return assertNever(command);
  }
};

const remember = (ids: ReadonlySet<string>, id: string): ReadonlySet<string> => new Set(ids).add(id);

const evolve = (state: ExpertState, event: ExpertEvent): ExpertState => {
  switch (event.type) {
    case 'ExpertRegistered':
      return {
        status: 'Active',
        homeSystemId: event.data.homeSystemId,
        localExpertId: event.data.localExpertId,
        profile: event.data.profile,
        messageIds: new Set([event.data.messageId]),
      };
    case 'ExpertProfileChanged':
      return state.status === 'None' ? state : { ...state, profile: event.data.profile, messageIds: remember(state.messageIds, event.data.messageId) };
    case 'ExpertRetired':
      return state.status === 'None' ? state : { ...state, status: 'Retired', messageIds: remember(state.messageIds, event.data.messageId) };
    default:
      return assertNever(event);
  }
};

export const expertDecider: Decider<ExpertCommand, ExpertEvent, ExpertState> = {
  decide,
  evolve,
  initialState: () => ({ status: 'None' }),
};

export const EXPERT_EVENT_TYPES: readonly ExpertEvent['type'][] = ['ExpertRegistered', 'ExpertProfileChanged', 'ExpertRetired'];
export const isExpertEvent = (e: { type: string }): e is ExpertEvent => (EXPERT_EVENT_TYPES as readonly string[]).includes(e.type);

/** Whether an expert event changed the expert (false only for an ExpertProfileChanged that records a message id: `unchanged`). */
export const changesExpert = (e: { type: string; data: unknown }): boolean =>
  !(e.type === 'ExpertProfileChanged' && (e.data as { unchanged?: unknown } | null)?.unchanged === true);
