import { DateTime } from 'luxon';
import { Deadlines } from '../../src/application/consultation/deadlines';
import { RetiredExpertOffers } from '../../src/application/consultation/retired-expert-offers';
import type { DueTimerRow } from '../../src/application/consultation/consultation-read-model';
import type { StepResult } from '../../src/application/consultation/consultation-service';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { uuidV5 } from '../../src/application/ids';
import { ExpectedVersionConflictError, IdempotencyViolationError } from '../../src/application/ports/event-store';
import { consultationStreamName } from '../../src/domain/consultation/consultation';
import pino from 'pino';

/**
 * The timers' and the withdrawals' log lines name a consultation by ids a caller chose: a legacy consultation id (an
 * unservable one holds a CPR number, and its timers still run: legacy-id.ts) and a correlation id (the contract
 * refuses a CPR number standing alone, not one glued into other digits). Both go through loggableId, as the
 * uplink's and the outbox's lines do; before, the Deadlines and RetiredExpertOffers wrote them as they were.
 */
const LEGACY = '251248-1234';
const GLUED = 'order-12512481234';
const now = DateTime.fromISO('2024-05-01T10:00:00Z', { zone: 'utc' });

const linesOf = () => {
  const lines: unknown[] = [];
  const put = (o: object, m: string) => void lines.push([o, m]);
  return { lines, logger: { warn: put, error: put, info: put } };
};

/** A RetiredExpertOffers over a store holding one retirement, whose one open offer is LEGACY's, withdrawn by `withdrawOffer`. */
const retiredExpertOffers = async (withdrawOffer: () => Promise<StepResult>, logger: ConstructorParameters<typeof RetiredExpertOffers>[0]['logger']) => {
  const store = new InMemoryEventStore();
  await store.appendToStream('expert-x', [{ id: uuidV5('retired/x'), type: 'ExpertRetired', data: { expertId: 'city-b:e3' } }]);
  return new RetiredExpertOffers({
    store,
    checkpoints: { get: async () => 0n, set: async () => undefined },
    consultations: { openOffersTo: async () => [{ consultationId: LEGACY, correlationId: GLUED, offerIndex: 0 }] },
    projector: { catchUp: async () => undefined },
    directory: { getExpert: async () => null },
    directoryProjector: { catchUp: async () => undefined },
    service: { withdrawOffer },
    logger,
  });
};

describe('consultation timer log lines', () => {
  it('a failing timer and a report left unacknowledged are logged without a CPR number in their ids', async () => {
    const { lines, logger } = linesOf();
    const rows: DueTimerRow[] = [
      { consultationId: LEGACY, correlationId: GLUED, kind: 'offer', offerIndex: 0, dueAt: '2024-05-01T09:00:00.000Z' },
      { consultationId: 'cons-12512481234', correlationId: GLUED, kind: 'resend', attempt: 3, dueAt: '2024-05-01T09:00:00.000Z' },
    ];
    const lastResend = { changed: true, consultation: { report: { nextResendAt: null, acknowledgedAt: null, resends: 3 } } } as unknown as StepResult;
    const deadlines = new Deadlines({
      consultations: { dueTimers: async () => rows },
      projector: { catchUp: async () => undefined },
      service: { expireOffer: async () => Promise.reject(new Error('store down')), resendReport: async () => lastResend },
      clock: { now: () => now },
      logger,
    });
    await deadlines.runOnce();
    expect(lines).toHaveLength(2);
    expect(JSON.stringify(lines)).not.toMatch(/2512481234|251248-1234/);
  });

  it('a withdrawal of an offer to a retired expert is logged without a CPR number in its ids', async () => {
    const { lines, logger } = linesOf();
    const reactor = await retiredExpertOffers(async () => ({ changed: true }) as unknown as StepResult, logger);
    await reactor.catchUp();
    expect(lines.length).toBeGreaterThan(0);
    expect(JSON.stringify(lines)).not.toMatch(/2512481234|251248-1234/);
  });
});

describe('consultation timer log lines: the error', () => {
  // A timer or a withdrawal that fails on a version conflict (two hubs, retries spent) or an id stored twice gets the
  // store's error, which names the stream, consultation-<id>, in its message, its stack and its streamName: written
  // by pino's err serializer, it carried a legacy id's CPR number past loggableId.
  const written = () => {
    const out: string[] = [];
    return { out, logger: pino({ level: 'info' }, { write: (s: string) => void out.push(s) }) };
  };
  const conflict = () => new ExpectedVersionConflictError(consultationStreamName(LEGACY), 3n, 4n);

  it('a failing timer is logged without the CPR number its stream name holds', async () => {
    const { out, logger } = written();
    const deadlines = new Deadlines({
      consultations: { dueTimers: async () => [{ consultationId: LEGACY, correlationId: GLUED, kind: 'offer', offerIndex: 0, dueAt: '2024-05-01T09:00:00.000Z' }] },
      projector: { catchUp: async () => undefined },
      service: { expireOffer: async () => Promise.reject(conflict()), resendReport: async () => Promise.reject(new IdempotencyViolationError(consultationStreamName(LEGACY), 'e1')) },
      clock: { now: () => now },
      logger,
    });
    await deadlines.runOnce();
    expect(out).toHaveLength(1);
    expect(out.join('')).toContain('ExpectedVersionConflictError');
    expect(out.join('')).not.toMatch(/2512481234|251248-1234/);
  });

  it('a failing withdrawal is logged without the CPR number its stream name holds', async () => {
    const { out, logger } = written();
    const reactor = await retiredExpertOffers(async () => Promise.reject(conflict()), logger);
    await reactor.catchUp().catch(() => undefined);
    expect(out.length).toBeGreaterThan(0);
    expect(out.join('')).not.toMatch(/2512481234|251248-1234/);
  });
});
