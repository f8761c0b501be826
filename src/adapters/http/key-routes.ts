import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { SystemKeysService } from '../../application/security/system-keys-service';
import { SYSTEM_ID_PATTERN } from '../../domain/directory/connected-system';
import { offsetDateTime } from '../validation/offset-date-time';
import { parseInput } from './schemas';

/**
 * Message keys over HTTP (issue 5: message security).
 *
 *   registerKeyRoutes(app, { keys, hubJwks })
 *
 *   GET  /.well-known/jwks.json            -> 200 { keys: JWK[] }  the hub's public keys: its signing key (use 'sig')
 *                                             and its encryption keys (use 'enc', encrypt for the last valid one)
 *   GET  /systems/{id}/keys                -> 200 { items: [{ kid, use, alg, jwk, validFrom, retiresAt, registeredAt }] }
 *   POST /systems/{id}/keys { keys: JWK[], validFrom?, retiresAt? }
 *                                          -> 201 { registered: kid[], repeated: kid[] }   (rotation: add the new key)
 *   POST /systems/{id}/keys/{kid}/retire { at? } -> 200 { kid, retiresAt, changed }   (default at: now; a later date
 *                                             keeps the old key valid during the overlap)
 * POST /systems also takes `keys` (directory-routes.ts). Errors: 400 invalid_key, 404 system_not_found /
 * key_not_found, 409 key_retired / last_key / key_owned_by_other_party. A system registers and retires only its own
 * keys: a key (kid, i.e. key material) registered to another system or the hub is refused with 409
 * key_owned_by_other_party, and retiring another party's kid answers 404 key_not_found as for an unknown kid.
 */
export type KeyRouteDependencies = Readonly<{ keys: SystemKeysService; hubJwks: () => { keys: readonly object[] } }>;

export const SystemKeyParams = z.strictObject({ id: z.string().regex(SYSTEM_ID_PATTERN, 'a system id') });
export const KidParams = z.strictObject({ id: z.string().regex(SYSTEM_ID_PATTERN, 'a system id'), kid: z.string().regex(/^[A-Za-z0-9_-]{20,100}$/, 'a kid (RFC 7638 thumbprint)') });
export const KeysBody = z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(10), validFrom: offsetDateTime.optional(), retiresAt: offsetDateTime.optional() });
export const RetireBody = z.strictObject({ at: offsetDateTime.optional() });

export const registerKeyRoutes = (app: FastifyInstance, deps: KeyRouteDependencies): void => {
  app.get('/.well-known/jwks.json', async (_request, reply) => reply.header('cache-control', 'public, max-age=300').send(deps.hubJwks()));

  app.get('/systems/:id/keys', async (request) => {
    const { id } = parseInput(SystemKeyParams, request.params, 'path');
    return { items: await deps.keys.list(id) };
  });

  app.post('/systems/:id/keys', async (request, reply) => {
    const { id } = parseInput(SystemKeyParams, request.params, 'path');
    const body = parseInput(KeysBody, request.body, 'body');
    const result = await deps.keys.register(id, body.keys, {
      correlationId: request.id,
      ...(body.validFrom ? { validFrom: body.validFrom } : {}),
      ...(body.retiresAt ? { retiresAt: body.retiresAt } : {}),
    });
    return reply.code(result.registered.length > 0 ? 201 : 200).send(result);
  });

  app.post('/systems/:id/keys/:kid/retire', async (request) => {
    const { id, kid } = parseInput(KidParams, request.params, 'path');
    const body = parseInput(RetireBody, request.body ?? {}, 'body');
    return deps.keys.retire(id, kid, { correlationId: request.id, ...(body.at ? { at: body.at } : {}) });
  });
};
