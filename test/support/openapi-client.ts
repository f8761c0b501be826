import { request } from 'node:http';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { holdsCprNumber } from '../../src/domain/monitoring/cpr-like';
import { REFUSES_CPR_NUMBER } from '../../src/adapters/validation/no-cpr-text';

/**
 * A hospital's generated HTTP client, as a test sees it: every answer held to the served OpenAPI document's own JSON
 * Schemas with ajv (draft 2020-12, strict, formats checked, unknown formats an error), not to the zod schemas the
 * document is generated from. `call` records what the document and the hub disagree on in `mismatches` (one line
 * per place) and each operation and status answered in `answered` ('POST /observations 201'). Used by
 * openapi-client.int.spec.ts (one embedded hub, no broker) and openapi-client-broker.int.spec.ts (ActiveMQ: the
 * dead letter routes and what only a connected hub answers).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the served document, read as JSON
export const openApiClient = (doc: any, baseUrl: string) => {
  // Strict: an unknown keyword or format in the document is an error, not ignored.
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  // The document's one extension keyword: a text the hub refuses with a CPR number in it. A client that honours it
  // refuses what the hub refuses; one that does not (strict ajv without this) would fail on the unknown keyword.
  ajv.addKeyword({ keyword: REFUSES_CPR_NUMBER, type: 'string', schemaType: 'boolean', validate: (refuses: boolean, text: string) => !refuses || !holdsCprNumber(text) });
  /** The document's own refs (#/components/schemas/X) resolved in one registered schema ('openapi.json#/$defs/X'). */
  const refsToDefs = <T>(node: T): T => JSON.parse(JSON.stringify(node).replace(/"#\/components\/schemas\//g, '"openapi.json#/$defs/')) as T;
  ajv.addSchema({ $id: 'openapi.json', $defs: refsToDefs(doc.components.schemas) });
  const compiled = new Map<string, ValidateFunction>();
  const validatorOf = (schema: object): ValidateFunction => {
    const key = JSON.stringify(schema);
    let v = compiled.get(key);
    if (!v) compiled.set(key, (v = ajv.compile(refsToDefs(schema))));
    return v;
  };

  /** 'text/plain; version=0.0.4; charset=utf-8' -> ['text/plain', {version: '0.0.4', charset: 'utf-8'}] */
  const mediaType = (value: string): [string, Record<string, string>] => {
    const [essence = '', ...params] = value.split(';').map((p) => p.trim());
    return [essence.toLowerCase(), Object.fromEntries(params.map((p) => p.split('=').map((s) => s.trim().toLowerCase()) as [string, string]))];
  };
  /** Answer headers a client acts on: each one the hub sends must be described on that answer. */
  const MEANINGFUL_HEADERS = ['location', 'etag', 'retry-after', 'link', 'deprecation', 'x-document-status', 'www-authenticate', 'allow'];

  type Schema = Readonly<{
    $ref?: string;
    type?: string | string[];
    format?: string;
    properties?: Record<string, Schema>;
    additionalProperties?: boolean | Schema;
    items?: Schema;
    allOf?: Schema[];
    anyOf?: Schema[];
    oneOf?: Schema[];
  }>;
  const resolve = (schema: Schema): Schema => (schema.$ref ? resolve(doc.components.schemas[schema.$ref.split('/').pop()!]) : schema);
  /** The schemas that apply to `value` where `schema` is: itself, its allOf, and the anyOf/oneOf branches it matches. */
  const applicable = (schema: Schema, value: unknown): Schema[] => {
    const s = resolve(schema);
    const branches = [...(s.anyOf ?? []), ...(s.oneOf ?? [])].filter((b) => validatorOf(b)(value));
    return [s, ...[...(s.allOf ?? []), ...branches].flatMap((b) => applicable(b, value))];
  };
  const INSTANT = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/;
  /**
   * What a schema that `value` passes still leaves out for a generated client: a member the hub sends that no schema
   * names (answers' objects are open, so ajv lets it through), and an instant not described as format date-time (a
   * client would type it as a plain string). A map (additionalProperties given), an object of no properties or a schema of no type is not looked into.
   */
  const looseness = (schema: Schema, value: unknown, at: string, out: Set<string>): void => {
    const schemas = applicable(schema, value);
    if (schemas.every((s) => s.type === undefined && !s.properties && !s.items)) return;
    if (typeof value === 'string' && INSTANT.test(value) && !schemas.some((s) => s.format === 'date-time')) out.add(`${at}: an instant without format date-time`);
    if (Array.isArray(value)) {
      const items = schemas.flatMap((s) => (s.items ? [s.items] : []));
      value.forEach((v) => items.forEach((item) => looseness(item, v, `${at}[]`, out)));
    } else if (value !== null && typeof value === 'object') {
      if (!schemas.some((s) => s.properties) || schemas.some((s) => s.additionalProperties !== undefined && s.additionalProperties !== false)) return;
      for (const [key, member] of Object.entries(value)) {
        const described = schemas.flatMap((s) => (s.properties?.[key] ? [s.properties[key]] : []));
        if (described.length === 0) out.add(`${at}.${key}: sent, not described`);
        for (const d of described) looseness(d, member, `${at}.${key}`, out);
      }
    }
  };

  /** What the document and the hub disagree on, over every call: one line each (array indexes left out, so once per place). */
  const mismatches = new Set<string>();
  /** 'POST /observations 201': each operation and status answered and checked. */
  const answered = new Set<string>();

  type Call = Readonly<{ token?: string; body?: unknown; raw?: string; contentType?: string }>;
  type Answer = Readonly<{ status: number; body: any; headers: Headers }>; // eslint-disable-line @typescript-eslint/no-explicit-any -- answers read field by field

  /**
   * Call an operation (`route` as the document's 'METHOD /path/{param}') at `url`, and hold its answer to the document:
   * the status is listed, the Content-Type is the listed one, the body validates against its schema, each listed header
   * is there and valid, and each header a client acts on is listed.
   */
  const call = async (route: string, url: string, options: Call = {}): Promise<Answer> => {
    const answer = await checked(route, await send(route, url, options));
    if (options.body !== undefined) requestChecked(route, options.body, answer);
    queryChecked(route, url, answer);
    return answer;
  };
  /** Each query parameter of a request the hub took (2xx) is declared, and its value one its schema takes. */
  const queryChecked = (route: string, url: string, answer: Answer): void => {
    if (answer.status >= 300) return;
    const [method = '', path = ''] = route.split(' ');
    const declared = doc.paths[path][method.toLowerCase()].parameters as { in: string; name: string; schema: { type?: string } }[];
    for (const [name, value] of new URL(url, baseUrl).searchParams) {
      const parameter = declared.find((p) => p.in === 'query' && p.name === name);
      if (!parameter) {
        mismatches.add(`${route} ${answer.status}: query parameter ${name} taken, not declared`);
        continue;
      }
      const typed = parameter.schema.type === 'integer' || parameter.schema.type === 'number' ? Number(value) : value;
      const validate = validatorOf(parameter.schema);
      if (!validate(typed)) mismatches.add(`${route} ${answer.status}: query parameter ${name}=${value} taken, its schema refuses it: ${ajv.errorsText(validate.errors)}`);
    }
  };
  /**
   * A JSON body the hub took (2xx) is one the document's request schema takes, and one the hub refused as shaped wrong
   * (400 invalid_request naming a body field) is one it refuses: a client validating its requests against the
   * document neither holds back a request the hub takes nor sends one it refuses.
   */
  const requestChecked = (route: string, body: unknown, answer: Answer): void => {
    const [method = '', path = ''] = route.split(' ');
    const schema = doc.paths[path][method.toLowerCase()].requestBody?.content?.['application/json']?.schema;
    if (!schema) return;
    const validate = validatorOf(schema);
    const valid = validate(body);
    if (answer.status < 300 && !valid) mismatches.add(`${route} ${answer.status}: the body taken breaks the request schema: ${ajv.errorsText(validate.errors, { separator: '; ' })}`);
    const bodyRefused = answer.status === 400 && answer.body?.code === 'invalid_request' && (answer.body.errors ?? []).some((e: { path: string }) => e.path.startsWith('body'));
    if (bodyRefused && valid) mismatches.add(`${route} 400: the request schema takes a body the hub refuses (${answer.body.detail})`);
  };
  const send = (route: string, url: string, options: Call = {}): Promise<Response> => {
    const body = options.raw ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
    return fetch(`${baseUrl}${url}`, {
      method: route.split(' ')[0],
      headers: {
        ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        ...(body !== undefined ? { 'content-type': options.contentType ?? 'application/json' } : {}),
      },
      ...(body !== undefined ? { body } : {}),
    });
  };
  /** A request fetch will not send (an Expect header, headers over Node's limit), over node:http, as a Response. */
  const sendRaw = (route: string, url: string, headers: Record<string, string>): Promise<Response> =>
    new Promise((resolve, reject) => {
      const { hostname, port } = new URL(baseUrl);
      const req = request({ host: hostname, port, method: route.split(' ')[0], path: url, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const answerHeaders = new Headers();
          for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) answerHeaders.set(name, String(value));
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: answerHeaders }));
        });
      });
      req.on('error', reject);
      req.end();
    });
  const checked = async (route: string, res: Response): Promise<Answer> => {
    const [method = '', path = ''] = route.split(' ');
    const op = doc.paths[path]?.[method.toLowerCase()];
    if (!op) throw new Error(`${route} is not in the document`);
    const text = await res.text();
    const at = `${route} ${res.status}`;
    answered.add(at);
    const response = op.responses[String(res.status)];
    if (!response) {
      mismatches.add(`${at}: status not listed (${text.slice(0, 120)})`);
      return { status: res.status, body: text, headers: res.headers };
    }
    const [essence, params] = mediaType(res.headers.get('content-type') ?? '');
    const listed = Object.entries((response.content ?? {}) as Record<string, { schema: object }>).find(([key]) => {
      const [e, p] = mediaType(key);
      return e === essence && Object.entries(p).every(([k, v]) => params[k] === v);
    });
    let parsed: unknown = text;
    if (!listed) {
      if (response.content || text !== '') mismatches.add(`${at}: Content-Type ${res.headers.get('content-type')} not listed (${Object.keys(response.content ?? {}).join(', ') || 'no content'})`);
    } else {
      if (essence.endsWith('json')) parsed = JSON.parse(text);
      const validate = validatorOf(listed[1].schema);
      if (!validate(parsed)) mismatches.add(`${at}: body breaks its schema: ${ajv.errorsText(validate.errors, { separator: '; ' })}`);
      else looseness(listed[1].schema, parsed, at, mismatches);
    }
    const described = Object.fromEntries(Object.entries((response.headers ?? {}) as Record<string, { schema: object; required?: boolean }>).map(([k, v]) => [k.toLowerCase(), v]));
    for (const [name, header] of Object.entries(described)) {
      const value = res.headers.get(name);
      if (value === null) {
        if (header.required) mismatches.add(`${at}: required header ${name} missing`);
        continue;
      }
      const schema = header.schema as { type?: string };
      const typed = schema.type === 'integer' && /^\d+$/.test(value) ? Number(value) : value;
      const validate = validatorOf(header.schema);
      if (!validate(typed)) mismatches.add(`${at}: header ${name}: ${value} breaks its schema: ${ajv.errorsText(validate.errors)}`);
    }
    for (const name of MEANINGFUL_HEADERS) if (res.headers.has(name) && !(name in described)) mismatches.add(`${at}: header ${name} sent, not described`);
    return { status: res.status, body: parsed, headers: res.headers };
  };

  /** A token from the development login (POST /auth/dev-login, itself checked). */
  const login = async (claims: Record<string, string>): Promise<string> => {
    const res = await call('POST /auth/dev-login', '/auth/dev-login', { body: claims });
    if (res.status !== 200) throw new Error(`dev-login ${JSON.stringify(claims)}: HTTP ${res.status}`);
    return res.body.token;
  };

  return { ajv, validatorOf, call, send, sendRaw, checked, login, mismatches, answered };
};
export type OpenApiClient = ReturnType<typeof openApiClient>;
