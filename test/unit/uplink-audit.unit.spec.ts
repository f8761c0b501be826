// The audit entries of consultation.* uplink messages (uplink-audit.ts, amqp-uplink-consumer.ts): one per message and
// final outcome, under the sending system, with the envelope id as its request id; written before the message is
// settled, and an entry that cannot be stored hands the message back uncounted. Without a broker: the mapping, and
// the uplink handler with a recording trail.
import { randomUUID } from 'node:crypto';
import type { ReceivedMessage } from '../../src/adapters/amqp/queue-consumer';
import { auditExhaustedUplink, uplinkMessageHandler } from '../../src/adapters/messaging/amqp-uplink-consumer';
import { serializeConsultationUplink, type ConsultationUplinkEnvelope } from '../../src/adapters/messaging/consultation-messages';
import { uplinkAuditEntry } from '../../src/adapters/messaging/uplink-audit';
import { OrderedByKey } from '../../src/application/ordered-by-key';
import { serializeUplink } from '../../src/adapters/messaging/messages';
import { auditPartition, auditStreamOf, hashOf, pick, type AuditEntry } from '../../src/application/audit/audit-chain';
import { AuditTrail, type AuditSearch } from '../../src/application/audit/audit-trail';
import { InMemoryEventStore } from '../../src/adapters/event-store/memory/in-memory-event-store';
import { ExpectedVersionConflictError } from '../../src/application/ports/event-store';
import { ConflictError, ForbiddenError, NotFoundError, UnavailableError, ValidationError } from '../../src/domain/shared/errors';

const CPR = '251248-1234';
const consultationId = '3c9a7b52-8e41-4f0a-9d3b-6a1e2f4c8d10';
const AT = '2026-12-03T10:00:00.000Z';

const report = (over: Partial<ConsultationUplinkEnvelope> = {}): ConsultationUplinkEnvelope =>
  ({
    id: randomUUID(),
    type: 'consultation.report',
    version: 1,
    systemId: 'mianyang',
    correlationId: 'case-17',
    time: '2026-11-23T09:30:00.000+08:00',
    payload: { consultationId, expertId: 'mianyang:li-7', diagnosis: `Aortic dissection, patient ${CPR}`, recommendations: 'CT angiography' },
    ...over,
  }) as ConsultationUplinkEnvelope;

const request = (): ConsultationUplinkEnvelope =>
  ({
    ...report({ type: 'consultation.requested', systemId: 'chengdu' } as Partial<ConsultationUplinkEnvelope>),
    payload: { consultationId, applicantClinician: 'dr-wang', candidates: ['mianyang:li-7'], clinicalQuestion: `Chest pain, patient ${CPR}`, summary: 'Male, 58', attachments: [] },
  }) as ConsultationUplinkEnvelope;

describe('uplinkAuditEntry: the entry of one consultation message', () => {
  it('an applied step: allowed, 200, under system:<id> with role system, no ip, the envelope id as request id, the consultation as resource', () => {
    const envelope = report();
    expect(uplinkAuditEntry(envelope, { kind: 'handled', outcome: 'applied' }, AT)).toEqual({
      at: AT,
      subject: 'system:mianyang',
      role: 'system',
      systemId: 'mianyang',
      action: 'consultation.act',
      patientKey: null,
      resource: consultationId,
      ip: '',
      requestId: envelope.id,
      outcome: 'allowed',
      status: 200,
      reason: null,
    });
  });

  it('a request that created the consultation is 201, as over HTTP; its repeat (duplicate) 200, allowed', () => {
    expect(uplinkAuditEntry(request(), { kind: 'handled', outcome: 'applied' }, AT)).toMatchObject({ outcome: 'allowed', status: 201, subject: 'system:chengdu' });
    expect(uplinkAuditEntry(request(), { kind: 'handled', outcome: 'duplicate' }, AT)).toMatchObject({ outcome: 'allowed', status: 200 });
    expect(uplinkAuditEntry(report(), { kind: 'handled', outcome: 'duplicate' }, AT)).toMatchObject({ outcome: 'allowed', status: 200, reason: null });
  });

  it('a ForbiddenError is denied 403 with its code; other refusals are errors with the status HTTP gives the same error', () => {
    const entry = (error: unknown) => {
      const e = uplinkAuditEntry(report(), { kind: 'refused', error }, AT);
      return [e.outcome, e.status, e.reason];
    };
    expect(entry(new ForbiddenError('not_your_consultation', 'x'))).toEqual(['denied', 403, 'not_your_consultation']);
    expect(entry(new ForbiddenError('expert_not_offered', 'x'))).toEqual(['denied', 403, 'expert_not_offered']);
    expect(entry(new NotFoundError('consultation_not_found', 'x'))).toEqual(['error', 404, 'consultation_not_found']);
    expect(entry(new ConflictError('consultation_not_accepted', 'x'))).toEqual(['error', 409, 'consultation_not_accepted']);
    expect(entry(new ValidationError('candidate_retired', 'x'))).toEqual(['error', 422, 'candidate_retired']);
    const late = uplinkAuditEntry(report(), { kind: 'timed_out' }, AT);
    expect([late.outcome, late.status, late.reason]).toEqual(['error', 503, 'handler_timeout']);
    // Retries used up on something unexpected: what HTTP answers for it, never the error's own message.
    expect(entry(new ExpectedVersionConflictError('consultation-x', 1n, 2n))).toEqual(['error', 409, 'concurrency_conflict']);
    expect(entry(new TypeError(`boom ${CPR}`))).toEqual(['error', 500, 'internal_error']);
  });

  it('keeps no shape the trail does not keep: a system id with CPR digits, a consultation id that is no id, a request id with CPR digits', () => {
    const stranger = uplinkAuditEntry(report({ systemId: '251248-1234' }), { kind: 'refused', error: new NotFoundError('unknown_system', 'x') }, AT);
    expect(stranger).toMatchObject({ subject: 'anonymous', role: 'system', systemId: null });
    const odd = report();
    (odd.payload as { consultationId: string }).consultationId = `case ${CPR}`;
    expect(uplinkAuditEntry(odd, { kind: 'handled', outcome: 'applied' }, AT).resource).toBeNull();
    const long = report();
    (long.payload as { consultationId: string }).consultationId = 'x'.repeat(65);
    expect(uplinkAuditEntry(long, { kind: 'handled', outcome: 'applied' }, AT).resource).toBeNull();
    const glued = report({ id: `m-${CPR.replace('-', '')}` });
    const entry = uplinkAuditEntry(glued, { kind: 'handled', outcome: 'applied' }, AT, () => 'fresh-id');
    expect(entry.requestId).toBe('fresh-id');
    // Nothing of the payload but the consultation id: no text, no expert id, no CPR number anywhere.
    const text = JSON.stringify(uplinkAuditEntry(report(), { kind: 'refused', error: new ForbiddenError('expert_not_offered', `li-7 ${CPR}`) }, AT));
    expect(text).not.toContain('251248');
    expect(text).not.toContain('Aortic');
    expect(text).not.toContain('li-7');
  });

  it('is an AuditEntry as the chain hashes it: only its own fields', () => {
    const entry = uplinkAuditEntry(report(), { kind: 'handled', outcome: 'applied' }, AT);
    expect(pick(entry)).toEqual(entry);
    expect(hashOf('0'.repeat(64), entry)).toMatch(/^[0-9a-f]{64}$/);
  });
});

const received = (body: string, attempt = 1): ReceivedMessage => ({ body, applicationProperties: {}, messageId: undefined, correlationId: undefined, subject: undefined, deliveryCount: attempt - 1, attempt, queue: 'rts.uplink', raw: { body } });

/** The uplink handler with a consultation route answering `handle`, and a trail that records (or fails with `fail`). */
const setup = (handle: () => Promise<unknown>, options: { fail?: Error; maxAttempts?: number; handlerTimeoutMs?: number } = {}) => {
  const entries: AuditEntry[] = [];
  const events: string[] = [];
  const handler = uplinkMessageHandler(
    {
      handleUplink: async () => {
        events.push('directory');
        return { outcome: 'applied' };
      },
    },
    {
      consultations: {
        handleUplink: async () => {
          const result = await handle();
          events.push('committed');
          return result;
        },
      },
      audit: {
        record: async (entry) => {
          if (options.fail) throw options.fail;
          await new Promise((r) => setTimeout(r, 5));
          entries.push(entry);
          events.push('audited');
        },
      },
      now: () => AT,
    },
    { maxAttempts: options.maxAttempts ?? 3, ...(options.handlerTimeoutMs ? { handlerTimeoutMs: options.handlerTimeoutMs } : {}) },
  );
  return { handler, entries, events };
};

describe('the uplink handler records consultation messages in the audit trail', () => {
  it('accepts an applied step only once its entry is stored', async () => {
    const { handler, entries, events } = setup(async () => ({ outcome: 'applied' }));
    const envelope = report();
    expect(await handler(received(serializeConsultationUplink(envelope)))).toBe('accept');
    expect(events).toEqual(['committed', 'audited']);
    expect(entries).toEqual([expect.objectContaining({ requestId: envelope.id, outcome: 'allowed', status: 200, resource: consultationId, at: AT })]);
  });

  it('dead-letters a forbidden step as denied, and a permanent refusal as an error', async () => {
    const forbidden = setup(async () => Promise.reject(new ForbiddenError('not_your_consultation', 'no')));
    expect(await forbidden.handler(received(serializeConsultationUplink(report())))).toEqual({ deadLetter: expect.stringMatching(/^not_your_consultation/) });
    expect(forbidden.entries).toEqual([expect.objectContaining({ outcome: 'denied', status: 403, reason: 'not_your_consultation' })]);
    const gone = setup(async () => Promise.reject(new NotFoundError('consultation_not_found', 'no')));
    expect(await gone.handler(received(serializeConsultationUplink(report())))).toEqual({ deadLetter: expect.stringMatching(/^consultation_not_found/) });
    expect(gone.entries).toEqual([expect.objectContaining({ outcome: 'error', status: 404, reason: 'consultation_not_found' })]);
  });

  it('records no attempt that hands the message back, and the last one, which is a dead letter, as an error', async () => {
    const early = setup(async () => Promise.reject(new ConflictError('consultation_not_accepted', 'not yet')), { maxAttempts: 3 });
    const body = serializeConsultationUplink(report());
    expect(await early.handler(received(body, 1))).toEqual({ retry: 'consultation_not_accepted' });
    expect(await early.handler(received(body, 2))).toEqual({ retry: 'consultation_not_accepted' });
    expect(early.entries).toEqual([]);
    expect(await early.handler(received(body, 3))).toEqual({ retry: 'consultation_not_accepted' });
    expect(early.entries).toEqual([expect.objectContaining({ outcome: 'error', status: 409, reason: 'consultation_not_accepted' })]);

    const broken = setup(async () => Promise.reject(new TypeError('db gone')), { maxAttempts: 2 });
    expect(await broken.handler(received(body, 1))).toEqual({ retry: expect.stringMatching(/^transient failure/) });
    expect(broken.entries).toEqual([]);
    await broken.handler(received(body, 2));
    expect(broken.entries).toEqual([expect.objectContaining({ outcome: 'error', status: 500, reason: 'internal_error' })]);

    // The store down: handed back uncounted, however often; never recorded.
    const down = setup(async () => Promise.reject(new UnavailableError('storage_unavailable', 'down')), { maxAttempts: 1 });
    expect(await down.handler(received(body, 1))).toEqual({ later: expect.stringMatching(/storage_unavailable/) });
    expect(down.entries).toEqual([]);
  });

  it('a handling that times out on its last attempt is recorded as handler_timeout', async () => {
    const slow = setup(() => new Promise(() => undefined), { maxAttempts: 1, handlerTimeoutMs: 30 });
    expect(await slow.handler(received(serializeConsultationUplink(report()), 1))).toEqual({ retry: 'handler timed out after 30 ms' });
    expect(slow.entries).toEqual([expect.objectContaining({ outcome: 'error', status: 503, reason: 'handler_timeout' })]);
  });

  it('hands the message back uncounted (later) when its entry cannot be stored: neither accepted nor dead-lettered unaudited', async () => {
    const applied = setup(async () => ({ outcome: 'applied' }), { fail: new Error('the audit queue is full') });
    expect(await applied.handler(received(serializeConsultationUplink(report())))).toEqual({ later: 'transient failure: audit_unavailable' });
    const refused = setup(async () => Promise.reject(new ForbiddenError('not_your_consultation', 'no')), { fail: new Error('disk full') });
    expect(await refused.handler(received(serializeConsultationUplink(report()), 3))).toEqual({ later: 'transient failure: audit_unavailable' });
  });

  it('leaves the directory messages unaudited', async () => {
    const { handler, entries, events } = setup(async () => ({ outcome: 'applied' }));
    const body = serializeUplink({
      id: randomUUID(),
      type: 'expert.retired',
      version: 1,
      systemId: 'mianyang',
      correlationId: 'c-1',
      time: '2026-11-23T09:30:00.000+08:00',
      payload: { localExpertId: 'li-7' },
    });
    expect(await handler(received(body))).toBe('accept');
    expect(events).toEqual(['directory']);
    expect(entries).toEqual([]);
  });
});

describe('a consultation message that arrives with its attempts used up (auditExhaustedUplink)', () => {
  const routes = (fail?: Error) => {
    const entries: AuditEntry[] = [];
    const handled: string[] = [];
    return {
      entries,
      handled,
      routes: {
        consultations: { handleUplink: async () => void handled.push('handled') },
        audit: {
          record: async (entry: AuditEntry) => {
            if (fail) throw fail;
            entries.push(entry);
          },
        },
        now: () => AT,
      },
    };
  };

  it('is recorded as error 503 max_attempts_exceeded before it is dead-lettered, and not handled', async () => {
    const { routes: r, entries, handled } = routes();
    const envelope = report();
    expect(await auditExhaustedUplink(r)(received(serializeConsultationUplink(envelope), 6))).toBe('dead-letter');
    expect(entries).toEqual([expect.objectContaining({ requestId: envelope.id, subject: 'system:mianyang', resource: consultationId, outcome: 'error', status: 503, reason: 'max_attempts_exceeded', at: AT })]);
    expect(handled).toEqual([]);
  });

  it('is handed back uncounted (later) when its entry cannot be stored', async () => {
    const { routes: r } = routes(new Error('disk full'));
    expect(await auditExhaustedUplink(r)(received(serializeConsultationUplink(report()), 6))).toEqual({ later: 'transient failure: audit_unavailable' });
  });

  it('is handed back uncounted (later), not dead-lettered unaudited, when the codec cannot read its keys now', async () => {
    // A body the codec cannot read is a result ({ ok: false }); a throw is the key book's catch-up failing.
    const { routes: r, entries } = routes();
    const codec = { security: 'jose', decodeUplink: async () => Promise.reject(new Error('the store did not answer')) } as unknown as NonNullable<Parameters<typeof auditExhaustedUplink>[0]['codec']>;
    expect(await auditExhaustedUplink({ ...r, codec })(received(serializeConsultationUplink(report()), 6))).toEqual({ later: 'transient failure: keys_unavailable' });
    expect(entries).toEqual([]);
  });

  it('leaves a directory message, a body it cannot read, and a hub without a trail unaudited', async () => {
    const { routes: r, entries } = routes();
    const directory = serializeUplink({ id: randomUUID(), type: 'expert.retired', version: 1, systemId: 'mianyang', correlationId: 'c-1', time: AT, payload: { localExpertId: 'li-7' } });
    expect(await auditExhaustedUplink(r)(received(directory, 6))).toBe('dead-letter');
    expect(await auditExhaustedUplink(r)(received('{not json', 6))).toBe('dead-letter');
    expect(entries).toEqual([]);
    expect(await auditExhaustedUplink({ consultations: r.consultations })(received(serializeConsultationUplink(report()), 6))).toBe('dead-letter');
  });
});

describe('a consultation message the stopping hub does not handle', () => {
  it('is handed back uncounted (later), not retried: on its last attempt a retry was a dead letter with no audit entry', async () => {
    const order = new OrderedByKey();
    const handled: string[] = [];
    const entries: AuditEntry[] = [];
    const handler = uplinkMessageHandler(
      { handleUplink: async () => ({ outcome: 'applied' }) },
      { consultations: { handleUplink: async () => void handled.push('handled') }, audit: { record: async (e) => void entries.push(e) }, now: () => AT },
      { maxAttempts: 2, order },
    );
    order.close(); // the consumer's stop
    expect(await handler(received(serializeConsultationUplink(report()), 2))).toEqual({ later: expect.stringMatching(/^hub_stopping/) });
    expect(handled).toEqual([]);
    expect(entries).toEqual([]);
  });
});

describe('a consultation message of two patients whose second entry could not be stored', () => {
  // The store refuses the first append to one chain (a full disk for a moment): the message is handed back, and its
  // redelivery must store the entry that failed without recording the one stored the first time a second time.
  const twoPatients = () => {
    const [first, second] = ['patient-key-a', 'patient-key-b', 'patient-key-c', 'patient-key-d'].reduce<string[]>(
      (found, key) => (found.length < 2 && !found.some((k) => auditPartition({ patientKey: k, subject: '' }) === auditPartition({ patientKey: key, subject: '' })) ? [...found, key] : found),
      [],
    );
    return [first!, second!] as const;
  };

  const setupTrail = () => {
    const [patientA, patientB] = twoPatients();
    const store = new InMemoryEventStore();
    let failOnce = auditStreamOf({ ...uplinkAuditEntry(report(), { kind: 'handled', outcome: 'applied' }, AT), patientKey: patientB });
    const failing = new Proxy(store, {
      get: (target, name) => {
        const value = Reflect.get(target, name, target) as unknown;
        if (name !== 'appendToStream') return typeof value === 'function' ? value.bind(target) : value;
        return async (stream: string, ...rest: unknown[]) => {
          if (stream === failOnce) {
            failOnce = '';
            throw Object.assign(new Error('disk full'), { code: 'SQLITE_FULL' });
          }
          return (value as (...a: unknown[]) => Promise<unknown>).call(target, stream, ...rest);
        };
      },
    });
    const trail = new AuditTrail({ store: failing, attempts: 1 });
    const times = ['2026-12-03T10:00:00.000Z', '2026-12-03T10:00:01.000Z'];
    const outcomes: ('applied' | 'duplicate')[] = ['applied', 'duplicate'];
    const handler = uplinkMessageHandler(
      { handleUplink: async () => ({ outcome: 'applied' }) },
      {
        consultations: {
          // The first delivery applies the step; the redelivery is a repeat for the consultation.
          handleUplink: async () => ({ outcome: outcomes.shift() ?? 'duplicate' }),
          patientKeysOf: async () => [patientA, patientB],
        },
        audit: trail,
        now: () => times.shift() ?? '2026-12-03T10:00:02.000Z',
      },
      { maxAttempts: 3 },
    );
    const search: AuditSearch = { from: new Date('2026-12-03T00:00:00.000Z'), to: new Date('2026-12-04T00:00:00.000Z'), now: new Date('2026-12-03T12:00:00.000Z') };
    const entriesOf = async (patientKey: string) => (await trail.byPatient(patientKey, search)).items;
    return { handler, trail, patientA, patientB, entriesOf };
  };

  it('records each patient\'s entry once: the redelivery stores the failed one and not the stored one again', async () => {
    const { handler, patientA, patientB, entriesOf } = setupTrail();
    const envelope = report();
    const body = serializeConsultationUplink(envelope);
    expect(await handler(received(body, 1))).toEqual({ later: 'transient failure: audit_unavailable' });
    expect(await entriesOf(patientA)).toHaveLength(1);
    expect(await entriesOf(patientB)).toHaveLength(0);
    // Handed back uncounted: it comes again at the same attempt.
    expect(await handler(received(body, 1))).toBe('accept');
    expect(await entriesOf(patientA)).toEqual([expect.objectContaining({ requestId: envelope.id, patientKey: patientA, at: '2026-12-03T10:00:00.000Z', status: 200 })]);
    expect(await entriesOf(patientB)).toEqual([expect.objectContaining({ requestId: envelope.id, patientKey: patientB, at: '2026-12-03T10:00:01.000Z', status: 200 })]);
    // A third delivery (its hub died before it settled the second) records nothing more either.
    expect(await handler(received(body, 2))).toBe('accept');
    expect(await entriesOf(patientA)).toHaveLength(1);
    expect(await entriesOf(patientB)).toHaveLength(1);
  });

  it('keeps the chains whole, and records another message of the same case as its own entry', async () => {
    const { handler, trail, patientA, entriesOf } = setupTrail();
    const body = serializeConsultationUplink(report());
    await handler(received(body, 1));
    await handler(received(body, 1));
    expect(await handler(received(serializeConsultationUplink(report()), 1))).toBe('accept');
    expect(await entriesOf(patientA)).toHaveLength(2);
    expect(await trail.verify(['2026-12-03'])).toMatchObject({ ok: true, breaks: [] });
  });
});
