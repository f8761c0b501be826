import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from 'pg';
import fc from 'fast-check';
import { DateTime } from 'luxon';
import { createTeleObservation, openTeleMed, parseCpr, timeInterval } from '../../src';

/**
 * The TeleMed library, on the embedded store and on PostgreSQL, against a model of what it promises (README "Embedding the core"):
 * random runs of uploads (with and without an observation id, repeated with the same or other values),
 * corrections (of current and of replaced documents, with and without a correction id, repeated), queries by
 * patient and interval, erasures, a registry rebuilt from the events, and the data directory closed and opened
 * again. After every step the answer or the error code is the model's; after every step but a query, each
 * patient's readings over the whole period are the model's current ones, in time order.
 */

const PATIENTS = ['251248-1234', '010203-2345', '150381-6613'] as const;
type Patient = 0 | 1 | 2;

type Step =
  | { kind: 'upload'; patient: Patient; systolic: number; gap: number; id: 'none' | 'new' | { reuse: number; same: boolean } }
  | { kind: 'correct'; target: number; systolic: number; id: 'none' | 'new' | 'again' | 'retry' }
  | { kind: 'query'; patient: Patient; from: number; to: number }
  | { kind: 'erase'; patient: Patient }
  | { kind: 'reopen' }
  | { kind: 'rebuild' };

const patientArb = fc.constantFrom<Patient>(0, 1, 2);
const systolicArb = fc.integer({ min: 100, max: 180 });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('upload' as const),
      patient: patientArb,
      systolic: systolicArb,
      gap: fc.integer({ min: 1, max: 600 }),
      id: fc.oneof(fc.constant('none' as const), fc.constant('new' as const), fc.record({ reuse: fc.nat(), same: fc.boolean() })),
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('correct' as const), target: fc.nat(), systolic: systolicArb, id: fc.constantFrom('none' as const, 'new' as const, 'again' as const, 'retry' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('query' as const), patient: patientArb, from: fc.nat(), to: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('erase' as const), patient: patientArb }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'rebuild' as const }) },
);

/** A document the library stored, as the model keeps it. */
type Doc = { uniqueId: string; patient: Patient; systolic: number; at: string; replacedBy: string | null; correctionIds: Map<string, string> };
type Answer = { uniqueId: string; created: boolean } | { error: string };

const connectionString = process.env['RTS_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';

/** Where a run's data lives: a fresh data directory, and on PostgreSQL a fresh schema dropped after the run. */
const profiles = [
  { name: 'embedded SQLite store', runs: 25, settings: (): Record<string, string> | undefined => undefined },
  {
    name: 'PostgreSQL store',
    runs: 10,
    settings: (schema: string): Record<string, string> | undefined => ({
      RTS_EVENT_STORE: 'postgres',
      RTS_POSTGRES_URL: connectionString,
      RTS_POSTGRES_SCHEMA: schema,
      RTS_PSEUDONYM_SECRET: 'ab'.repeat(32),
    }),
  },
];

describe.each(profiles)('the TeleMed library against a model (fast-check, $name)', (profile) => {
  const now = DateTime.utc().startOf('second');
  const earliest = now.minus({ days: 20 });
  let admin: Client;
  beforeAll(async () => {
    admin = new Client({ connectionString });
    await admin.connect();
  });
  afterAll(() => admin.end());

  const runs = Number(process.env['RTS_MODEL_RUNS'] ?? profile.runs);
  it(`uploads, corrections, queries, erasures, rebuilds and reopenings agree with the model (${runs} runs)`, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 4, maxLength: 20 }), async (steps) => {
        const dataDir = mkdtempSync(join(tmpdir(), 'rts-lib-model-'));
        const schema = `rts_lib_model_${process.pid}_${randomBytes(4).toString('hex')}`;
        const settings = profile.settings(schema);
        const open = () => openTeleMed(settings === undefined ? { dataDir } : { dataDir, settings });
        let rts = await open();
        try {
          const docs: Doc[] = []; // every document stored, in order
          const byId = new Map<string, Doc>();
          const observationIds = new Map<string, { patient: Patient; uniqueId: string; systolic: number; at: string }>();
          const erased = new Set<Patient>();
          let clock = earliest; // readings are taken at increasing times, so none share a second
          const nextTime = (gap: number): string => {
            clock = clock.plus({ seconds: gap });
            return clock.toISO({ suppressMilliseconds: true })!;
          };
          const reading = (patient: Patient, systolic: number, at: string) =>
            createTeleObservation({ patientId: PATIENTS[patient], systolic, diastolic: 70, measuredAt: at }, now);

          for (const [index, step] of steps.entries()) {
            const context = { index, step };
            if (step.kind === 'upload') {
              let observationId: string | undefined;
              let systolic = step.systolic;
              let at = nextTime(step.gap);
              let expected: Answer | 'new';
              const earlier = [...observationIds.entries()].filter(([, o]) => o.patient === step.patient);
              if (typeof step.id === 'object' && earlier.length > 0) {
                const [id, stored] = earlier[step.id.reuse % earlier.length]!;
                observationId = id;
                at = stored.at;
                systolic = step.id.same ? stored.systolic : stored.systolic === 180 ? 179 : stored.systolic + 1;
                expected = erased.has(step.patient) ? { error: 'patient_erased' } : step.id.same ? { uniqueId: stored.uniqueId, created: false } : { error: 'observation_id_reused' };
              } else {
                observationId = step.id === 'none' ? undefined : `obs-${randomUUID()}`;
                expected = erased.has(step.patient) ? { error: 'patient_erased' } : 'new';
              }
              const answer = await attempt(() => rts.telemed.record(reading(step.patient, systolic, at), observationId === undefined ? {} : { observationId }));
              if (expected === 'new') {
                expect({ ...context, created: 'created' in answer && answer.created }).toEqual({ ...context, created: true });
                const uniqueId = (answer as { uniqueId: string }).uniqueId;
                expect(byId.has(uniqueId)).toBe(false);
                const doc: Doc = { uniqueId, patient: step.patient, systolic, at, replacedBy: null, correctionIds: new Map() };
                docs.push(doc);
                byId.set(uniqueId, doc);
                if (observationId !== undefined) observationIds.set(observationId, { patient: step.patient, uniqueId, systolic, at });
              } else {
                expect({ ...context, answer }).toEqual({ ...context, answer: expected });
              }
            } else if (step.kind === 'correct') {
              // 'again' repeats a correction made with a correction id, 'retry' one made without (the same values and
              // time as the document that replaced the target); either is a plain correction where there is none.
              const pool = step.id === 'again' ? docs.filter((d) => d.correctionIds.size > 0) : step.id === 'retry' ? docs.filter((d) => d.replacedBy !== null) : [];
              const target = (pool.length > 0 ? pool : docs)[step.target % (pool.length > 0 ? pool.length : docs.length)];
              if (target === undefined) continue;
              const at = nextTime(1);
              const lastCorrectionId = [...target.correctionIds.keys()].pop();
              const correctionId = step.id === 'new' ? `cor-${randomUUID()}` : step.id === 'again' ? lastCorrectionId : undefined;
              const again = step.id === 'again' && correctionId !== undefined ? byId.get(target.correctionIds.get(correctionId)!)! : undefined;
              const retried = step.id === 'retry' && target.replacedBy !== null ? byId.get(target.replacedBy)! : undefined;
              const systolic = again?.systolic ?? retried?.systolic ?? step.systolic;
              const when = again?.at ?? retried?.at ?? at;
              const answer = await attempt(() =>
                rts.telemed.correct(target.uniqueId, reading(target.patient, systolic, when), correctionId === undefined ? {} : { correctionId }),
              );
              let expected: Answer | 'new';
              if (erased.has(target.patient)) expected = { error: 'patient_erased' };
              else if (again !== undefined) expected = { uniqueId: again.uniqueId, created: false };
              else if (target.replacedBy !== null) {
                const successor = byId.get(target.replacedBy)!;
                const sameAsSuccessor = successor.systolic === systolic && successor.at === when;
                expected = sameAsSuccessor ? { uniqueId: successor.uniqueId, created: false } : { error: 'document_deprecated' };
              } else expected = 'new';
              if (expected === 'new') {
                expect({ ...context, created: 'created' in answer && answer.created }).toEqual({ ...context, created: true });
                const uniqueId = (answer as { uniqueId: string }).uniqueId;
                const doc: Doc = { uniqueId, patient: target.patient, systolic, at: when, replacedBy: null, correctionIds: new Map() };
                docs.push(doc);
                byId.set(uniqueId, doc);
                target.replacedBy = uniqueId;
                if (correctionId !== undefined) target.correctionIds.set(correctionId, uniqueId);
              } else {
                expect({ ...context, answer }).toEqual({ ...context, answer: expected });
              }
            } else if (step.kind === 'query') {
              const times = [earliest, ...docs.map((d) => DateTime.fromISO(d.at, { zone: 'utc' })), clock.plus({ seconds: 1 })];
              const [a, b] = [times[step.from % times.length]!, times[step.to % times.length]!];
              if (a.equals(b)) continue; // an empty interval is refused (from == to), as decided long ago
              const [from, to] = a < b ? [a, b] : [b, a];
              const answer = await attempt(async () => (await rts.telemed.getObservationsFor(parseCpr(PATIENTS[step.patient]), timeInterval(from, to))).map(shape));
              const expected = erased.has(step.patient)
                ? { error: 'patient_erased' }
                : !docs.some((d) => d.patient === step.patient)
                  ? { error: 'unknown_patient' }
                  : current(docs, step.patient).filter((d) => DateTime.fromISO(d.at) >= from && DateTime.fromISO(d.at) < to).map(docShape);
              expect({ ...context, answer }).toEqual({ ...context, answer: expected });
              continue;
            } else if (step.kind === 'erase') {
              const answer = await attempt(async () => (await rts.erasePatient(parseCpr(PATIENTS[step.patient]), { by: 'model test', ifUnknown: 'erase' })).alreadyErased);
              expect({ ...context, answer }).toEqual({ ...context, answer: erased.has(step.patient) });
              erased.add(step.patient);
            } else if (step.kind === 'reopen') {
              await rts.close();
              rts = await open();
            } else {
              await rts.rebuildRegistry();
            }
            // Each patient's readings over the whole period: the model's current documents, in time order (a patient
            // with no document at all is unknown_patient, an erased one patient_erased).
            for (const patient of [0, 1, 2] as const) {
              const all = await attempt(async () => (await rts.telemed.getObservationsFor(parseCpr(PATIENTS[patient]), timeInterval(earliest, clock.plus({ seconds: 1 })))).map(shape));
              const expected = erased.has(patient) ? { error: 'patient_erased' } : docs.some((d) => d.patient === patient) ? current(docs, patient).map(docShape) : { error: 'unknown_patient' };
              expect({ ...context, patient, all }).toEqual({ ...context, patient, all: expected });
            }
          }
        } finally {
          await rts.close();
          rmSync(dataDir, { recursive: true, force: true });
          if (settings !== undefined) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        }
      }),
      { numRuns: runs },
    );
  }, 300_000);
});

function current(docs: readonly Doc[], patient: Patient): Doc[] {
  return docs.filter((d) => d.patient === patient && d.replacedBy === null).sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
}

function shape(o: { uniqueId: string; systolic: { value: number }; measuredAt: string }): object {
  return { uniqueId: o.uniqueId, systolic: o.systolic.value, at: Date.parse(o.measuredAt) };
}

function docShape(d: Doc): object {
  return { uniqueId: d.uniqueId, systolic: d.systolic, at: Date.parse(d.at) };
}

/** The call's answer, or the code of the RtsError it threw (anything else fails the test). */
async function attempt<T>(call: () => Promise<T>): Promise<T | { uniqueId: string; created: boolean } | { error: string }> {
  try {
    const value = await call();
    if (value !== null && typeof value === 'object' && 'uniqueId' in value && 'created' in value) {
      const { uniqueId, created } = value as { uniqueId: string; created: boolean };
      return { uniqueId, created };
    }
    return value;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code !== 'string') throw error;
    return { error: code };
  }
}
