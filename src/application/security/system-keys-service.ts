import {
  SYSTEM_KEY_EVENT_TYPES,
  isSystemKeyEvent,
  systemKeysDecider,
  systemKeysStreamName,
  type KeyUse,
  type PublicJwk,
  type SystemKeyEvent,
} from '../../domain/security/system-keys';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/shared/errors';
import { withSeconds } from '../../domain/shared/iso-instant';
import { handleCommand } from '../command-handling';
import type { DirectoryReadModel } from '../directory/directory-read-model';
import type { Clock } from '../ports/clock';
import type { EventStore, RecordedEvent } from '../ports/event-store';
import type { IdGenerator } from '../ports/id-generator';
import type { ProjectionTarget } from '../projector';

/**
 * Registering and retiring a connected system's public message keys (issue 5). Keys are checked at the edge by
 * a PublicKeyCheck (the JOSE adapter: a public JWK of an allowed algorithm, kid = its RFC 7638 thumbprint), then
 * recorded as SystemKeyRegistered / SystemKeyRetired on the system's key stream (domain/security/system-keys.ts).
 *
 *   await keys.register('city-a', [sigJwk, encJwk], { correlationId });   // -> { registered: [kids], repeated: [kids] }
 *   await keys.retire('city-a', kid, { at: '2025-01-01T00:00:00Z' });      // default: now
 *   await keys.list('city-a');                                              // -> PublicKeyView[]
 *
 * The keys become known to every hub process through a KeyBookProjection (below) following the store.
 *
 * A key belongs to one party. Its kid names the key material (RFC 7638), and GET /systems/<id>/keys shows every
 * system's public keys to any caller, so a system could otherwise register another's key as its own and then
 * retire it, which the hub's registry applied to the other system's key. Hence: register refuses a kid the key
 * book resolves to another system or to the hub (ConflictError 'key_owned_by_other_party', nothing of the request
 * recorded); retire answers a kid of another party as an unknown one (NotFoundError 'key_not_found', so kids
 * cannot be probed); list leaves such kids out. The key book itself resolves a kid to its first owner only and
 * retires a key only for that owner, so events recorded before these checks (or by two registrations racing
 * between check and append) never act on the first owner's key.
 */
export type CheckedKey = Readonly<{ kid: string; use: KeyUse; alg: string; jwk: PublicJwk }>;

/** The edge's validation of a public JWK (throws ValidationError 'invalid_key'). */
export type PublicKeyCheck = (jwk: PublicJwk) => Promise<CheckedKey>;

/** What the projection feeds: the hub's key registry (adapters/crypto/jose-keys.ts KeyRegistry fits). */
export interface KeyBook {
  register(owner: string, jwk: PublicJwk, options: { use: KeyUse; alg: string; validFrom?: string; retiresAt?: string }): Promise<unknown>;
  /** Retire `owner`'s key; a kid registered to another party is left alone. */
  retire(owner: string, kid: string, at: string): void;
  /** The party a kid is registered to (its first registration), or null if none. */
  ownerOf(kid: string): string | null;
}

export type PublicKeyView = Readonly<{ kid: string; use: KeyUse; alg: string; jwk: PublicJwk; validFrom: string | null; retiresAt: string | null; registeredAt: string }>;
export type KeyRegistration = Readonly<{ validFrom?: string; retiresAt?: string }>;

export const MAX_KEYS_PER_REQUEST = 10;

export type SystemKeysDependencies = Readonly<{
  store: EventStore;
  clock: Clock;
  ids: IdGenerator;
  directory: Pick<DirectoryReadModel, 'getSystem'>;
  directoryProjector: { catchUp(): Promise<void> };
  check: PublicKeyCheck;
  /** Who owns a kid: the key book the projector feeds (with the hub's own keys). */
  owners: Pick<KeyBook, 'ownerOf'>;
  /** Brought up to date before an ownership check and after every change (read-your-writes for the hub's own registry). */
  projector?: { catchUp(): Promise<void> };
}>;

export class SystemKeysService {
  constructor(private readonly deps: SystemKeysDependencies) {}

  async register(
    systemId: string,
    jwks: readonly PublicJwk[],
    options: KeyRegistration & Readonly<{ commandId?: string; correlationId?: string }> = {},
  ): Promise<{ registered: string[]; repeated: string[] }> {
    if (jwks.length === 0 || jwks.length > MAX_KEYS_PER_REQUEST) throw new ValidationError('invalid_key', `give 1-${MAX_KEYS_PER_REQUEST} public keys`, [{ path: 'keys', message: `1-${MAX_KEYS_PER_REQUEST} keys` }]);
    await this.requireSystem(systemId);
    const checked: CheckedKey[] = [];
    for (const [i, jwk] of jwks.entries()) {
      try {
        checked.push(await this.deps.check(jwk));
      } catch (error) {
        if (error instanceof ValidationError) throw new ValidationError(error.code, error.message, [{ path: `keys.${i}`, message: error.message }]);
        throw new ValidationError('invalid_key', 'not a usable public key', [{ path: `keys.${i}`, message: 'not a usable public key' }]);
      }
    }
    await this.deps.projector?.catchUp();
    for (const [i, key] of checked.entries()) {
      if (this.ownedByOther(systemId, key.kid)) {
        throw new ConflictError('key_owned_by_other_party', 'this key is registered to another system or to the hub: register your own keys', [{ path: `keys.${i}`, message: 'registered to another party' }]);
      }
    }
    const registered: string[] = [];
    const repeated: string[] = [];
    const now = this.deps.clock.now().toUTC().toISO()!;
    for (const key of checked) {
      const { newEvents } = await handleCommand(
        this.deps.store,
        systemKeysStreamName(systemId),
        systemKeysDecider,
        { type: 'RegisterSystemKey', systemId, kid: key.kid, use: key.use, alg: key.alg, jwk: key.jwk, validFrom: options.validFrom, retiresAt: options.retiresAt, now },
        { commandId: options.commandId ? `${options.commandId}/${key.kid}` : this.deps.ids.uuid(), metadata: options.correlationId ? { correlationId: options.correlationId } : {} },
      );
      (newEvents.length > 0 ? registered : repeated).push(key.kid);
    }
    await this.deps.projector?.catchUp();
    return { registered, repeated };
  }

  async retire(systemId: string, kid: string, options: Readonly<{ at?: string; commandId?: string; correlationId?: string }> = {}): Promise<{ kid: string; retiresAt: string; changed: boolean }> {
    await this.requireSystem(systemId);
    await this.deps.projector?.catchUp();
    // The decider's own answer for a kid it does not know: another party's kid looks exactly like an unknown one.
    if (this.ownedByOther(systemId, kid)) throw new NotFoundError('key_not_found', 'no such key is registered for this system');
    const now = this.deps.clock.now().toUTC().toISO()!;
    const at = options.at ?? now;
    const { newEvents } = await handleCommand(
      this.deps.store,
      systemKeysStreamName(systemId),
      systemKeysDecider,
      { type: 'RetireSystemKey', systemId, kid, at, now },
      { commandId: options.commandId ?? this.deps.ids.uuid(), metadata: options.correlationId ? { correlationId: options.correlationId } : {} },
    );
    await this.deps.projector?.catchUp();
    const retiresAt = newEvents.length > 0 ? withSeconds(at) : ((await this.list(systemId)).find((k) => k.kid === kid)?.retiresAt ?? withSeconds(at));
    return { kid, retiresAt, changed: newEvents.length > 0 };
  }

  async list(systemId: string): Promise<PublicKeyView[]> {
    await this.requireSystem(systemId);
    const { events } = await this.deps.store.readStream(systemKeysStreamName(systemId));
    await this.deps.projector?.catchUp();
    return foldViews(events.filter(isSystemKeyEvent) as unknown as SystemKeyEvent[]).filter((v) => !this.ownedByOther(systemId, v.kid));
  }

  private ownedByOther(systemId: string, kid: string): boolean {
    const owner = this.deps.owners.ownerOf(kid);
    return owner !== null && owner !== systemId;
  }

  private async requireSystem(systemId: string): Promise<void> {
    await this.deps.directoryProjector.catchUp();
    if (!(await this.deps.directory.getSystem(systemId))) throw new NotFoundError('system_not_found', 'no system is registered with this id');
  }
}

/**
 * validFrom and retiresAt are recorded as the caller sent them (the seconds may be left out); a view gives them with
 * the seconds, as the answers' format date-time has them (withSeconds), also for events recorded before.
 */
const answered = (text: string | null): string | null => (text === null ? null : withSeconds(text));

const foldViews = (events: readonly SystemKeyEvent[]): PublicKeyView[] => {
  const views = new Map<string, PublicKeyView>();
  for (const e of events) {
    if (e.type === 'SystemKeyRegistered') {
      const d = e.data;
      views.set(d.kid, { kid: d.kid, use: d.use, alg: d.alg, jwk: d.jwk, validFrom: answered(d.validFrom), retiresAt: answered(d.retiresAt), registeredAt: d.registeredAt });
    } else {
      const v = views.get(e.data.kid);
      if (v) views.set(e.data.kid, { ...v, retiresAt: answered(e.data.retiresAt) });
    }
  }
  return [...views.values()];
};

/**
 * The key read model of one hub process: every SystemKeyRegistered / SystemKeyRetired applied to a KeyBook (the
 * hub's KeyRegistry), in the store's order. In memory, rebuilt from the events at start (there are few).
 */
export class KeyBookProjection implements ProjectionTarget {
  private position = 0n;
  /** Kept in memory and rebuilt at every start: reading only these types keeps that start short on a large store. */
  readonly eventTypes: ReadonlySet<string> = new Set(SYSTEM_KEY_EVENT_TYPES);

  constructor(
    private readonly book: KeyBook,
    private readonly onError: (error: unknown, event: RecordedEvent) => void = () => undefined,
  ) {}

  async checkpoint(): Promise<bigint> {
    return this.position;
  }

  async apply(events: readonly RecordedEvent[], checkpoint: bigint): Promise<void> {
    for (const event of events) {
      if (!isSystemKeyEvent(event)) continue;
      const e = { type: event.type, data: event.data } as unknown as SystemKeyEvent;
      try {
        if (e.type === 'SystemKeyRegistered') {
          const d = e.data;
          await this.book.register(d.systemId, d.jwk, { use: d.use, alg: d.alg, ...(d.validFrom ? { validFrom: d.validFrom } : {}), ...(d.retiresAt ? { retiresAt: d.retiresAt } : {}) });
        } else {
          this.book.retire(e.data.systemId, e.data.kid, e.data.retiresAt);
        }
      } catch (error) {
        // A key the registry refuses stays unknown to it: one checked at registration but of an algorithm withdrawn
        // since, or a kid another party registered first (recorded before registration checked the owner).
        this.onError(error, event);
      }
    }
    this.position = checkpoint;
  }

  async reset(): Promise<void> {
    this.position = 0n;
  }
}
