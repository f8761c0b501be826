// The library entry point in memory: what a backend team's code can call, and what it may pass.
import { DateTime, Settings } from 'luxon';
import { buildDocument, createTeleObservation, lastDays, openTeleMed, parseCpr, parseHl7Observation, timeInterval, type EmbeddedTeleMed } from '../../src';
import { ObservationBody } from '../../src/adapters/http/schemas';
import { XdsBackend } from '../../src/application/xds-backend';
import { TeleMedService } from '../../src/application/telemed';

const now = DateTime.utc();
const PATIENT = parseCpr('251248-1234');
const reading = (systolic: number, minutesAgo: number, patientId = '251248-1234') =>
  createTeleObservation({ patientId, systolic, diastolic: 70, measuredAt: now.minus({ minutes: minutesAgo }).toISO() }, now);

let rts: EmbeddedTeleMed;
beforeEach(async () => {
  rts = await openTeleMed({ inMemory: true });
});
afterEach(() => rts.close());

describe('the library exposes only the documented methods', () => {
  it('rts.telemed and rts.xds hold the documented methods and nothing of the services behind them', () => {
    expect(Object.keys(rts.telemed).sort()).toEqual(['correct', 'getObservationsFor', 'patientOf', 'processAndStore', 'record']);
    expect(Object.keys(rts.xds).sort()).toEqual(['correctDocument', 'provideAndRegisterDocument', 'retrieveDocument', 'retrieveDocumentSet']);
    expect(rts.telemed).not.toBeInstanceOf(TeleMedService);
    expect(rts.xds).not.toBeInstanceOf(XdsBackend);
    for (const internal of ['provideAndRegisterBuilt', 'correctBuilt', 'findEntries', 'uniqueIdFor', 'entry', 'now']) {
      expect((rts.xds as Record<string, unknown>)[internal]).toBeUndefined();
    }
  });

  it("the tester's call cannot reach the store: another patient's queries go on working", async () => {
    const stored = await rts.telemed.processAndStore(reading(120, 5, '010203-4321'));
    const { metadata } = buildDocument(reading(120, 10));
    const built = (rts.xds as Record<string, unknown>)['provideAndRegisterBuilt'];
    expect(built).toBeUndefined();
    await expect(rts.xds.provideAndRegisterDocument({ ...metadata, serviceStartTime: 'garbage' }, 'not xml')).rejects.toMatchObject({ kind: 'validation', code: 'invalid_document' });
    // Options the library does not list are refused: a document cannot claim to replace another.
    await expect(rts.xds.provideAndRegisterDocument(metadata, buildDocument(reading(120, 10)).document, { replaces: stored } as never)).rejects.toMatchObject({ kind: 'validation', code: 'invalid_request' });
    expect((await rts.telemed.getObservationsFor(parseCpr('010203-4321'), lastDays(1, now))).map((o) => o.uniqueId)).toEqual([stored]);
    expect((await rts.xds.retrieveDocument(stored)).entry.status).toBe('Approved');
  });
});

describe('XdsBackend.provideAndRegisterBuilt (defence in depth)', () => {
  it('refuses an entry the registry projection could not index, so one bad call cannot stop every query', async () => {
    // The service behind the facade, as an adapter reaches it.
    const { buildContainer, TOKENS } = await import('../../src/bootstrap/container');
    const { loadConfig } = await import('../../src/bootstrap/config');
    const { InMemoryEventStore } = await import('../../src/adapters/event-store/memory/in-memory-event-store');
    const { InMemoryRegistry } = await import('../../src/adapters/registry/in-memory-registry');
    const { InMemoryKeyStore } = await import('../../src/adapters/crypto/key-stores');
    const pino = (await import('pino')).default;
    const container = buildContainer(loadConfig({ RTS_PSEUDONYM_SECRET: '11'.repeat(32) }), pino({ level: 'silent' }), {
      store: new InMemoryEventStore(),
      registry: new InMemoryRegistry(),
      registryKind: 'memory',
      keys: new InMemoryKeyStore(),
    });
    const xds = container.get<XdsBackend>(TOKENS.Xds);
    const telemed = container.get<TeleMedService>(TOKENS.TeleMed);
    const { metadata, document } = buildDocument(reading(120, 10));
    const bad = [
      [{ ...metadata, serviceStartTime: 'garbage', serviceStopTime: 'garbage' }, { systolic: 120, diastolic: 70 }, 'serviceStartTime'],
      [{ ...metadata, title: 'Patient 221122-1234' }, { systolic: 120, diastolic: 70 }, 'title'],
      [metadata, { systolic: Number.NaN, diastolic: 70 }, 'summary'],
    ] as const;
    for (const [m, summary, path] of bad) {
      await expect(xds.provideAndRegisterBuilt(m, document, { summary })).rejects.toMatchObject({ code: 'invalid_document', details: [expect.objectContaining({ path })] });
    }
    const ok = await telemed.processAndStore(reading(121, 3));
    expect((await telemed.getObservationsFor(PATIENT, lastDays(1, now))).map((o) => o.uniqueId)).toEqual([ok]);
    const old = await telemed.processAndStore(reading(122, 4, '010203-4321'));
    await expect(xds.correctBuilt(old, { ...metadata, serviceStartTime: 'x', serviceStopTime: 'x' }, document, { summary: { systolic: 1, diastolic: 1 } })).rejects.toMatchObject({ code: 'invalid_document' });
  });
});

describe('the options the library records are checked as over HTTP', () => {
  const cpr = '251248-1234';
  it('refuses free text with a CPR number, values of the wrong type and oversized ones, naming the option and not the value', async () => {
    const stored = await rts.telemed.processAndStore(reading(120, 5));
    const refused: [string, () => Promise<unknown>, string][] = [
      ['record correlationId', () => rts.telemed.record(reading(121, 6), { observationId: 'ok4', correlationId: cpr }), 'options.correlationId'],
      ['record huge correlationId', () => rts.telemed.record(reading(121, 6), { correlationId: 'a'.repeat(1 << 20) }), 'options.correlationId'],
      ['record object correlationId', () => rts.telemed.record(reading(121, 6), { correlationId: {} as never }), 'options.correlationId'],
      ['correct correlationId', () => rts.telemed.correct(stored, reading(122, 5), { correlationId: `corr-${cpr}` }), 'options.correlationId'],
      ['correct 10 digits', () => rts.telemed.correct(stored, reading(122, 5), { correlationId: 'c2512481234' }), 'options.correlationId'],
      ['erase by', () => rts.erasePatient(PATIENT, { by: `dpo ${cpr}` }), 'options.by'],
      ['erase by number', () => rts.erasePatient(PATIENT, { by: 42 as never }), 'options.by'],
      ['erase by empty', () => rts.erasePatient(PATIENT, { by: ' ' }), 'options.by'],
      ['erase by long', () => rts.erasePatient(PATIENT, { by: 'x'.repeat(201) }), 'options.by'],
      ['erase without options', () => rts.erasePatient(PATIENT, undefined as never), 'options.by'],
      ['erase ifUnknown', () => rts.erasePatient(PATIENT, { by: 'dpo', ifUnknown: 'yes' as never }), 'options.ifUnknown'],
      // The export's `by` is its audit entry's subject, kept in the hash-chained trail that no erasure reaches.
      ['export by', () => rts.exportPatient(PATIENT, { by: `dpo ${cpr}` }), 'options.by'],
      ['export by empty', () => rts.exportPatient(PATIENT, { by: '' }), 'options.by'],
      // One line, as a token's subject: the trail shows it.
      ['export by with a line break', () => rts.exportPatient(PATIENT, { by: 'jane\nadmin' }), 'options.by'],
      ['erase by with an override', () => rts.erasePatient(PATIENT, { by: 'dpo \u202enaj' }), 'options.by'],
      ['export without options', () => rts.exportPatient(PATIENT, undefined as never), 'options.by'],
      ['export correlationId', () => rts.exportPatient(PATIENT, { by: 'dpo', correlationId: cpr }), 'options.correlationId'],
      ['export ifUnknown', () => rts.exportPatient(PATIENT, { by: 'dpo', ifUnknown: 'erase' } as never), 'options'],
    ];
    for (const [what, call, path] of refused) {
      const error = await call().then(
        () => null,
        (e: unknown) => e,
      );
      expect([what, error]).toEqual([what, expect.objectContaining({ kind: 'validation', code: 'invalid_request', details: [expect.objectContaining({ path })] })]);
      expect((error as Error).message).not.toMatch(/251248|2512481234/);
    }
    // Nothing was recorded or erased by the refused calls.
    expect((await rts.telemed.getObservationsFor(PATIENT, lastDays(1, now))).map((o) => [o.uniqueId, o.systolic.value])).toEqual([[stored, 120]]);
  });

  it('names the option an unknown one is a typo of, and only a plain name', async () => {
    const message = (call: () => Promise<unknown>) => call().then(() => 'accepted', (e: Error) => e.message);
    expect(await message(() => rts.telemed.record(reading(121, 6), { corelationId: 'c-1' } as never))).toBe('options is not valid: options unknown option: corelationId (did you mean correlationId?)');
    expect(await message(() => rts.erasePatient(PATIENT, { by: 'dpo', ifUnkown: 'erase' } as never))).toContain('unknown option: ifUnkown (did you mean ifUnknown?)');
    expect(await message(() => rts.telemed.record(reading(121, 6), { colour: 'red' } as never))).toBe('options is not valid: options unknown option: colour');
    expect(await message(() => rts.telemed.record(reading(121, 6), { 'p-251248-1234': 1 } as never))).toBe('options is not valid: options unknown option: (a name not repeated here)');
  });

  it('takes what HTTP takes', async () => {
    const stored = await rts.telemed.record(reading(120, 5), { observationId: 'meter-7:0001', correlationId: 'req-0b7c1e2a' });
    await rts.telemed.correct(stored.uniqueId, reading(119, 5), { correctionId: 'fix-1', correlationId: 'req-2' });
    // A compact timestamp holds ten digits that read as yyyymmdd ssss, glued to others: no CPR number for a refusal.
    await rts.telemed.record(reading(118, 7), { observationId: 'meter-7:0002', correlationId: 'order-202612021030-17' });
    const erased = await rts.erasePatient(PATIENT, { by: 'dpo Jane Hansen', correlationId: 'ticket-77' });
    expect(erased.alreadyErased).toBe(false);
  });
});

describe('an observation with fields it does not have (a review copied the HTTP body into processAndStore)', () => {
  const body = { patientId: '251248-1234', systolic: 126, diastolic: 70, measuredAt: now.minus({ minutes: 3 }).toISO() };

  it('refuses observationId in the observation, saying where it goes, and stores nothing', async () => {
    for (const call of [() => rts.telemed.processAndStore({ ...body, observationId: 'abc' } as never), () => rts.telemed.record({ ...body, observationId: 'abc' } as never)]) {
      await expect(call()).rejects.toMatchObject({ kind: 'validation', code: 'invalid_observation', details: [{ path: 'observationId', message: expect.stringContaining('record(observation, { observationId })') }] });
    }
    expect(() => createTeleObservation({ ...body, observationId: 'abc' } as never, now)).toThrow(/observationId is no field of the observation/);
    await expect(rts.telemed.getObservationsFor(PATIENT, lastDays(1, now))).rejects.toMatchObject({ code: 'unknown_patient' });
  });

  it('refuses any other unknown field, naming it only when it reads as a name', async () => {
    await expect(rts.telemed.processAndStore({ ...body, note: 'after a walk' } as never)).rejects.toMatchObject({ code: 'invalid_observation', details: [{ path: 'note' }] });
    const odd = await rts.telemed.processAndStore({ ...body, '251248-1234': 1 } as never).catch((e: unknown) => e);
    expect(odd).toMatchObject({ code: 'invalid_observation', details: [{ path: 'observation' }] });
    expect(JSON.stringify(odd)).not.toContain('251248-1234"');
  });

  it('refuses options given to processAndStore, which takes the observation only; record takes them', async () => {
    await expect((rts.telemed.processAndStore as (o: unknown, options: unknown) => Promise<string>)(reading(126, 3), { observationId: 'x2' })).rejects.toMatchObject({ code: 'invalid_request', message: expect.stringContaining('use record(observation, options)') });
    const first = await rts.telemed.record(reading(126, 3), { observationId: 'x2' });
    const again = await rts.telemed.record(reading(126, 3), { observationId: 'x2' });
    expect(again.uniqueId).toBe(first.uniqueId);
    // The seed's one-argument call still works.
    expect(await rts.telemed.processAndStore(reading(127, 4))).toMatch(/^2\.25\./);
  });
});

describe("a reading's measuredAt through the library: HTTP's rule, not luxon's (an embedder's exploratory test)", () => {
  // Texts luxon reads and HTTP refuses: stored through the library, they moved a reading by days (+9999: four days
  // earlier; 24:00: the next day). HTTP answers the first five 400 invalid_request (the form), the +24:00 one 422
  // invalid_observation; the library refuses each as invalid_observation on measuredAt, and stores nothing.
  const AT = DateTime.fromISO('2026-12-01T00:00:00Z');
  const refused = [
    '2026-11-30T10:00:00+9999',
    '2026-11-30T10:00:00+2400',
    '2026-11-30T24:00:00+0000',
    '2026-11-30T23:30:00-2359',
    '2026-11-30T10:00:00+0545',
    '2026-W48-1T10:00:00Z',
    '2026-11-30T10Z',
    '+002026-11-30T10:00:00Z',
    '2026-11-30T10:00:00+24:00',
    '2026-11-30T10:00:00+99:99',
    '2026-11-30T24:00:00Z',
    `2026-11-30T10:00:00.${'1'.repeat(30)}Z`, // 51 characters: HTTP takes 40 at most
  ];
  const november = () => timeInterval(DateTime.fromISO('2026-11-20T00:00:00Z'), DateTime.fromISO('2026-12-05T00:00:00Z'));

  it('refuses what HTTP refuses, as invalid_observation on measuredAt, by createTeleObservation and for a hand-built reading alike', async () => {
    for (const measuredAt of refused) {
      const http = ObservationBody.safeParse({ patientId: '251248-1234', systolic: 120, diastolic: 80, measuredAt });
      const httpRefuses = !http.success || (() => { try { createTeleObservation({ ...http.data, measuredAt }, AT); return false; } catch { return true; } })();
      expect([measuredAt, httpRefuses]).toEqual([measuredAt, true]);
      const made = (() => { try { return createTeleObservation({ patientId: '251248-1234', systolic: 120, diastolic: 80, measuredAt }, AT); } catch (e) { return e; } })();
      expect([measuredAt, made]).toEqual([measuredAt, expect.objectContaining({ kind: 'validation', code: 'invalid_observation', details: [expect.objectContaining({ path: 'measuredAt' })] })]);
      const byHand = { patientId: PATIENT, systolic: { value: 120, unit: 'mmHg' }, diastolic: { value: 80, unit: 'mmHg' }, measuredAt } as const;
      await expect(rts.telemed.processAndStore(byHand)).rejects.toMatchObject({ kind: 'validation', code: 'invalid_observation', details: [{ path: 'measuredAt' }] });
    }
    await expect(rts.telemed.getObservationsFor(PATIENT, november())).rejects.toMatchObject({ code: 'unknown_patient' });
  });

  it('keeps the forms HTTP takes: Z, an offset with minutes, -00:00, +23:59, fractions, no seconds', async () => {
    const taken: [string, string][] = [
      ['2026-11-30T10:00:00Z', '2026-11-30T10:00:00Z'],
      ['2026-11-30T15:45:01+05:45', '2026-11-30T10:00:01Z'],
      ['2026-11-30T10:00:02-00:00', '2026-11-30T10:00:02Z'],
      ['2026-11-30T10:00:03+23:59', '2026-11-29T10:01:03Z'],
      ['2026-11-30T10:00:04.999999999Z', '2026-11-30T10:00:04Z'],
      ['2026-11-30T11:00:05.5+01:00', '2026-11-30T10:00:05Z'],
      ['2026-11-30T10:01Z', '2026-11-30T10:01:00Z'],
    ];
    for (const [measuredAt] of taken) {
      expect(ObservationBody.safeParse({ patientId: '251248-1234', systolic: 120, diastolic: 80, measuredAt }).success).toBe(true);
      await rts.telemed.processAndStore(createTeleObservation({ patientId: '251248-1234', systolic: 120, diastolic: 80, measuredAt }, AT));
    }
    const stored = (await rts.telemed.getObservationsFor(PATIENT, november())).map((o) => o.measuredAt);
    expect(stored).toEqual(taken.map(([, utc]) => utc).sort());
  });
});

describe("an embedder's luxon set to throw on invalid DateTimes (Settings.throwOnInvalid, as luxon's TypeScript guide suggests)", () => {
  afterEach(() => {
    Settings.throwOnInvalid = false;
  });

  it('still refuses a time that is not on the calendar as a ValidationError, without quoting the text', async () => {
    Settings.throwOnInvalid = true;
    const AT = DateTime.fromISO('2026-12-01T00:00:00Z');
    // In the form HTTP takes, but no such day or second: luxon's InvalidDateTimeError escaped, naming the text.
    for (const measuredAt of ['2026-02-30T10:00:00+01:00', '2026-11-30T10:00:60Z']) {
      const made = (() => { try { return createTeleObservation({ patientId: '251248-1234', systolic: 120, diastolic: 80, measuredAt }, AT); } catch (e) { return e; } })();
      expect([measuredAt, made]).toEqual([measuredAt, expect.objectContaining({ kind: 'validation', code: 'invalid_observation', details: [expect.objectContaining({ path: 'measuredAt' })] })]);
      expect((made as Error).message).not.toContain(measuredAt);
      const byHand = { patientId: PATIENT, systolic: { value: 120, unit: 'mmHg' }, diastolic: { value: 80, unit: 'mmHg' }, measuredAt } as const;
      await expect(rts.telemed.processAndStore(byHand)).rejects.toMatchObject({ kind: 'validation', code: 'invalid_observation' });
    }
    const { metadata, document } = buildDocument(reading(120, 10));
    const february30 = document.replace(/<effectiveTime value="\d{14}/, '<effectiveTime value="20260230100000');
    expect(february30).not.toBe(document);
    expect(() => parseHl7Observation(february30)).toThrow(expect.objectContaining({ kind: 'validation', code: 'invalid_document' }));
    await expect(rts.xds.provideAndRegisterDocument(metadata, february30)).rejects.toMatchObject({ kind: 'validation', code: 'invalid_document' });
  });
});

describe("after an erasure, calls on one of the patient's documents say patient_erased", () => {
  it('retrieveDocument, patientOf, correct and correctDocument answer patient_erased; an unknown id stays document_not_found', async () => {
    const stored = await rts.telemed.processAndStore(reading(120, 5));
    const other = await rts.telemed.processAndStore(reading(130, 5, '010203-4321'));
    await rts.erasePatient(PATIENT, { by: 'dpo' });
    const { metadata, document } = buildDocument(reading(121, 5));
    for (const call of [
      () => rts.xds.retrieveDocument(stored),
      () => rts.telemed.patientOf(stored),
      () => rts.telemed.correct(stored, reading(121, 5)),
      () => rts.xds.correctDocument(stored, metadata, document),
    ]) {
      await expect(call()).rejects.toMatchObject({ kind: 'not_found', code: 'patient_erased' });
    }
    await expect(rts.xds.retrieveDocument('2.25.1')).rejects.toMatchObject({ code: 'document_not_found' });
    expect(await rts.telemed.patientOf(other)).toBe('010203-4321');
  });
});

describe('a repeat of a reading corrected since names the current document, as over HTTP (a review of the library)', () => {
  it('record and correct repeated after later corrections carry currentUniqueId; a current one carries none', async () => {
    const first = await rts.telemed.record(reading(120, 5), { observationId: 'reading-1' });
    expect(first).toMatchObject({ created: true });
    expect(first).not.toHaveProperty('currentUniqueId');
    // A retry before any correction: the document is current.
    expect(await rts.telemed.record(reading(120, 5), { observationId: 'reading-1' })).not.toHaveProperty('currentUniqueId');
    const second = await rts.telemed.correct(first.uniqueId, reading(121, 5), { correctionId: 'fix-1' });
    expect(second).toMatchObject({ created: true });
    expect(second).not.toHaveProperty('currentUniqueId');
    const third = await rts.telemed.correct(second.uniqueId, reading(122, 5), { correctionId: 'fix-2' });
    // The upload retried after a lost answer: the replaced document, and where the reading is now (the chain's end).
    expect(await rts.telemed.record(reading(120, 5), { observationId: 'reading-1' })).toMatchObject({ uniqueId: first.uniqueId, created: false, currentUniqueId: third.uniqueId });
    // The first correction retried: its document, corrected again since.
    expect(await rts.telemed.correct(first.uniqueId, reading(121, 5), { correctionId: 'fix-1' })).toMatchObject({ uniqueId: second.uniqueId, created: false, currentUniqueId: third.uniqueId });
    // The second retried: current, nothing more.
    expect(await rts.telemed.correct(second.uniqueId, reading(122, 5), { correctionId: 'fix-2' })).not.toHaveProperty('currentUniqueId');
  });

  it('so do the XDS-level provideAndRegisterDocument and correctDocument (a second review of the library)', async () => {
    const built = buildDocument(reading(120, 5));
    const first = await rts.xds.provideAndRegisterDocument(built.metadata, built.document, { observationId: 'doc-1' });
    const fix1 = buildDocument(reading(121, 5));
    const second = await rts.xds.correctDocument(first.uniqueId, fix1.metadata, fix1.document, { correctionId: 'fix-1' });
    const fix2 = buildDocument(reading(122, 5));
    const third = await rts.xds.correctDocument(second.uniqueId, fix2.metadata, fix2.document, { correctionId: 'fix-2' });
    expect(await rts.xds.provideAndRegisterDocument(built.metadata, built.document, { observationId: 'doc-1' })).toMatchObject({ uniqueId: first.uniqueId, created: false, currentUniqueId: third.uniqueId });
    expect(await rts.xds.correctDocument(first.uniqueId, fix1.metadata, fix1.document, { correctionId: 'fix-1' })).toMatchObject({ uniqueId: second.uniqueId, created: false, currentUniqueId: third.uniqueId });
    expect(await rts.xds.correctDocument(second.uniqueId, fix2.metadata, fix2.document, { correctionId: 'fix-2' })).not.toHaveProperty('currentUniqueId');
  });
});

describe('repeating erasures after a restore, as a library user', () => {
  it('listErasures pages the recorded erasures; eraseByKey repeats them on another copy; each answer is a patient erased log line', async () => {
    const lines: Record<string, unknown>[] = [];
    const pino = (await import('pino')).default;
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const secret = Buffer.alloc(32, 7);
    const live = await openTeleMed({ inMemory: true, pseudonymSecret: secret, logger });
    const restored = await openTeleMed({ inMemory: true, pseudonymSecret: secret });
    try {
      for (const copy of [live, restored]) await copy.telemed.processAndStore(reading(120, 5));
      const first = await live.erasePatient(PATIENT, { by: 'dpo' });
      const again = await live.erasePatient(PATIENT, { by: 'dpo' });
      const stranger = await live.erasePatient(parseCpr('010203-4321'), { by: 'dpo', ifUnknown: 'erase' });
      expect(again.alreadyErased).toBe(true);
      // The repeat writes its line too (its first call may have been cut off before its own), with the time first recorded.
      expect(lines.filter((l) => l['msg'] === 'patient erased').map((l) => [l['patientKey'], l['erasedAt']])).toEqual([
        [first.patientKey, first.erasedAt],
        [first.patientKey, first.erasedAt],
        [stranger.patientKey, stranger.erasedAt],
      ]);
      expect(JSON.stringify(lines)).not.toMatch(/251248|010203/);

      const page1 = await live.listErasures({ limit: 1 });
      expect(page1.items).toEqual([{ kind: 'patient', patientKey: first.patientKey, erasedAt: first.erasedAt }]);
      const page2 = await live.listErasures({ after: page1.next!, limit: 1 });
      expect(page2.items).toEqual([{ kind: 'patient', patientKey: stranger.patientKey, erasedAt: stranger.erasedAt }]);
      expect((await live.listErasures()).items).toHaveLength(2);

      for (const item of (await live.listErasures()).items) if (item.kind === 'patient') await restored.eraseByKey(item.patientKey, { by: 'restore' });
      await expect(restored.telemed.getObservationsFor(PATIENT, lastDays(1, now))).rejects.toMatchObject({ code: 'patient_erased' });
      await expect(restored.telemed.processAndStore(reading(121, 1, '010203-4321'))).rejects.toMatchObject({ code: 'patient_erased' });
      await expect(restored.eraseByKey('251248-1234', { by: 'dpo' })).rejects.toMatchObject({ code: 'invalid_request', details: [expect.objectContaining({ path: 'patientKey' })] });
      await expect(restored.listErasures({ limit: 0 })).rejects.toMatchObject({ code: 'invalid_request' });
    } finally {
      await live.close();
      await restored.close();
    }
  });

  it('writes the patient erased line also through a logger at warn or error (it is the erasure record), and none through a silent one', async () => {
    const pino = (await import('pino')).default;
    for (const level of ['warn', 'error', 'fatal', 'silent'] as const) {
      const lines: Record<string, unknown>[] = [];
      const logger = pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
      const rts = await openTeleMed({ inMemory: true, logger });
      try {
        await rts.telemed.processAndStore(reading(120, 5));
        const erased = await rts.erasePatient(PATIENT, { by: 'dpo' });
        const recorded = lines.filter((l) => l['msg'] === 'patient erased').map((l) => [l['event'], l['patientKey'], l['erasedAt']]);
        expect({ level, recorded }).toEqual({ level, recorded: level === 'silent' ? [] : [['PatientErased', erased.patientKey, erased.erasedAt]] });
        // Only that line: the logger's level still holds for everything else.
        expect(lines.filter((l) => l['msg'] !== 'patient erased' && (l['level'] as number) < 40)).toEqual([]);
      } finally {
        await rts.close();
      }
    }
  });
});

describe("the library's arguments are checked as over HTTP (an embedder's exploratory test)", () => {
  it('erasePatient refuses what is no CPR number: nothing is recorded, and no digits reach the message', async () => {
    const stored = await rts.telemed.processAndStore(reading(126, 5));
    for (const bad of ['2512481234', 'hello', 2512481234, undefined]) {
      const call = rts.erasePatient(bad as never, { by: 'dpo', ifUnknown: 'erase' });
      await expect(call).rejects.toMatchObject({ kind: 'validation', code: 'invalid_patient_id' });
      const message = await call.catch((e: Error) => e.message);
      expect(message).not.toMatch(/2512481234|251248/);
    }
    expect((await rts.listErasures()).items).toEqual([]);
    expect((await rts.telemed.getObservationsFor(PATIENT, lastDays(1, now))).map((o) => o.uniqueId)).toEqual([stored]);
  });

  it("getObservationsFor refuses a CPR number born in the future as an upload does (invalid_patient_id), not as a patient without readings", async () => {
    const born2037 = parseCpr('010137-5234'); // serial 5, year 37: 2037
    expect(() => createTeleObservation({ patientId: born2037, systolic: 120, diastolic: 80, measuredAt: now.toISO() }, now)).toThrow(expect.objectContaining({ code: 'invalid_patient_id' }));
    await expect(rts.telemed.getObservationsFor(born2037, lastDays(7, now))).rejects.toMatchObject({ kind: 'validation', code: 'invalid_patient_id', details: [{ path: 'patientId', message: 'the birth date in this CPR number lies in the future' }] });
    // A valid number the hub holds nothing of is still unknown_patient.
    await expect(rts.telemed.getObservationsFor(parseCpr('010203-4321'), lastDays(7, now))).rejects.toMatchObject({ code: 'unknown_patient' });
  });

  it('a uniqueId that is no string and a position past the store are validation errors', async () => {
    for (const call of [() => rts.xds.retrieveDocument({} as never), () => rts.telemed.patientOf(7 as never), () => rts.telemed.correct(null as never, reading(120, 1))]) {
      await expect(call()).rejects.toMatchObject({ kind: 'validation', code: 'invalid_request' });
    }
    await expect(rts.listErasures({ after: 2n ** 63n })).rejects.toMatchObject({ kind: 'validation', code: 'invalid_request' });
    await expect(rts.listErasures({ after: 2n ** 63n - 1n })).resolves.toMatchObject({ items: [], next: null });
  });

  it('openTeleMed refuses options it would have ignored, with a ConfigError naming them', async () => {
    const refused: [unknown, RegExp][] = [
      [undefined, /an object/],
      [{ inMemory: true, dataDir: './nowhere' }, /takes no dataDir/],
      [{ dataDir: './nowhere', bogus: 1 }, /unknown option: bogus(;|$)/],
      [{ dataDr: './nowhere' }, /unknown option: dataDr \(did you mean dataDir\?\)/],
      [{ inMemmory: true }, /unknown option: inMemmory \(did you mean inMemory\?\)/],
      [{ dataDir: './nowhere', setings: {} }, /unknown option: setings \(did you mean settings\?\)/],
      [{ dataDir: './nowhere', settings: { rts_event_store: 'postgres' } }, /rts_event_store is not a setting/],
      [{ inMemory: true, pseudonymSecret: 12345 }, /pseudonymSecret: must be a Buffer/],
      [{ inMemory: true, logger: console }, /logger: must be a pino logger/],
      // Named by the option, not by the variable it becomes (RTS_PSEUDONYM_SECRET).
      [{ inMemory: true, pseudonymSecret: Buffer.alloc(4) }, /^invalid configuration:\n  pseudonymSecret: must be at least 16 bytes/],
      [{ inMemory: 'true' }, /^invalid configuration:\n  inMemory: must be true .* a boolean, not a string$/],
    ];
    for (const [options, problem] of refused) {
      await expect(openTeleMed(options as never)).rejects.toMatchObject({ name: 'ConfigError', code: 'invalid_configuration', message: expect.stringMatching(problem) });
    }
  });
});

describe('rebuildRegistry while calls read the registry (an embedder\'s exploratory test)', () => {
  it('no read sees the registry emptied and not yet filled again: queries, reads and corrections answer as before', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 50; i++) ids.push(await rts.telemed.processAndStore(reading(110 + (i % 40), 10 + i)));
    const queries = Array.from({ length: 5 }, () => rts.telemed.getObservationsFor(PATIENT, lastDays(1, now)).then((r) => r.length));
    const reads = ids.slice(0, 20).map((id) => rts.xds.retrieveDocument(id).then((d) => d.entry.status));
    const corrections = ids.slice(20, 30).map((id, i) => rts.telemed.correct(id, reading(150 + i, 20 + i)).then(() => 'corrected'));
    const rebuilt = rts.rebuildRegistry();
    const after = rebuilt.then(() => rts.telemed.getObservationsFor(PATIENT, lastDays(1, now)).then((r) => r.length));
    const outcome = async <T>(calls: Promise<T>[]) => (await Promise.allSettled(calls)).map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as { code?: string }).code));
    const [q, r, c, a] = await Promise.all([outcome(queries), outcome(reads), outcome(corrections), outcome([after])]);
    expect(q).toEqual([50, 50, 50, 50, 50]);
    expect(r).toEqual(Array(20).fill('Approved'));
    expect(c).toEqual(Array(10).fill('corrected'));
    expect(a).toEqual([50]);
  });
});
