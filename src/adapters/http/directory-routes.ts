import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { atMostAsSent } from '../validation/as-sent-length';
import { withoutCprNumber } from '../validation/no-cpr-text';
import { HTTP_DOC, shown } from '../validation/shown-text';
import { NOT_BLANK_PATTERN } from '../../domain/shared/text-limits';
import type { Principal } from '../../application/access/policy';
import type { DirectoryService } from '../../application/directory/directory-service';
import { MAX_PAGE_SIZE } from '../../application/directory/directory-service';
import type { ExpertView, SystemView } from '../../application/projections/directory-projection';
import { SYSTEM_ID_PATTERN } from '../../domain/directory/connected-system';
import { type AnswerOf, ExpertResponse, SystemResponse } from './response-schemas';
import { parseInput } from './schemas';

/**
 * The directory's HTTP read side and the operator's system registration.
 *
 *   registerDirectoryRoutes(app, { directory })   // call on the app (or inside app.register)
 *
 *   GET  /experts?specialty=&city=&language=&system=&limit=&cursor=  -> 200 { items: Expert[], nextCursor }
 *   GET  /experts/{id}         -> 200 Expert (retired ones too, status 'retired') | 404 expert_not_found
 *   GET  /systems              -> 200 { items: System[] }
 *   GET  /systems/{id}         -> 200 System (with join progress and its downlink queue's depth) | 404 system_not_found
 *   POST /systems {id,name,area} -> 201 System (Location: /systems/{id}); the same again -> 200; other
 *                                  details -> 409 system_already_registered
 *
 * Errors are thrown (ValidationError 'invalid_request' from zod, the service's RtsErrors) and become
 * problem+json in the app's error handler (server.ts: toProblem/sendProblem). Access control: a later issue.
 */
export type DirectoryRouteDependencies = Readonly<{
  directory: DirectoryService;
  /** Message security: the public JWKs given with POST /systems are registered here (key-routes.ts). */
  keys?: Readonly<{ register(systemId: string, jwks: readonly Record<string, unknown>[], options?: { correlationId?: string }): Promise<{ registered: string[]; repeated: string[] }> }>;
  /** The system's downlink queue as the broker counted it at the last reading, or null (hub-messaging.ts). */
  queueDepth?: (systemId: string) => AnswerOf<typeof SystemResponse>['downlinkQueueDepth'];
}>;

/**
 * Trimmed, then not empty: one with a character other than white space, as the OpenAPI document says it. At most `max`
 * characters as sent, white space around included, as the document's maxLength counts them (atMostAsSent).
 */
const notBlank = (max: number) => atMostAsSent(max).trim().min(1).meta({ pattern: NOT_BLANK_PATTERN });
const term = notBlank(100);
export const ExpertsQuery = z
  .strictObject({
    specialty: term.optional(),
    city: term.optional(),
    language: term.optional(),
    system: z.string().regex(SYSTEM_ID_PATTERN, 'a system id').optional().describe('Only experts of this home system'),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE_SIZE).optional(),
    cursor: z.string().max(300).optional().describe('nextCursor of the previous page; empty or left out: the first page'),
  });
export const ExpertParams = z.strictObject({ id: z.string().min(3).max(100) });
export const SystemParams = z.strictObject({ id: z.string().regex(SYSTEM_ID_PATTERN, 'a system id: 2-32 characters of a-z 0-9 -, starting with a letter or digit') });
export const SystemBody = z.strictObject({
  id: z.string().regex(SYSTEM_ID_PATTERN, 'a system id: 2-32 characters of a-z 0-9 -, starting with a letter or digit'),
  name: withoutCprNumber(shown(notBlank(200), 'clinicians and operators', HTTP_DOC)),
  area: withoutCprNumber(shown(notBlank(200), 'clinicians and operators', HTTP_DOC)),
  keys: z
    .array(z.record(z.string(), z.unknown()))
    .min(1)
    .max(10)
    .optional()
    .describe("The system's public message keys (JWK, kid = RFC 7638 thumbprint): one 'sig' (ES256/EdDSA) and one 'enc' (ECDH-ES+A256KW)"),
});

export const expertDto = (e: ExpertView): AnswerOf<typeof ExpertResponse> => ({
  id: e.expertId,
  homeSystemId: e.homeSystemId,
  localExpertId: e.localExpertId,
  status: e.status,
  revision: e.revision,
  profile: e.profile,
  registeredAt: e.registeredAt,
  updatedAt: e.updatedAt,
  retiredAt: e.retiredAt,
});

export const systemDto = (s: SystemView, queueDepth: AnswerOf<typeof SystemResponse>['downlinkQueueDepth'] = null): AnswerOf<typeof SystemResponse> => ({
  id: s.systemId,
  name: s.name,
  area: s.area,
  status: s.status,
  downlinkQueue: s.downlinkQueue,
  registeredAt: s.registeredAt,
  joinedAt: s.joinedAt,
  activeExperts: s.activeExperts,
  join: s.join && {
    expectedBatches: s.join.expectedBatches,
    batchesImported: s.join.batchesImported,
    expectedExperts: s.join.expectedExperts,
    expertsImported: s.join.expertsImported,
    /** Share of the announced batches imported, 0..100 (100 for a join without batches). */
    percent: s.join.expectedBatches === 0 ? 100 : Math.floor((s.join.batchesImported * 100) / s.join.expectedBatches),
    // A join that announced 5 experts and sent one batch of 3 ended joined at 100 % with nothing to show it.
    expertsMissing: s.join.batchesImported >= s.join.expectedBatches ? Math.max(0, s.join.expectedExperts - s.join.expertsImported) : null,
    startedAt: s.join.startedAt,
  },
  downlinkQueueDepth: queueDepth,
});

/**
 * Whether the caller may see a system's downlink queue depth: an operator (and a hub without access control) every
 * system's, a system or its clinicians their own only. Which other city is offline, and how far behind, is the
 * province's to know, not another city's; a patient has no use for it.
 */
export const mayReadQueueDepth = (principal: Pick<Principal, 'role' | 'systemId'> | undefined, systemId: string): boolean =>
  principal === undefined || principal.role === 'operator' || ((principal.role === 'system' || principal.role === 'clinician') && principal.systemId === systemId);

export const registerDirectoryRoutes = (app: FastifyInstance, deps: DirectoryRouteDependencies): void => {
  const { directory } = deps;
  const depthFor = (request: FastifyRequest, systemId: string) => (mayReadQueueDepth(request.principal, systemId) ? (deps.queueDepth?.(systemId) ?? null) : null);

  app.get('/experts', async (request) => {
    const q = parseInput(ExpertsQuery, request.query, 'query');
    const page = await directory.findExperts({ specialty: q.specialty, city: q.city, language: q.language, homeSystemId: q.system, limit: q.limit, cursor: q.cursor || undefined }); // cursor= (a client's empty nextCursor): the first page
    return { items: page.items.map(expertDto), nextCursor: page.nextCursor };
  });

  app.get('/experts/:id', async (request) => {
    const { id } = parseInput(ExpertParams, request.params, 'path');
    return expertDto(await directory.getExpert(id));
  });

  app.get('/systems', async (request) => ({ items: (await directory.listSystems()).map((s) => systemDto(s, depthFor(request, s.systemId))) }));

  app.get('/systems/:id', async (request) => {
    const { id } = parseInput(SystemParams, request.params, 'path');
    const system = await directory.getSystem(id);
    return systemDto(system, depthFor(request, system.systemId));
  });

  app.post('/systems', async (request, reply) => {
    const body = parseInput(SystemBody, request.body, 'body');
    const { system, created } = await directory.registerSystem({ systemId: body.id, name: body.name, area: body.area }, { correlationId: request.id });
    const keys = body.keys && deps.keys ? await deps.keys.register(system.systemId, body.keys, { correlationId: request.id }) : undefined;
    const dto = systemDto(system, depthFor(request, system.systemId));
    const answer = keys ? { ...dto, keys: [...keys.registered, ...keys.repeated] } : dto;
    return reply.code(created ? 201 : 200).header('location', `/systems/${system.systemId}`).send(answer);
  });
};
