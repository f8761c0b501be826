import { z } from 'zod';
import { PROBLEM_TYPES } from './problem';
import { CorrectionBody, CorrectionResponse, ObservationBody, ObservationsResponse, StoredResponse } from './schemas';

/**
 * The OpenAPI 3.1 document, generated from the same zod schemas that validate requests, so the two cannot
 * drift apart.
 */
const schema = (s: z.ZodType) => z.toJSONSchema(s, { target: 'draft-2020-12', unrepresentable: 'any' });

const problemResponse = (description: string) => ({ description, content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } });

export const openApiDocument = () => ({
  openapi: '3.1.0',
  info: {
    title: 'telemed-rts',
    version: '0.1.0',
    description:
      'Regional telemedicine hub: home blood pressure readings stored as HL7 documents in an XDS registry/repository. ' +
      'Intervals are half-open [from, to) and compared at whole seconds. Errors are RFC 9457 problem details.',
  },
  paths: {
    '/observations': {
      post: {
        summary: 'Upload a blood pressure reading (processAndStore)',
        requestBody: { required: true, content: { 'application/json': { schema: schema(ObservationBody) } } },
        responses: {
          '201': { description: 'Stored; Location names the HL7 document', content: { 'application/json': { schema: schema(StoredResponse) } } },
          '200': { description: 'A repeat of an upload with the same observationId: nothing new stored', content: { 'application/json': { schema: schema(StoredResponse) } } },
          '400': problemResponse('Malformed JSON or wrong shape'),
          '409': problemResponse('observationId reused for a different reading'),
          '413': problemResponse('Body too large'),
          '422': problemResponse('Invalid CPR number or implausible values'),
        },
      },
    },
    '/patients/{patientId}/observations': {
      get: {
        summary: 'Readings of one patient in [from, to) (getObservationsFor)',
        parameters: [
          { name: 'patientId', in: 'path', required: true, schema: { type: 'string', example: '251248-1234' } },
          { name: 'from', in: 'query', required: false, schema: { type: 'string', format: 'date-time' }, description: 'inclusive; default to - 7 days' },
          { name: 'to', in: 'query', required: false, schema: { type: 'string', format: 'date-time' }, description: 'exclusive; default now' },
        ],
        responses: {
          '200': { description: 'Current readings, oldest first', content: { 'application/json': { schema: schema(ObservationsResponse) } } },
          '404': problemResponse('No document is registered for this patient'),
          '422': problemResponse('Invalid CPR number or interval (at most 366 days)'),
        },
      },
    },
    '/documents/{uniqueId}': {
      get: {
        summary: 'Retrieve an HL7 document from the repository',
        parameters: [{ name: 'uniqueId', in: 'path', required: true, schema: { type: 'string', example: '2.25.1234' } }],
        responses: {
          '200': { description: 'The HL7 document; X-Document-Status tells Approved or Deprecated', content: { 'application/xml': { schema: { type: 'string' } } } },
          '404': problemResponse('Unknown document'),
        },
      },
    },
    '/documents/{uniqueId}/corrections': {
      post: {
        summary: 'Correct a document (XDS RPLC): the new one replaces it in queries',
        parameters: [{ name: 'uniqueId', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: schema(CorrectionBody) }, 'application/xml': { schema: { type: 'string', description: 'a whole replacement HL7 document' } } },
        },
        responses: {
          '201': { description: 'Corrected', content: { 'application/json': { schema: schema(CorrectionResponse) } } },
          '200': { description: 'A repeat of the same correctionId', content: { 'application/json': { schema: schema(CorrectionResponse) } } },
          '404': problemResponse('Unknown document'),
          '409': problemResponse('Already replaced by another correction'),
          '422': problemResponse('Invalid values or another patient'),
        },
      },
    },
    '/health': { get: { summary: 'Liveness and store readiness', responses: { '200': { description: 'ok' }, '503': problemResponse('Store unavailable') } } },
    '/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.1' } } } },
  },
  components: {
    schemas: {
      Problem: {
        type: 'object',
        required: ['type', 'title', 'status', 'code'],
        properties: {
          type: { type: 'string', enum: Object.keys(PROBLEM_TYPES).map((c) => `/problems/${c}`) },
          title: { type: 'string' },
          status: { type: 'integer' },
          detail: { type: 'string' },
          instance: { type: 'string' },
          code: { type: 'string', enum: Object.keys(PROBLEM_TYPES) },
          errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
        },
      },
    },
  },
});
