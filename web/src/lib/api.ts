// The dashboard's only door to the agent: JSON over fetch, one error type, and the CSRF header
// on every state-changing request. It never touches the session cookie (HttpOnly).

import type {
  AppSettingsView,
  CaStatus,
  AppStats,
  AppView,
  CatalogApp,
  CatalogResponse,
  ChangePasswordRequest,
  Disk,
  FormatRequest,
  JournalEntry,
  MountRequest,
  PowerRequest,
  SettingsPatch,
  SystemSettings,
  UnitAction,
  UnitStatus,
  InstallBody,
  PatchAppBody,
  Plan,
  StoreInfo,
  Interface,
  InterfaceList,
  InterfacePatch,
  PendingChange,
  WifiList,
  AddStoreRequest,
  UpdateAppBody,
  ClaimRequest,
  CreateShareRequest,
  CreateUserRequest,
  Entry,
  ErrorBody,
  ErrorCode,
  ErrorDetail,
  ErrorDetails,
  FileAction,
  Health,
  JobStatus,
  Listing,
  LoginRequest,
  LoginResponse,
  PasswordConfirmation,
  RootInfo,
  SessionInfo,
  Share,
  SetupInfo,
  SystemStatus,
  TextFile,
  TotpCode,
  TotpEnrolment,
  TrashItem,
  UpdateShareRequest,
  UpdateUserRequest,
  UploadProgress,
  User,
  UpdateJob,
  PolicyPatch,
  UpdateStatus,
} from './types';
import { encodePath, queryString, type QueryValue } from './files';

/**
 * Codes the dashboard gives failures that carry no code of the agent's: no answer at all, a
 * cancelled upload, an answer that is not the agent's error shape (`http_<status>`), a thrown
 * value that is not an error, an install that failed after its answer was lost.
 */
export type ClientErrorCode = 'network_error' | 'upload_cancelled' | 'unexpected' | 'install_failed' | `http_${number}`;

/** A failed call: the agent's `{"error":{"code","message","details"}}`, or a transport failure. */
export class ApiError extends Error {
  readonly status: number;
  /** The agent's code (its OpenAPI document's `ErrorCode`), or one of the dashboard's own. */
  readonly code: ErrorCode | ClientErrorCode;
  /** Seconds from a `Retry-After` header (429 `throttled`), when the server sent one. */
  readonly retryAfter: number | null;
  /** The error's typed data, when the agent sent some (the findings of `consent_required`). */
  readonly details: ErrorDetails | null;

  constructor(
    status: number,
    code: ErrorCode | ClientErrorCode,
    message: string,
    retryAfter: number | null = null,
    details: ErrorDetails | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.details = details;
  }
}

/** Code used when the request never got an HTTP answer. */
export const NETWORK_ERROR = 'network_error' satisfies ClientErrorCode;

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
  let code: ErrorCode | ClientErrorCode = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  let details: ErrorDetails | null = null;
  try {
    const body = (await res.json()) as Partial<ErrorBody> | null;
    const err = body?.error as Partial<Record<keyof ErrorDetail, unknown>> | undefined;
    // The agent's document lists every code it sends; a newer agent's code is passed on as is.
    if (err && typeof err.code === 'string') code = err.code as ErrorCode;
    if (err && typeof err.message === 'string') message = err.message;
    if (err && typeof err.details === 'object' && err.details !== null) details = err.details as ErrorDetails;
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): keep the HTTP status as the code.
  }
  return new ApiError(res.status, code, message, retryAfter, details);
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** A request body that is not JSON (a file's bytes), with headers of its own. */
export interface RawBody {
  raw: BodyInit;
  headers?: Record<string, string>;
}

export type SortKey = 'name' | 'size' | 'modified';

export interface ListOptions {
  offset?: number;
  limit?: number;
  sort?: SortKey;
}

function isRaw(body: unknown): body is RawBody {
  return typeof body === 'object' && body !== null && 'raw' in body;
}

/** One root name as a URL segment. */
const seg = (root: string) => encodeURIComponent(root);
/** The query string without its "?" ("" for none), for URLs that always end in "?…". */
const query = (params: Record<string, QueryValue>) => queryString(params).slice(1);

export interface ApiClientOptions {
  fetch?: FetchLike;
  /** Called when any call answers 401 `unauthenticated`: the session is gone. */
  onUnauthenticated?: () => void;
  /**
   * Called once when a call answers 403 `csrf_invalid` (another tab signed in and replaced the
   * session cookie): returns the current session's token, or null; the call is then retried.
   */
  refreshCsrfToken?: () => Promise<string | null>;
}

export class ApiClient {
  private csrfToken: string | null = null;
  private readonly fetchImpl: FetchLike;
  private readonly onUnauthenticated: () => void;
  private readonly refreshCsrfToken: () => Promise<string | null>;

  constructor(options: ApiClientOptions = {}) {
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.onUnauthenticated = options.onUnauthenticated ?? (() => {});
    this.refreshCsrfToken = options.refreshCsrfToken ?? (async () => null);
  }

  setCsrfToken(token: string | null): void {
    this.csrfToken = token;
  }

  /** The CSRF header for requests sent outside this client (uploads with progress). */
  csrfHeaders(): Record<string, string> {
    return this.csrfToken === null ? {} : { 'X-CSRF-Token': this.csrfToken };
  }

  /** Fetches the current session's token after a `csrf_invalid`; false when there is none. */
  async renewCsrfToken(): Promise<boolean> {
    const token = await this.refreshCsrfToken().catch(() => null);
    if (token === null) return false;
    this.csrfToken = token;
    return true;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await this.send<T>(method, path, body);
    } catch (e) {
      if (!(e instanceof ApiError && e.code === 'csrf_invalid')) throw e;
      const token = await this.refreshCsrfToken().catch(() => null);
      if (token === null) throw e;
      this.csrfToken = token;
      return this.send<T>(method, path, body);
    }
  }

  private async send<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (isRaw(body)) Object.assign(headers, body.headers);
    else if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (needsCsrf(method, path) && this.csrfToken !== null) {
      headers['X-CSRF-Token'] = this.csrfToken;
    }
    let res: Response;
    try {
      res = await this.fetchImpl(path, {
        method,
        headers,
        body: isRaw(body) ? body.raw : body === undefined ? undefined : JSON.stringify(body),
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
  claim = (req: ClaimRequest) => this.request<LoginResponse>('POST', '/api/v1/setup/claim', req);
  login = (req: LoginRequest) => this.request<LoginResponse>('POST', '/api/v1/session', req);
  session = () => this.request<SessionInfo>('GET', '/api/v1/session');
  logout = () => this.request<void>('DELETE', '/api/v1/session');

  users = () => this.request<User[]>('GET', '/api/v1/users');
  createUser = (u: CreateUserRequest) => this.request<User>('POST', '/api/v1/users', u);
  updateUser = (name: string, patch: UpdateUserRequest) =>
    this.request<User>('PATCH', `/api/v1/users/${encodeURIComponent(name)}`, patch);
  deleteUser = (name: string) =>
    this.request<void>('DELETE', `/api/v1/users/${encodeURIComponent(name)}`);

  changePassword = (current_password: string, new_password: string) =>
    this.request<void>('PUT', '/api/v1/account/password', {
      current_password,
      new_password,
    } satisfies ChangePasswordRequest);
  startTotp = () => this.request<TotpEnrolment>('POST', '/api/v1/account/totp');
  confirmTotp = (code: string) =>
    this.request<void>('POST', '/api/v1/account/totp/confirm', { code } satisfies TotpCode);
  disableTotp = (password: string) =>
    this.request<void>('DELETE', '/api/v1/account/totp', { password } satisfies PasswordConfirmation);

  systemStatus = () => this.request<SystemStatus>('GET', '/api/v1/system/status');

  // The device CA and its rotation: begin (a new CA, not served yet), activate, forget the old.
  caStatus = () => this.request<CaStatus>('GET', '/api/v1/tls/ca');
  beginCaRotation = () => this.request<CaStatus>('POST', '/api/v1/tls/ca/rotation');
  cancelCaRotation = () => this.request<CaStatus>('DELETE', '/api/v1/tls/ca/rotation');
  activateCaRotation = () => this.request<CaStatus>('POST', '/api/v1/tls/ca/rotation/activate');
  forgetPreviousCa = () => this.request<CaStatus>('DELETE', '/api/v1/tls/ca/previous');

  // Files. Paths are "a/b" inside the root; every name is encoded on its own (encodePath).
  fileRoots = () => this.request<RootInfo[]>('GET', '/api/v1/files');
  listFolder = (root: string, path: string, options: ListOptions = {}) =>
    path === ''
      ? this.request<Listing>('GET', `/api/v1/files/${seg(root)}?${query({ ...options })}`)
      : this.request<Listing>('GET', `/api/v1/files/${seg(root)}/${encodePath(path)}?${query({ ...options })}`);
  /** A text file and its ETag for the editor (413 `too_large` over 1 MiB). */
  readText = (root: string, path: string) =>
    this.request<TextFile>('GET', `/api/v1/files/${seg(root)}/${encodePath(path)}?${query({ edit: true })}`);
  /**
   * Saves editor text. With the ETag from readText the agent refuses (412 `edit_conflict`) when
   * the file changed meanwhile; with null it replaces whatever is there.
   */
  saveText = (root: string, path: string, content: string, etag: string | null) =>
    this.request<UploadProgress>(
      'PUT',
      `/api/v1/files/${seg(root)}/${encodePath(path)}?${query({ overwrite: etag === null })}`,
      {
        raw: content,
        headers: {
          'Content-Type': 'text/plain; charset=utf-8',
          ...(etag === null ? {} : { 'If-Match': etag }),
        },
      } satisfies RawBody,
    );
  fileAction = <T = Entry>(root: string, path: string, action: FileAction) =>
    this.request<T>('POST', `/api/v1/files/${seg(root)}/${encodePath(path)}`, action);
  makeFolder = (root: string, path: string) => this.fileAction(root, path, { action: 'mkdir' });
  rename = (root: string, path: string, name: string) =>
    this.fileAction(root, path, { action: 'rename', name });
  move = (root: string, path: string, toRoot: string, toPath: string) =>
    this.fileAction(root, path, { action: 'move', to_root: toRoot, to_path: toPath });
  copy = (root: string, path: string, toRoot: string, toPath: string) =>
    this.fileAction<JobStatus>(root, path, { action: 'copy', to_root: toRoot, to_path: toPath });
  /** Moves to the root's trash and returns its record there. */
  trash = (root: string, path: string) =>
    this.request<TrashItem>('DELETE', `/api/v1/files/${seg(root)}/${encodePath(path)}`);
  trashList = (root: string) => this.request<TrashItem[]>('GET', `/api/v1/trash/${seg(root)}`);
  emptyTrash = (root: string) => this.request<void>('DELETE', `/api/v1/trash/${seg(root)}`);
  restore = (root: string, id: string) =>
    this.request<TrashItem>('POST', `/api/v1/trash/${seg(root)}/${encodeURIComponent(id)}`);

  // Shared folders (admins). Members see the shares granted to them in fileRoots().
  shares = () => this.request<Share[]>('GET', '/api/v1/shares');
  createShare = (req: CreateShareRequest) => this.request<Share>('POST', '/api/v1/shares', req);
  updateShare = (name: string, req: UpdateShareRequest) =>
    this.request<Share>('PATCH', `/api/v1/shares/${seg(name)}`, req);
  /** A share with files is refused (409 `not_empty`) unless `purge` deletes its files too. */
  deleteShare = (name: string, purge = false) =>
    this.request<void>('DELETE', `/api/v1/shares/${seg(name)}?${query({ purge })}`);
  jobs = () => this.request<JobStatus[]>('GET', '/api/v1/jobs');

  // The device: settings, power, services and their journals (admins, except reading settings).
  systemSettings = () => this.request<SystemSettings>('GET', '/api/v1/system/settings');
  updateSystemSettings = (patch: SettingsPatch) =>
    this.request<SystemSettings>('PATCH', '/api/v1/system/settings', patch);
  power = (action: 'reboot' | 'poweroff') =>
    this.request<void>('POST', `/api/v1/system/${action}`, { confirm: true } satisfies PowerRequest);
  services = () => this.request<UnitStatus[]>('GET', '/api/v1/services');
  serviceAction = (unit: string, action: UnitAction) =>
    this.request<void>('POST', `/api/v1/services/${encodeURIComponent(unit)}/${action}`);
  /** Newest first; `lines` at most 1000, `priority` 0–7 (this or more urgent). */
  journal = (unit: string, params: { lines?: number; priority?: number; contains?: string }) =>
    this.request<JournalEntry[]>('GET', `/api/v1/services/${encodeURIComponent(unit)}/journal?${query({ ...params })}`);

  // Updates of the device itself (admins). Install answers at once; progress comes as job
  // events and in the state's `progress`.
  updateStatus = () => this.request<UpdateStatus>('GET', '/api/v1/update');
  checkUpdate = () => this.request<UpdateStatus>('POST', '/api/v1/update/check');
  installUpdate = () => this.request<UpdateJob>('POST', '/api/v1/update/install');
  rebootIntoUpdate = () => this.request<void>('POST', '/api/v1/update/reboot');
  updatePolicy = (patch: PolicyPatch) => this.request<UpdateStatus>('PATCH', '/api/v1/update/policy', patch);
  dismissUpdateNotice = (id: number) =>
    this.request<UpdateStatus>('POST', '/api/v1/update/notice/dismiss', { id });

  // Disks (admins). The id is the kernel name (sdb).
  disks = () => this.request<Disk[]>('GET', '/api/v1/disks');
  formatDisk = (id: string, req: FormatRequest) =>
    this.request<Disk>('POST', `/api/v1/disks/${encodeURIComponent(id)}/format`, req);
  mountDisk = (id: string, req: MountRequest = {}) =>
    this.request<Disk>('POST', `/api/v1/disks/${encodeURIComponent(id)}/mount`, req);
  unmountDisk = (id: string) => this.request<Disk>('POST', `/api/v1/disks/${encodeURIComponent(id)}/unmount`);
  ejectDisk = (id: string) => this.request<void>('POST', `/api/v1/disks/${encodeURIComponent(id)}/eject`);
  cancelJob = (id: string) => this.request<void>('DELETE', `/api/v1/jobs/${encodeURIComponent(id)}`);

  // Network (admins). A change answers with a checkpoint to confirm from the new address.
  networkInterfaces = () => this.request<InterfaceList>('GET', '/api/v1/network/interfaces');
  configureInterface = (name: string, patch: InterfacePatch) =>
    this.request<PendingChange>('PATCH', `/api/v1/network/interfaces/${seg(name)}`, patch);
  confirmNetworkChange = (id: string) => this.request<void>('POST', `/api/v1/network/checkpoints/${seg(id)}/confirm`);
  rollbackNetworkChange = (id: string) => this.request<void>('POST', `/api/v1/network/checkpoints/${seg(id)}/rollback`);
  wifi = () => this.request<WifiList>('GET', '/api/v1/network/wifi');
  wifiScan = () => this.request<void>('POST', '/api/v1/network/wifi/scan');
  wifiConnect = (ssid: string, password?: string) =>
    this.request<Interface>('POST', '/api/v1/network/wifi/connect', password ? { ssid, password } : { ssid });
  wifiForget = (ssid: string) => this.request<void>('DELETE', `/api/v1/network/wifi/${seg(ssid)}`);

  // Apps. Install, update and settings answer when the app is up; progress comes as events.
  stores = () => this.request<StoreInfo[]>('GET', '/api/v1/stores');
  addStore = (body: AddStoreRequest) => this.request<StoreInfo>('POST', '/api/v1/stores', body);
  removeStore = (id: string) => this.request<void>('DELETE', `/api/v1/stores/${seg(id)}`);
  refreshStores = () => this.request<StoreInfo[]>('POST', '/api/v1/stores/refresh');
  catalog = (q: string, category: string) =>
    this.request<CatalogResponse>('GET', `/api/v1/catalog?${query({ q: q.trim() || undefined, category: category || undefined })}`);
  catalogApp = (store: string, app: string) =>
    this.request<CatalogApp>('GET', `/api/v1/catalog/${seg(store)}/${seg(app)}`);
  planApp = (body: InstallBody) => this.request<Plan>('POST', '/api/v1/apps/plan', body);
  installApp = (body: InstallBody) => this.request<AppView>('POST', '/api/v1/apps', body);
  apps = () => this.request<AppView[]>('GET', '/api/v1/apps');
  app = (id: string) => this.request<AppView>('GET', `/api/v1/apps/${seg(id)}`);
  appSettings = (id: string) => this.request<AppSettingsView>('GET', `/api/v1/apps/${seg(id)}/settings`);
  patchApp = (id: string, body: PatchAppBody) => this.request<AppView>('PATCH', `/api/v1/apps/${seg(id)}`, body);
  deleteApp = (id: string, deleteData: boolean) =>
    this.request<void>('DELETE', `/api/v1/apps/${seg(id)}?${query({ delete_data: deleteData })}`);
  startApp = (id: string) => this.request<void>('POST', `/api/v1/apps/${seg(id)}/start`);
  stopApp = (id: string) => this.request<void>('POST', `/api/v1/apps/${seg(id)}/stop`);
  restartApp = (id: string) => this.request<void>('POST', `/api/v1/apps/${seg(id)}/restart`);
  updateApp = (id: string, body: UpdateAppBody = {}) =>
    this.request<AppView>('POST', `/api/v1/apps/${seg(id)}/update`, body);
  appStats = (id: string) => this.request<Record<string, AppStats>>('GET', `/api/v1/apps/${seg(id)}/stats`);
  /** The raw NDJSON response of the logs route, for reading as a stream; abort with `signal`. */
  appLogs = async (id: string, follow: boolean, tail: number, signal?: AbortSignal): Promise<Response> => {
    const path = `/api/v1/apps/${seg(id)}/logs?${query({ follow, tail })}`;
    let res: Response;
    try {
      res = await this.fetchImpl(path, { headers: { Accept: 'application/x-ndjson' }, credentials: 'same-origin', signal });
    } catch (e) {
      throw new ApiError(0, NETWORK_ERROR, e instanceof Error ? e.message : String(e));
    }
    if (!res.ok) throw await errorFromResponse(res);
    return res;
  };
}

export const CA_CERT_URL = '/api/v1/tls/ca.crt';
/** The CA a rotation under way will switch to. */
export const CA_NEXT_CERT_URL = '/api/v1/tls/ca/next.crt';
export const EVENTS_URL = '/api/v1/events';
