import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { REFUSES_CPR_NUMBER } from '../../src/adapters/validation/no-cpr-text';
import { holdsCprNumber } from '../../src/domain/monitoring/cpr-like';
import { buildAsyncApiDocument } from '../../src/sdk/asyncapi';

/**
 * The message contract as a city system in another language reads it: docs/asyncapi.yaml's own JSON Schemas (from
 * buildAsyncApiDocument, which asyncapi.unit.spec.ts keeps equal to the committed file), checked with ajv (draft-07,
 * strict, formats checked), not the zod schemas the document is generated from. Used by asyncapi-client.int.spec.ts
 * (plain JSON bodies) and asyncapi-client-jose.int.spec.ts (the default: JWE bodies, opened first).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document, read as JSON
export const asyncApiDocument: any = buildAsyncApiDocument();
const doc = asyncApiDocument;
const ajv = new Ajv({ strict: true, allErrors: true });
addFormats(ajv);
ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
ajv.addKeyword({ keyword: REFUSES_CPR_NUMBER, type: 'string', schemaType: 'boolean', validate: (refuses: boolean, text: string) => !refuses || !holdsCprNumber(text) });
ajv.addSchema({ $id: 'asyncapi', definitions: doc.components.schemas });
const local = (schema: unknown): object => JSON.parse(JSON.stringify(schema).replace(/"#\/components\/schemas\//g, '"asyncapi#/definitions/')) as object;

type Message = { name: string; headers: object; payload: object };
/** The document's message for `type` on a channel (consultation.report is a message on both). */
export const messageOf = (channel: 'uplink' | 'downlink', type: string): Message | undefined => {
  const refs = Object.values(doc.channels[channel].messages as Record<string, { $ref: string }>);
  return refs.map((r) => doc.components.messages[r.$ref.split('/').pop()!] as Message).find((m) => m.name === type);
};
/**
 * The schema with every object that names its properties closed (additionalProperties: false): the downlink's
 * objects are open, so a receiver's validator lets an undescribed member through, and a generated model drops it.
 * The document has no allOf, so closing each object on its own is exact.
 */
const closed = (schema: unknown): unknown => {
  if (Array.isArray(schema)) return schema.map(closed);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, closed(ps)])) : closed(v)]));
  return 'properties' in out && !('additionalProperties' in out) ? { ...out, additionalProperties: false } : out;
};
const compiled = new Map<object, { headers: ValidateFunction; payload: ValidateFunction; described: ValidateFunction }>();
const validatorsOf = (m: Message) => {
  let v = compiled.get(m);
  if (!v) compiled.set(m, (v = { headers: ajv.compile(local(m.headers)), payload: ajv.compile(local(m.payload)), described: ajv.compile(closed(local(m.payload)) as object) }));
  return v;
};
/**
 * What the document says is wrong with a message on `channel`, its body (the envelope's JSON) and its application
 * properties (empty: it takes it). A member the document does not describe counts as wrong too.
 */
export const refusals = (channel: 'uplink' | 'downlink', body: string, properties: Record<string, unknown>): string[] => {
  let envelope: { type?: unknown };
  try {
    envelope = JSON.parse(body) as { type?: unknown };
  } catch {
    return ['body: not JSON'];
  }
  const m = messageOf(channel, String(envelope.type));
  if (!m) return [`type ${String(envelope.type)}: no such message on ${channel}`];
  const { headers, payload, described } = validatorsOf(m);
  if (!payload(envelope)) return [`${m.name} payload: ${ajv.errorsText(payload.errors, { separator: '; ' })}`];
  const undescribed = described(envelope) ? [] : (described.errors ?? []).filter((e) => e.keyword === 'additionalProperties').map((e) => `${m.name} payload${e.instancePath}: member ${String(e.params.additionalProperty)} sent, not described`);
  return [...undescribed, ...(headers(properties) ? [] : [`${m.name} headers: ${ajv.errorsText(headers.errors, { separator: '; ' })}`])];
};

/** The names of the message types on `channel`, as the document lists them. */
export const messageTypes = (channel: 'uplink' | 'downlink'): string[] =>
  Object.values(doc.channels[channel].messages as Record<string, { $ref: string }>).map((r) => doc.components.messages[r.$ref.split('/').pop()!].name as string);
