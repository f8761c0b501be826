import type { FastifyInstance } from 'fastify';

/**
 * Routes kept for existing clients although their URL carries a CPR number, which reverse proxies and load balancers
 * write to their access logs and browsers keep in their histories (the hub's own log has the route pattern only).
 * Each has a successor that takes the number in a JSON body. The OpenAPI document marks them
 * `deprecated: true` (openapi.ts) and every answer of theirs, refusals included, carries
 *
 *   Deprecation: @1796169600                           RFC 9745: a structured-field date (the draft's `true` is gone)
 *   Link: </erasures>; rel="successor-version", </openapi.json>; rel="deprecation"; type="application/json"
 *
 * both from this one table, so the document and the headers cannot disagree. No Sunset: no removal date is decided.
 */
export type Deprecation = Readonly<{
  /** The route to use instead, as 'METHOD /path' (a route of this hub, with the same answers). */
  successor: string;
  /** When the route was deprecated. */
  since: Date;
}>;

/** The day POST /erasures and POST /audit/search were introduced. */
const BODY_FORMS_SINCE = new Date('2026-12-02T00:00:00Z');

export const DEPRECATED_ROUTES: Readonly<Record<string, Deprecation>> = {
  'DELETE /patients/:patientId': { successor: 'POST /erasures', since: BODY_FORMS_SINCE },
  'GET /audit': { successor: 'POST /audit/search', since: BODY_FORMS_SINCE },
};

/** The Deprecation field's value: `@` and the Unix time in seconds (RFC 9745, section 2.1; RFC 9651 sf-date). */
export const deprecationHeader = (d: Deprecation): string => `@${Math.floor(d.since.getTime() / 1000)}`;

/**
 * The Link field's value: the successor's path (relative to the hub's root, as the documents' successor-version
 * links are) and the API description that says what changed (RFC 9745's `deprecation` relation).
 */
export const deprecationLink = (d: Deprecation): string => `<${d.successor.split(' ')[1]}>; rel="successor-version", </openapi.json>; rel="deprecation"; type="application/json"`;

/**
 * Adds both fields to every answer of a deprecated route, whoever answers it (the route, or a refusal of the access
 * hooks: a client learns of the deprecation also from its 401). A HEAD is the GET it stands for.
 */
export const installDeprecationHeaders = (app: FastifyInstance): void => {
  app.addHook('onSend', async (request, reply) => {
    const route = request.routeOptions?.url;
    if (route === undefined) return;
    const deprecation = DEPRECATED_ROUTES[`${request.method === 'HEAD' ? 'GET' : request.method} ${route}`];
    // A 405 from the route's pattern is another resource's answer (DELETE /patients/export), not the deprecated one's.
    if (!deprecation || reply.statusCode === 405) return;
    reply.header('deprecation', deprecationHeader(deprecation)).header('link', deprecationLink(deprecation));
  });
};
