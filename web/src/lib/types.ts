// Shapes of the agent's JSON API. Names, fields and optionality match the schemas of the
// agent's OpenAPI document (/api/openapi.json); tests/browser/openapi.test.mjs checks that
// against a running agent, so this file cannot drift from the API unnoticed.

export type Role = 'admin' | 'member';

export interface User {
  username: string;
  role: Role;
  totp_enabled: boolean;
  created_at: string;
}

export interface Health {
  status: string;
  version: string;
  claimed: boolean;
}

export interface SetupInfo {
  claimed: boolean;
  hostname: string;
  timezone: string;
}

export interface ClaimRequest {
  code: string;
  username: string;
  password: string;
  hostname?: string;
  timezone?: string;
}

export interface LoginRequest {
  username: string;
  password: string;
  totp?: string;
}

/** Answer of claim and login: the session cookie is set by the server alongside. */
export interface LoginResponse {
  csrf_token: string;
  user: User;
}

export interface SessionInfo {
  csrf_token: string;
  user: User;
  expires_at: string;
}

export interface CreateUserRequest {
  username: string;
  password: string;
  role: Role;
}

export interface UpdateUserRequest {
  role?: Role;
  password?: string;
}

export interface ChangePasswordRequest {
  current_password: string;
  new_password: string;
}

export interface TotpCode {
  code: string;
}

export interface PasswordConfirmation {
  password: string;
}

export interface ErrorDetail {
  code: string;
  message: string;
}

export interface ErrorBody {
  error: ErrorDetail;
}

export interface TotpEnrolment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

export interface CoreUsage {
  usage_percent: number;
}

export interface CpuStatus {
  usage_percent: number;
  cores: CoreUsage[];
}

export interface MemoryStatus {
  total_bytes: number;
  available_bytes: number;
  used_bytes: number;
  swap_total_bytes: number;
  swap_used_bytes: number;
}

export interface DiskStatus {
  mount_point: string;
  device: string;
  fs_type: string;
  total_bytes: number;
  used_bytes: number;
  available_bytes: number;
}

export interface Temperature {
  sensor: string;
  label: string;
  celsius: number;
}

export interface InterfaceStatus {
  interface: string;
  /** Software interfaces (bridges, tunnels, Docker's); physical ones have a device. */
  virtual: boolean;
  rx_bytes: number;
  tx_bytes: number;
  rx_bytes_per_sec: number;
  tx_bytes_per_sec: number;
}

export interface SystemStatus {
  version: string;
  hostname: string;
  timezone: string;
  uptime_secs: number;
  time: string;
  load: [number, number, number];
  cpu: CpuStatus;
  memory: MemoryStatus;
  disks: DiskStatus[];
  temperatures: Temperature[];
  network: InterfaceStatus[];
}

// Files (agent/src/api/files.rs). Paths inside a root come back as "/a/b".

export interface RootInfo {
  name: string;
  writable: boolean;
}

export type EntryKind = 'file' | 'directory' | 'symlink' | 'other';

export interface Entry {
  name: string;
  kind: EntryKind;
  size: number;
  /** Seconds since the Unix epoch. */
  modified: number;
}

export interface Listing {
  root: string;
  path: string;
  entries: Entry[];
  total: number;
  offset: number;
}

/** A text file opened for editing (`?edit=true`); send `etag` back in `If-Match` when saving. */
export interface TextFile {
  content: string;
  etag: string;
}

export interface UploadProgress {
  received: number;
  complete: boolean;
  entry?: Entry | null;
  /** The new file's ETag once complete (for the next If-Match). */
  etag?: string | null;
}

export type FileAction =
  | { action: 'mkdir' }
  | { action: 'rename'; name: string }
  | { action: 'move'; to_root: string; to_path: string }
  | { action: 'copy'; to_root: string; to_path: string };

export interface TrashItem {
  id: string;
  original_path: string;
  deleted_at: string;
  kind: EntryKind;
  size: number;
}

export type JobState = 'running' | 'done' | 'failed' | 'cancelled';

export interface JobStatus {
  id: string;
  kind: string;
  owner: string;
  description: string;
  state: JobState;
  bytes_done: number;
  error?: string | null;
}

// Apps: stores, the catalog, installed apps. The interfaces below match named schemas; the
// `type` aliases after them are parts the API documents only as free-form objects (plans,
// findings, container status, stats, events), so the OpenAPI check cannot see them.

export interface StoreInfo {
  id: string;
  source: string;
  configured: boolean;
  loaded_at?: string | null;
  error?: string | null;
  apps: number;
}

export interface CatalogEntry {
  store: string;
  app: string;
  title: string;
  tagline: string;
  category?: string | null;
  version?: string | null;
  icon?: string | null;
  available: boolean;
  architectures: string[];
}

export interface CatalogResponse {
  apps: CatalogEntry[];
  categories: Category[];
}

/**
 * One store app (`CatalogApp`): the catalog entry's fields (flattened into it, which the
 * OpenAPI document writes as `allOf`) plus its text, screenshots, metadata and a dry-run plan.
 */
export type CatalogApp = CatalogEntry & {
  description: string;
  tips?: string | null;
  screenshots: string[];
  meta: AppMeta;
  /** What installing would do, or `{ error }` when it cannot be planned. */
  plan: Plan | { error: string };
};

export interface InstallBody {
  store?: string | null;
  app?: string | null;
  compose?: string | null;
  app_id?: string | null;
  settings?: AppSettings;
  consent?: string[];
}

export interface PatchAppBody {
  settings: AppSettings;
  consent?: string[];
}

export interface UpdateAppBody {
  consent?: string[];
}

export interface AppView {
  id: string;
  source: AppSource;
  version?: string | null;
  state: string;
  web_url?: string | null;
  containers: ContainerStatus[];
  findings: Finding[];
  consents: Consent[];
  installed_at: string;
  updated_at: string;
  last_error?: string | null;
  update_available: boolean;
  store_version?: string | null;
}

export interface ServiceSettings {
  service: string;
  image: string;
  env: Record<string, string>;
  ports: Record<string, number>;
  volumes: Record<string, string>;
}

export interface AppSettingsView {
  settings: AppSettings;
  services: ServiceSettings[];
}

export type Category = { name: string; font?: string | null; description?: string | null };

/** Every `x-casaos` field; the dashboard reads the few it shows. */
export type AppMeta = {
  author?: string | null;
  developer?: string | null;
  [key: string]: unknown;
};

export type AppSource = { kind: 'store'; store: string; app: string } | { kind: 'custom' };

/** User changes over the compose file: variables, env per service, ports and bind sources. */
export type AppSettings = {
  vars?: Record<string, string>;
  env?: Record<string, Record<string, string>>;
  /** Per service: `"8080/tcp"` (or `"8080"`) → host port. */
  ports?: Record<string, Record<string, number>>;
  /** Per service: container path → host path. */
  volumes?: Record<string, Record<string, string>>;
};

export type Finding = { id: string; kind: string; service: string; subject: string; message: string };

export type Consent = { finding: string; by: string; at: string };

export type PortAssignment = {
  service: string;
  container_port: number;
  protocol: string;
  requested?: number | null;
  host_port?: number | null;
};

export type PlanMount =
  | { type: 'bind'; source: string; target: string; read_only: boolean }
  | { type: 'volume'; name?: string | null; target: string; read_only: boolean }
  | { type: 'tmpfs'; target: string; size?: number | null };

export type PlanContainer = {
  service: string;
  name: string;
  image: string;
  env: Record<string, string>;
  mounts: PlanMount[];
};

export type Plan = {
  app_id: string;
  version?: string | null;
  containers: PlanContainer[];
  host_folders: string[];
  ports: PortAssignment[];
  web_ui?: unknown;
  architecture_supported: boolean;
  findings: Finding[];
  warnings: string[];
};

export type ContainerStatus = {
  id: string;
  name: string;
  state: string;
  health: string;
  exit_code?: number | null;
  image_id: string;
  labels: Record<string, string>;
};

export type AppStats = {
  cpu_percent: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  net_rx_bytes: number;
  net_tx_bytes: number;
};

export type LogLine = { container: string; stream: 'stdout' | 'stderr'; text: string };

/** The `app_progress` event: a step, or one layer's pull bytes when `layer` is set. */
export type AppProgressEvent = {
  app: string;
  operation: string;
  phase: string;
  message: string;
  image?: string;
  layer?: string;
  current?: number;
  total?: number;
};

/** The `app_state` event: installing, running, stopped, updating, failed, removed. */
export type AppStateEvent = { app: string; state: string; error?: string };
