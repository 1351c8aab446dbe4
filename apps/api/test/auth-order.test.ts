/**
 * Authentication and authorisation come before anything about the request itself: for every /v1
 * route of the route table, a request that is wrong in every way at once (a path id that is not a
 * UUID, an unknown query parameter, a body that is not JSON, of the wrong media type, or too
 * large) answers 401 without credentials and 403 with a key that lacks the route's scope; only a
 * caller allowed to make the request learns what is wrong with it (400, 413, 415).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT } from '../src/build.ts';
import type { RouteEntry } from '../src/plugins/errors.ts';
import { ADMIN_TOKEN, startTestApi, type TestApi } from './helpers.ts';

let api: TestApi;
let writer: string;
let reader: string;

beforeAll(async () => {
  api = await startTestApi();
  const service = await api.newService('auth-order');
  writer = service.apiKey;
  const issued = await api.app.inject({
    method: 'POST',
    url: `/v1/admin/services/${service.id}/keys`,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    payload: { scopes: ['jobs:read'] },
  });
  expect(issued.statusCode).toBe(201);
  reader = issued.json().apiKey;
});
afterAll(async () => {
  await api?.close();
});

function v1Routes(): RouteEntry[] {
  const routes = api.app.routeTable.filter((r) => r.url.startsWith('/v1/') && r.method !== 'HEAD');
  expect(routes.length).toBeGreaterThan(20);
  return routes;
}

const takesBody = (method: string) => method === 'POST' || method === 'PUT' || method === 'PATCH';

/** Ways a request can be wrong, each refused with its own status once the caller is let in. */
const BAD_REQUESTS = [
  {
    what: 'a bad id, an unknown query parameter and a body of unknown fields',
    status: 400,
    contentType: 'application/json',
    payload: '{"no-such-field":1}',
  },
  { what: 'malformed JSON', status: 400, contentType: 'application/json', payload: '{"name":' },
  { what: 'a body that is not JSON', status: 415, contentType: 'text/plain', payload: 'name=x' },
  {
    what: 'a body over the size limit',
    status: 413,
    contentType: 'application/json',
    payload: `{"name":"${'x'.repeat(BODY_LIMIT)}"}`,
  },
];

function badRequest(route: RouteEntry, bad: (typeof BAD_REQUESTS)[number], authorization: string | undefined) {
  const path = route.url.replace(/:[A-Za-z]+/g, 'not-a-uuid');
  return api.app.inject({
    method: route.method as 'GET',
    url: `${path}?no-such-parameter=1&limit=-1`,
    headers: {
      ...(authorization ? { authorization } : {}),
      ...(takesBody(route.method) ? { 'content-type': bad.contentType } : {}),
    },
    ...(takesBody(route.method) ? { payload: bad.payload } : {}),
  });
}

/** A bad request's possible answers: the route's refusal when not let in, else the request's fault. */
function expected(route: RouteEntry, bad: (typeof BAD_REQUESTS)[number], refusal: number | undefined): number {
  if (refusal !== undefined) return refusal;
  // A route without a body reports what is wrong with its path or query.
  return takesBody(route.method) ? bad.status : 400;
}

describe('credentials are checked before the request is read', () => {
  it.each(BAD_REQUESTS)('service routes, $what', async (bad) => {
    for (const route of v1Routes().filter((r) => !r.url.startsWith('/v1/admin/'))) {
      const name = `${route.method} ${route.url}`;
      const anonymous = await badRequest(route, bad, undefined);
      expect(anonymous.statusCode, `${name} without a key: ${anonymous.body}`).toBe(401);
      expect(anonymous.json().errors, name).toBeUndefined();
      const needsWrite =
        (route.config?.scope ?? (route.method === 'GET' ? 'jobs:read' : 'jobs:write')) === 'jobs:write';
      const readOnly = await badRequest(route, bad, `Bearer ${reader}`);
      expect(readOnly.statusCode, `${name} with a read-only key: ${readOnly.body}`).toBe(
        expected(route, bad, needsWrite ? 403 : undefined),
      );
      const allowed = await badRequest(route, bad, `Bearer ${writer}`);
      expect(allowed.statusCode, `${name} with a full key: ${allowed.body}`).toBe(expected(route, bad, undefined));
    }
  });

  it.each(BAD_REQUESTS)('admin routes, $what', async (bad) => {
    for (const route of v1Routes().filter((r) => r.url.startsWith('/v1/admin/'))) {
      const name = `${route.method} ${route.url}`;
      expect((await badRequest(route, bad, undefined)).statusCode, name).toBe(401);
      expect((await badRequest(route, bad, 'Bearer not-the-admin-token')).statusCode, name).toBe(401);
      expect((await badRequest(route, bad, `Bearer ${writer}`)).statusCode, `${name} with a service key`).toBe(403);
      const admin = await badRequest(route, bad, `Bearer ${ADMIN_TOKEN}`);
      expect(admin.statusCode, `${name} as admin: ${admin.body}`).toBe(expected(route, bad, undefined));
    }
  });
});
