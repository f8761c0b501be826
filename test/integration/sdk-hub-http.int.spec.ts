// The SDK's requests to the hub's HTTP API, against a real HTTP server on loopback: what they send and what they
// refuse to follow. (The URL rule and the keys' max age: test/unit/sdk-jwks-refresh.unit.spec.ts.)
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetchHubJwks, generatePartyKeys, publicJwks, registerSystem } from '../../src/sdk';

type Seen = { method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders };

describe("SDK: requests to the hub's HTTP API", () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  let answer: (url: string) => { status: number; headers?: Record<string, string>; body?: string };

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      req.on('end', () => {
        const a = answer(req.url ?? '');
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
        res.end(a.body ?? '');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  beforeEach(() => {
    seen.length = 0;
  });

  it('the JWKS is asked for past any cache, and its answer taken', async () => {
    const keys = await generatePartyKeys('hub');
    const jwks = { keys: [publicJwks(keys).signing, publicJwks(keys).encryption] };
    answer = () => ({ status: 200, headers: { 'cache-control': 'public, max-age=300' }, body: JSON.stringify(jwks) });
    await expect(fetchHubJwks(base)).resolves.toEqual(jwks);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(seen[0]!.headers['cache-control']).toBe('no-cache');
  });

  it('a redirect is not followed: not to plain http elsewhere, not anywhere', async () => {
    answer = (url) => (url === '/.well-known/jwks.json' ? { status: 302, headers: { location: `${base}/elsewhere` } } : { status: 200, body: '{"keys":[]}' });
    await expect(fetchHubJwks(base)).rejects.toThrow(/HTTP 302, a redirect to .*\/elsewhere; redirects are not followed/);
    const keys = await generatePartyKeys('city-a');
    answer = () => ({ status: 307, headers: { location: 'http://attacker.example/systems' } });
    await expect(registerSystem(base, { id: 'city-a', name: 'City A', area: 'North' }, keys, { authorization: 'Bearer operator-token' })).rejects.toThrow(/HTTP 307, a redirect to http:\/\/attacker\.example\/systems; redirects are not followed/);
    expect(seen.map((s) => s.url)).toEqual(['/.well-known/jwks.json', '/systems']); // nothing went to /elsewhere
  });

  it('an answer that is not a JWKS is refused with that said, and an error status named', async () => {
    answer = () => ({ status: 200, body: '{"kty":"EC"}' });
    await expect(fetchHubJwks(base)).rejects.toThrow(/not a JWKS/);
    answer = () => ({ status: 503, body: '{}' });
    await expect(fetchHubJwks(base)).rejects.toThrow(/HTTP 503/);
  });

  it('a hub that is not there: the error names the request', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(fetchHubJwks(`http://127.0.0.1:${port}`)).rejects.toThrow(/^GET \/\.well-known\/jwks\.json: .*ECONNREFUSED/);
  });
});
