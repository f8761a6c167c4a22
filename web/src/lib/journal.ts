// The journal view's filters: which query goes to the agent, and what the browser filters and
// pages itself. The agent answers the newest `lines` entries (at most 1000) at a priority or
// more urgent and containing a text; "since" is applied here, and "load more" asks for more lines.

import type { JournalEntry } from './types';

/** journalctl's priorities, 0 (emergency) … 7 (debug). */
export const PRIORITY_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'] as const;

/** How far back "since" reaches, in seconds; 0 is "any time". */
export const SINCE_CHOICES = [0, 3600, 86_400, 7 * 86_400] as const;
export type Since = (typeof SINCE_CHOICES)[number];

export const PAGE_LINES = 100;
export const MAX_LINES = 1000;

export interface JournalFilters {
  /** Show this priority and more urgent ones; null for all. */
  priority: number | null;
  text: string;
  since: Since;
}

export const NO_FILTERS: JournalFilters = { priority: null, text: '', since: 0 };

/** The query parameters for the agent. */
export function journalQuery(filters: JournalFilters, lines: number) {
  const text = filters.text.trim();
  return {
    lines: Math.min(Math.max(1, lines), MAX_LINES),
    priority: filters.priority ?? undefined,
    contains: text === '' ? undefined : text,
  };
}

/** The entries newer than the "since" filter (`nowMs` injected for tests). */
export function applySince(entries: readonly JournalEntry[], since: Since, nowMs: number): JournalEntry[] {
  if (since === 0) return [...entries];
  const floor = (nowMs - since * 1000) * 1000;
  return entries.filter((e) => e.time_usec >= floor);
}

/**
 * Whether asking for more lines can show more: the agent filled the page it was asked for, the
 * cap is not reached, and the oldest entry is still inside the "since" window.
 */
export function canLoadMore(entries: readonly JournalEntry[], requested: number, since: Since, nowMs: number): boolean {
  if (entries.length < requested || requested >= MAX_LINES) return false;
  if (since === 0 || entries.length === 0) return true;
  const oldest = entries[entries.length - 1];
  return oldest.time_usec >= (nowMs - since * 1000) * 1000;
}

export function nextLines(requested: number): number {
  return Math.min(MAX_LINES, requested + PAGE_LINES);
}

/** A priority's severity class for colouring: error and worse, warning, or plain. */
export function severity(priority: number): 'error' | 'warning' | 'normal' {
  if (priority <= 3) return 'error';
  if (priority === 4) return 'warning';
  return 'normal';
}

export function priorityName(priority: number): string {
  return PRIORITY_NAMES[priority] ?? String(priority);
}
