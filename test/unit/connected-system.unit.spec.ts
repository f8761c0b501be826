import { DeciderSpec } from '../support/decider-spec';
import { batchNotNeeded, connectedSystemDecider, MAX_JOIN_BATCHES, systemStreamName, type ConnectedSystemCommand, type ConnectedSystemEvent } from '../../src/domain/directory/connected-system';
import { foldEvents } from '../../src/domain/shared/decider';
import { ConflictError, NotFoundError, ValidationError } from '../../src/domain/shared/errors';

const now = '2024-05-01T10:00:00.000Z';
const later = '2024-05-01T11:00:00.000Z';
const registerCmd: ConnectedSystemCommand = { type: 'RegisterSystem', systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', now };
const registered: ConnectedSystemEvent = { type: 'SystemRegistered', data: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', registeredAt: now } };

/** A join attempt: its request's envelope id and its correlation id (the SDK's: the request id). */
type Attempt = Readonly<{ requestId: string; correlationId: string }>;
const first: Attempt = { requestId: 'req-1', correlationId: 'join-1' };
const second: Attempt = { requestId: 'req-2', correlationId: 'join-2' };

const startJoin = (expectedBatches: number, expectedExperts: number, a: Attempt = first, at = now): ConnectedSystemCommand => ({
  type: 'StartJoin',
  systemId: 'chengdu',
  expectedBatches,
  expectedExperts,
  ...a,
  now: at,
});
const started = (expectedBatches: number, expectedExperts: number, a: Attempt = first, at = now): ConnectedSystemEvent => ({
  type: 'SystemJoinStarted',
  data: { systemId: 'chengdu', expectedBatches, expectedExperts, startedAt: at, ...a },
});
/** A batch message; its envelope id by default from its correlation id and index (a repeat has the same). */
const batch = (batchIndex: number, count: number, batchCount = 3, correlationId = first.correlationId, messageId = `${correlationId}/batch-${batchIndex}`): ConnectedSystemCommand => ({
  type: 'ImportExpertBatch',
  systemId: 'chengdu',
  batchIndex,
  batchCount,
  count,
  correlationId,
  messageId,
  now,
});
const imported = (batchIndex: number, count: number, correlationId = first.correlationId, at = now, messageId = `${correlationId}/batch-${batchIndex}`): ConnectedSystemEvent => ({
  type: 'ExpertBatchImported',
  data: { systemId: 'chengdu', batchIndex, count, importedAt: at, correlationId, messageId },
});
const joined = (batches: number, experts: number, at = now): ConnectedSystemEvent => ({
  type: 'SystemJoined',
  data: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', batches, experts, joinedAt: at },
});

/** Events as the hub recorded them before join attempts were told apart: no requestId, no correlationId. */
const legacyStarted = (expectedBatches: number, expectedExperts: number): ConnectedSystemEvent => ({
  type: 'SystemJoinStarted',
  data: { systemId: 'chengdu', expectedBatches, expectedExperts, startedAt: now },
});
const legacyImported = (batchIndex: number, count: number): ConnectedSystemEvent => ({ type: 'ExpertBatchImported', data: { systemId: 'chengdu', batchIndex, count, importedAt: now } });

const spec = DeciderSpec.for(connectedSystemDecider);

describe('ConnectedSystem decider', () => {
  it('registers a system; the same again is a no-op, other details a conflict', () => {
    spec.given([]).when(registerCmd).then([registered]);
    spec.given([registered]).when(registerCmd).thenNothing();
    spec.given([registered]).when({ ...registerCmd, name: 'Other' } as ConnectedSystemCommand).thenThrows(ConflictError, 'system_already_registered');
    spec.given([]).when({ ...registerCmd, systemId: 'Bad Id' } as ConnectedSystemCommand).thenThrows(ValidationError, 'invalid_system_id');
    // A CPR number has the shape of a system id; the id goes into stream and queue names, logs and the audit trail.
    // Also among other groups of digits joined to it by a separator (v2-251248-1234).
    for (const systemId of ['251248-1234', '2512481234', 'city-251248-1234', 'sys-2512481234x', 'v2-251248-1234', 'ward-4-2512481234']) {
      spec.given([]).when({ ...registerCmd, systemId } as ConnectedSystemCommand).thenThrows(ValidationError, 'invalid_system_id');
    }
    // Ten digits glued to other digits (a compact timestamp) are no CPR number for a refusal (holdsCprNumber).
    for (const systemId of ['site-202612021030', 'x12512481234', 'site-202612021030-17']) {
      spec.given([]).when({ ...registerCmd, systemId } as ConnectedSystemCommand).then([{ ...registered, data: { ...registered.data, systemId } }]);
    }
  });

  it('says which field a refused system id is, and why: malformed, or a CPR number', () => {
    const malformed = spec.given([]).when({ ...registerCmd, systemId: 'Bad Id' }).thenThrows(ValidationError, 'invalid_system_id');
    expect((malformed as ValidationError).details).toEqual([{ path: 'id', message: 'invalid' }]);
    const cpr = spec.given([]).when({ ...registerCmd, systemId: '251248-1234' }).thenThrows(ValidationError, 'invalid_system_id');
    expect((cpr as ValidationError).details).toEqual([{ path: 'id', message: 'looks like a CPR number' }]);
    // 'hub' is the hub's own party in the message security's keys: a system of that id could claim the hub's key.
    const hub = spec.given([]).when({ ...registerCmd, systemId: 'hub' }).thenThrows(ValidationError, 'invalid_system_id');
    expect((hub as ValidationError).details).toEqual([{ path: 'id', message: 'reserved for the hub' }]);
  });

  it("keeps each system's membership in a stream of its own, named by its id (system-<id>)", () => {
    expect(systemStreamName('chengdu')).toBe('system-chengdu');
    expect(systemStreamName('beijing')).not.toBe(systemStreamName('chengdu'));
  });

  it('a join, a batch or a join finished that comes before what it follows leaves the state as it was', () => {
    expect(foldEvents(connectedSystemDecider, [started(1, 1)])).toEqual({ status: 'none' });
    const registeredOnly = foldEvents(connectedSystemDecider, [registered]);
    expect(foldEvents(connectedSystemDecider, [registered, imported(0, 1)])).toEqual(registeredOnly);
    expect(foldEvents(connectedSystemDecider, [registered, joined(0, 0)])).toEqual(registeredOnly);
  });

  it('batchNotNeeded: a batch of a system that has not started a join is not skipped (the decider refuses it)', () => {
    const b = { batchIndex: 0, correlationId: first.correlationId, messageId: 'm-0' };
    expect(batchNotNeeded(foldEvents(connectedSystemDecider, []), b)).toBe(false);
    expect(batchNotNeeded(foldEvents(connectedSystemDecider, [registered]), b)).toBe(false);
    spec.given([registered]).when(batch(0, 1)).thenThrows(ConflictError, 'system_not_joining');
  });

  it('trims name and area; a blank name or area is refused', () => {
    spec.given([]).when({ ...registerCmd, name: '  Chengdu City ', area: ' Chengdu\t' }).then([registered]);
    spec.given([registered]).when({ ...registerCmd, name: ' Chengdu City', area: 'Chengdu ' }).thenNothing();
    for (const blank of [{ name: '' }, { name: '   ' }, { area: '' }, { area: ' \t ' }, { name: ' ', area: ' ' }]) {
      spec.given([]).when({ ...registerCmd, ...blank }).thenThrows(ValidationError, 'invalid_system');
      spec.given([registered]).when({ ...registerCmd, ...blank }).thenThrows(ValidationError, 'invalid_system');
    }
  });

  it('refuses control characters in name and area, naming the field (NUL failed the append on PostgreSQL)', () => {
    for (const [bad, path] of [[{ name: 'Chengdu\u0000' }, 'name'], [{ area: 'Line\r\nbreak' }, 'area'], [{ name: 'Chengdu\u0007City' }, 'name'], [{ name: 'Chengdu\u0085City' }, 'name'], [{ area: 'West\u2028East' }, 'area'], [{ name: 'Chengdu \u202eytiC' }, 'name'], [{ area: 'West \u2067East\u2069' }, 'area']] as const) {
      const error = spec.given([]).when({ ...registerCmd, ...bad }).thenThrows(ValidationError, 'invalid_system');
      expect((error as ValidationError).details).toEqual([{ path, message: 'holds a control character' }]);
    }
  });

  it('stores name and area in NFC: the same text decomposed (NFD) is the same registration, not a conflict', () => {
    const dk = { ...registerCmd, name: 'Århus Sønderå Klinik', area: 'Østjylland' };
    const dkRegistered: ConnectedSystemEvent = { type: 'SystemRegistered', data: { ...registered.data, name: dk.name, area: dk.area } } as ConnectedSystemEvent;
    const nfd = { ...dk, name: dk.name.normalize('NFD'), area: dk.area.normalize('NFD') };
    expect(nfd.name).not.toBe(dk.name);
    spec.given([]).when(nfd).then([dkRegistered]);
    spec.given([dkRegistered]).when(nfd).thenNothing();
    // One recorded in NFD before the hub normalised: the NFC spelling is a repeat of it too.
    spec.given([{ ...dkRegistered, data: { ...dkRegistered.data, name: nfd.name, area: nfd.area } } as ConnectedSystemEvent]).when(dk).thenNothing();
  });

  it('a re-registration with another area or another downlink queue is not a repeat: a conflict', () => {
    spec.given([registered]).when({ ...registerCmd, area: 'Chongqing' }).thenThrows(ConflictError, 'system_already_registered');
    spec.given([registered]).when({ ...registerCmd, downlinkQueue: 'rts.downlink.other' }).thenThrows(ConflictError, 'system_already_registered');
  });

  it('refuses join numbers out of bounds: negative or fractional counts, too many batches, one zero and the other not', () => {
    const bad: [number, number][] = [
      [-1, 5], [1.5, 5], [Number.NaN, 5], [MAX_JOIN_BATCHES + 1, MAX_JOIN_BATCHES + 1],
      [1, -1], [1, 2.5], [1, Number.NaN],
      [0, 5], [1, 0],
    ];
    for (const [batches, experts] of bad) {
      spec.given([registered]).when(startJoin(batches, experts)).thenThrows(ValidationError, 'invalid_join');
    }
    spec.given([registered]).when(startJoin(MAX_JOIN_BATCHES, MAX_JOIN_BATCHES)).then([started(MAX_JOIN_BATCHES, MAX_JOIN_BATCHES)]);
    spec.given([registered]).when(startJoin(1, 500)).then([started(1, 500)]);
  });

  it('starts a join, recording the request and correlation ids; bad numbers and unknown systems are refused', () => {
    spec.given([registered]).when(startJoin(3, 25)).then([started(3, 25)]);
    spec.given([]).when(startJoin(3, 25)).thenThrows(NotFoundError, 'unknown_system');
    spec.given([registered]).when(startJoin(0, 5)).thenThrows(ValidationError, 'invalid_join');
  });

  it('the same request again (same envelope id) is a no-op, whatever it says and whenever it comes', () => {
    spec.given([registered, started(3, 25)]).when(startJoin(3, 25)).thenNothing();
    spec.given([registered, started(3, 25), imported(0, 10)]).when(startJoin(3, 25)).thenNothing();
    spec.given([registered, started(3, 25)]).when(startJoin(4, 30)).thenNothing();
    spec.given([registered, started(3, 25), imported(0, 10), imported(1, 10), imported(2, 5), joined(3, 25)]).when(startJoin(3, 25)).thenNothing();
    // The first attempt's request after a restart: still a repeat, it does not restart the join again.
    spec.given([registered, started(2, 4), imported(0, 2), started(2, 4, second, later)]).when(startJoin(2, 4)).thenNothing();
  });

  it('a system without experts joins at once', () => spec.given([registered]).when(startJoin(0, 0)).then([started(0, 0), joined(0, 0)]));

  it('imports batches in any order, repeats are no-ops, and the last one joins in the same decision', () => {
    const s = [registered, started(3, 25)];
    spec.given(s).when(batch(2, 5)).then([imported(2, 5)]);
    spec.given([...s, imported(2, 5)]).when(batch(2, 5)).thenNothing();
    spec.given([...s, imported(2, 5), imported(0, 10)]).when(batch(1, 10)).then([imported(1, 10), joined(3, 25)]);
    spec.given([...s, imported(2, 5), imported(0, 10), imported(1, 10), joined(3, 25)]).when(batch(0, 10)).thenNothing();
  });

  it('refuses batches that do not fit the join', () => {
    const s = [registered, started(3, 25)];
    spec.given([registered]).when(batch(0, 10)).thenThrows(ConflictError, 'system_not_joining');
    spec.given([]).when(batch(0, 10)).thenThrows(NotFoundError, 'unknown_system');
    spec.given(s).when(batch(0, 10, 4)).thenThrows(ValidationError, 'batch_count_mismatch');
    spec.given(s).when(batch(3, 10)).thenThrows(ValidationError, 'batch_index_out_of_range');
    spec.given(s).when(batch(-1, 10)).thenThrows(ValidationError, 'batch_index_out_of_range');
    spec.given(s).when(batch(0.5, 10)).thenThrows(ValidationError, 'batch_index_out_of_range');
    spec.given([...s, imported(0, 20)]).when(batch(1, 10)).thenThrows(ValidationError, 'too_many_experts');
  });

  describe('counts each expert once per attempt, however many of its batches carry it (by localExpertId)', () => {
    /** A batch naming its experts, and its record: `count` is what it adds to the attempt. */
    const batchOf = (batchIndex: number, localExpertIds: readonly string[], batchCount = 2, correlationId = first.correlationId): ConnectedSystemCommand => ({
      ...(batch(batchIndex, localExpertIds.length, batchCount, correlationId) as Extract<ConnectedSystemCommand, { type: 'ImportExpertBatch' }>),
      localExpertIds,
    });
    const importedOf = (batchIndex: number, localExpertIds: readonly string[], count: number, correlationId = first.correlationId, at = now): ConnectedSystemEvent => {
      const e = imported(batchIndex, count, correlationId, at) as Extract<ConnectedSystemEvent, { type: 'ExpertBatchImported' }>;
      return { ...e, data: { ...e.data, localExpertIds } };
    };

    it('an expert in two batches counts once: the join is short, not complete', () => {
      const s = [registered, started(2, 4), importedOf(0, ['a', 'b', 'c'], 3)];
      spec.given([registered, started(2, 4)]).when(batchOf(0, ['a', 'b', 'c'])).then([importedOf(0, ['a', 'b', 'c'], 3)]);
      // 3 distinct experts of the 4 announced, not 3 + 1.
      spec.given(s).when(batchOf(1, ['c'])).then([importedOf(1, ['c'], 0), joined(2, 3)]);
      spec.given(s).when(batchOf(1, ['c', 'd'])).then([importedOf(1, ['c', 'd'], 1), joined(2, 4)]);
    });

    it('an expert in two batches does not count toward too_many_experts twice', () => {
      spec.given([registered, started(2, 3), importedOf(0, ['a', 'b'], 2)]).when(batchOf(1, ['b', 'c'])).then([importedOf(1, ['b', 'c'], 1), joined(2, 3)]);
      spec.given([registered, started(2, 3), importedOf(0, ['a', 'b'], 2)]).when(batchOf(1, ['c', 'd'])).thenThrows(ValidationError, 'too_many_experts');
    });

    it('batches carried over to a new attempt are counted again among themselves', () => {
      // Batch 0 (another correlation id) is left behind: b, counted there, counts in the carried batch 1 again.
      const s = [registered, started(2, 4), importedOf(0, ['a', 'b'], 2, 'other'), importedOf(1, ['b', 'c'], 1, second.correlationId)];
      spec.given(s).when(startJoin(2, 4, second, later)).then([started(2, 4, second, later), importedOf(1, ['b', 'c'], 2, second.correlationId, later)]);
    });

    it("an earlier attempt's experts do not count for the new one", () => {
      const s = [registered, started(2, 4), importedOf(0, ['a', 'b'], 2), started(2, 4, second, later)];
      spec.given(s).when(batchOf(0, ['a', 'b'], 2, second.correlationId)).then([importedOf(0, ['a', 'b'], 2, second.correlationId)]);
    });
  });

  it('a batch whose correlation id names no attempt belongs to the current one (clients that give each message its own)', () => {
    const s = [registered, started(3, 25)];
    spec.given(s).when(batch(0, 10, 3, 'its-own-id')).then([imported(0, 10, 'its-own-id')]);
    spec.given([...s, imported(0, 10, 'x'), imported(1, 10, 'y')]).when(batch(2, 5, 3, 'z')).then([imported(2, 5, 'z'), joined(3, 25)]);
  });

  it("a joined system takes its join's request again under another id: the same numbers are a no-op, other numbers refused", () => {
    const resent = { requestId: 'req-1-again', correlationId: first.correlationId };
    spec.given([registered, started(0, 0), joined(0, 0)]).when(startJoin(1, 1, resent)).thenThrows(ConflictError, 'system_already_joined');
    spec.given([registered, started(0, 0), joined(0, 0)]).when(startJoin(0, 0, resent)).thenNothing();
    spec.given([registered, started(0, 0), joined(0, 0)]).when(startJoin(1, 1)).thenNothing(); // the same request
    // Either number other than the finished join's is another join under its correlation id: refused.
    const done = [registered, started(2, 4), imported(0, 2), imported(1, 2), joined(2, 4)];
    spec.given(done).when(startJoin(2, 4, resent)).thenNothing();
    spec.given(done).when(startJoin(3, 4, resent)).thenThrows(ConflictError, 'system_already_joined');
    spec.given(done).when(startJoin(2, 5, resent)).thenThrows(ConflictError, 'system_already_joined');
  });

  describe('a joined system joins again with a new join (a correlation id of its own): a full sync', () => {
    const done = [registered, started(2, 4), imported(0, 2), imported(1, 2), joined(2, 4)];

    it('records a new attempt whose batches are imported, not skipped as repeats, and joins again with its own counts', () => {
      spec.given(done).when(startJoin(2, 5, second, later)).then([started(2, 5, second, later)]);
      const again = [...done, started(2, 5, second, later)];
      spec.given(again).when(batch(0, 3, 2, second.correlationId)).then([imported(0, 3, second.correlationId)]);
      spec.given([...again, imported(0, 3, second.correlationId)]).when(batch(1, 2, 2, second.correlationId)).then([imported(1, 2, second.correlationId), joined(2, 5)]);
      // A late batch of the finished join changes nothing.
      spec.given(again).when(batch(0, 2, 2, first.correlationId)).thenNothing();
    });

    it("refuses (to be retried) a batch of the new join that comes before its request; one of the finished join is a repeat", () => {
      spec.given(done).when(batch(0, 3, 2, second.correlationId)).thenThrows(ConflictError, 'system_not_joining');
      spec.given(done).when(batch(0, 3, 2, 'its-own-id', 'msg-new')).thenThrows(ConflictError, 'system_not_joining');
      spec.given(done).when(batch(0, 2, 2, first.correlationId, 'msg-new')).thenNothing();
      const state = foldEvents(connectedSystemDecider, done);
      expect(batchNotNeeded(state, { batchIndex: 0, correlationId: second.correlationId, messageId: 'm-new' })).toBe(false);
      expect(batchNotNeeded(state, { batchIndex: 0, correlationId: first.correlationId, messageId: 'm-new' })).toBe(true);
    });

    it('with no experts it joins again at once', () => spec.given(done).when(startJoin(0, 0, second, later)).then([started(0, 0, second, later), joined(0, 0, later)]));
  });

  describe('a new request while joining restarts the join', () => {
    // The tester's case: 2 batches / 4 experts, batch 0 = [a, b] imported, then a crash and a join from scratch.
    const crashed = [registered, started(2, 4), imported(0, 2)];

    it('records a new attempt: the earlier batches no longer count, the numbers are the new ones', () => {
      spec.given(crashed).when(startJoin(2, 4, second, later)).then([started(2, 4, second, later)]);
      spec.given(crashed).when(startJoin(3, 7, second, later)).then([started(3, 7, second, later)]);
      // Even with the first attempt's correlation id: another envelope id is another request.
      spec.given(crashed).when(startJoin(3, 7, { requestId: 'req-2', correlationId: first.correlationId }, later)).then([started(3, 7, { requestId: 'req-2', correlationId: first.correlationId }, later)]);
    });

    it("the new attempt's batch 0 is imported although index 0 was imported before, and its last batch joins with its own counts", () => {
      const restarted = [...crashed, started(2, 4, second, later)];
      spec.given(restarted).when(batch(0, 2, 2, second.correlationId)).then([imported(0, 2, second.correlationId)]);
      spec.given([...restarted, imported(0, 2, second.correlationId)]).when(batch(1, 2, 2, second.correlationId)).then([imported(1, 2, second.correlationId), joined(2, 4)]);
      spec.given([...restarted, imported(0, 2, second.correlationId)]).when(batch(0, 2, 2, second.correlationId)).thenNothing();
    });

    it('late batches of the earlier attempt are harmless: no events, not refused, also once joined or with other numbers', () => {
      const restarted = [...crashed, started(3, 5, second, later)];
      spec.given(restarted).when(batch(1, 2, 2, first.correlationId)).thenNothing(); // another batchCount: no batch_count_mismatch
      spec.given(restarted).when(batch(0, 2, 2, first.correlationId)).thenNothing();
      const done = [...restarted, imported(0, 2, second.correlationId), imported(1, 2, second.correlationId), imported(2, 1, second.correlationId), joined(3, 5)];
      spec.given(done).when(batch(1, 2, 2, first.correlationId)).thenNothing();
      const state = foldEvents(connectedSystemDecider, restarted);
      expect(batchNotNeeded(state, { batchIndex: 1, correlationId: first.correlationId, messageId: 'm-1' })).toBe(true);
      expect(batchNotNeeded(state, { batchIndex: 1, correlationId: second.correlationId, messageId: 'm-2' })).toBe(false);
      expect(batchNotNeeded(state, { batchIndex: 0, correlationId: 'unknown', messageId: 'm-3' })).toBe(false);
      expect(batchNotNeeded(state, { batchIndex: 0, correlationId: 'unknown', messageId: `${first.correlationId}/batch-0` })).toBe(true);
    });

    it('with a correlation id of its own on every message, a batch message of the earlier attempt delivered again does not count for the new one', () => {
      const own = [registered, started(2, 4), imported(0, 2, 'own-b0', now, 'msg-b0'), started(2, 4, second, later)];
      spec.given(own).when(batch(0, 2, 2, 'own-b0', 'msg-b0')).thenNothing();
      spec.given(own).when(batch(0, 2, 2, 'own-c0', 'msg-c0')).then([imported(0, 2, 'own-c0', now, 'msg-c0')]);
      spec.given([...own, imported(1, 2, 'own-a1', now, 'msg-a1')]).when(batch(0, 2, 2, 'own-b0', 'msg-b0')).thenNothing();
    });

    it("batches the current attempt holds under the new request's correlation id are recorded again for it: a re-sent request loses nothing", () => {
      const resent = { requestId: 'req-1-again', correlationId: first.correlationId };
      spec.given([registered, started(3, 25), imported(2, 5), imported(0, 10)]).when(startJoin(3, 25, resent, later)).then([
        started(3, 25, resent, later),
        imported(0, 10, first.correlationId, later),
        imported(2, 5, first.correlationId, later),
      ]);
      // A batch of the second attempt the hub handled before the second request: counted for the first, carried over.
      spec.given([...crashed, imported(1, 2, second.correlationId)]).when(startJoin(2, 4, second, later)).then([started(2, 4, second, later), imported(1, 2, second.correlationId, later)]);
      // Not where they would not fit the new numbers.
      spec.given([...crashed, imported(1, 2, second.correlationId)]).when(startJoin(3, 4, second, later)).then([started(3, 4, second, later)]);
    });

    it('carried batches must fit the new numbers: not when they carry more experts than announced; exactly as many is fine', () => {
      const s = [registered, started(3, 25), imported(0, 10, second.correlationId), imported(2, 5, second.correlationId)];
      spec.given(s).when(startJoin(3, 14, second, later)).then([started(3, 14, second, later)]);
      spec.given(s).when(startJoin(3, 15, second, later)).then([
        started(3, 15, second, later),
        imported(0, 10, second.correlationId, later),
        imported(2, 5, second.correlationId, later),
      ]);
    });

    it('a restart whose carried batches are all of them joins at once, with their experts counted', () => {
      // Both batches of the first attempt came under the second request's correlation id (before it was applied).
      const done = [registered, started(2, 4), imported(0, 1, second.correlationId), imported(1, 3, second.correlationId), joined(2, 4)];
      spec.given(done).when(startJoin(2, 4, second, later)).then([
        started(2, 4, second, later),
        imported(0, 1, second.correlationId, later),
        imported(1, 3, second.correlationId, later),
        joined(2, 4, later),
      ]);
    });

    it('a restart announcing no experts joins at once', () => spec.given(crashed).when(startJoin(0, 0, second, later)).then([started(0, 0, second, later), joined(0, 0, later)]));

    it('attempts stay apart over several restarts', () => {
      const third: Attempt = { requestId: 'req-3', correlationId: 'join-3' };
      const s = [...crashed, started(2, 4, second, later), imported(1, 2, second.correlationId), started(2, 4, third, later)];
      spec.given(s).when(batch(1, 2, 2, second.correlationId)).thenNothing();
      spec.given(s).when(batch(1, 2, 2, first.correlationId)).thenNothing();
      spec.given(s).when(batch(1, 2, 2, third.correlationId)).then([imported(1, 2, third.correlationId)]);
      spec.given(s).when(startJoin(2, 4, second)).thenNothing();
    });
  });

  describe('old streams (recorded before join attempts were told apart) replay as before', () => {
    const old = [registered, legacyStarted(3, 25), legacyImported(2, 5), legacyImported(0, 10)];

    it('their batches count; any correlation id belongs to their attempt; the last batch joins', () => {
      spec.given(old).when(batch(2, 5, 3, 'whatever')).thenNothing();
      spec.given(old).when(batch(1, 10, 3, 'whatever')).then([imported(1, 10, 'whatever'), joined(3, 25)]);
      const state = foldEvents(connectedSystemDecider, [...old, legacyImported(1, 10), joined(3, 25)]);
      expect(state).toMatchObject({ status: 'joined', join: { expectedBatches: 3, expectedExperts: 25, correlationId: undefined } });
    });

    it('a new request restarts an old unfinished join, and is a new join of an old joined system (its join had no correlation id)', () => {
      spec.given(old).when(startJoin(3, 25, second, later)).then([started(3, 25, second, later)]);
      spec.given([registered, legacyStarted(0, 0), joined(0, 0)]).when(startJoin(0, 0, second)).then([started(0, 0, second), joined(0, 0)]);
      spec.given([registered, legacyStarted(0, 0), joined(0, 0)]).when(startJoin(1, 1, second)).then([started(1, 1, second)]);
    });
  });
});
