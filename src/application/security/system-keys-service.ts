import {
  SYSTEM_KEY_EVENT_TYPES,
  isSystemKeyEvent,
  systemKeysDecider,
  systemKeysStreamName,
  type KeyUse,
  type PublicJwk,
  type SystemKeyEvent,
} from '../../domain/security/system-keys';
import { NotFoundError, ValidationError } from '../../domain/shared/errors';
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
 */
export type CheckedKey = Readonly<{ kid: string; use: KeyUse; alg: string; jwk: PublicJwk }>;

/** The edge's validation of a public JWK (throws ValidationError 'invalid_key'). */
export type PublicKeyCheck = (jwk: PublicJwk) => Promise<CheckedKey>;

/** What the projection feeds: the hub's key registry (adapters/crypto/jose-keys.ts KeyRegistry fits). */
export interface KeyBook {
  register(owner: string, jwk: PublicJwk, options: { use: KeyUse; alg: string; validFrom?: string; retiresAt?: string }): Promise<unknown>;
  retire(kid: string, at: string): void;
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
  /** Brought up to date after every change (read-your-writes for the hub's own registry). */
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
    const retiresAt = newEvents.length > 0 ? at : ((await this.list(systemId)).find((k) => k.kid === kid)?.retiresAt ?? at);
    return { kid, retiresAt, changed: newEvents.length > 0 };
  }

  async list(systemId: string): Promise<PublicKeyView[]> {
    await this.requireSystem(systemId);
    const { events } = await this.deps.store.readStream(systemKeysStreamName(systemId));
    return foldViews(events.filter(isSystemKeyEvent) as unknown as SystemKeyEvent[]);
  }

  private async requireSystem(systemId: string): Promise<void> {
    await this.deps.directoryProjector.catchUp();
    if (!(await this.deps.directory.getSystem(systemId))) throw new NotFoundError('system_not_found', 'no system is registered with this id');
  }
}

const foldViews = (events: readonly SystemKeyEvent[]): PublicKeyView[] => {
  const views = new Map<string, PublicKeyView>();
  for (const e of events) {
    if (e.type === 'SystemKeyRegistered') {
      const d = e.data;
      views.set(d.kid, { kid: d.kid, use: d.use, alg: d.alg, jwk: d.jwk, validFrom: d.validFrom, retiresAt: d.retiresAt, registeredAt: d.registeredAt });
    } else {
      const v = views.get(e.data.kid);
      if (v) views.set(e.data.kid, { ...v, retiresAt: e.data.retiresAt });
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
          this.book.retire(e.data.kid, e.data.retiresAt);
        }
      } catch (error) {
        // A key the registry refuses (checked at registration; e.g. an algorithm withdrawn since) stays unknown.
        this.onError(error, event);
      }
    }
    this.position = checkpoint;
  }

  async reset(): Promise<void> {
    this.position = 0n;
  }
}
