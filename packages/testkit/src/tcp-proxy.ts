/**
 * A TCP proxy a test can cut, as Toxiproxy does: it stands between Tickwork and a server (here
 * Postgres) so a test can take the server away without stopping the shared one. `cut()` closes
 * every open connection and refuses new ones; `restore()` listens again on the same port.
 * `hold()` keeps what the server sends (buffered, in order) from reaching its clients until
 * `release()`: a server that answers late, or a notification that arrives late.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** `postgres://…` with the proxy's port in place of the server's. */
  urlThrough(url: string): string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let held = false;
  let server: Server | undefined;
  let port = 0;

  const listen = async () => {
    const next = createServer((client) => {
      const upstream = connect(target.port, target.host);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      const pair = { client, upstream };
      pairs.add(pair);
      upstream.on('close', () => pairs.delete(pair));
      client.pipe(upstream);
      if (held) upstream.pause();
      else upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => resolve());
    });
    port = (next.address() as { port: number }).port;
    server = next;
  };
  const cut = async () => {
    const closing = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (closing) await new Promise((resolve) => closing.close(resolve));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    urlThrough(url: string) {
      const through = new URL(url);
      through.hostname = '127.0.0.1';
      through.port = String(port);
      return through.toString();
    },
    cut,
    async restore() {
      if (!server) await listen();
    },
    hold() {
      held = true;
      for (const { client, upstream } of pairs) {
        upstream.unpipe(client);
        upstream.pause();
      }
    },
    release() {
      if (!held) return;
      held = false;
      for (const { client, upstream } of pairs) upstream.pipe(client);
    },
    close: cut,
  };
}
