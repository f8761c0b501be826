import { assertNever, type Decider, type DomainEvent } from '../shared/decider';
import { ConflictError, NotFoundError, ValidationError } from '../shared/errors';

/**
 * ConnectedSystem: a small-scale telemedicine system's membership of the hub and its join, one stream per
 * system (`system-<systemId>`).
 *
 * API
 * - `connectedSystemDecider` over `ConnectedSystemCommand` / `ConnectedSystemEvent` / `ConnectedSystemState`.
 * - `SYSTEM_ID_PATTERN`, `systemStreamName(id)`, `isConnectedSystemEvent(e)`.
 *
 * Life: registered (by an operator) -> joining (the system announced a batch upload) -> joined.
 * - RegisterSystem: the same details again -> no events; other details -> ConflictError 'system_already_registered'.
 * - StartJoin: unknown -> NotFoundError 'unknown_system'; registered -> SystemJoinStarted (and SystemJoined at
 *   once when it announces no batches); joining/joined with the same numbers -> no events (a repeat); with other
 *   numbers -> ConflictError 'join_already_started' / 'system_already_joined'.
 * - ImportExpertBatch: batches arrive in any order and may repeat; an index already imported -> no events.
 *   The decision that imports the last missing index also records SystemJoined. Refused: an unknown system
 *   (NotFoundError 'unknown_system'), a system that is not joining (ConflictError 'system_not_joining' or
 *   'system_already_joined'), a batchCount other than announced ('batch_count_mismatch'), an index out of range
 *   ('batch_index_out_of_range'), more experts than announced ('too_many_experts') (ValidationError each).
 */
export const SYSTEM_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,31}$/;
/** Most batches one join may announce (with 500 experts a batch: 5 million experts). */
export const MAX_JOIN_BATCHES = 10_000;

export type SystemStatus = 'registered' | 'joining' | 'joined';

export type SystemRegistered = DomainEvent<'SystemRegistered', { systemId: string; name: string; area: string; downlinkQueue: string; registeredAt: string }>;
export type SystemJoinStarted = DomainEvent<'SystemJoinStarted', { systemId: string; expectedBatches: number; expectedExperts: number; startedAt: string }>;
export type ExpertBatchImported = DomainEvent<'ExpertBatchImported', { systemId: string; batchIndex: number; count: number; importedAt: string }>;
export type SystemJoined = DomainEvent<
  'SystemJoined',
  { systemId: string; name: string; area: string; downlinkQueue: string; batches: number; experts: number; joinedAt: string }
>;
export type ConnectedSystemEvent = SystemRegistered | SystemJoinStarted | ExpertBatchImported | SystemJoined;

export type RegisterSystem = Readonly<{ type: 'RegisterSystem'; systemId: string; name: string; area: string; downlinkQueue: string; now: string }>;
export type StartJoin = Readonly<{ type: 'StartJoin'; systemId: string; expectedBatches: number; expectedExperts: number; now: string }>;
export type ImportExpertBatch = Readonly<{ type: 'ImportExpertBatch'; systemId: string; batchIndex: number; batchCount: number; count: number; now: string }>;
export type ConnectedSystemCommand = RegisterSystem | StartJoin | ImportExpertBatch;

type Membership = Readonly<{ systemId: string; name: string; area: string; downlinkQueue: string }>;
type Join = Readonly<{ expectedBatches: number; expectedExperts: number; imported: ReadonlyMap<number, number> }>;

export type ConnectedSystemState =
  | Readonly<{ status: 'none' }>
  | (Membership & Readonly<{ status: 'registered' }>)
  | (Membership & Readonly<{ status: 'joining' | 'joined'; join: Join }>);

export const systemStreamName = (systemId: string): string => `system-${systemId}`;

const sum = (m: ReadonlyMap<number, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

const joined = (s: Membership, join: Join, extra: { batchIndex: number; count: number } | null, now: string): SystemJoined => ({
  type: 'SystemJoined',
  data: {
    systemId: s.systemId,
    name: s.name,
    area: s.area,
    downlinkQueue: s.downlinkQueue,
    batches: join.expectedBatches,
    experts: sum(join.imported) + (extra?.count ?? 0),
    joinedAt: now,
  },
});

const decide = (command: ConnectedSystemCommand, state: ConnectedSystemState): readonly ConnectedSystemEvent[] => {
  switch (command.type) {
    case 'RegisterSystem': {
      if (!SYSTEM_ID_PATTERN.test(command.systemId)) {
        throw new ValidationError('invalid_system_id', 'a system id is 2-32 characters of a-z 0-9 -, starting with a letter or digit', [{ path: 'id', message: 'invalid' }]);
      }
      const name = command.name.trim();
      const area = command.area.trim();
      if (name.length === 0 || area.length === 0) throw new ValidationError('invalid_system', 'name and area must not be blank');
      if (state.status === 'none') {
        return [{ type: 'SystemRegistered', data: { systemId: command.systemId, name, area, downlinkQueue: command.downlinkQueue, registeredAt: command.now } }];
      }
      if (state.name === name && state.area === area && state.downlinkQueue === command.downlinkQueue) return [];
      throw new ConflictError('system_already_registered', 'a system with this id is already registered with other details');
    }
    case 'StartJoin': {
      if (state.status === 'none') throw new NotFoundError('unknown_system', 'no system is registered with this id');
      const { expectedBatches: batches, expectedExperts: experts } = command;
      if (!Number.isInteger(batches) || batches < 0 || batches > MAX_JOIN_BATCHES || !Number.isInteger(experts) || experts < 0 || (batches === 0) !== (experts === 0)) {
        throw new ValidationError('invalid_join', 'expectedBatches and expectedExperts must be whole numbers, both zero or both positive');
      }
      if (state.status === 'registered') {
        const started: SystemJoinStarted = { type: 'SystemJoinStarted', data: { systemId: state.systemId, expectedBatches: batches, expectedExperts: experts, startedAt: command.now } };
        // A system without experts has nothing to upload: it has joined as soon as it says so.
        return batches === 0 ? [started, joined(state, { expectedBatches: 0, expectedExperts: 0, imported: new Map() }, null, command.now)] : [started];
      }
      if (state.join.expectedBatches === batches && state.join.expectedExperts === experts) return [];
      throw state.status === 'joining'
        ? new ConflictError('join_already_started', 'a join with other numbers is in progress; finish it first')
        : new ConflictError('system_already_joined', 'the system has joined already');
    }
    case 'ImportExpertBatch': {
      if (state.status === 'none') throw new NotFoundError('unknown_system', 'no system is registered with this id');
      if (state.status === 'registered') throw new ConflictError('system_not_joining', 'the system has not started a join (send system.join.requested first)');
      const { join } = state;
      if (command.batchCount !== join.expectedBatches) {
        throw new ValidationError('batch_count_mismatch', `the join announced ${join.expectedBatches} batches, the batch says ${command.batchCount}`);
      }
      if (!Number.isInteger(command.batchIndex) || command.batchIndex < 0 || command.batchIndex >= join.expectedBatches) {
        throw new ValidationError('batch_index_out_of_range', `batch index must be in 0..${join.expectedBatches - 1}`);
      }
      if (join.imported.has(command.batchIndex)) return []; // a repeated batch
      if (state.status === 'joined') throw new ConflictError('system_already_joined', 'the system has joined already'); // unreachable: joined means all imported
      if (sum(join.imported) + command.count > join.expectedExperts) {
        throw new ValidationError('too_many_experts', `the join announced ${join.expectedExperts} experts; the batches carry more`);
      }
      const imported: ExpertBatchImported = {
        type: 'ExpertBatchImported',
        data: { systemId: state.systemId, batchIndex: command.batchIndex, count: command.count, importedAt: command.now },
      };
      const complete = join.imported.size + 1 === join.expectedBatches;
      return complete ? [imported, joined(state, join, command, command.now)] : [imported];
    }
    default:
      return assertNever(command);
  }
};

const evolve = (state: ConnectedSystemState, event: ConnectedSystemEvent): ConnectedSystemState => {
  switch (event.type) {
    case 'SystemRegistered': {
      const { systemId, name, area, downlinkQueue } = event.data;
      return { status: 'registered', systemId, name, area, downlinkQueue };
    }
    case 'SystemJoinStarted':
      if (state.status === 'none') return state;
      return { ...state, status: 'joining', join: { expectedBatches: event.data.expectedBatches, expectedExperts: event.data.expectedExperts, imported: new Map() } };
    case 'ExpertBatchImported':
      if (state.status !== 'joining' && state.status !== 'joined') return state;
      return { ...state, join: { ...state.join, imported: new Map(state.join.imported).set(event.data.batchIndex, event.data.count) } };
    case 'SystemJoined':
      return state.status === 'joining' ? { ...state, status: 'joined' } : state;
    default:
      return assertNever(event);
  }
};

export const connectedSystemDecider: Decider<ConnectedSystemCommand, ConnectedSystemEvent, ConnectedSystemState> = {
  decide,
  evolve,
  initialState: () => ({ status: 'none' }),
};

export const CONNECTED_SYSTEM_EVENT_TYPES: readonly ConnectedSystemEvent['type'][] = ['SystemRegistered', 'SystemJoinStarted', 'ExpertBatchImported', 'SystemJoined'];
export const isConnectedSystemEvent = (e: { type: string }): e is ConnectedSystemEvent => (CONNECTED_SYSTEM_EVENT_TYPES as readonly string[]).includes(e.type);

/** Whether a batch index was imported already (the uplink handler skips re-importing its experts). */
export const batchImported = (state: ConnectedSystemState, batchIndex: number): boolean =>
  (state.status === 'joining' || state.status === 'joined') && state.join.imported.has(batchIndex);
