/** A local HTTP receiver that records every callback, for end-to-end tests. */
import { createServer } from 'node:http';
export async function startSink() {
    const sink = {
        received: [],
        respond: (() => ({ status: 200 })),
    };
    const waiters = new Set();
    const server = createServer((request, response) => {
        const chunks = [];
        request.on('data', (c) => chunks.push(c));
        request.on('end', () => {
            const received = {
                at: Date.now(),
                method: request.method ?? '',
                path: request.url ?? '',
                headers: request.headers,
                body: Buffer.concat(chunks).toString('utf8'),
            };
            sink.received.push(received);
            for (const wake of waiters)
                wake();
            const answer = sink.respond(received);
            const send = () => response.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers }).end('ok');
            if (answer.delayMs)
                setTimeout(send, answer.delayMs);
            else
                send();
        });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    sink.url = `http://127.0.0.1:${server.address().port}`;
    sink.waitFor = (predicate, timeoutMs = 20000, what = 'the expected callbacks') => new Promise((resolve, reject) => {
        const check = () => {
            if (predicate(sink.received)) {
                cleanup();
                resolve();
            }
        };
        const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${sink.received.length}`));
        }, timeoutMs);
        const cleanup = () => {
            clearTimeout(timer);
            waiters.delete(check);
        };
        waiters.add(check);
        check();
    });
    sink.close = () => new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
    });
    return sink;
}
/** Polls until `check` returns a value that is not undefined, or fails after the deadline. */
export async function eventually(check, timeoutMs = 20000, what = 'condition') {
    const deadline = Date.now() + timeoutMs;
    let last;
    while (Date.now() < deadline) {
        try {
            const value = await check();
            if (value !== undefined)
                return value;
        }
        catch (error) {
            last = error;
        }
        await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
}
