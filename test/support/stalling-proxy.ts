import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy to a real server that can stop forwarding, as a firewall that drops packets after the handshake or a
 * stuck PgBouncer does: while stalled, the connections it holds stay open but carry nothing either way, and a new
 * connection is accepted and never answered. `resume()` forwards new connections again; the stalled ones stay dead
 * (as flows a firewall dropped do), so a client must give them up and reconnect by itself.
 */
export type StallingProxy = Readonly<{
  port: number;
  stall(): void;
  /**
   * The connections it holds stop carrying what the client sends; what the server sends still arrives (a server that
   * stopped reading its connection while its heartbeats still go out). New connections are forwarded both ways.
   */
  deafen(): void;
  resume(): void;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}>;

export const startStallingProxy = async (target: { host: string; port: number }): Promise<StallingProxy> => {
  let stalled = false;
  let accepted = 0;
  const live = new Set<{ client: Socket; upstream: Socket | null; dead: boolean; deaf: boolean }>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (stalled) return; // accepted, never answered
    const pair = { client, upstream: null as Socket | null, dead: false, deaf: false };
    const upstream = connect(target.port, target.host);
    pair.upstream = upstream;
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('data', (chunk) => pair.dead || pair.deaf || upstream.write(chunk));
    upstream.on('data', (chunk) => pair.dead || client.write(chunk));
    // A real end passes through only while forwarding; a stalled flow never says anything again.
    client.on('close', () => pair.dead || upstream.destroy());
    upstream.on('close', () => pair.dead || client.destroy());
    live.add(pair);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    stall: () => {
      stalled = true;
      for (const pair of live) pair.dead = true;
      live.clear();
    },
    deafen: () => {
      for (const pair of live) pair.deaf = true;
    },
    resume: () => {
      stalled = false;
    },
    accepted: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
