// The agent's input grammars, checked in the browser first so mistakes show next to the field.
// The agent checks again; these only spare a round trip.

import type { MessageKey } from './i18n';

export const USERNAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
export const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 1024;

/** Each returns the message key of the problem, or null when the value is acceptable. */
export function usernameProblem(name: string): MessageKey | null {
  return USERNAME_RE.test(name) ? null : 'validate.username';
}

export function passwordProblem(password: string): MessageKey | null {
  const chars = [...password].length;
  if (chars < PASSWORD_MIN) return 'validate.password_short';
  if (chars > PASSWORD_MAX) return 'validate.password_long';
  return null;
}

export function hostnameProblem(hostname: string): MessageKey | null {
  return HOSTNAME_RE.test(hostname) ? null : 'validate.hostname';
}

export function totpCodeProblem(code: string): MessageKey | null {
  return /^\d{6}$/.test(code) ? null : 'validate.totp';
}

/** The browser's time zones, always including `extra` (the current choice). */
export function timeZones(extra: string): string[] {
  let zones: string[] = [];
  try {
    zones = Intl.supportedValuesOf('timeZone');
  } catch {
    zones = [];
  }
  const all = new Set(zones);
  all.add('Etc/UTC');
  if (extra) all.add(extra);
  return [...all].sort();
}

export function browserTimeZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'Etc/UTC';
  } catch {
    return 'Etc/UTC';
  }
}
