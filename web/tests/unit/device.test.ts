import { describe, expect, it } from 'vitest';
import { DISK_EVENTS, confirmationMatches, diskActions, isDiskEvent, labelValid, totalUsage } from '../../src/lib/disks';
import {
  MAX_LINES,
  NO_FILTERS,
  PAGE_LINES,
  applySince,
  canLoadMore,
  journalQuery,
  nextLines,
  priorityName,
  severity,
} from '../../src/lib/journal';
import { offeredActions, stateClass } from '../../src/lib/services';
import { deviceClock, filterZones } from '../../src/lib/settings';
import type { Disk, JournalEntry, Partition, UnitStatus } from '../../src/lib/types';

const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);
/** An entry `minutesAgo` before NOW. */
const entry = (minutesAgo: number, priority = 6): JournalEntry => ({
  time_usec: (NOW - minutesAgo * 60_000) * 1000,
  priority,
  identifier: 'x',
  message: `m${minutesAgo}`,
});

describe('journal filters', () => {
  it('sends the priority and a trimmed text, and no empty filters', () => {
    expect(journalQuery(NO_FILTERS, 100)).toEqual({ lines: 100, priority: undefined, contains: undefined });
    expect(journalQuery({ priority: 3, text: '  failed ', since: 3600 }, 200)).toEqual({
      lines: 200,
      priority: 3,
      contains: 'failed',
    });
    expect(journalQuery({ priority: 0, text: '   ', since: 0 }, 5000)).toEqual({ lines: MAX_LINES, priority: 0, contains: undefined });
  });

  it('keeps entries inside the "since" window', () => {
    const entries = [entry(1), entry(59), entry(61), entry(60 * 25)];
    expect(applySince(entries, 0, NOW)).toHaveLength(4);
    expect(applySince(entries, 3600, NOW).map((e) => e.message)).toEqual(['m1', 'm59']);
    expect(applySince(entries, 86_400, NOW).map((e) => e.message)).toEqual(['m1', 'm59', 'm61']);
  });

  it('offers "load more" only when more can exist', () => {
    const full = Array.from({ length: PAGE_LINES }, (_, i) => entry(i));
    expect(canLoadMore(full, PAGE_LINES, 0, NOW)).toBe(true);
    expect(canLoadMore(full.slice(1), PAGE_LINES, 0, NOW)).toBe(false); // the journal had fewer
    expect(canLoadMore(full, PAGE_LINES, 3600, NOW)).toBe(false); // the oldest is already too old
    expect(canLoadMore(full, PAGE_LINES, 86_400, NOW)).toBe(true);
    const capped = Array.from({ length: MAX_LINES }, (_, i) => entry(i));
    expect(canLoadMore(capped, MAX_LINES, 0, NOW)).toBe(false); // the agent's cap
    expect(nextLines(100)).toBe(200);
    expect(nextLines(950)).toBe(MAX_LINES);
  });

  it('names and classes priorities', () => {
    expect(priorityName(0)).toBe('emerg');
    expect(priorityName(3)).toBe('err');
    expect(priorityName(9)).toBe('9');
    expect([2, 3, 4, 5, 6].map(severity)).toEqual(['error', 'error', 'warning', 'normal', 'normal']);
  });
});

describe('service actions', () => {
  const unit = (active_state: string, actions: UnitStatus['actions'], load_state = 'loaded'): UnitStatus => ({
    name: 'a.service',
    description: '',
    load_state,
    active_state,
    sub_state: '',
    actions,
  });
  const all: UnitStatus['actions'] = ['start', 'stop', 'restart'];

  it('offers what fits the state, within the allow-list', () => {
    expect(offeredActions(unit('active', all))).toEqual(['stop', 'restart']);
    expect(offeredActions(unit('inactive', all))).toEqual(['start', 'restart']);
    expect(offeredActions(unit('failed', all))).toEqual(['start', 'restart']);
    expect(offeredActions(unit('activating', all))).toEqual(['start', 'stop', 'restart']);
    expect(offeredActions(unit('active', ['restart']))).toEqual(['restart']);
    expect(offeredActions(unit('inactive', all, 'not-found'))).toEqual([]);
  });

  it('classes states for colour', () => {
    expect(stateClass(unit('active', all))).toBe('active');
    expect(stateClass(unit('failed', all))).toBe('failed');
    expect(stateClass(unit('deactivating', all))).toBe('changing');
    expect(stateClass(unit('inactive', all))).toBe('inactive');
    expect(stateClass(unit('inactive', all, 'not-found'))).toBe('missing');
  });
});

describe('disk actions', () => {
  const part = (mount_points: string[], fs_type: string | null = 'ext4'): Partition => ({
    name: 'sdb1',
    path: '/dev/sdb1',
    number: 1,
    size_bytes: 1000,
    fs_type,
    mount_points,
    usage: mount_points.length ? { total_bytes: 1000, used_bytes: 250 } : null,
  });
  const disk = (extra: Partial<Disk> = {}): Disk => ({
    name: 'sdb',
    path: '/dev/sdb',
    size_bytes: 1000,
    bus: 'usb',
    removable: true,
    rotational: false,
    system: false,
    mount_points: [],
    partitions: [],
    ...extra,
  });

  it('offers nothing on the system disk', () => {
    expect(diskActions(disk({ system: true, partitions: [part([])] }))).toEqual({
      format: false,
      mount: false,
      unmount: false,
      eject: false,
    });
  });

  it('mounts a disk with a file system, formats only an unmounted one', () => {
    expect(diskActions(disk({ partitions: [part([])] }))).toEqual({ format: true, mount: true, unmount: false, eject: true });
    expect(diskActions(disk({ partitions: [part(['/media/sdb1'])] }))).toEqual({
      format: false,
      mount: false,
      unmount: true,
      eject: true,
    });
    expect(diskActions(disk({ partitions: [part([], null)] })).mount).toBe(false);
    expect(diskActions(disk()).mount).toBe(false); // blank
    expect(diskActions(disk({ fs_type: 'exfat' })).mount).toBe(true); // file system without partitions
    expect(diskActions(disk({ fs_type: 'exfat', mount_points: ['/media/sdb'] })).unmount).toBe(true);
  });

  it('wants the exact disk name typed', () => {
    expect(confirmationMatches('sdb', disk())).toBe(true);
    expect(confirmationMatches(' sdb ', disk())).toBe(true);
    expect(confirmationMatches('SDB', disk())).toBe(false);
    expect(confirmationMatches('sdb1', disk())).toBe(false);
    expect(confirmationMatches('', disk())).toBe(false);
  });

  it('checks labels like the agent', () => {
    expect(labelValid('')).toBe(true);
    expect(labelValid('Photos 2024_a-b')).toBe(true);
    expect(labelValid('x'.repeat(17))).toBe(false);
    expect(labelValid('a/b')).toBe(false);
    expect(labelValid('ümlaut')).toBe(false);
  });

  it('adds up the usage of mounted partitions', () => {
    expect(totalUsage(disk())).toBeNull();
    expect(totalUsage(disk({ partitions: [part(['/a']), part(['/b'])] }))).toEqual({ total_bytes: 2000, used_bytes: 500 });
  });

  it('reloads on every disk_* event', () => {
    expect(DISK_EVENTS.every(isDiskEvent)).toBe(true);
    expect(isDiskEvent('status')).toBe(false);
    expect(isDiskEvent('job')).toBe(false);
  });
});

describe('settings helpers', () => {
  const zones = ['America/New_York', 'Etc/UTC', 'Europe/Berlin', 'Europe/Berne', 'Pacific/Auckland'];

  it('finds zones by words, ignoring case and "_"', () => {
    expect(filterZones(zones, 'berl', '')).toEqual(['Europe/Berlin']);
    expect(filterZones(zones, 'new york', '')).toEqual(['America/New_York']);
    expect(filterZones(zones, 'EUROPE ber', '')).toEqual(['Europe/Berlin', 'Europe/Berne']);
    expect(filterZones(zones, '  ', '')).toEqual(zones);
  });

  it('keeps the selected zone in the list', () => {
    expect(filterZones(zones, 'berl', 'Etc/UTC')).toEqual(['Etc/UTC', 'Europe/Berlin']);
  });

  it('shows the device time in its zone, UTC for an unknown zone', () => {
    expect(deviceClock(NOW, 'Europe/Berlin', 'en-GB')).toMatch(/13:00:00/);
    expect(deviceClock(NOW, 'Mars/Olympus', 'en-GB')).toMatch(/12:00:00.*\(UTC\)/);
  });
});
