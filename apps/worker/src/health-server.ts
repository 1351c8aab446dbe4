/**
 * The worker's small HTTP port: /health/live, /health/ready (503 naming the part that failed,
 * or `accepting` while it shuts down) and /metrics (Prometheus).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthSource {
  isReady(): Promise<Record<string, boolean>>;
  metrics?: Registry;
}

export function startHealthServer(source: HealthSource, port: number, host = '0.0.0.0'): Promise<Server> {
  const server = createServer(async (request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path === '/health/live') {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (path === '/health/ready') {
      const parts = await source.isReady();
      const ok = Object.values(parts).every(Boolean);
      const checks = Object.fromEntries(Object.entries(parts).map(([k, up]) => [k, { status: up ? 'ok' : 'down' }]));
      response
        .writeHead(ok ? 200 : 503, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', checks }));
      return;
    }
    if (path === '/metrics' && source.metrics) {
      try {
        const body = await source.metrics.metrics();
        response.writeHead(200, { 'content-type': source.metrics.contentType }).end(body);
      } catch (error) {
        response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(error as Error).message}`);
      }
      return;
    }
    response
      .writeHead(404, { 'content-type': 'application/problem+json' })
      .end(JSON.stringify({ type: 'about:blank', title: 'Not found', status: 404, detail: `No route ${path}.` }));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
