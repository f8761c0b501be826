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
  /**
   * What the client sends is kept back until `release()` (a broker slow to read its connection); what the server
   * sends still arrives.
   */
  hold(): void;
  /** Forwards what `hold()` kept back, in order, and forwards again. */
  release(): void;
  /** Ends the connections it holds, as a broker restart or a reset does; new connections are forwarded as before. */
  drop(): void;
  /**
   * The server gone (stopped, or its host unreachable with the reset a firewall sends): the connections it holds are
   * reset, and each new one is reset as it arrives, until `resume()`.
   */
  refuse(): void;
  resume(): void;
  /** Connections accepted so far. */
  accepted(): number;
  /** Bytes forwarded from clients to the server so far. */
  forwarded(): number;
  close(): Promise<void>;
}>;

export const startStallingProxy = async (target: { host: string; port: number }): Promise<StallingProxy> => {
  let stalled = false;
  let refusing = false;
  let accepted = 0;
  let forwarded = 0;
  const forward = (upstream: Socket, chunk: Buffer) => {
    forwarded += chunk.length;
    upstream.write(chunk);
  };
  const live = new Set<{ client: Socket; upstream: Socket | null; dead: boolean; deaf: boolean; held: Buffer[] | null }>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    accepted++;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (refusing) return void client.resetAndDestroy();
    if (stalled) return; // accepted, never answered
    const pair = { client, upstream: null as Socket | null, dead: false, deaf: false, held: null as Buffer[] | null };
    const upstream = connect(target.port, target.host);
    pair.upstream = upstream;
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('data', (chunk: Buffer) => pair.dead || pair.deaf || (pair.held ? pair.held.push(chunk) : forward(upstream, chunk)));
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
    hold: () => {
      for (const pair of live) pair.held ??= [];
    },
    release: () => {
      for (const pair of live) {
        const held = pair.held ?? [];
        pair.held = null;
        for (const chunk of held) if (!pair.dead && pair.upstream) forward(pair.upstream, chunk);
      }
    },
    drop: () => {
      for (const pair of live) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
      live.clear();
    },
    refuse: () => {
      refusing = true;
      for (const pair of live) {
        pair.dead = true;
        pair.client.resetAndDestroy();
        pair.upstream?.destroy();
      }
      live.clear();
    },
    resume: () => {
      stalled = false;
      refusing = false;
    },
    accepted: () => accepted,
    forwarded: () => forwarded,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
};
