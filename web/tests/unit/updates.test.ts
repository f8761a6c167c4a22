import { describe, expect, it } from 'vitest';
import {
  canInstall,
  countsBytes,
  crossesMidnight,
  formFromPolicy,
  historyKindKey,
  isBadOutcome,
  isBusy,
  normalizeTime,
  pausedUntil,
  phaseKey,
  policyPatch,
  policyProblems,
  progressPercent,
  rebootKey,
  reusedPercent,
  stateKey,
  windowMinutes,
  windowProblems,
  type PolicyForm,
} from '../../src/lib/updates';
import { en } from '../../src/lib/locales/en';
import type { HistoryKind, UpdateState, UpdatePolicy, UpdateStatus } from '../../src/lib/types';

const POLICY: UpdatePolicy = {
  channel: 'stable',
  auto_install: false,
  reboot: 'manual',
  maintenance_window: { start: '03:00', end: '05:00' },
};

const form = (over: Partial<PolicyForm> = {}): PolicyForm => ({ ...formFromPolicy(POLICY), ...over });

function status(over: Partial<UpdateStatus> = {}): UpdateStatus {
  return {
    configured: true,
    current: { version: '1.0.0', version_number: 1000000, board: 'qemu-x86_64', arch: 'amd64', slot: 'a', build_id: 'ab' },
    not_configured_reason: null,
    boot: { primary: 'a', trial: null, bootable: ['a'] },
    policy: POLICY,
    state: 'idle',
    last_check: null,
    available: { version: '1.1.0', version_number: 1001000, size: 1 << 20, notes: '', published: '2026-01-01T00:00:00Z' },
    progress: null,
    pending_reboot: null,
    history: [],
    ...over,
  };
}

describe('update policy form', () => {
  it('accepts the saved policy and sends nothing for it', () => {
    expect(policyProblems(form())).toEqual({});
    expect(policyPatch(POLICY, form())).toEqual({});
  });

  it('sends only what changed, with the channel trimmed and times normalized', () => {
    expect(policyPatch(POLICY, form({ auto_install: true }))).toEqual({ auto_install: true });
    expect(policyPatch(POLICY, form({ channel: ' beta ' }))).toEqual({ channel: 'beta' });
    expect(policyPatch(POLICY, form({ reboot: 'maintenance_window', start: '1:30' }))).toEqual({
      reboot: 'maintenance_window',
      maintenance_window: { start: '01:30', end: '05:00' },
    });
    // The window goes as a whole, even when one end changed.
    expect(policyPatch(POLICY, form({ end: '0600' }))).toEqual({ maintenance_window: { start: '03:00', end: '06:00' } });
  });

  it('refuses bad channels', () => {
    expect(policyProblems(form({ channel: '  ' }))).toEqual({ channel: 'updates.channel_empty' });
    for (const bad of ['Stable', '-beta', 'beta channel', 'ünstable', 'x'.repeat(65), 'a/b']) {
      expect(policyProblems(form({ channel: bad })), bad).toEqual({ channel: 'updates.channel_invalid' });
    }
    for (const good of ['stable', 'beta-2', 'nightly_x', '0', 'x'.repeat(64)]) {
      expect(policyProblems(form({ channel: good })), good).toEqual({});
    }
  });

  it('refuses times that are not HH:MM and an empty window', () => {
    for (const bad of ['24:00', '12:60', '', 'noon', '3', '12:5', '-1:00', '03:00:00']) {
      expect(policyProblems(form({ start: bad })).start, bad).toBe('updates.time_invalid');
      expect(policyProblems(form({ end: bad })).end, bad).toBe('updates.time_invalid');
    }
    expect(policyProblems(form({ start: '04:00', end: '04:00' }))).toEqual({ end: 'updates.window_empty' });
    expect(policyProblems(form({ start: '4:00', end: '0400' }))).toEqual({ end: 'updates.window_empty' });
    expect(policyProblems(form({ start: '23:59', end: '00:00' }))).toEqual({});
  });

  it('normalizes typed times', () => {
    expect(normalizeTime(' 3:05 ')).toBe('03:05');
    expect(normalizeTime('0300')).toBe('03:00');
    expect(normalizeTime('23:15')).toBe('23:15');
    expect(normalizeTime('noon')).toBe('noon');
  });

  it('measures windows across midnight', () => {
    expect(windowMinutes('03:00', '05:00')).toBe(120);
    expect(windowMinutes('22:00', '02:00')).toBe(240);
    expect(windowMinutes('22:00', 'x')).toBe(0);
    expect(crossesMidnight('22:00', '02:00')).toBe(true);
    expect(crossesMidnight('02:00', '22:00')).toBe(false);
    expect(crossesMidnight('bad', '02:00')).toBe(false);
  });
});

describe('update words', () => {
  it('has a translated text for every state, history kind, reboot choice and known phase', () => {
    const states: UpdateState[] = ['idle', 'checking', 'downloading', 'installing', 'reboot_required', 'trial'];
    const kinds: HistoryKind[] = ['installed', 'committed', 'rolled_back', 'failed', 'interrupted', 'refused'];
    const keys = [
      ...states.map(stateKey),
      ...kinds.map(historyKindKey),
      ...(['manual', 'immediately', 'maintenance_window'] as const).map(rebootKey),
      ...['download', 'mark_unbootable', 'index', 'write', 'sync', 'verify', 'activate'].map(phaseKey),
    ];
    for (const key of keys) expect(key !== null && key in en, String(key)).toBe(true);
    expect(new Set(states.map(stateKey)).size).toBe(states.length);
    expect(new Set(kinds.map(historyKindKey)).size).toBe(kinds.length);
  });

  it('leaves unknown phases to a generic text', () => {
    expect(phaseKey('defragment')).toBeNull();
    expect(historyKindKey('exploded' as HistoryKind)).toBe('updates.kind_other');
  });

  it('marks failed, rolled back and interrupted updates and refused slots', () => {
    expect(isBadOutcome('failed')).toBe(true);
    expect(isBadOutcome('refused')).toBe(true);
    expect(isBadOutcome('rolled_back')).toBe(true);
    expect(isBadOutcome('interrupted')).toBe(true);
    expect(isBadOutcome('installed')).toBe(false);
    expect(isBadOutcome('committed')).toBe(false);
  });
});

describe('update progress and actions', () => {
  it('computes percentages without dividing by zero', () => {
    expect(progressPercent(null)).toBe(0);
    expect(progressPercent({ phase: 'write', done: 5, total: 0, downloaded_bytes: 0, reused_bytes: 0 })).toBe(0);
    expect(progressPercent({ phase: 'write', done: 25, total: 100, downloaded_bytes: 0, reused_bytes: 0 })).toBe(25);
    expect(progressPercent({ phase: 'write', done: 150, total: 100, downloaded_bytes: 0, reused_bytes: 0 })).toBe(100);
    expect(reusedPercent(0, 0)).toBe(0);
    expect(reusedPercent(10, 30)).toBe(75);
  });

  it('counts bytes only in the phases that move bytes', () => {
    expect(['write', 'verify', 'index', 'download'].every(countsBytes)).toBe(true);
    expect(['mark_unbootable', 'sync', 'activate', 'x'].some(countsBytes)).toBe(false);
  });

  it('knows which states are busy', () => {
    expect(['checking', 'downloading', 'installing'].every((s) => isBusy(s as UpdateState))).toBe(true);
    expect(['idle', 'reboot_required', 'trial'].some((s) => isBusy(s as UpdateState))).toBe(false);
  });

  it('offers Install only when an update is there and nothing else is going on', () => {
    expect(canInstall(status())).toBe(true);
    expect(canInstall(status({ available: null }))).toBe(false);
    expect(canInstall(status({ configured: false }))).toBe(false);
    expect(canInstall(status({ state: 'downloading' }))).toBe(false);
    expect(canInstall(status({ state: 'trial' }))).toBe(false);
    expect(canInstall(status({ state: 'reboot_required', pending_reboot: { version: '1.1.0', slot: 'b' } }))).toBe(false);
  });
});

describe('the wizard window and the pause', () => {
  it('checks the wizard window like the Updates page', () => {
    expect(windowProblems('03:00', '05:00')).toEqual({});
    expect(windowProblems('3:00', '5:00')).toEqual({});
    expect(windowProblems('23:00', '01:00')).toEqual({});
    expect(windowProblems('04:00', '4:00')).toEqual({ end: 'updates.window_empty' });
    expect(windowProblems('25:00', '05:00')).toEqual({ start: 'updates.time_invalid' });
    expect(windowProblems('03:00', '27:00')).toEqual({ end: 'updates.time_invalid' });
  });

  it('reads a pause only while it lasts', () => {
    const policy = {
      channel: 'stable',
      auto_install: true,
      reboot: 'maintenance_window' as const,
      maintenance_window: { start: '03:00', end: '05:00' },
    };
    const now = new Date('2026-01-05T00:00:00Z');
    expect(pausedUntil(policy, now)).toBeNull();
    expect(pausedUntil({ ...policy, paused_until: '2026-01-08T00:00:00Z' }, now)?.toISOString()).toBe(
      '2026-01-08T00:00:00.000Z',
    );
    expect(pausedUntil({ ...policy, paused_until: '2026-01-01T00:00:00Z' }, now)).toBeNull();
    expect(pausedUntil({ ...policy, paused_until: 'garbage' }, now)).toBeNull();
  });
});
