// Text over the HTTP API as legacy city systems send it: Chinese and Danish names, a byte order mark, GBK bytes
// where UTF-8 belongs, lone surrogates. The running hub (embedded SQLite store) either takes a body whole or answers
// problem+json and stores nothing; it never stores a mangled text.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/bootstrap/config';
import { startHub, type RunningHub } from '../../src/bootstrap/main';

jest.setTimeout(60_000);

let dataDir = '';
let hub: RunningHub;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'telemed-http-text-'));
  hub = await startHub(loadConfig({ RTS_DATA_DIR: dataDir, RTS_HTTP_HOST: '127.0.0.1', RTS_HTTP_PORT: '0', RTS_AUTH: 'off', RTS_LOG_LEVEL: 'silent' }), pino({ level: 'silent' }));
});
afterAll(async () => {
  await hub?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const post = async (path: string, body: Buffer | string, contentType = 'application/json') => {
  const response = await fetch(`${hub.url}${path}`, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: response.status, contentType: response.headers.get('content-type'), body: (await response.json()) as Record<string, unknown> };
};
const systemStatus = async (id: string) => (await fetch(`${hub.url}/systems/${id}`)).status;

it('takes Chinese, Danish and emoji names as sent, and a body with a byte order mark', async () => {
  const name = '成都市远程医疗中心 · Århus 🏥';
  expect(await post('/systems', JSON.stringify({ id: 'chengdu', name, area: '四川省' }))).toMatchObject({ status: 201, body: { name, area: '四川省' } });
  const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ id: 'mianyang', name: '绵阳市', area: '四川省' }), 'utf8')]);
  expect(await post('/systems', withBom)).toMatchObject({ status: 201, body: { name: '绵阳市' } });
});

it('refuses a body in GBK (bytes that are not UTF-8) with 400 malformed_json, and stores nothing', async () => {
  // {"id":"city-gbk","name":"成都市","area":"x"} as a legacy system's GBK writes it: 成都市 = B3C9 B6BC CAD0.
  const gbk = Buffer.concat([Buffer.from('{"id":"city-gbk","name":"', 'ascii'), Buffer.from('b3c9b6bccad0', 'hex'), Buffer.from('","area":"x"}', 'ascii')]);
  expect(new TextDecoder('gbk').decode(gbk)).toContain('成都市');
  const refused = await post('/systems', gbk);
  expect(refused).toMatchObject({ status: 400, contentType: expect.stringMatching(/^application\/problem\+json/), body: { code: 'malformed_json', detail: expect.stringContaining('not UTF-8') } });
  expect(await systemStatus('city-gbk')).toBe(404);
  // The same bytes as an XML body (a correction) are refused alike, before any parse.
  const xml = Buffer.concat([Buffer.from('<?xml version="1.0" encoding="GBK"?><x>', 'ascii'), Buffer.from('b3c9b6bc', 'hex'), Buffer.from('</x>', 'ascii')]);
  expect(await post('/documents/2.25.1/corrections', xml, 'application/xml')).toMatchObject({ status: 400, body: { code: 'invalid_request', detail: expect.stringContaining('not UTF-8') } });
});

it('refuses a lone surrogate escape (valid JSON, no character) with 400 naming the field, and stores nothing', async () => {
  const refused = await post('/systems', '{"id":"city-sur","name":"bad\\ud800name","area":"x"}');
  expect(refused).toMatchObject({ status: 400, body: { code: 'invalid_request', errors: [{ path: 'body.name', message: 'holds a lone surrogate' }] } });
  expect(await systemStatus('city-sur')).toBe(404);
  // A pair written as two escapes is one character (U+1F3E5), and is taken.
  expect(await post('/systems', '{"id":"city-pair","name":"\\ud83c\\udfe5","area":"x"}')).toMatchObject({ status: 201, body: { name: '🏥' } });
});

it('a re-registration with the name decomposed (NFD) is the same registration (200), not a conflict', async () => {
  const body = { id: 'aarhus', name: 'Århus Sønderå Klinik', area: 'Østjylland' };
  expect((await post('/systems', JSON.stringify(body))).status).toBe(201);
  const nfd = { ...body, name: body.name.normalize('NFD'), area: body.area.normalize('NFD') };
  expect(await post('/systems', JSON.stringify(nfd))).toMatchObject({ status: 200, body: { name: body.name, area: body.area } });
});

it('refuses a name, area or consultation text that shows nothing (zero-width, BOM, soft hyphen, ...) with 400 naming the field, and stores nothing', async () => {
  const invisible = expect.stringMatching(/^must show a visible character: it holds only white space, format or other invisible characters/);
  for (const [body, path] of [
    [{ id: 'city-zw', name: '\u200B\u2060', area: 'x' }, 'body.name'],
    [{ id: 'city-zw', name: 'Chengdu', area: ' \uFEFF\u00AD ' }, 'body.area'],
  ] as const) {
    const refused = await post('/systems', JSON.stringify(body));
    expect(refused).toMatchObject({ status: 400, contentType: expect.stringMatching(/^application\/problem\+json/), body: { code: 'invalid_request', errors: [{ path, message: invisible }] } });
  }
  expect(await systemStatus('city-zw')).toBe(404);
  const consultation = { applicantSystemId: 'chengdu', applicantClinician: '\u200E\u200B', candidates: ['mianyang:li'], clinicalQuestion: 'Chest pain?', summary: '', attachments: [] };
  expect(await post('/consultations', JSON.stringify(consultation))).toMatchObject({ status: 400, body: { code: 'invalid_request', errors: [{ path: 'body.applicantClinician', message: invisible }] } });
  expect(await post('/consultations', JSON.stringify({ ...consultation, applicantClinician: 'dr-wang', clinicalQuestion: '\u3164' }))).toMatchObject({ status: 400, body: { code: 'invalid_request', errors: [{ path: 'body.clinicalQuestion', message: invisible }] } });
  // A visible name with a zero-width character inside is taken.
  expect(await post('/systems', JSON.stringify({ id: 'city-zw', name: '成都\u200B市', area: 'x' }))).toMatchObject({ status: 201, body: { name: '成都\u200B市' } });
});
