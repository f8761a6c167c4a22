import { describe, expect, it } from 'vitest';
import {
  hostnameProblem,
  passwordProblem,
  timeZones,
  totpCodeProblem,
  usernameProblem,
} from '../../src/lib/validate';
import { matchRoute } from '../../src/lib/routes';

describe('input grammars (mirror of the agent)', () => {
  it('accepts and refuses user names', () => {
    for (const ok of ['admin', '_svc', 'a', 'bob-2', 'x'.repeat(32)]) expect(usernameProblem(ok)).toBeNull();
    for (const bad of ['', 'Admin', '1abc', '-a', 'a b', 'x'.repeat(33), 'é']) {
      expect(usernameProblem(bad)).toBe('validate.username');
    }
  });

  it('counts password characters, not bytes', () => {
    expect(passwordProblem('1234567')).toBe('validate.password_short');
    expect(passwordProblem('12345678')).toBeNull();
    expect(passwordProblem('😀'.repeat(8))).toBeNull();
    expect(passwordProblem('x'.repeat(1025))).toBe('validate.password_long');
  });

  it('accepts and refuses host names', () => {
    for (const ok of ['hearth', 'a', 'my-box-2', 'a'.repeat(63)]) expect(hostnameProblem(ok)).toBeNull();
    for (const bad of ['', '-a', 'a-', 'Hearth', 'a.b', 'a'.repeat(64)]) {
      expect(hostnameProblem(bad)).toBe('validate.hostname');
    }
  });

  it('wants six digits for TOTP', () => {
    expect(totpCodeProblem('012345')).toBeNull();
    expect(totpCodeProblem('12345')).toBe('validate.totp');
    expect(totpCodeProblem('12345a')).toBe('validate.totp');
  });

  it('offers the current zone and Etc/UTC among the time zones', () => {
    const zones = timeZones('Mars/Olympus');
    expect(zones).toContain('Mars/Olympus');
    expect(zones).toContain('Etc/UTC');
    expect(zones).toEqual([...zones].sort());
  });
});

describe('routes', () => {
  it('matches paths with and without a trailing slash', () => {
    expect(matchRoute('/')?.id).toBe('home');
    expect(matchRoute('/users/')?.id).toBe('users');
    expect(matchRoute('/apps')?.id).toBe('apps');
    expect(matchRoute('/apps/store/main/WebApp')?.id).toBe('app-store');
    expect(matchRoute('/apps/custom')?.id).toBe('app-custom');
    expect(matchRoute('/apps/webapp')?.id).toBe('apps');
    expect(matchRoute('/nope')).toBeNull();
  });
});
