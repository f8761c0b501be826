import pino from 'pino';
import { logConsultationErasure, logErasure } from '../../src/adapters/backup/erasure-log-line';

/**
 * The `consultation content erased` line is a record `rts erasures apply --from <log>` repeats after a restore, as
 * the `patient erased` line is: written at every level but silent (a hub at warn wrote none, through request.log).
 */
describe('the consultation content erased log line', () => {
  const capture = (level: string) => {
    const lines: Record<string, unknown>[] = [];
    return { lines, logger: pino({ level }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) };
  };
  const result = { consultationId: 'a1b2c3d4-0000-4000-8000-00000000c0de', erasedAt: '2026-12-02T10:00:00.000Z', alreadyErased: false };

  it('is written at info although the logger is at warn, with the id and time only', () => {
    const { lines, logger } = capture('warn');
    logConsultationErasure(logger, result);
    expect(lines).toEqual([expect.objectContaining({ level: 30, msg: 'consultation content erased', event: 'ConsultationContentErased', consultationId: result.consultationId, erasedAt: result.erasedAt })]);
  });

  it('is written for a repeat too (its first call may have been cut off before its line), not by a silent logger', () => {
    const warn = capture('warn');
    logConsultationErasure(warn.logger, { ...result, alreadyErased: true });
    expect(warn.lines).toEqual([expect.objectContaining({ msg: 'consultation content erased', consultationId: result.consultationId, erasedAt: result.erasedAt })]);
    const silent = capture('silent');
    logConsultationErasure(silent.logger, result);
    expect(silent.lines).toEqual([]);
  });

  it("a patient's line is written for a repeat too", () => {
    const { lines, logger } = capture('warn');
    const patient = { patientKey: `p${'ab'.repeat(16)}`, erasedAt: '2026-12-02T10:00:00Z', alreadyErased: true, known: true, consultationsWithTextsLeftInEvents: [] };
    logErasure(logger, patient);
    expect(lines).toEqual([expect.objectContaining({ level: 30, msg: 'patient erased', patientKey: patient.patientKey, erasedAt: patient.erasedAt })]);
  });
});
