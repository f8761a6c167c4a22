// Network management: the address form's checks (CIDR, gateway inside the subnet, DNS list),
// the safe-apply countdown and Wi-Fi helpers. Pure functions; the types are the agent's
// (types.ts) and the calls are in api.ts, both checked against its OpenAPI document.

import { ApiError } from './api';
import type { MessageKey } from './i18n';
import type { Interface, IpPatch, IpState, PendingChange, WifiNetwork } from './types';

export type Family = 4 | 6;

/** 404 (no such endpoint: an agent without network management) and 503 (NetworkManager down). */
export function isUnavailable(err: unknown): boolean {
  return err instanceof ApiError && (err.status === 404 || err.status === 503);
}

// Addresses -------------------------------------------------------------------------------

/** Dotted-quad IPv4 → 4 bytes, or null. No leading zeros (they read as octal elsewhere). */
export function parseIpv4(text: string): number[] | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const bytes = parts.map((p) => (/^(0|[1-9]\d{0,2})$/.test(p) ? Number(p) : NaN));
  return bytes.every((b) => b >= 0 && b <= 255) ? bytes : null;
}

/** IPv6 (with "::" and an optional dotted-quad tail) → 16 bytes, or null. No zone ids. */
export function parseIpv6(text: string): number[] | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string, v4Tail: boolean): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (const [i, item] of items.entries()) {
      if (v4Tail && i === items.length - 1 && item.includes('.')) {
        const v4 = parseIpv4(item);
        if (v4 === null) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(item)) out.push(parseInt(item, 16));
      else return null;
    }
    return out;
  };
  let all: number[] | null;
  if (halves.length === 1) {
    all = groups(text, true);
  } else {
    const head = groups(halves[0], false);
    const tail = groups(halves[1], true);
    all = head && tail && head.length + tail.length <= 7 ? [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail] : null;
  }
  if (all === null || all.length !== 8) return null;
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

export function parseIp(text: string, family: Family): number[] | null {
  return family === 4 ? parseIpv4(text) : parseIpv6(text);
}

export interface Cidr {
  address: number[];
  prefix: number;
}

/** "192.168.1.5/24" → address bytes and prefix length; null when either part is wrong. */
export function parseCidr(text: string, family: Family): Cidr | null {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  if (!m) return null;
  const address = parseIp(m[1], family);
  const prefix = Number(m[2]);
  const max = family === 4 ? 32 : 128;
  if (address === null || prefix > max || (m[2].length > 1 && m[2].startsWith('0'))) return null;
  return { address, prefix };
}

/** Whether `ip` lies in the subnet of `cidr` (the first `prefix` bits agree). */
export function inSubnet(ip: number[], cidr: Cidr): boolean {
  if (ip.length !== cidr.address.length) return false;
  for (let bit = 0; bit < cidr.prefix; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if ((ip[byte] & mask) !== (cidr.address[byte] & mask)) return false;
  }
  return true;
}

/** For IPv4 subnets with room for hosts: the address is the network's or the broadcast one. */
export function isNetworkOrBroadcast(cidr: Cidr): boolean {
  if (cidr.address.length !== 4 || cidr.prefix >= 31) return false;
  const hostMask = (i: number) => 0xff >> Math.max(0, Math.min(8, cidr.prefix - i * 8));
  const allZero = cidr.address.every((b, i) => (b & hostMask(i)) === 0);
  const allOnes = cidr.address.every((b, i) => (b & hostMask(i)) === hostMask(i));
  return allZero || allOnes;
}

/** A list typed with commas, spaces or new lines → its non-empty items. */
export function splitList(text: string): string[] {
  return text
    .split(/[\s,;]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** What the person typed for one address family. */
export interface IpForm {
  method: 'auto' | 'manual';
  addresses: string;
  gateway: string;
  dns: string;
}

export interface IpFormProblems {
  addresses?: MessageKey;
  gateway?: MessageKey;
  dns?: MessageKey;
}

/**
 * Checks one family's form: with "manual", at least one address in CIDR form (not a network or
 * broadcast address); an optional gateway inside one of their subnets and not one of them; DNS
 * servers as plain addresses of either family. With "auto" only the DNS list is checked (extra
 * servers besides DHCP's).
 */
export function ipFormProblems(form: IpForm, family: Family): IpFormProblems {
  const problems: IpFormProblems = {};
  const dns = splitList(form.dns);
  if (dns.some((d) => parseIpv4(d) === null && parseIpv6(d) === null)) problems.dns = 'network.bad_dns';
  if (form.method === 'auto') return problems;
  const items = splitList(form.addresses);
  const cidrs = items.map((a) => parseCidr(a, family));
  if (items.length === 0) problems.addresses = 'network.need_address';
  else if (cidrs.some((c) => c === null)) problems.addresses = family === 4 ? 'network.bad_cidr4' : 'network.bad_cidr6';
  else if (cidrs.some((c) => c !== null && isNetworkOrBroadcast(c))) problems.addresses = 'network.network_address';
  const gateway = form.gateway.trim();
  if (gateway !== '') {
    const gw = parseIp(gateway, family);
    const valid = cidrs.filter((c): c is Cidr => c !== null);
    if (gw === null) problems.gateway = family === 4 ? 'network.bad_ip4' : 'network.bad_ip6';
    else if (valid.length > 0 && !valid.some((c) => inSubnet(gw, c))) problems.gateway = 'network.gateway_outside';
    else if (valid.some((c) => c.address.every((b, i) => b === gw[i]))) problems.gateway = 'network.gateway_is_self';
  }
  return problems;
}

export function hasProblems(p: IpFormProblems): boolean {
  return p.addresses !== undefined || p.gateway !== undefined || p.dns !== undefined;
}

/** The form as the agent's patch for one family. */
export function ipPatch(form: IpForm): IpPatch {
  if (form.method === 'auto') return { method: 'auto', dns: splitList(form.dns) };
  const gateway = form.gateway.trim();
  return {
    method: 'manual',
    addresses: splitList(form.addresses),
    gateway: gateway === '' ? null : gateway,
    dns: splitList(form.dns),
  };
}

/** The form filled from what the interface has now. */
export function formFrom(config: IpState): IpForm {
  return {
    method: config.method === 'manual' ? 'manual' : 'auto',
    addresses: config.addresses.join('\n'),
    gateway: config.gateway ?? '',
    dns: config.dns.join(', '),
  };
}

/** Interfaces whose addresses the dashboard may change. */
export function configurable(iface: Interface): boolean {
  return (iface.kind === 'ethernet' || iface.kind === 'wifi') && iface.state !== 'unmanaged';
}

// Safe apply ------------------------------------------------------------------------------

/** Whole seconds until `deadlineMs` (never negative; rounds up so "1" shows until the end). */
export function secondsLeft(deadlineMs: number, nowMs: number): number {
  return Math.max(0, Math.ceil((deadlineMs - nowMs) / 1000));
}

/**
 * The safe-apply flow: the agent applied the change and reverts it by itself at the deadline
 * unless it is confirmed. The page polls /api/health; the first answer confirms.
 */
export type ApplyPhase =
  | { kind: 'waiting'; checkpoint: string; deadlineMs: number }
  | { kind: 'confirmed' }
  | { kind: 'reverted'; byUser: boolean }
  | { kind: 'failed'; message: string };

export function startApply(cp: PendingChange, nowMs: number): ApplyPhase {
  return { kind: 'waiting', checkpoint: cp.checkpoint, deadlineMs: nowMs + cp.rollback_seconds * 1000 };
}

/** Past the deadline without a confirmation the agent has reverted by itself. */
export function expire(phase: ApplyPhase, nowMs: number): ApplyPhase {
  if (phase.kind === 'waiting' && nowMs >= phase.deadlineMs) return { kind: 'reverted', byUser: false };
  return phase;
}

// Wi-Fi -----------------------------------------------------------------------------------

export function isOpenNetwork(n: WifiNetwork): boolean {
  return n.security === 'open';
}

/** Connecting needs a password for a secured network the device does not know yet. */
export function needsPassword(n: WifiNetwork): boolean {
  return !isOpenNetwork(n) && !n.known;
}

/** WPA passphrases: 8–63 characters (or 64 hex digits, a raw key). */
export function wifiPasswordValid(password: string): boolean {
  return (password.length >= 8 && password.length <= 63) || /^[0-9a-fA-F]{64}$/.test(password);
}

/** The active network first, then by signal. */
export function sortNetworks(list: readonly WifiNetwork[]): WifiNetwork[] {
  return [...list].sort((a, b) => Number(b.active) - Number(a.active) || b.signal - a.signal || a.ssid.localeCompare(b.ssid));
}

export function band(frequencyMhz: number): '2.4' | '5' | '6' | null {
  if (frequencyMhz >= 2400 && frequencyMhz < 2500) return '2.4';
  if (frequencyMhz >= 5000 && frequencyMhz < 5925) return '5';
  if (frequencyMhz >= 5925 && frequencyMhz < 7200) return '6';
  return null;
}

/** Whether the device answers /api/health within `timeoutMs` (a changed address may not). */
export async function reachable(fetchImpl: typeof fetch = fetch, timeoutMs = 3000): Promise<boolean> {
  try {
    const res = await fetchImpl('/api/health', { signal: AbortSignal.timeout(timeoutMs), cache: 'no-store' });
    return res.ok;
  } catch {
    return false;
  }
}
