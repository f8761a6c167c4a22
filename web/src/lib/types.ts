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
