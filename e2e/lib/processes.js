/** Real api and worker processes for end-to-end tests, each on its own port, database and prefix. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const ADMIN_TOKEN = 'e2e-admin-token-0123456789';
export async function freePort() {
    const server = createServer();
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = server.address().port;
    await new Promise((resolve) => server.close(resolve));
    return port;
}
async function waitReady(url, child, output, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
        if (child.exitCode !== null)
            throw new Error(`process exited (${child.exitCode}) before ready:\n${output.join('')}`);
        try {
            const response = await request(`${url}/health/ready`);
            await response.body.dump();
            if (response.statusCode === 200)
                return;
        }
        catch {
            // not listening yet
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`not ready after ${timeoutMs} ms:\n${output.join('')}`);
}
function launch(script, env, port) {
    const child = spawn(process.execPath, [script], {
        cwd: ROOT,
        env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'test', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output = [];
    child.stdout?.on('data', (d) => output.push(d.toString()));
    child.stderr?.on('data', (d) => output.push(d.toString()));
    return {
        child,
        port,
        url: `http://127.0.0.1:${port}`,
        output,
        async stop(signal = 'SIGTERM') {
            if (child.exitCode !== null || child.signalCode !== null)
                return child.exitCode;
            const exited = once(child, 'exit');
            child.kill(signal);
            const [code] = (await exited);
            return code;
        },
    };
}
export async function startApi(env) {
    const port = await freePort();
    const proc = launch('apps/api/src/server.ts', { ADMIN_TOKEN, HOST: '127.0.0.1', PORT: String(port), ...env }, port);
    await waitReady(proc.url, proc.child, proc.output);
    return proc;
}
export async function startWorker(env) {
    const port = await freePort();
    const proc = launch('apps/worker/src/main.ts', { CALLBACK_ALLOW_PRIVATE: 'true', HOST: '127.0.0.1', WORKER_PORT: String(port), ...env }, port);
    await waitReady(proc.url, proc.child, proc.output);
    return proc;
}
/** JSON over HTTP against a started api. */
export async function call(api, method, path, options = {}) {
    const response = await request(`${api.url}${path}`, {
        method,
        headers: {
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...options.headers,
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, body: text ? JSON.parse(text) : undefined };
}
