// What the storage page offers for a disk, from the agent's description of it. The agent refuses
// the same things again (the system disk above all); this only hides what cannot work.

import type { Disk, Partition, Usage } from './types';

export interface DiskActions {
  format: boolean;
  mount: boolean;
  unmount: boolean;
  eject: boolean;
}

export const FILESYSTEMS = ['ext4', 'btrfs', 'exfat'] as const;

/** Every mount point of a disk and its partitions. */
export function mountPoints(disk: Disk): string[] {
  return [...disk.mount_points, ...disk.partitions.flatMap((p) => p.mount_points)];
}

/** A file system Hearth can mount: on the whole disk or on a partition. */
export function hasFileSystem(disk: Disk): boolean {
  return Boolean(disk.fs_type) || disk.partitions.some((p) => Boolean(p.fs_type));
}

/**
 * The system disk offers nothing. Format needs the disk unmounted (the agent refuses a disk in
 * use); mount needs a file system and nothing mounted yet; unmount needs a mount; eject unmounts
 * first, so it is always offered. (Mounts Hearth did not make are refused by the agent, which
 * says so.)
 */
export function diskActions(disk: Disk): DiskActions {
  if (disk.system) return { format: false, mount: false, unmount: false, eject: false };
  const mounted = mountPoints(disk).length > 0;
  return {
    format: !mounted,
    mount: !mounted && hasFileSystem(disk),
    unmount: mounted,
    eject: true,
  };
}

/** The typed confirmation matches the disk's kernel name exactly (no trimming of case). */
export function confirmationMatches(typed: string, disk: Disk): boolean {
  return typed.trim() === disk.name;
}

/** The agent's label grammar: up to 16 letters, digits, spaces, "-" and "_". */
export function labelValid(label: string): boolean {
  return label.length <= 16 && /^[A-Za-z0-9 _-]*$/.test(label);
}

/** The total usage of the disk's mounted file systems, or null when none reports usage. */
export function totalUsage(disk: Disk): Usage | null {
  const usages = disk.partitions.map((p: Partition) => p.usage).filter((u): u is Usage => Boolean(u));
  if (usages.length === 0) return null;
  return usages.reduce((a, u) => ({ total_bytes: a.total_bytes + u.total_bytes, used_bytes: a.used_bytes + u.used_bytes }));
}

/**
 * Events on the live stream that change the disk list (any `disk_*`). An EventSource only
 * delivers named events to listeners of that name, so the names are listed.
 */
export const DISK_EVENTS = ['disk_added', 'disk_removed', 'disk_changed'] as const;

export function isDiskEvent(name: string): boolean {
  return name.startsWith('disk_');
}
