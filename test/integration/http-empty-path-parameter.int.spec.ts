jest.mock('jose', () => {
  const nodeModule = (process as unknown as { getBuiltinModule(id: string): typeof import('node:module') }).getBuiltinModule('node:module');
  return nodeModule.createRequire(__filename)('jose') as unknown;
});
import pino from 'pino';
import { OPERATIONS } from '../../src/adapters/http/openapi';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';
import { tempDataDir } from '../support/hub-process';

/**
 * A path whose parameter is empty (`/documents/`, `/patients//observations`, `/consultations/`) names no resource:
 * 404 not_found, as a path the hub does not serve (README, Errors), with or without credentials, and whatever the
 * route would have said of an empty value (it answered 400 invalid_request, 403 or 422). Every parameterised route of
 * the OpenAPI document, each of its parameters emptied in turn.
 */
const data = tempDataDir('rts-empty-path-parameter-');
let hub: RunningHub;
let operator = '';

beforeAll(async () => {
  const config = loadConfig({ RTS_DATA_DIR: data.dir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_LOG_LEVEL: 'silent', RTS_AUTH_DEV_LOGIN: 'on' });
  hub = await startHub(config, pino({ level: 'silent' }));
  const login = await fetch(`${hub.url}/auth/dev-login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ role: 'operator', sub: 'op' }) });
  operator = ((await login.json()) as { token: string }).token;
});

afterAll(async () => {
  await hub?.stop();
  data.remove();
});

describe('a path whose parameter is empty names no resource', () => {
  /** Each parameterised route with one of its parameters empty, the others given. */
  const emptied = Object.keys(OPERATIONS).flatMap((key) => {
    const [method = '', pattern = ''] = key.split(' ');
    const names = [...pattern.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
    return names.map((empty) => [method, pattern.replace(/:([A-Za-z0-9_]+)/g, (_, name: string) => (name === empty ? '' : name === 'kid' ? 'k'.repeat(43) : 'xian'))] as const);
  });

  it('covers every parameterised route', () => {
    expect(emptied.map(([m, p]) => `${m} ${p}`)).toEqual(expect.arrayContaining(['GET /documents/', 'GET /patients//observations', 'GET /consultations/', `POST /systems//keys/${'k'.repeat(43)}/retire`]));
    expect(emptied.length).toBeGreaterThan(20);
  });

  it.each([['authenticated'], ['anonymous']])('answers 404 not_found, %s, as a path the hub does not serve', async (who) => {
    const answers: string[] = [];
    for (const [method, path] of emptied) {
      const res = await fetch(`${hub.url}${path}`, { method, headers: who === 'authenticated' ? { authorization: `Bearer ${operator}` } : {} });
      const body = (await res.json()) as { code?: string };
      answers.push(`${method} ${path} ${res.status} ${body.code}`);
    }
    expect(answers).toEqual(emptied.map(([method, path]) => `${method} ${path} 404 not_found`));
  });
});
