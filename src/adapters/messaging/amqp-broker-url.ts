import type { AmqpEndpoint } from '../amqp/connection';

/**
 * RTS_BROKER_URL as the hub reads it: one AMQP address or a static list, tried in order by AmqpConnection.
 *
 *   amqp://127.0.0.1:5673
 *   amqp://a:5673,amqp://b:5673
 *   failover:(amqp://a:5673,amqp://b:5673)          (ActiveMQ's style; options after `)?` are ignored)
 *   amqps://broker.example.org:5671                  (TLS; amqp+ssl:// is the same, as ActiveMQ writes it)
 *
 * Only `amqp://host[:port]` (port 5672 when left out) and `amqps://host[:port]` (5671); credentials in the URL are
 * refused so they never end up in a log line: use RTS_BROKER_USERNAME / RTS_BROKER_PASSWORD.
 * Throws an Error whose message says what is wrong, without echoing the value.
 */
export const DEFAULT_AMQP_PORT = 5672;
export const DEFAULT_AMQPS_PORT = 5671;

export const parseBrokerUrl = (value: string): AmqpEndpoint[] => {
  let text = value.trim();
  const failover = /^failover:\((.*)\)(\?.*)?$/i.exec(text);
  if (failover) text = failover[1]!;
  else if (/^failover:/i.test(text)) throw new Error('a failover list is written failover:(amqp://host:port,amqp://host:port)');
  const parts = text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  if (parts.length === 0) throw new Error('no broker address; e.g. amqp://127.0.0.1:5673');
  return parts.map((part, index) => {
    const which = parts.length > 1 ? ` (address ${index + 1})` : '';
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      throw new Error(`not a URL${which}; e.g. amqp://127.0.0.1:5673`);
    }
    const tls = url.protocol === 'amqps:' || url.protocol === 'amqp+ssl:';
    if (url.protocol !== 'amqp:' && !tls) throw new Error(`only amqp:// and amqps:// addresses are supported${which}`);
    if (url.username || url.password) throw new Error(`no credentials in the URL${which}: use RTS_BROKER_USERNAME and RTS_BROKER_PASSWORD`);
    if (!url.hostname) throw new Error(`a host is required${which}`);
    if ((url.pathname && url.pathname !== '/') || url.hash) throw new Error(`an address is amqp://host:port, without a path${which}`);
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port === '' ? (tls ? DEFAULT_AMQPS_PORT : DEFAULT_AMQP_PORT) : Number(url.port);
    return tls ? { host, port, tls } : { host, port };
  });
};

/** For logs: host:port list (never credentials, which the URL cannot hold anyway). */
export const describeEndpoints = (endpoints: readonly AmqpEndpoint[]): string => endpoints.map((e) => `${e.tls ? 'amqps://' : ''}${e.host}:${e.port}`).join(',');
