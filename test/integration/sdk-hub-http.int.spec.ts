// The SDK's requests to the hub's HTTP API, against a real HTTP server on loopback: what they send and what they
// refuse to follow. (The URL rule and the keys' max age: test/unit/sdk-jwks-refresh.unit.spec.ts.)
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HUB_ANSWER_MAX_BYTES, fetchHubJwks, generatePartyKeys, publicJwks, registerSystem } from '../../src/sdk';

type Seen = { method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders };

describe("SDK: requests to the hub's HTTP API", () => {
  let server: Server;
  let base: string;
  const seen: Seen[] = [];
  let answer: (url: string) => { status: number; headers?: Record<string, string>; body?: string; endless?: boolean };
  let endlessClosed: Promise<number> = Promise.resolve(0);

  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      req.resume();
      req.on('end', () => {
        const a = answer(req.url ?? '');
        res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
        if (!a.endless) return res.end(a.body ?? '');
        // An answer without end: 64 KiB at a time for as long as the client reads; how much it took, once it stops.
        let sent = 0;
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        endlessClosed = new Promise((resolve) => res.on('close', () => resolve(sent)));
        const more = (): void => {
          while (!res.destroyed && sent < 1024 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
          if (!res.destroyed) res.once('drain', more);
        };
        res.write('{"keys":[');
        more();
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

  it('an answer larger than HUB_ANSWER_MAX_BYTES is refused before it is all read; one that is not JSON is said to be', async () => {
    answer = () => ({ status: 200, endless: true });
    await expect(fetchHubJwks(base)).rejects.toThrow(`GET /.well-known/jwks.json: the answer is larger than ${HUB_ANSWER_MAX_BYTES} bytes`);
    // The client stopped reading: the server wrote about the limit (plus what the sockets buffer), not a gigabyte.
    expect(await endlessClosed).toBeLessThan(32 * HUB_ANSWER_MAX_BYTES);
    answer = () => ({ status: 200, headers: { 'content-length': String(HUB_ANSWER_MAX_BYTES + 1) }, body: ' '.repeat(HUB_ANSWER_MAX_BYTES + 1) });
    await expect(fetchHubJwks(base)).rejects.toThrow(/the answer is larger than/);
    const keys = await generatePartyKeys('city-a');
    answer = () => ({ status: 201, endless: true });
    await expect(registerSystem(base, { id: 'city-a', name: 'City A', area: 'North' }, keys)).rejects.toThrow(`POST /systems: the answer is larger than ${HUB_ANSWER_MAX_BYTES} bytes`);
    answer = () => ({ status: 200, headers: { 'content-type': 'text/html' }, body: '<html>proxy error</html>' });
    await expect(fetchHubJwks(base)).rejects.toThrow('GET /.well-known/jwks.json: HTTP 200, the answer is not JSON');
  });

  it('a hub that is not there: the error names the request', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(fetchHubJwks(`http://127.0.0.1:${port}`)).rejects.toThrow(/^GET \/\.well-known\/jwks\.json: .*ECONNREFUSED/);
  });
});
