// The connection cap's bookkeeping and log, on a stand-in server (the real one is in
// test/integration/http-connection-limit.int.spec.ts): open connections counted, refusals counted, and a flood of
// refusals logged as one warning, then one line per interval while it lasts, then one when it ended.
import { EventEmitter } from 'node:events';
import type { Server } from 'node:net';
import { limitConnections } from '../../src/adapters/http/connection-limit';
import { MetricsRegistry } from '../../src/adapters/metrics/registry';
import { metricValue } from '../support/metric-value';

const setup = (max?: number) => {
  const server = new EventEmitter() as EventEmitter & { maxConnections?: number };
  const lines: { level: 'warn' | 'info'; obj: Record<string, unknown>; msg: string }[] = [];
  const logger = { warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }), info: (obj: object, msg: string) => lines.push({ level: 'info', obj: obj as Record<string, unknown>, msg }) };
  const metrics = new MetricsRegistry();
  const limit = limitConnections(server as unknown as Server, { ...(max === undefined ? {} : { max }), logger, metrics, logEveryMs: 1000 });
  const accept = () => {
    const socket = new EventEmitter();
    server.emit('connection', socket);
    return { close: () => socket.emit('close') };
  };
  const gauge = (name: string) => metricValue(metrics, name);
  return { server, lines, limit, accept, gauge };
};

afterEach(() => jest.useRealTimers());

it("sets the server's cap and shows it, the open connections and the refusals on /metrics", () => {
  const { server, limit, accept, gauge } = setup(2);
  expect(server.maxConnections).toBe(2);
  expect([gauge('rts_http_connections_max'), gauge('rts_http_connections_open'), gauge('rts_http_connections_refused_total')]).toEqual([2, 0, 0]);
  const a = accept();
  accept();
  server.emit('drop', {});
  expect(limit.counts()).toEqual({ open: 2, refused: 1 });
  expect([gauge('rts_http_connections_open'), gauge('rts_http_connections_refused_total')]).toEqual([2, 1]);
  a.close();
  expect(gauge('rts_http_connections_open')).toBe(1);
});

it('without a cap leaves the server as Node has it, and still counts the open connections', () => {
  const { server, accept, gauge } = setup();
  expect(server.maxConnections).toBeUndefined();
  accept();
  expect(gauge('rts_http_connections_open')).toBe(1);
  expect(Number.isNaN(gauge('rts_http_connections_max'))).toBe(true);
});

it('logs a flood of refusals once, then once per interval with the count, then once when none came for an interval', () => {
  jest.useFakeTimers();
  const { server, lines, accept } = setup(1);
  accept();
  for (let i = 0; i < 500; i++) server.emit('drop', {});
  expect(lines).toEqual([{ level: 'warn', obj: { limit: 1, open: 1, refusedTotal: 1 }, msg: expect.stringMatching(/^HTTP connections refused: RTS_HTTP_MAX_CONNECTIONS are open/) }]);

  jest.advanceTimersByTime(1000);
  expect(lines.slice(1)).toEqual([{ level: 'warn', obj: { limit: 1, open: 1, refused: 499, refusedTotal: 500 }, msg: 'HTTP connections still refused: 499 in the last 1 s' }]);
  server.emit('drop', {});
  jest.advanceTimersByTime(1000);
  expect(lines.slice(2)).toEqual([{ level: 'warn', obj: { limit: 1, open: 1, refused: 1, refusedTotal: 501 }, msg: 'HTTP connections still refused: 1 in the last 1 s' }]);

  // Connections accepted and refused in turn at the cap do not make a line each.
  const b = accept();
  b.close();
  jest.advanceTimersByTime(1000);
  expect(lines.slice(3)).toEqual([{ level: 'info', obj: expect.objectContaining({ limit: 1, refusedTotal: 501 }), msg: 'HTTP connections: none refused for 1 s' }]);
  jest.advanceTimersByTime(10_000);
  expect(lines).toHaveLength(4);

  // A new flood: a new first line at once.
  server.emit('drop', {});
  expect(lines).toHaveLength(5);
  expect(lines[4]!.msg).toMatch(/^HTTP connections refused/);
  server.emit('close');
  jest.advanceTimersByTime(5000);
  expect(lines).toHaveLength(5);
});
