import { ConflictError, NotFoundError, ValidationError } from '../shared/errors';
import { assertNever, type Decider, type DomainEvent } from '../shared/decider';

/**
 * The public keys a connected system signs and receives messages with (message security, issue 5), as one
 * aggregate per system: stream `system-keys-<systemId>`. Its own stream, beside the system's membership stream
 * (`system-<id>`), so a key rotation never contends with a join and the ConnectedSystem decider stays as it is;
 * every hub process rebuilds its key registry from these events.
 *
 * A key is named by its kid (the RFC 7638 thumbprint, computed at the edge, which also checks the JWK); the
 * decider keeps the rules:
 *   register  a kid not yet known -> SystemKeyRegistered; the same kid again with the same use -> nothing (a
 *             repeat); a retired kid -> ConflictError 'key_retired' (a retired key never comes back)
 *   retire    a known, not yet retired kid -> SystemKeyRetired with the instant it stops being accepted (a date
 *             in the future lets both keys work during the overlap); unknown -> NotFoundError 'key_not_found';
 *             already retired -> nothing; the last signing or encryption key without a retirement of its own
 *             cannot be retired: ConflictError 'last_key' (the system could no longer send or receive)
 * Times are ISO-8601 strings from the command.
 */
export type KeyUse = 'sig' | 'enc';
export type PublicJwk = Readonly<Record<string, unknown>>;

export type SystemKeyRegistered = DomainEvent<
  'SystemKeyRegistered',
  { systemId: string; kid: string; use: KeyUse; alg: string; jwk: PublicJwk; validFrom: string | null; retiresAt: string | null; registeredAt: string }
>;
export type SystemKeyRetired = DomainEvent<'SystemKeyRetired', { systemId: string; kid: string; retiresAt: string; retiredAt: string }>;
export type SystemKeyEvent = SystemKeyRegistered | SystemKeyRetired;

export type RegisterSystemKey = Readonly<{
  type: 'RegisterSystemKey';
  systemId: string;
  kid: string;
  use: KeyUse;
  alg: string;
  jwk: PublicJwk;
  validFrom?: string;
  retiresAt?: string;
  now: string;
}>;
export type RetireSystemKey = Readonly<{ type: 'RetireSystemKey'; systemId: string; kid: string; at: string; now: string }>;
export type SystemKeyCommand = RegisterSystemKey | RetireSystemKey;

export type SystemKeyEntry = Readonly<{ kid: string; use: KeyUse; alg: string; retiresAt: string | null }>;
export type SystemKeysState = Readonly<{ keys: readonly SystemKeyEntry[] }>;

export const systemKeysStreamName = (systemId: string): string => `system-keys-${systemId}`;

const validAt = (k: SystemKeyEntry, at: string): boolean => k.retiresAt === null || Date.parse(k.retiresAt) > Date.parse(at);

export const systemKeysDecider: Decider<SystemKeyCommand, SystemKeyEvent, SystemKeysState> = {
  initialState: () => ({ keys: [] }),
  decide(command, state) {
    const existing = state.keys.find((k) => k.kid === command.kid);
    switch (command.type) {
      case 'RegisterSystemKey': {
        if (existing) {
          if (existing.use !== command.use) throw new ConflictError('key_use_changed', 'this key is registered for another use');
          if (existing.retiresAt !== null && !validAt(existing, command.now)) throw new ConflictError('key_retired', 'this key was retired and cannot be registered again');
          return [];
        }
        if (command.retiresAt !== undefined && command.validFrom !== undefined && Date.parse(command.retiresAt) <= Date.parse(command.validFrom)) {
          throw new ValidationError('invalid_key_dates', 'retiresAt must be after validFrom', [{ path: 'retiresAt', message: 'must be after validFrom' }]);
        }
        return [
          {
            type: 'SystemKeyRegistered',
            data: {
              systemId: command.systemId,
              kid: command.kid,
              use: command.use,
              alg: command.alg,
              jwk: command.jwk,
              validFrom: command.validFrom ?? null,
              retiresAt: command.retiresAt ?? null,
              registeredAt: command.now,
            },
          },
        ];
      }
      case 'RetireSystemKey': {
        if (!existing) throw new NotFoundError('key_not_found', 'no such key is registered for this system');
        if (existing.retiresAt !== null) return [];
        // A successor with no retirement of its own: two keys each retired at its own time (one at +10 s, the other
        // at +5 s) each had the other valid at its moment, and then the system had no key at all.
        const successor = state.keys.some((k) => k.kid !== existing.kid && k.use === existing.use && k.retiresAt === null);
        if (!successor) throw new ConflictError('last_key', `register a new ${existing.use === 'sig' ? 'signing' : 'encryption'} key before retiring this one`);
        return [{ type: 'SystemKeyRetired', data: { systemId: command.systemId, kid: command.kid, retiresAt: command.at, retiredAt: command.now } }];
      }
      default:
        return assertNever(command);
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case 'SystemKeyRegistered':
        return { keys: [...state.keys, { kid: event.data.kid, use: event.data.use, alg: event.data.alg, retiresAt: event.data.retiresAt }] };
      case 'SystemKeyRetired':
        return { keys: state.keys.map((k) => (k.kid === event.data.kid ? { ...k, retiresAt: event.data.retiresAt } : k)) };
      default:
        // An event type this build does not know (written by a newer one, before a roll back) changes no key: the
        // key book must go on verifying with the keys it knows rather than stop every system's messages.
        return state;
    }
  },
};

export const SYSTEM_KEY_EVENT_TYPES: readonly SystemKeyEvent['type'][] = ['SystemKeyRegistered', 'SystemKeyRetired'];
export const isSystemKeyEvent = (e: { type: string }): e is SystemKeyEvent => (SYSTEM_KEY_EVENT_TYPES as readonly string[]).includes(e.type);
