import { describe, expect, it, vi } from 'vitest';
import {
  ApiClient,
  ApiError,
  NETWORK_ERROR,
  errorFromResponse,
  needsCsrf,
  parseRetryAfter,
  type FetchLike,
} from '../../src/lib/api';

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A fetch double that records each call and answers with `respond`. */
function recorder(respond: (call: Call) => Response = () => new Response(null, { status: 204 })) {
  const calls: Call[] = [];
  const fetch: FetchLike = async (url, init) => {
    const call: Call = {
      url,
      method: init?.method ?? 'GET',
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: typeof init?.body === 'string' ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    return respond(call);
  };
  return { calls, fetch };
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json', ...headers },
  });
}

describe('CSRF header', () => {
  it('is attached to every state-changing call under /api/v1', async () => {
    const { calls, fetch } = recorder((c) =>
      c.method === 'PATCH' ? json(200, { username: 'bob' }) : new Response(null, { status: 204 }),
    );
    const api = new ApiClient({ fetch });
    api.setCsrfToken('tok-123');
    await api.logout();
    await api.updateUser('bob', { role: 'admin' });
    await api.deleteUser('bob');
    await api.changePassword('old-password', 'new-password');
    await api.confirmTotp('123456');
    expect(calls.map((c) => [c.method, c.headers['X-CSRF-Token']])).toEqual([
      ['DELETE', 'tok-123'],
      ['PATCH', 'tok-123'],
      ['DELETE', 'tok-123'],
      ['PUT', 'tok-123'],
      ['POST', 'tok-123'],
    ]);
  });

  it('is left off safe methods and the two calls that create a session', async () => {
    const { calls, fetch } = recorder((c) =>
      c.url === '/api/v1/users' ? json(200, []) : json(200, { csrf_token: 'x', user: {} }),
    );
    const api = new ApiClient({ fetch });
    api.setCsrfToken('tok-123');
    await api.users();
    await api.login({ username: 'a', password: 'b' });
    await api.claim({ code: 'c', username: 'a', password: 'b' });
    for (const c of calls) expect(c.headers['X-CSRF-Token']).toBeUndefined();
  });

  it('is not sent before a token is known', async () => {
    const { calls, fetch } = recorder();
    await new ApiClient({ fetch }).logout();
    expect(calls[0].headers['X-CSRF-Token']).toBeUndefined();
  });

  it('needsCsrf follows method and path', () => {
    expect(needsCsrf('post', '/api/v1/users')).toBe(true);
    expect(needsCsrf('GET', '/api/v1/users')).toBe(false);
    expect(needsCsrf('POST', '/api/v1/session')).toBe(false);
    expect(needsCsrf('DELETE', '/api/v1/session')).toBe(true);
    expect(needsCsrf('POST', '/api/v1/setup/claim?x=1')).toBe(false);
  });
});

describe('requests', () => {
  it('sends JSON bodies and encodes user names in paths', async () => {
    const { calls, fetch } = recorder(() => json(200, { username: 'a b' }));
    const api = new ApiClient({ fetch });
    await api.updateUser('a b/../x', { password: 'long-enough' });
    expect(calls[0].url).toBe('/api/v1/users/a%20b%2F..%2Fx');
    expect(calls[0].headers['Content-Type']).toBe('application/json');
    expect(calls[0].body).toEqual({ password: 'long-enough' });
  });

  it('returns undefined for 204 and parsed JSON otherwise', async () => {
    const { fetch } = recorder((c) =>
      c.method === 'DELETE' ? new Response(null, { status: 204 }) : json(200, { status: 'ok' }),
    );
    const api = new ApiClient({ fetch });
    await expect(api.logout()).resolves.toBeUndefined();
    await expect(api.health()).resolves.toEqual({ status: 'ok' });
  });
});

describe('error parsing', () => {
  it('reads the code and message of the agent error body', async () => {
    const err = await errorFromResponse(
      json(409, { error: { code: 'last_admin', message: 'The last admin stays' } }),
    );
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.code, err.message, err.retryAfter]).toEqual([
      409,
      'last_admin',
      'The last admin stays',
      null,
    ]);
  });

  it('reads Retry-After on 429 throttled', async () => {
    const err = await errorFromResponse(
      json(429, { error: { code: 'throttled', message: 'slow down' } }, { 'Retry-After': '17' }),
    );
    expect([err.code, err.retryAfter]).toEqual(['throttled', 17]);
  });

  it('survives a body that is not JSON', async () => {
    const err = await errorFromResponse(
      new Response('<html>Bad gateway</html>', { status: 502, statusText: 'Bad Gateway' }),
    );
    expect([err.status, err.code, err.message]).toEqual([502, 'http_502', 'Bad Gateway']);
  });

  it('survives JSON of another shape', async () => {
    const err = await errorFromResponse(json(400, { message: 'nope' }));
    expect(err.code).toBe('http_400');
  });

  it('throws ApiError from client calls', async () => {
    const { fetch } = recorder(() =>
      json(401, { error: { code: 'invalid_credentials', message: 'Wrong' } }),
    );
    const api = new ApiClient({ fetch });
    await expect(api.login({ username: 'a', password: 'b' })).rejects.toMatchObject({
      status: 401,
      code: 'invalid_credentials',
    });
  });

  it('turns a transport failure into network_error', async () => {
    const api = new ApiClient({
      fetch: async () => {
        throw new TypeError('Failed to fetch');
      },
    });
    await expect(api.health()).rejects.toMatchObject({ status: 0, code: NETWORK_ERROR });
  });

  it('reports a lost session only for 401 unauthenticated', async () => {
    const lost = vi.fn();
    let answer = json(401, { error: { code: 'invalid_credentials', message: '' } });
    const api = new ApiClient({ fetch: async () => answer, onUnauthenticated: lost });
    await expect(api.login({ username: 'a', password: 'b' })).rejects.toThrow();
    expect(lost).not.toHaveBeenCalled();
    answer = json(401, { error: { code: 'unauthenticated', message: '' } });
    await expect(api.users()).rejects.toThrow();
    expect(lost).toHaveBeenCalledTimes(1);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds', () => {
    expect(parseRetryAfter('30')).toBe(30);
    expect(parseRetryAfter(' 0 ')).toBe(0);
  });

  it('reads an HTTP date relative to now', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:42 GMT', now)).toBe(42);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
  });

  it('ignores missing or garbage values', () => {
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter('')).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
  });
});
