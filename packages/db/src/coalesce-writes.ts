/**
 * node-postgres (8.23) sends a parameterised query as five socket writes (Parse, Bind, Describe,
 * Execute, Sync), each its own syscall, and Postgres may wake for each. Corking the socket for the
 * rest of the tick sends them as one write. Measured with `npm run bench -- pg-writes`: on the
 * 2-core bench box the fire path spent ~40% of the worker's CPU in `writev`/`writeBuffer` before.
 */
import type pg from 'pg';

interface Connection {
  stream: { cork(): void; uncork(): void; writable: boolean };
  _send(buffer: Buffer): boolean;
}

export function coalesceWrites(client: pg.PoolClient | pg.Client): void {
  const connection = (client as unknown as { connection?: Connection }).connection;
  if (!connection || typeof connection._send !== 'function' || (connection as { coalesced?: boolean }).coalesced)
    return;
  (connection as { coalesced?: boolean }).coalesced = true;
  const send = connection._send.bind(connection);
  let corked = false;
  const uncork = () => {
    corked = false;
    connection.stream.uncork();
  };
  connection._send = (buffer: Buffer) => {
    if (!corked && connection.stream.writable) {
      corked = true;
      connection.stream.cork();
      process.nextTick(uncork);
    }
    return send(buffer);
  };
}
