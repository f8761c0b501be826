// A hub started while its broker is down (a host reboot where ActiveMQ comes up after the hub, a broker being
// restarted during a deploy) serves its HTTP API at once and starts consuming when the broker answers. Before, it
// waited 30 s for the broker without listening on HTTP, then exited: home monitoring (uploads, queries, the patient
// page) was down for as long as the regional broker was, although it needs only the store.
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { RtsClient } from '../../src/sdk';
import { startBroker, type TestBroker } from '../support/activemq';
import { settled } from '../support/children';
import { createNetns, deleteNetns, netnsSupport, spawnInNetns } from '../support/netns';
import { freePort, getJson, hubEnv, postJson, profile, registerSystem, startChildHub, tempDir, until, type ChildHub } from './hub-support';

jest.setTimeout(150_000);

const ROOT = resolve(__dirname, '..', '..');
const netns = netnsSupport();
if (!netns.ok) console.warn(`hub-broker-down-at-start: the discovery case skipped: needs root and ip netns (${netns.reason})`);

describe('a hub whose broker is down when it starts', () => {
  let hub: ChildHub | undefined;
  let broker: TestBroker | undefined;
  let client: RtsClient | undefined;
  const data = tempDir('rts-hub-broker-down-');

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await hub?.stop();
    await broker?.destroy();
    data.remove();
  });

  it('serves HTTP without it, then consumes once it is up; the wait is one log line, not one per attempt', async () => {
    const port = await freePort();
    const url = `amqp://127.0.0.1:${port}`;
    // Nothing listens on the port yet: the hub's every connection attempt is refused.
    hub = await startChildHub({ url } as TestBroker, data.dir);

    const health = await getJson(hub.url, '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'degraded', broker: 'disconnected' });
    // Home monitoring works without the broker.
    const upload = await postJson<{ uniqueId?: string }>(hub.url, '/observations', { observationId: 'down-1', patientId: '251248-1234', systolic: 126, diastolic: 70 });
    expect(upload.status).toBe(201);
    const week = await getJson(hub.url, '/patients/251248-1234/observations');
    expect(week.body.observations.map((o: { uniqueId: string }) => o.uniqueId)).toEqual([upload.body.uniqueId]);
    // So does the directory; only what needs the broker answers 503.
    await registerSystem(hub.url, 'late-city');
    const deadLetters = await getJson(hub.url, '/dead-letters');
    expect(deadLetters.status).toBe(503);
    expect(deadLetters.body.code).toBe('service_unavailable');

    // A few seconds of refused attempts (about one a second) ...
    await new Promise((r) => setTimeout(r, 3000));
    broker = await startBroker({ port });
    await until('connected', async () => (await getJson(hub!.url, '/health')).body.broker === 'connected', 60_000);

    // ... and the hub consumes: a system's join goes through.
    client = await RtsClient.connect({ systemId: 'late-city', url });
    await client.joinWithExperts([{ localExpertId: 'e1', ...profile(1) }]);
    await until('late-city joined', async () => (await getJson(hub!.url, '/systems/late-city')).body.status === 'joined', 60_000);
    expect((await getJson(hub.url, '/dead-letters')).status).toBe(200);
    // Nothing wrong any more: ok, not degraded.
    expect((await getJson(hub.url, '/health')).body).toMatchObject({ status: 'ok', broker: 'connected', uplink: 'consuming' });

    const log = hub.output();
    expect(log).toContain('the broker does not answer yet: the hub serves HTTP now and starts consuming when it does');
    expect(log.match(/"amqp disconnected"/g) ?? []).toHaveLength(1);
    expect(log).not.toContain('broker connection lost');
    // The refused /dead-letters request is a warning with its code, not an error with a stack.
    expect(log).toMatch(/"level":40[^\n]*"problem":"service_unavailable"[^\n]*"request refused: a part it needs is unavailable now"/);
    expect(log).not.toContain('"request failed"');
    // Connecting late is not a failover.
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(/^rts_amqp_connected\{role="hub"\} 1$/m);
    expect(metrics).not.toMatch(/^rts_amqp_failovers_total\{role="hub"\} [1-9]/m);
  });
});

// With multicast discovery and no broker announced yet, the connection has not even opened a socket: the uplink
// receiver must wait for the first broker, not be opened on nothing (that crashed the start). In a namespace of
// its own, so no multicast reaches the host's interfaces.
(netns.ok ? describe : describe.skip)('a hub with discovery and no broker announced', () => {
  it('listens, says so once, and stops cleanly on SIGTERM', async () => {
    const ns = `rts-bd${process.pid}`;
    const data = tempDir('rts-hub-nobroker-ns-');
    createNetns(ns);
    try {
      // Discovery alone: no static broker list beside it.
      const { RTS_BROKER_URL: _static, ...settings } = hubEnv({ url: 'amqp://unused' } as TestBroker, data.dir, { RTS_LOG_LEVEL: 'info' });
      const env = { ...process.env, ...settings, RTS_BROKER_DISCOVERY: 'multicast://239.255.2.3:6155?group=rts-nobody-here&interface=127.0.0.1', RTS_HTTP_PORT: '18099' };
      const child = spawnInNetns(ns, process.execPath, ['-r', join(ROOT, 'test', 'support', 'ts-register.js'), join(ROOT, 'src', 'bootstrap', 'main.ts')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      const exited = settled(child).then(({ code }) => code);
      await until('listening', async () => out.includes('"telemed-rts listening"') || child.exitCode !== null, 60_000);
      expect(child.exitCode).toBeNull();
      expect(out).toContain('the broker does not answer yet');
      const health = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', "fetch('http://127.0.0.1:18099/health').then(async (r) => console.log(r.status, await r.text()))"], { encoding: 'utf8', timeout: 20_000 });
      expect(health.stdout.trim()).toMatch(/^200 \{.*"broker":"disconnected"/);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('"telemed-rts stopped"');
    } finally {
      deleteNetns(ns);
      data.remove();
    }
  });
});
