// GET /metrics: the hub's metrics in Prometheus text format (0.0.4), and the HTTP request counters behind it.
//
//   rts_http_requests_total{method, route, status}    route = the route PATTERN (/experts/:id), never the URL;
//                                                      requests that match no route count as route="unmatched"
//   rts_http_request_duration_seconds{method, route}  histogram
// plus whatever the rest of the hub put in the registry (AMQP connection state and failovers, uplink outcomes).
// No identifier of a patient, an expert, a system or a message ever becomes a label.
import type { FastifyInstance } from 'fastify';
import { MetricsRegistry } from '../metrics/registry';

export type MetricsRoutesDependencies = Readonly<{
  metrics: MetricsRegistry;
  /** Run before each render: what the gauges read may need an up-to-date look first (a failing store's write probe). */
  beforeRender?: () => Promise<void>;
}>;

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export const registerMetricsRoutes = (app: FastifyInstance, deps: MetricsRoutesDependencies): void => {
  const { metrics } = deps;
  const requests = metrics.counter('rts_http_requests_total', 'HTTP requests by method, route pattern and status', ['method', 'route', 'status']);
  const durations = metrics.histogram('rts_http_request_duration_seconds', 'HTTP request duration by method and route pattern', ['method', 'route'], [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  metrics.gauge('rts_up', 'The hub process is running').set({}, 1);

  app.addHook('onResponse', async (request, reply) => {
    const method = METHODS.has(request.method) ? request.method : 'OTHER';
    const route = request.routeOptions?.url ?? 'unmatched';
    requests.inc({ method, route, status: String(reply.statusCode) });
    durations.observe({ method, route }, reply.elapsedTime / 1000);
  });

  app.get('/metrics', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    reply.type(MetricsRegistry.contentType);
    await deps.beforeRender?.().catch(() => undefined);
    return metrics.render();
  });
};
