import { assertNever, type Decider, type DomainEvent } from '../shared/decider';
import { ConflictError, NotFoundError, ValidationError } from '../shared/errors';
import { holdsCprNumber } from '../monitoring/cpr-like';
import { INVISIBLE_TEXT_MESSAGE, holdsOneLineControl, showsNothing } from '../shared/text-limits';

/**
 * ConnectedSystem: a small-scale telemedicine system's membership of the hub and its join, one stream per
 * system (`system-<systemId>`).
 *
 * API
 * - `connectedSystemDecider` over `ConnectedSystemCommand` / `ConnectedSystemEvent` / `ConnectedSystemState`.
 * - `SYSTEM_ID_PATTERN`, `systemStreamName(id)`, `isConnectedSystemEvent(e)`, `batchNotNeeded(state, batch)`.
 *
 * Life: registered (by an operator) -> joining (the system announced a batch upload) -> joined.
 * - RegisterSystem: the same details again -> no events; other details -> ConflictError 'system_already_registered'.
 * - StartJoin (one 'system.join.requested'; `requestId` its envelope id, `correlationId` the join's): unknown ->
 *   NotFoundError 'unknown_system'; registered -> SystemJoinStarted (and SystemJoined at once when it announces no
 *   batches). A request already recorded (same requestId) -> no events, whatever it says.
 *   - joining, another request: the join ATTEMPT restarts (a system that crashed mid-join starts again from
 *     scratch, perhaps with its experts cut into other batches): SystemJoinStarted again, with the new numbers; the
 *     earlier attempt's batches no longer count. Those of them that carried the new request's correlation id are
 *     recorded again for the new attempt (ExpertBatchImported): a request sent again under a new id, or a batch
 *     the hub handled before its own request, loses nothing. Experts already registered stay registered.
 *   - joined, another request with the finished join's correlation id: the same numbers -> no events; other numbers
 *     -> ConflictError 'system_already_joined'. With a correlation id of its own (or after an old join that had
 *     none): a new join ATTEMPT, as above (a system that lost its directory joins again and gets a full sync).
 *     While it runs the system stays in the directory and keeps getting downlink: the directory projection keeps
 *     the position of its first join.
 * - ImportExpertBatch: a batch belongs to the attempt whose request has its correlation id; one whose correlation
 *   id names no attempt (a client that gives each message its own) belongs to the current attempt. A batch of an
 *   earlier attempt, and a batch message (`messageId`) counted before in any attempt -> no events (late: harmless). In the current attempt batches arrive in any order and may
 *   repeat; an index already imported -> no events. The decision that imports the last missing index also records
 *   SystemJoined. Refused: an unknown system (NotFoundError 'unknown_system'), a system that is not joining
 *   (ConflictError 'system_not_joining'), a batchCount other than announced ('batch_count_mismatch'), an index out
 *   of range ('batch_index_out_of_range'), more experts than announced ('too_many_experts') (ValidationError each).
 *   Experts are counted by their local id (when the command names them): one in two batches of an attempt counts
 *   once, toward `expectedExperts` and in SystemJoined's `experts`.
 *   A joined system's batch that carries another correlation id than its finished join's (and is not late) is
 *   refused 'system_not_joining' too: it can only be an early batch of a join whose request comes next.
 *
 * Old streams: SystemJoinStarted and ExpertBatchImported without `requestId` / `correlationId` / `messageId` (recorded before
 * join attempts were told apart) replay as before; such an attempt has no correlation id, so every batch is its own.
 * A second SystemJoinStarted never occurred in them (the old decider refused it), and what it means now (a new
 * attempt, nothing imported yet) is what evolve and the directory projection always did with one.
 */
export const SYSTEM_ID_PATTERN = /^[a-z0-9][a-z0-9-]{1,31}$/;
/** The party id of the hub itself (its keys, its broker account): no connected system may take it. */
export const HUB_SYSTEM_ID = 'hub';
/** Most batches one join may announce (with 500 experts a batch: 5 million experts). */
export const MAX_JOIN_BATCHES = 10_000;

export type SystemStatus = 'registered' | 'joining' | 'joined';

/**
 * A system's name or area as stored and compared: one spelling (NFC), trimmed. A system that sends its name
 * decomposed (NFD, as macOS and some legacy systems write å or é) is the same system: not a conflict with its own
 * registration (409), nor a join request with another name (system_name_mismatch).
 */
export const systemText = (s: string): string => s.normalize('NFC').trim();

export type SystemRegistered = DomainEvent<'SystemRegistered', { systemId: string; name: string; area: string; downlinkQueue: string; registeredAt: string }>;
/** A join attempt started; a second one while joining restarts the join. `requestId`, `correlationId`: since attempts are told apart. */
export type SystemJoinStarted = DomainEvent<
  'SystemJoinStarted',
  { systemId: string; expectedBatches: number; expectedExperts: number; startedAt: string; requestId?: string; correlationId?: string }
>;
/**
 * A batch counted for the current attempt. `correlationId`, `messageId` (the batch's): since attempts are told apart.
 * `localExpertIds` (the batch's experts; since 2026-12-07): `count` is then the experts of this batch that no earlier
 * batch of the attempt carried, so an expert sent in two batches counts once toward `expectedExperts` (and the
 * projection's sum of `count`s is the attempt's distinct experts). Without it (older events), `count` is the
 * batch's size, as it always was.
 */
export type ExpertBatchImported = DomainEvent<
  'ExpertBatchImported',
  { systemId: string; batchIndex: number; count: number; importedAt: string; correlationId?: string; messageId?: string; localExpertIds?: readonly string[] }
>;
export type SystemJoined = DomainEvent<
  'SystemJoined',
  { systemId: string; name: string; area: string; downlinkQueue: string; batches: number; experts: number; joinedAt: string }
>;
export type ConnectedSystemEvent = SystemRegistered | SystemJoinStarted | ExpertBatchImported | SystemJoined;

export type RegisterSystem = Readonly<{ type: 'RegisterSystem'; systemId: string; name: string; area: string; downlinkQueue: string; now: string }>;
export type StartJoin = Readonly<{
  type: 'StartJoin';
  systemId: string;
  expectedBatches: number;
  expectedExperts: number;
  /** The request's own id (the envelope id): the same again is a repeat, another one a new attempt. */
  requestId: string;
  /** The join's correlation id, shared by its batches. */
  correlationId: string;
  now: string;
}>;
export type ImportExpertBatch = Readonly<{
  type: 'ImportExpertBatch';
  systemId: string;
  batchIndex: number;
  batchCount: number;
  /** The batch's experts. */
  count: number;
  /** Their local ids: each expert counts once per attempt, however many of its batches carry it. */
  localExpertIds?: readonly string[];
  /** Names the attempt the batch belongs to (see the file comment). */
  correlationId: string;
  /** The batch's envelope id: a batch message counts once, in whichever attempt it came. */
  messageId: string;
  now: string;
}>;
export type ConnectedSystemCommand = RegisterSystem | StartJoin | ImportExpertBatch;

type Membership = Readonly<{ systemId: string; name: string; area: string; downlinkQueue: string }>;
type ImportedBatch = Readonly<{ count: number; correlationId: string | undefined; messageId: string | undefined; localExpertIds: readonly string[] | undefined }>;
/** The current join attempt; `correlationId` undefined for one recorded before attempts were told apart. */
type Join = Readonly<{ expectedBatches: number; expectedExperts: number; correlationId: string | undefined; imported: ReadonlyMap<number, ImportedBatch> }>;
/** Every attempt so far: their request ids (repeats), correlation ids (late batches of earlier ones), batch message ids. */
type Attempts = Readonly<{ requestIds: ReadonlySet<string>; correlationIds: ReadonlySet<string>; batchIds: ReadonlySet<string> }>;

export type ConnectedSystemState =
  | Readonly<{ status: 'none' }>
  | (Membership & Readonly<{ status: 'registered' }>)
  | (Membership & Readonly<{ status: 'joining' | 'joined'; join: Join; attempts: Attempts }>);

export const systemStreamName = (systemId: string): string => `system-${systemId}`;

const sum = (m: ReadonlyMap<number, ImportedBatch>): number => [...m.values()].reduce((a, b) => a + b.count, 0);

/** The experts of `ids` that none of `batches` carried (each once): what a batch adds to its attempt's count. */
const newExperts = (batches: Iterable<ImportedBatch>, ids: readonly string[]): number => {
  const seen = new Set<string>();
  for (const b of batches) for (const id of b.localExpertIds ?? []) seen.add(id);
  let added = 0;
  for (const id of ids) {
    if (seen.has(id)) continue;
    seen.add(id);
    added++;
  }
  return added;
};

const joined = (s: Membership, batches: number, experts: number, now: string): SystemJoined => ({
  type: 'SystemJoined',
  data: { systemId: s.systemId, name: s.name, area: s.area, downlinkQueue: s.downlinkQueue, batches, experts, joinedAt: now },
});

/**
 * A batch that does not count now: a batch message counted already (in this attempt or an earlier one), or one of
 * an earlier attempt (its correlation id is an attempt's, not the current one's).
 */
const notForThisAttempt = (state: Readonly<{ join: Join; attempts: Attempts }>, batch: Readonly<{ correlationId: string; messageId: string }>): boolean =>
  state.attempts.batchIds.has(batch.messageId) || (state.attempts.correlationIds.has(batch.correlationId) && state.join.correlationId !== batch.correlationId);

/**
 * A batch of no join: the system has joined, and the batch (not one counted before, nor one of an earlier attempt)
 * does not carry the finished join's correlation id. Most likely the first batch of a new join whose request the
 * hub has not applied yet (the request and its batches are handled at once): refused as 'system_not_joining',
 * which the hub retries, so it counts once the request is in.
 */
const withoutJoin = (state: ConnectedSystemState, batch: Readonly<{ correlationId: string }>): boolean =>
  state.status === 'joined' && (state.join.correlationId === undefined || state.join.correlationId !== batch.correlationId);

/**
 * A new attempt replacing an unfinished one: SystemJoinStarted, the current attempt's batches that carry the new
 * request's correlation id recorded again (only where they fit the new numbers), and SystemJoined when they are all.
 */
const restart = (state: Membership & Readonly<{ join: Join }>, command: StartJoin, started: SystemJoinStarted): ConnectedSystemEvent[] => {
  const { expectedBatches, expectedExperts, correlationId, now } = command;
  // Counted again among themselves (in index order): an expert of a batch left behind no longer counts.
  const before: ImportedBatch[] = [];
  const carried = [...state.join.imported]
    .filter(([, b]) => b.correlationId === correlationId)
    .sort(([x], [y]) => x - y)
    .map(([batchIndex, b]): [number, ImportedBatch] => {
      const count = b.localExpertIds === undefined ? b.count : newExperts(before, b.localExpertIds);
      before.push(b);
      return [batchIndex, { ...b, count }];
    });
  const fits = expectedBatches === state.join.expectedBatches && carried.reduce((n, [, b]) => n + b.count, 0) <= expectedExperts;
  const again: ExpertBatchImported[] = fits
    ? carried.map(([batchIndex, b]): ExpertBatchImported => ({
        type: 'ExpertBatchImported',
        data: {
          systemId: state.systemId,
          batchIndex,
          count: b.count,
          importedAt: now,
          correlationId,
          ...(b.messageId === undefined ? {} : { messageId: b.messageId }),
          ...(b.localExpertIds === undefined ? {} : { localExpertIds: b.localExpertIds }),
        },
      }))
    : [];
  const experts = again.reduce((n, e) => n + e.data.count, 0);
  return again.length === expectedBatches ? [started, ...again, joined(state, expectedBatches, experts, now)] : [started, ...again];
};

const decide = (command: ConnectedSystemCommand, state: ConnectedSystemState): readonly ConnectedSystemEvent[] => {
  switch (command.type) {
    case 'RegisterSystem': {
      if (!SYSTEM_ID_PATTERN.test(command.systemId)) {
        throw new ValidationError('invalid_system_id', 'a system id is 2-32 characters of a-z 0-9 -, starting with a letter or digit', [{ path: 'id', message: 'invalid' }]);
      }
      // The hub's own party in the message security's keys (and its broker account): a system registered as 'hub'
      // could list the hub's signing key as its own, then retire it and add keys the key book files under the hub.
      if (command.systemId === HUB_SYSTEM_ID) {
        throw new ValidationError('invalid_system_id', `'${HUB_SYSTEM_ID}' names the hub itself: a connected system cannot have it`, [{ path: 'id', message: 'reserved for the hub' }]);
      }
      // The id goes into stream names, queue names, logs and the audit trail, which erasure cannot reach.
      if (holdsCprNumber(command.systemId)) {
        throw new ValidationError('invalid_system_id', 'a system id must not look like a CPR number', [{ path: 'id', message: 'looks like a CPR number' }]);
      }
      const name = systemText(command.name);
      const area = systemText(command.area);
      if (name.length === 0 || area.length === 0) throw new ValidationError('invalid_system', 'name and area must not be blank');
      // Both are shown in every system's directory: one of only zero-width or other invisible characters is refused.
      const invisible = [...(showsNothing(name) ? ['name'] : []), ...(showsNothing(area) ? ['area'] : [])];
      if (invisible.length > 0) {
        throw new ValidationError('invalid_system', `name and area ${INVISIBLE_TEXT_MESSAGE}`, invisible.map((path) => ({ path, message: INVISIBLE_TEXT_MESSAGE })));
      }
      const controls = [...(holdsOneLineControl(name) ? ['name'] : []), ...(holdsOneLineControl(area) ? ['area'] : [])];
      if (controls.length > 0) {
        throw new ValidationError('invalid_system', 'name and area are one line of text: no control characters', controls.map((path) => ({ path, message: 'holds a control character' })));
      }
      if (state.status === 'none') {
        return [{ type: 'SystemRegistered', data: { systemId: command.systemId, name, area, downlinkQueue: command.downlinkQueue, registeredAt: command.now } }];
      }
      // (Registrations recorded before the hub normalised kept the spelling sent: compared normalised too.)
      if (systemText(state.name) === name && systemText(state.area) === area && state.downlinkQueue === command.downlinkQueue) return [];
      throw new ConflictError('system_already_registered', 'a system with this id is already registered with other details');
    }
    case 'StartJoin': {
      if (state.status === 'none') throw new NotFoundError('unknown_system', 'no system is registered with this id');
      const { expectedBatches: batches, expectedExperts: experts } = command;
      if (!Number.isInteger(batches) || batches < 0 || batches > MAX_JOIN_BATCHES || !Number.isInteger(experts) || experts < 0 || (batches === 0) !== (experts === 0)) {
        throw new ValidationError('invalid_join', 'expectedBatches and expectedExperts must be whole numbers, both zero or both positive');
      }
      const started: SystemJoinStarted = {
        type: 'SystemJoinStarted',
        data: { systemId: state.systemId, expectedBatches: batches, expectedExperts: experts, startedAt: command.now, requestId: command.requestId, correlationId: command.correlationId },
      };
      // A system without experts has nothing to upload: it has joined as soon as it says so.
      if (state.status === 'registered') return batches === 0 ? [started, joined(state, 0, 0, command.now)] : [started];
      if (state.attempts.requestIds.has(command.requestId)) return []; // this request again
      if (state.status === 'joining') return restart(state, command, started);
      // Joined: the finished join's request sent again under another id changes nothing (other numbers cannot be
      // that join); a request with a correlation id of its own is a new join, a full sync of a system that lost
      // its directory or wants to send all of its experts again.
      if (state.join.correlationId === undefined || state.join.correlationId !== command.correlationId) return restart(state, command, started);
      if (state.join.expectedBatches === batches && state.join.expectedExperts === experts) return [];
      throw new ConflictError('system_already_joined', 'this join has finished; a new join needs a correlationId of its own');
    }
    case 'ImportExpertBatch': {
      if (state.status === 'none') throw new NotFoundError('unknown_system', 'no system is registered with this id');
      if (state.status === 'registered') throw new ConflictError('system_not_joining', 'the system has not started a join (send system.join.requested first)');
      const { join } = state;
      if (notForThisAttempt(state, command)) return []; // counted already, or late: the join has started again since
      if (withoutJoin(state, command)) {
        throw new ConflictError('system_not_joining', 'the system has joined: a batch belongs to a join, send system.join.requested first (with the batch\'s correlationId)');
      }
      if (command.batchCount !== join.expectedBatches) {
        throw new ValidationError('batch_count_mismatch', `the join announced ${join.expectedBatches} batches, the batch says ${command.batchCount}`);
      }
      if (!Number.isInteger(command.batchIndex) || command.batchIndex < 0 || command.batchIndex >= join.expectedBatches) {
        throw new ValidationError('batch_index_out_of_range', `batch index must be in 0..${join.expectedBatches - 1}`);
      }
      if (join.imported.has(command.batchIndex)) return []; // a repeated batch
      if (state.status === 'joined') throw new ConflictError('system_already_joined', 'the system has joined already'); // unreachable: joined means all imported
      const { localExpertIds } = command;
      const count = localExpertIds === undefined ? command.count : newExperts(join.imported.values(), localExpertIds);
      if (sum(join.imported) + count > join.expectedExperts) {
        throw new ValidationError('too_many_experts', `the join announced ${join.expectedExperts} experts; the batches carry more`);
      }
      const imported: ExpertBatchImported = {
        type: 'ExpertBatchImported',
        data: {
          systemId: state.systemId,
          batchIndex: command.batchIndex,
          count,
          importedAt: command.now,
          correlationId: command.correlationId,
          messageId: command.messageId,
          ...(localExpertIds === undefined ? {} : { localExpertIds }),
        },
      };
      const complete = join.imported.size + 1 === join.expectedBatches;
      return complete ? [imported, joined(state, join.expectedBatches, sum(join.imported) + count, command.now)] : [imported];
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
    case 'SystemJoinStarted': {
      if (state.status === 'none') return state;
      const { expectedBatches, expectedExperts, requestId, correlationId } = event.data;
      const before: Attempts = state.status === 'registered' ? { requestIds: new Set(), correlationIds: new Set(), batchIds: new Set() } : state.attempts;
      const attempts: Attempts = {
        ...before,
        requestIds: requestId === undefined ? before.requestIds : new Set(before.requestIds).add(requestId),
        correlationIds: correlationId === undefined ? before.correlationIds : new Set(before.correlationIds).add(correlationId),
      };
      // A new attempt: nothing of it imported yet (its batches carried over from the last one follow as events).
      return { ...state, status: 'joining', join: { expectedBatches, expectedExperts, correlationId, imported: new Map() }, attempts };
    }
    case 'ExpertBatchImported': {
      if (state.status !== 'joining' && state.status !== 'joined') return state;
      const { count, correlationId, messageId, localExpertIds } = event.data;
      const batchIds = messageId === undefined ? state.attempts.batchIds : new Set(state.attempts.batchIds).add(messageId);
      const batch: ImportedBatch = { count, correlationId, messageId, localExpertIds };
      return { ...state, join: { ...state.join, imported: new Map(state.join.imported).set(event.data.batchIndex, batch) }, attempts: { ...state.attempts, batchIds } };
    }
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

/**
 * Whether a batch changes nothing: it belongs to an earlier join attempt, or its index was imported in the current
 * one already. The uplink handler then skips its experts too (a late batch may carry profiles the system has
 * replaced since).
 */
export const batchNotNeeded = (state: ConnectedSystemState, batch: Readonly<{ batchIndex: number; correlationId: string; messageId: string }>): boolean =>
  (state.status === 'joining' || state.status === 'joined') && (notForThisAttempt(state, batch) || (state.join.imported.has(batch.batchIndex) && !withoutJoin(state, batch)));
