// The dashboard's only door to the agent: JSON over fetch, one error type, and the CSRF header
// on every state-changing request. It never touches the session cookie (HttpOnly).

import type {
  ClaimRequest,
  Health,
  LoginRequest,
  NewUser,
  SessionGrant,
  SessionInfo,
  SetupInfo,
  SystemStatus,
  TotpEnrolment,
  User,
  UserPatch,
} from './types';

/** A failed call: the agent's `{"error":{"code","message"}}`, or a transport failure. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** Seconds from a `Retry-After` header (429 `throttled`), when the server sent one. */
  readonly retryAfter: number | null;

  constructor(status: number, code: string, message: string, retryAfter: number | null = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** Code used when the request never got an HTTP answer. */
export const NETWORK_ERROR = 'network_error';

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** The two calls that create a session and therefore cannot have a token yet. */
const CSRF_EXEMPT = new Set(['POST /api/v1/setup/claim', 'POST /api/v1/session']);

export function needsCsrf(method: string, path: string): boolean {
  const m = method.toUpperCase();
  if (!UNSAFE_METHODS.has(m)) return false;
  const bare = path.split('?')[0];
  return bare.startsWith('/api/v1/') && !CSRF_EXEMPT.has(`${m} ${bare}`);
}

/** Parses `Retry-After` in its delta-seconds form or its HTTP-date form. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (value === null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const when = Date.parse(trimmed);
  if (Number.isNaN(when)) return null;
  return Math.max(0, Math.ceil((when - now) / 1000));
}

/** Turns a non-2xx response into an ApiError, whatever its body looks like. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  const retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const body: unknown = await res.json();
    const err = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    if (err && typeof err.code === 'string') code = err.code;
    if (err && typeof err.message === 'string') message = err.message;
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): keep the HTTP status as the code.
  }
  return new ApiError(res.status, code, message, retryAfter);
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  fetch?: FetchLike;
  /** Called when any call answers 401 `unauthenticated`: the session is gone. */
  onUnauthenticated?: () => void;
}

export class ApiClient {
  private csrfToken: string | null = null;
  private readonly fetchImpl: FetchLike;
  private readonly onUnauthenticated: () => void;

  constructor(options: ApiClientOptions = {}) {
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.onUnauthenticated = options.onUnauthenticated ?? (() => {});
  }

  setCsrfToken(token: string | null): void {
    this.csrfToken = token;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (needsCsrf(method, path) && this.csrfToken !== null) {
      headers['X-CSRF-Token'] = this.csrfToken;
    }
    let res: Response;
    try {
      res = await this.fetchImpl(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
      });
    } catch (e) {
      throw new ApiError(0, NETWORK_ERROR, e instanceof Error ? e.message : String(e));
    }
    if (!res.ok) {
      const err = await errorFromResponse(res);
      if (err.status === 401 && err.code === 'unauthenticated') this.onUnauthenticated();
      throw err;
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  health = () => this.request<Health>('GET', '/api/health');
  setup = () => this.request<SetupInfo>('GET', '/api/v1/setup');
  claim = (req: ClaimRequest) => this.request<SessionGrant>('POST', '/api/v1/setup/claim', req);
  login = (req: LoginRequest) => this.request<SessionGrant>('POST', '/api/v1/session', req);
  session = () => this.request<SessionInfo>('GET', '/api/v1/session');
  logout = () => this.request<void>('DELETE', '/api/v1/session');

  users = () => this.request<User[]>('GET', '/api/v1/users');
  createUser = (u: NewUser) => this.request<User>('POST', '/api/v1/users', u);
  updateUser = (name: string, patch: UserPatch) =>
    this.request<User>('PATCH', `/api/v1/users/${encodeURIComponent(name)}`, patch);
  deleteUser = (name: string) =>
    this.request<void>('DELETE', `/api/v1/users/${encodeURIComponent(name)}`);

  changePassword = (current_password: string, new_password: string) =>
    this.request<void>('PUT', '/api/v1/account/password', { current_password, new_password });
  startTotp = () => this.request<TotpEnrolment>('POST', '/api/v1/account/totp');
  confirmTotp = (code: string) =>
    this.request<void>('POST', '/api/v1/account/totp/confirm', { code });
  disableTotp = (password: string) =>
    this.request<void>('DELETE', '/api/v1/account/totp', { password });

  systemStatus = () => this.request<SystemStatus>('GET', '/api/v1/system/status');
}

export const CA_CERT_URL = '/api/v1/tls/ca.crt';
export const EVENTS_URL = '/api/v1/events';
