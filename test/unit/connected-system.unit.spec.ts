import { DeciderSpec } from '../support/decider-spec';
import { connectedSystemDecider, type ConnectedSystemCommand, type ConnectedSystemEvent } from '../../src/domain/directory/connected-system';
import { ConflictError, NotFoundError, ValidationError } from '../../src/domain/shared/errors';

const now = '2024-05-01T10:00:00.000Z';
const registerCmd: ConnectedSystemCommand = { type: 'RegisterSystem', systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', now };
const registered: ConnectedSystemEvent = { type: 'SystemRegistered', data: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', registeredAt: now } };
const startJoin = (expectedBatches: number, expectedExperts: number): ConnectedSystemCommand => ({ type: 'StartJoin', systemId: 'chengdu', expectedBatches, expectedExperts, now });
const started = (expectedBatches: number, expectedExperts: number): ConnectedSystemEvent => ({ type: 'SystemJoinStarted', data: { systemId: 'chengdu', expectedBatches, expectedExperts, startedAt: now } });
const batch = (batchIndex: number, count: number, batchCount = 3): ConnectedSystemCommand => ({ type: 'ImportExpertBatch', systemId: 'chengdu', batchIndex, batchCount, count, now });
const imported = (batchIndex: number, count: number): ConnectedSystemEvent => ({ type: 'ExpertBatchImported', data: { systemId: 'chengdu', batchIndex, count, importedAt: now } });
const joined = (batches: number, experts: number): ConnectedSystemEvent => ({
  type: 'SystemJoined',
  data: { systemId: 'chengdu', name: 'Chengdu City', area: 'Chengdu', downlinkQueue: 'rts.downlink.chengdu', batches, experts, joinedAt: now },
});

const spec = DeciderSpec.for(connectedSystemDecider);

describe('ConnectedSystem decider', () => {
  it('registers a system; the same again is a no-op, other details a conflict', () => {
    spec.given([]).when(registerCmd).then([registered]);
    spec.given([registered]).when(registerCmd).thenNothing();
    spec.given([registered]).when({ ...registerCmd, name: 'Other' } as ConnectedSystemCommand).thenThrows(ConflictError, 'system_already_registered');
    spec.given([]).when({ ...registerCmd, systemId: 'Bad Id' } as ConnectedSystemCommand).thenThrows(ValidationError, 'invalid_system_id');
  });

  it('starts a join; a repeat is a no-op; other numbers are refused', () => {
    spec.given([registered]).when(startJoin(3, 25)).then([started(3, 25)]);
    spec.given([registered, started(3, 25)]).when(startJoin(3, 25)).thenNothing();
    spec.given([registered, started(3, 25)]).when(startJoin(4, 25)).thenThrows(ConflictError, 'join_already_started');
    spec.given([]).when(startJoin(3, 25)).thenThrows(NotFoundError, 'unknown_system');
    spec.given([registered]).when(startJoin(0, 5)).thenThrows(ValidationError, 'invalid_join');
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
    spec.given([...s, imported(0, 20)]).when(batch(1, 10)).thenThrows(ValidationError, 'too_many_experts');
  });

  it('a joined system refuses a new join with other numbers', () => {
    spec.given([registered, started(0, 0), joined(0, 0)]).when(startJoin(1, 1)).thenThrows(ConflictError, 'system_already_joined');
  });
});
