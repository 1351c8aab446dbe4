// `node infra/docker/healthcheck.mjs api|worker [path]`: exits 0 when the process answers 2xx
// on its own port (PORT for the api, WORKER_PORT for the worker) within 3 s, else 1.
// Compose health checks use it because node:24-slim has neither curl nor wget.
const [role = 'api', path = '/health/ready'] = process.argv.slice(2);
const port = role === 'worker' ? process.env.WORKER_PORT || '9464' : process.env.PORT || '3000';
try {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(3000) });
  if (!res.ok) console.error(`${role} ${path}: HTTP ${res.status}`);
  process.exit(res.ok ? 0 : 1);
} catch (error) {
  console.error(`${role} ${path}: ${error.cause?.code ?? error.message}`);
  process.exit(1);
}
