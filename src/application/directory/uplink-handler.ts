import {
  batchNotNeeded,
  connectedSystemDecider,
  systemStreamName,
  systemText,
  type ConnectedSystemCommand,
  type ConnectedSystemState,
} from '../../domain/directory/connected-system';
import { changesExpert, expertDecider, expertStreamName, type ExpertCommand, type ExpertProfile, type ExpertState } from '../../domain/directory/expert';
import { ConflictError, NotFoundError, ValidationError } from '../../domain/shared/errors';
import { handleCommand, type ReadState } from '../command-handling';
import type { Clock } from '../ports/clock';
import type { EventMetadata, EventStore } from '../ports/event-store';
import type { UplinkEnvelope, UplinkOf } from './directory-messages';

/**
 * The hub's uplink use case: one parsed uplink message (see directory-messages.ts; parse with parseUplink from
 * src/adapters/messaging/messages.ts) in, its events committed, out.
 *
 *   const uplink = new UplinkHandler({ store, clock });
 *   const { outcome } = await uplink.handleUplink(envelope); // 'applied' | 'duplicate'
 *
 * Outcome: 'applied' when the message changed the directory; 'duplicate' when it did not (a repeat of the envelope
 * id, or content the directory holds already: the latter still records the message id, in an `unchanged`
 * ExpertProfileChanged, so that a repeat of it after a later change stays a repeat). Either way the message may be
 * accepted.
 *
 * Errors (for part B's consumer: accept / retry / dead-letter):
 * - permanent, never retried: any RtsError (`error instanceof RtsError`, see domain/shared/errors.ts), e.g.
 *   NotFoundError 'unknown_system', ForbiddenError 'expert_owned_by_other_system', ConflictError
 *   'system_not_joining' / 'system_not_joined' / 'expert_retired' / 'system_already_joined', ValidationError
 *   'batch_count_mismatch' / 'too_many_experts' / 'invalid_expert_profile' / 'system_name_mismatch', NotFoundError
 *   'expert_not_found'. Dead-letter with `error.code` as the reason.
 * - everything else is transient and propagates unchanged (store unavailable, ExpectedVersionConflictError after
 *   `retries` re-decisions): retry through the broker.
 *
 * Idempotency: every command's event ids derive from the envelope id (handleCommand's commandId), and the Expert
 * decider remembers the message ids it applied, so a redelivered message changes nothing, even after later changes.
 *
 * A join request ('system.join.requested') starts a join attempt; another request (another envelope id) while the
 * system is joining starts it again from scratch (see domain/directory/connected-system.ts).
 *
 * A batch ('experts.batch') registers each expert (an upsert by the home system) and then records
 * ExpertBatchImported on the system's stream; the last missing batch also records SystemJoined. The batch is
 * checked against the join, and each of its experts decided (a retired one refuses it whole), before any expert is
 * written. A batch index already imported in the current attempt, a
 * batch message (envelope id) counted before, and a batch of an earlier attempt (its correlationId is that
 * attempt's) are skipped whole, so repeated, out-of-order and late batches are safe. A crash between the experts
 * and the batch record is repaired by the redelivery (the experts are then no-ops). An expert in batches of two
 * attempts is one expert (an upsert by id).
 */
export type UplinkResult = Readonly<{ outcome: 'applied' | 'duplicate' }>;

export type UplinkDependencies = Readonly<{
  store: EventStore;
  clock: Clock;
  /** Re-decisions on a version conflict per stream (competing hub consumers write one system's stream). */
  retries?: number;
  /** Experts of one batch written concurrently (lets a group-committing store batch the appends). */
  concurrency?: number;
  /** Told of a join that completed with fewer experts than its request announced (ids and counts only). */
  logger?: Readonly<{ warn(obj: object, msg: string): void }>;
}>;

export class UplinkHandler {
  private readonly retries: number;
  private readonly concurrency: number;

  constructor(private readonly deps: UplinkDependencies) {
    this.retries = deps.retries ?? 10;
    this.concurrency = deps.concurrency ?? 32;
  }

  async handleUplink(envelope: UplinkEnvelope): Promise<UplinkResult> {
    switch (envelope.type) {
      case 'system.join.requested':
        return this.joinRequested(envelope);
      case 'experts.batch':
        return this.batch(envelope);
      case 'expert.registered':
        return this.expert(envelope, (base) => ({ ...base, type: 'RegisterExpert', profile: envelope.payload.profile }));
      case 'expert.changed':
        return this.expert(envelope, (base) => ({ ...base, type: 'ChangeExpertProfile', profile: envelope.payload.profile }));
      case 'expert.retired':
        return this.expert(envelope, (base) => ({ ...base, type: 'RetireExpert' }));
      default: {
        const unknown: never = envelope;
        throw new ValidationError('unknown_message_type', `unknown uplink type ${String((unknown as { type?: unknown }).type)}`);
      }
    }
  }

  private now(): string {
    return this.deps.clock.now().toUTC().toISO({ suppressMilliseconds: false })!;
  }

  private metadata(envelope: UplinkEnvelope): EventMetadata {
    return { correlationId: envelope.correlationId, systemId: envelope.systemId, messageType: envelope.type, messageTime: envelope.time };
  }

  private async systemState(systemId: string): Promise<ConnectedSystemState> {
    const { state } = await this.deps.store.aggregateStream<ConnectedSystemState>(systemStreamName(systemId), {
      evolve: (s, e) => connectedSystemDecider.evolve(s, { type: e.type, data: e.data } as never),
      initialState: connectedSystemDecider.initialState,
    });
    if (state.status === 'none') throw new NotFoundError('unknown_system', 'the sending system is not registered with the hub');
    return state;
  }

  private system(envelope: UplinkEnvelope, command: ConnectedSystemCommand) {
    return handleCommand(this.deps.store, systemStreamName(envelope.systemId), connectedSystemDecider, command, {
      commandId: envelope.id,
      metadata: this.metadata(envelope),
      retries: this.retries,
    });
  }

  private registerOne(envelope: UplinkEnvelope, command: ExpertCommand, readState?: ReadState<ExpertState>) {
    return handleCommand(this.deps.store, expertStreamName(command.homeSystemId, command.localExpertId), expertDecider, command, {
      commandId: envelope.id,
      metadata: this.metadata(envelope),
      retries: this.retries,
      readState,
    });
  }

  private readExpert(command: ExpertCommand): Promise<ReadState<ExpertState>> {
    return this.deps.store.aggregateStream<ExpertState>(expertStreamName(command.homeSystemId, command.localExpertId), {
      evolve: (s, e) => expertDecider.evolve(s, { type: e.type, data: e.data } as never),
      initialState: expertDecider.initialState,
    });
  }

  private async joinRequested(envelope: UplinkOf<'system.join.requested'>): Promise<UplinkResult> {
    const state = await this.systemState(envelope.systemId);
    if (envelope.payload.name !== undefined && state.status !== 'none' && systemText(envelope.payload.name) !== systemText(state.name)) {
      throw new ValidationError('system_name_mismatch', 'the name in the join request differs from the registered name of this system id');
    }
    const { newEvents } = await this.system(envelope, {
      type: 'StartJoin',
      systemId: envelope.systemId,
      expectedBatches: envelope.payload.expectedBatches,
      expectedExperts: envelope.payload.expectedExperts,
      requestId: envelope.id,
      correlationId: envelope.correlationId,
      now: this.now(),
    });
    this.reportShortJoin(envelope, newEvents, envelope.payload.expectedExperts);
    return { outcome: newEvents.length > 0 ? 'applied' : 'duplicate' };
  }

  /**
   * The join is not refused when its batches carry fewer experts than announced (the system knows best what it has),
   * but it is logged, and GET /systems/{id} shows it (join.expertsMissing).
   */
  private reportShortJoin(envelope: UplinkEnvelope, newEvents: readonly { type: string; data: unknown }[], expectedExperts: number): void {
    const joined = newEvents.find((e) => e.type === 'SystemJoined');
    const imported = (joined?.data as { experts?: unknown } | undefined)?.experts;
    if (typeof imported !== 'number' || imported >= expectedExperts) return;
    this.deps.logger?.warn(
      { systemId: envelope.systemId, correlationId: envelope.correlationId, expectedExperts, expertsImported: imported },
      'join complete with fewer experts than its request announced',
    );
  }

  private async batch(envelope: UplinkOf<'experts.batch'>): Promise<UplinkResult> {
    const { batchIndex, batchCount, experts } = envelope.payload;
    if (new Set(experts.map((e) => e.localExpertId)).size !== experts.length) {
      throw new ValidationError('duplicate_expert_in_batch', 'a localExpertId appears twice in the batch');
    }
    const now = this.now();
    const { correlationId } = envelope;
    const messageId = envelope.id;
    const localExpertIds = experts.map((e) => e.localExpertId);
    const command: ConnectedSystemCommand = { type: 'ImportExpertBatch', systemId: envelope.systemId, batchIndex, batchCount, count: experts.length, localExpertIds, correlationId, messageId, now };
    const state = await this.systemState(envelope.systemId);
    if (batchNotNeeded(state, { batchIndex, correlationId, messageId })) return { outcome: 'duplicate' };
    // Check the batch against the join before writing any expert: throws what the final decision would throw.
    connectedSystemDecider.decide(command, state);

    const registrations = experts.map(({ localExpertId, ...profile }): { command: ExpertCommand; read?: ReadState<ExpertState> } => ({
      command: { type: 'RegisterExpert', homeSystemId: envelope.systemId, localExpertId, bySystemId: envelope.systemId, messageId: envelope.id, profile: profile as ExpertProfile, now },
    }));
    // Every expert decided before any is written: a batch refused for one of them (expert_retired) is refused whole.
    // Written as they came, the experts before the refused one stayed registered, and went out to the other systems,
    // from a batch that was dead-lettered. The states read here are the write's first read (no second pass).
    await forEachConcurrently(registrations, this.concurrency, async (r) => {
      r.read = await this.readExpert(r.command);
      expertDecider.decide(r.command, r.read.state);
    });

    let applied = false;
    await forEachConcurrently(registrations, this.concurrency, async ({ command, read }) => {
      const result = await this.registerOne(envelope, command, read);
      if (result.newEvents.some(changesExpert)) applied = true;
    });
    const { newEvents } = await this.system(envelope, command);
    if (state.status === 'joining' || state.status === 'joined') this.reportShortJoin(envelope, newEvents, state.join.expectedExperts);
    return { outcome: applied || newEvents.length > 0 ? 'applied' : 'duplicate' };
  }

  private async expert(
    envelope: UplinkOf<'expert.registered' | 'expert.changed' | 'expert.retired'>,
    make: (base: { homeSystemId: string; localExpertId: string; bySystemId: string; messageId: string; now: string }) => ExpertCommand,
  ): Promise<UplinkResult> {
    const state = await this.systemState(envelope.systemId);
    if (state.status !== 'joining' && state.status !== 'joined') {
      throw new ConflictError('system_not_joined', 'a system sends expert changes once it has started its join');
    }
    const command = make({
      homeSystemId: envelope.payload.homeSystemId ?? envelope.systemId,
      localExpertId: envelope.payload.localExpertId,
      bySystemId: envelope.systemId,
      messageId: envelope.id,
      now: this.now(),
    });
    const { newEvents } = await this.registerOne(envelope, command);
    return { outcome: newEvents.some(changesExpert) ? 'applied' : 'duplicate' };
  }
}

/** Run `fn` over `items` with at most `limit` in flight; the first failure is thrown after the rest settle. */
const forEachConcurrently = async <T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> => {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw (failure as { error: unknown }).error;
};
