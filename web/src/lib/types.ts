// Shapes of the agent's JSON API (see the agent's OpenAPI document at /api/openapi.json).
// Kept in one file so a later generator can replace it wholesale.

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
export interface SessionGrant {
  csrf_token: string;
  user: User;
}

export interface SessionInfo extends SessionGrant {
  expires_at: string;
}

export interface NewUser {
  username: string;
  password: string;
  role: Role;
}

export interface UserPatch {
  role?: Role;
  password?: string;
}

export interface TotpEnrolment {
  secret: string;
  otpauth_uri: string;
  qr_svg: string;
}

export interface CpuStatus {
  usage_percent: number;
  cores: { usage_percent: number }[];
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

export interface TemperatureStatus {
  sensor: string;
  label: string;
  celsius: number;
}

export interface NetworkStatus {
  interface: string;
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
  temperatures: TemperatureStatus[];
  network: NetworkStatus[];
}
