'use strict';
/**
 * The HTTP floor (run by bench/ingest.js as a child process, not on its own): the project's fastify, logger off,
 * one route POST /observations that parses the JSON body as the hub's does and answers 201 with an answer of the
 * hub's size, doing nothing else: no auth, no validation, no store. What a request costs a Node.js thread on this
 * machine before the hub does any work, measured with the same load generator and bodies as the hub.
 *
 *   RTS_HTTP_PORT=<port> node bench/http-floor-server.js
 */
const fastify = require('fastify');

const app = fastify({ logger: false, bodyLimit: 16 * 1024 });
let n = 0;
app.get('/health', async () => ({ status: 'ok' }));
app.post('/observations', async (request, reply) => {
  const body = request.body;
  if (typeof body !== 'object' || body === null) return reply.code(400).send({ error: 'not an object' });
  n++;
  // The hub's answer: 201, a Location header, and this shape.
  const uniqueId = `2.25.${String(n).padStart(39, '0')}`;
  const document = `/documents/${uniqueId}`;
  return reply.code(201).header('location', document).send({ uniqueId, observationId: body.observationId ?? null, measuredAt: body.measuredAt, document });
});
app.listen({ port: Number(process.env.RTS_HTTP_PORT), host: '127.0.0.1' }).catch((error) => {
  console.error(error);
  process.exit(1);
});
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
