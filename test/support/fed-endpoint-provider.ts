import type { AmqpEndpoint } from '../../src/adapters/amqp/connection';
import type { EndpointChange, EndpointProvider } from '../../src/adapters/amqp/endpoint-set';

/** An endpoint provider the test feeds: `add` and `remove` announce a broker as discovery would, without multicast. */
export class FedEndpointProvider implements EndpointProvider {
  live: AmqpEndpoint[] = [];
  private listeners: Array<(change: EndpointChange) => void> = [];
  current() {
    return this.live;
  }
  subscribe(listener: (change: EndpointChange) => void) {
    this.listeners.push(listener);
    return () => void this.listeners.splice(this.listeners.indexOf(listener), 1);
  }
  add(endpoint: AmqpEndpoint) {
    this.live = [...this.live, endpoint];
    for (const l of [...this.listeners]) l({ kind: 'added', endpoint });
  }
  remove(endpoint: AmqpEndpoint) {
    this.live = this.live.filter((x) => x.port !== endpoint.port);
    for (const l of [...this.listeners]) l({ kind: 'removed', endpoint });
  }
}
