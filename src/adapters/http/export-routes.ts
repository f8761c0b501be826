import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { PATIENT_EXPORT_FORMAT_VERSION, type PatientDataExport, type PatientExport } from '../../application/patient-export';
import { parseCpr, type Cpr } from '../../domain/monitoring/cpr';
import { problem, sendProblem } from './problem';
import { type AnswerOf, PatientExportResponse } from './response-schemas';
import { isXml, parseInput } from './schemas';
import { PatientCpr } from './security-schemas';

/**
 * The patient's right of access (GDPR art. 15) over HTTP:
 *
 *   POST /patients/export { patient: "ddmmyy-ssss" } -> 200 application/json: everything the hub holds of the
 *        patient (PatientExport), with `format`, `formatVersion` and `exportedAt`
 *        404 unknown_patient: the hub holds nothing of them (as DELETE /patients/{cpr} answers); 422 invalid_patient_id
 *
 * The CPR number travels in the body, never in the URL (reverse proxies and browsers keep URLs), as for
 * POST /observations/search. Who may call it (the patient for themself, an operator) and the audit event
 * (`patient.export`, under the patient's key, stored before the answer goes: it is a POST) are security.ts's.
 */
export const PatientExportBody = z.strictObject({ patient: PatientCpr.describe('The patient (CPR number, ddmmyy-ssss)') });

export type PatientExportRouteDependencies = Readonly<{ exporter: Pick<PatientExport, 'exportPatientData'> }>;

export const PATIENT_EXPORT_FORMAT = 'telemed-rts/patient-export';

/** The export document: POST /patients/export's answer, and what the embedded library's exportPatient returns. */
export type PatientExportDocument = AnswerOf<typeof PatientExportResponse>;

export const patientExportDto = (cpr: Cpr, e: PatientDataExport): PatientExportDocument => ({
  format: PATIENT_EXPORT_FORMAT,
  formatVersion: PATIENT_EXPORT_FORMAT_VERSION,
  exportedAt: e.exportedAt,
  patient: { cpr, patientKey: e.patientKey },
  erasure: e.erasure,
  observations: e.observations,
  consultations: e.consultations,
  audit: { from: e.audit.from, to: e.audit.to, bounds: '[from,to)', count: e.audit.entries.length, entries: e.audit.entries },
});

export const registerPatientExportRoutes = (app: FastifyInstance, deps: PatientExportRouteDependencies): void => {
  app.post('/patients/export', async (request, reply) => {
    if (isXml(request)) return sendProblem(reply, problem('unsupported_media_type', 'send application/json'));
    const { patient } = parseInput(PatientExportBody, request.body, 'body');
    const cpr = parseCpr(patient, 'body.patient');
    return reply.header('content-type', 'application/json; charset=utf-8').send(patientExportDto(cpr, await deps.exporter.exportPatientData(cpr)));
  });
};
