// Shapes of the agent's JSON API. Names, fields and optionality match the schemas of the
// agent's OpenAPI document (/api/openapi.json); tests/browser/openapi.test.mjs checks that
// against a running agent, so this file cannot drift from the API unnoticed.

export type Role = 'admin' | 'member';

export interface User {
  username: string;
  role: Role;
  totp_enabled: boolean;
  /** May read app logs (always for admins; members when an admin grants it). */
  app_logs: boolean;
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
  app_logs?: boolean;
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
  /** Server errors only: the id the device logged the details under. */
  request_id?: string;
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

/** `GET/PATCH /api/v1/disks/settings`: `removable` mounts USB disks and SD cards when plugged in. */
export type AutomountPolicy = 'off' | 'removable';

export interface DiskSettings {
  automount: AutomountPolicy;
}

export type DiskChange = 'disk_added' | 'disk_removed' | 'disk_changed';

/**
 * Data of the `disk_added` / `disk_removed` / `disk_changed` events on /api/v1/events (admins):
 * `info` is the disk as GET /api/v1/disks lists it, null once it is gone.
 */
export interface DiskEvent {
  change: DiskChange;
  disk: string;
  device: string;
  info?: Record<string, unknown> | null;
  automounted: string[];
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

/** One device CA, as the dashboard shows it (rotation: docs/security.md). */
export interface CaInfo {
  common_name: string;
  fingerprint_sha256: string;
  not_before?: string | null;
  not_after?: string | null;
  name_constrained: boolean;
}

export interface CaStatus {
  current: CaInfo;
  pending?: CaInfo | null;
  previous?: CaInfo | null;
  permitted_dns: string[];
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

export type RootKind = 'home' | 'share' | 'appdata' | 'disk';

export interface RootInfo {
  /** `home`, a share's name (e.g. `shared`), `appdata` or `disk-<name>`. */
  name: string;
  kind: RootKind;
  /** False for a share granted read-only: changes answer 403. */
  writable: boolean;
}

/** A member's access to a shared folder; admins always have full access. */
export type Access = 'read' | 'write';

/** A shared folder (`GET /api/v1/shares`, admins). */
export interface Share {
  name: string;
  grants: Record<string, Access>;
}

export interface CreateShareRequest {
  name: string;
  grants?: Record<string, Access>;
}

/** `PATCH /api/v1/shares/{name}`: a new name renames the folder; grants replace all grants. */
export interface UpdateShareRequest {
  name?: string | null;
  grants?: Record<string, Access> | null;
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
  /** Machine-readable code of a failure, where the job has one (`update_bundle_invalid`, …). */
  error_code?: string | null;
}

// Network (agent/src/api/network.rs, admin only). A change answers with a checkpoint that the
// dashboard confirms once it reaches the device again; unconfirmed, the device rolls back.

export type InterfaceKind = 'ethernet' | 'wifi' | 'loopback' | 'bridge' | 'other';
export type InterfaceState = 'connected' | 'connecting' | 'disconnected' | 'unavailable' | 'unmanaged';
/** `ignore` only for IPv6; a change accepts `auto` or `manual`. */
export type IpMethod = 'auto' | 'manual' | 'disabled' | 'ignore';
export type WifiSecurity = 'open' | 'wep' | 'wpa2' | 'wpa3' | 'wpa2-enterprise';

export interface IpState {
  method: IpMethod;
  /** `address/prefix`, e.g. `192.168.1.5/24`. */
  addresses: string[];
  gateway: string | null;
  dns: string[];
}

export interface Interface {
  name: string;
  kind: InterfaceKind;
  state: InterfaceState;
  mac: string | null;
  speed_mbps: number | null;
  /** Id of the active connection profile. */
  connection: string | null;
  ipv4: IpState;
  ipv6: IpState;
}

export interface InterfaceList {
  interfaces: Interface[];
}

export interface IpPatch {
  method: 'auto' | 'manual';
  /** With `manual` only, at least one. */
  addresses?: string[];
  /** With `manual` only. */
  gateway?: string | null;
  dns?: string[];
}

export interface InterfacePatch {
  ipv4?: IpPatch | null;
  ipv6?: IpPatch | null;
}

export interface PendingChange {
  checkpoint: string;
  rollback_seconds: number;
}

export interface WifiNetwork {
  ssid: string;
  /** 0–100. */
  signal: number;
  security: WifiSecurity;
  frequency_mhz: number;
  known: boolean;
  active: boolean;
}

export interface WifiList {
  device: string | null;
  networks: WifiNetwork[];
}

export interface WifiConnect {
  ssid: string;
  password?: string | null;
}

// Apps: stores, the catalog, installed apps. The interfaces below match named schemas; the
// `type` aliases after them are parts the API documents only as free-form objects (plans,
// findings, container status, stats, events), so the OpenAPI check cannot see them.

/** An app store: a folder on the device or a zip downloaded over https. */
export interface StoreInfo {
  id: string;
  /** The store folder, or the zip URL. */
  source: string;
  /** The zip URL of a downloaded store (null for a folder on the device). */
  url?: string | null;
  /** From the configuration (cannot be removed through the API). */
  configured: boolean;
  /** When the copy being served was loaded. */
  loaded_at?: string | null;
  /** When the last refresh was tried. */
  refreshed_at?: string | null;
  /** Why the last refresh failed (the last good copy is still served). */
  error?: string | null;
  apps: number;
}

/** Exactly one of `path` (a folder on the device) or `url` (an https store zip). */
export interface AddStoreRequest {
  path?: string | null;
  url?: string | null;
}

/** One catalog hit, localized. */
export interface CatalogEntry {
  store: string;
  app: string;
  title: string;
  tagline: string;
  category?: string | null;
  version?: string | null;
  /** The agent's route serving the icon (never the store's third-party URL). */
  icon?: string | null;
  /** False when the app is not published for this device's architecture. */
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
  /** The agent's routes serving the screenshots, in order. */
  screenshots: string[];
  /** The agent's route serving the thumbnail. */
  thumbnail?: string | null;
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

/** PATCH /api/v1/apps/{id}: new settings (re-created), and/or the auto-update flag. */
export interface PatchAppBody {
  settings?: AppSettings | null;
  consent?: string[];
  auto_update?: boolean | null;
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
  /** The store has a different version, or a moving tag points at a new image. */
  update_available: boolean;
  /** 'store_version' | 'image_digest' (null when no update is available). */
  update_reason?: string | null;
  /** Services whose tag points at a new image (from the last digest check). */
  updated_images: string[];
  /** When the registries were last asked. */
  digest_checked_at?: string | null;
  store_version?: string | null;
  /** Updated automatically when the periodic check finds an update. */
  auto_update: boolean;
  /** Kept stopped: it needs consent (or its file is refused) under this agent's policy. */
  held?: Hold | null;
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

/** POST /api/v1/apps/convert */
export interface ConvertRequest {
  /** A `docker run ...` command line (split with shell quoting rules; nothing is run). */
  command: string;
}

/** Compose YAML converted from a `docker run` command, and what did not convert. */
export interface Converted {
  yaml: string;
  warnings: string[];
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

export type Finding = {
  id: string;
  kind: string;
  service: string;
  subject: string;
  message: string;
  /** The other installed app the finding reaches into (its data, volume, network, container). */
  app?: string | null;
};

/** Why an installed app is held stopped by the policy (see docs/apps.md). */
export type Hold =
  | { reason: 'unconsented'; findings: Finding[]; at: string }
  | { reason: 'refused'; message: string; at: string };

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

// The device (agent/src/api/device.rs): services, journal, power and settings.

export type UnitAction = 'start' | 'stop' | 'restart';

export interface UnitStatus {
  name: string;
  description: string;
  /** `loaded`, `not-found`, … */
  load_state: string;
  /** `active`, `inactive`, `failed`, `activating`, … */
  active_state: string;
  sub_state: string;
  /** What an admin may do to this unit (the agent's allow-list). */
  actions: UnitAction[];
}

export interface JournalEntry {
  /** Microseconds since the Unix epoch. */
  time_usec: number;
  /** 0 (emergency) … 7 (debug). */
  priority: number;
  identifier: string;
  message: string;
}

export interface PowerRequest {
  confirm: boolean;
}

export interface SystemSettings {
  hostname: string;
  timezone: string;
  ntp: boolean;
  ntp_synchronized: boolean;
  /** Microseconds since the Unix epoch, as the device sees it. */
  time_usec: number;
}

export interface SettingsPatch {
  hostname?: string | null;
  timezone?: string | null;
  ntp?: boolean | null;
}

// Disks (agent/src/api/disks.rs).

export interface Usage {
  total_bytes: number;
  used_bytes: number;
}

export interface Partition {
  name: string;
  path: string;
  number: number;
  size_bytes: number;
  fs_type?: string | null;
  label?: string | null;
  uuid?: string | null;
  mount_points: string[];
  usage?: Usage | null;
}

export interface SmartHealth {
  passed: boolean;
  temperature_celsius?: number | null;
  power_on_hours?: number | null;
}

export interface Disk {
  /** Kernel name, also the id in URLs (`sda`, `nvme0n1`, `loop3`). */
  name: string;
  path: string;
  size_bytes: number;
  model?: string | null;
  serial?: string | null;
  /** `usb`, `sata`, `nvme`, `sd`, `virtio`, `loop` or `other`. */
  bus: string;
  removable: boolean;
  rotational: boolean;
  /** Holds the running system: never formatted, partitioned or unmounted. */
  system: boolean;
  fs_type?: string | null;
  label?: string | null;
  mount_points: string[];
  partitions: Partition[];
  smart?: SmartHealth | null;
}

export type Filesystem = 'ext4' | 'btrfs' | 'exfat';

export interface FormatRequest {
  filesystem: Filesystem;
  label?: string | null;
  /** The disk's name, typed by the person to confirm. */
  confirm: string;
}

export interface MountRequest {
  partition?: string | null;
}

// System updates (agent/src/api/update.rs, admin only; docs/updates.md).

export type RebootPolicy = 'manual' | 'immediately' | 'maintenance_window';

export interface MaintenanceWindow {
  /** HH:MM, device local time; the window may wrap midnight. */
  start: string;
  end: string;
}

export interface UpdatePolicy {
  channel: string;
  auto_install: boolean;
  reboot: RebootPolicy;
  maintenance_window: MaintenanceWindow;
}

/** PATCH /api/v1/update/policy: any subset. */
export interface PolicyPatch {
  channel?: string | null;
  auto_install?: boolean | null;
  reboot?: RebootPolicy | null;
  maintenance_window?: MaintenanceWindow | null;
}

export type CheckResult = 'up_to_date' | 'available' | 'error';

export interface UpdateErrorInfo {
  code: string;
  message: string;
}

export interface LastCheck {
  at: string;
  result: CheckResult;
  error?: UpdateErrorInfo | null;
}

export interface AvailableUpdate {
  version: string;
  version_number: number;
  size: number;
  notes: string;
  published: string;
}

export interface CurrentRelease {
  version: string;
  version_number: number;
  board: string;
  arch: string;
  slot?: string | null;
  build_id: string;
}

export interface TrialInfo {
  slot: string;
  tries_left: number;
}

export interface BootInfo {
  primary?: string | null;
  trial?: TrialInfo | null;
  bootable: string[];
}

export type UpdateState = 'idle' | 'checking' | 'downloading' | 'installing' | 'reboot_required' | 'trial';

export interface UpdateProgress {
  /** mark_unbootable, index, write, sync, verify, activate */
  phase: string;
  done: number;
  total: number;
  downloaded_bytes: number;
  reused_bytes: number;
}

export interface PendingReboot {
  version: string;
  slot: string;
}

export type HistoryKind = 'installed' | 'committed' | 'rolled_back' | 'failed' | 'interrupted';

export interface HistoryEntry {
  id: number;
  at: string;
  kind: HistoryKind;
  from_version: string;
  to_version: string;
  reason?: string | null;
  code?: string | null;
  downloaded_bytes: number;
  reused_bytes: number;
}

export interface UpdateStatus {
  configured: boolean;
  not_configured_reason?: string | null;
  current?: CurrentRelease | null;
  boot?: BootInfo | null;
  policy: UpdatePolicy;
  state: UpdateState;
  last_check?: LastCheck | null;
  available?: AvailableUpdate | null;
  progress?: UpdateProgress | null;
  pending_reboot?: PendingReboot | null;
  /** Newest first. */
  history: HistoryEntry[];
}

export interface UpdateJob {
  job_id: string;
}
