// Pure helpers of the Updates page: the policy form (validation, what changed), and the words
// for phases, states and history entries. No I/O; the page calls the API.

import type { MessageKey } from './i18n';
import type {
  RebootPolicy,
  HistoryKind,
  UpdateState,
  UpdatePolicy,
  PolicyPatch,
  UpdateProgress,
  UpdateStatus,
} from './types';

/** A channel name as `hearth-ota publish` accepts it. */
export const CHANNEL_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** A time of day on the device's clock, 24-hour "HH:MM". */
export const TIME_RE = /^([01]\d|2[0-3]):[0-5]\d$/;

export const REBOOT_POLICIES: readonly RebootPolicy[] = ['manual', 'immediately', 'maintenance_window'];

export interface PolicyForm {
  channel: string;
  auto_install: boolean;
  reboot: RebootPolicy;
  start: string;
  end: string;
}

export type PolicyField = 'channel' | 'start' | 'end';
export type PolicyProblems = Partial<Record<PolicyField, MessageKey>>;

export function formFromPolicy(p: UpdatePolicy): PolicyForm {
  return {
    channel: p.channel,
    auto_install: p.auto_install,
    reboot: p.reboot,
    start: p.maintenance_window.start,
    end: p.maintenance_window.end,
  };
}

/**
 * "3:05" → "03:05", "0300" → "03:00"; anything else comes back trimmed, for the check to
 * refuse. (Time inputs already give "HH:MM"; typed text may not.)
 */
export function normalizeTime(text: string): string {
  const s = text.trim();
  const m = /^(\d{1,2}):?(\d{2})$/.exec(s);
  return m ? `${m[1].padStart(2, '0')}:${m[2]}` : s;
}

/** What is wrong with the form, per field; empty when it may be sent. */
export function policyProblems(form: PolicyForm): PolicyProblems {
  const problems: PolicyProblems = {};
  const channel = form.channel.trim();
  if (channel === '') problems.channel = 'updates.channel_empty';
  else if (!CHANNEL_RE.test(channel)) problems.channel = 'updates.channel_invalid';
  const start = normalizeTime(form.start);
  const end = normalizeTime(form.end);
  if (!TIME_RE.test(start)) problems.start = 'updates.time_invalid';
  if (!TIME_RE.test(end)) problems.end = 'updates.time_invalid';
  else if (!problems.start && start === end) problems.end = 'updates.window_empty';
  return problems;
}

/** The fields of the form that differ from the saved policy (an empty patch: nothing to send). */
export function policyPatch(saved: UpdatePolicy, form: PolicyForm): PolicyPatch {
  const patch: PolicyPatch = {};
  const channel = form.channel.trim();
  if (channel !== saved.channel) patch.channel = channel;
  if (form.auto_install !== saved.auto_install) patch.auto_install = form.auto_install;
  if (form.reboot !== saved.reboot) patch.reboot = form.reboot;
  const start = normalizeTime(form.start);
  const end = normalizeTime(form.end);
  if (start !== saved.maintenance_window.start || end !== saved.maintenance_window.end) {
    patch.maintenance_window = { start, end };
  }
  return patch;
}

/** Minutes in the window; it may cross midnight ("22:00"–"02:00" is 240). */
export function windowMinutes(start: string, end: string): number {
  const minutes = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5));
  if (!TIME_RE.test(start) || !TIME_RE.test(end)) return 0;
  return (minutes(end) - minutes(start) + 24 * 60) % (24 * 60);
}

export function crossesMidnight(start: string, end: string): boolean {
  return TIME_RE.test(start) && TIME_RE.test(end) && end < start;
}

const PHASES: Record<string, MessageKey> = {
  checking: 'updates.phase_checking',
  download: 'updates.phase_download',
  downloading: 'updates.phase_download',
  mark_unbootable: 'updates.phase_mark_unbootable',
  index: 'updates.phase_index',
  write: 'updates.phase_write',
  sync: 'updates.phase_sync',
  verify: 'updates.phase_verify',
  activate: 'updates.phase_activate',
};

/** The words for an install phase; null for a phase this dashboard does not know yet. */
export function phaseKey(phase: string): MessageKey | null {
  return PHASES[phase] ?? null;
}

const STATES: Record<UpdateState, MessageKey> = {
  idle: 'updates.state_idle',
  checking: 'updates.state_checking',
  downloading: 'updates.state_downloading',
  installing: 'updates.state_installing',
  reboot_required: 'updates.state_reboot_required',
  trial: 'updates.state_trial',
};

export function stateKey(state: UpdateState): MessageKey {
  return STATES[state] ?? 'updates.state_idle';
}

const KINDS: Record<HistoryKind, MessageKey> = {
  installed: 'updates.kind_installed',
  committed: 'updates.kind_committed',
  rolled_back: 'updates.kind_rolled_back',
  failed: 'updates.kind_failed',
  interrupted: 'updates.kind_interrupted',
  refused: 'updates.kind_refused',
};

export function historyKindKey(kind: HistoryKind): MessageKey {
  return KINDS[kind] ?? 'updates.kind_other';
}

/** Entries that mean an update did not make it, or a slot was refused at boot: marked in the history. */
export function isBadOutcome(kind: HistoryKind): boolean {
  return kind === 'failed' || kind === 'rolled_back' || kind === 'interrupted' || kind === 'refused';
}

const REBOOTS: Record<RebootPolicy, MessageKey> = {
  manual: 'updates.reboot_manual',
  immediately: 'updates.reboot_immediately',
  maintenance_window: 'updates.reboot_window',
};

export function rebootKey(policy: RebootPolicy): MessageKey {
  return REBOOTS[policy];
}

/** States in which a check or an install is running (the buttons wait). */
export function isBusy(state: UpdateState): boolean {
  return state === 'checking' || state === 'downloading' || state === 'installing';
}

/** Phases whose done/total count bytes (the others count steps). */
const BYTE_PHASES = new Set(['download', 'downloading', 'index', 'write', 'verify']);

export function countsBytes(phase: string): boolean {
  return BYTE_PHASES.has(phase);
}

/** Done of total in percent (0 when the total is not known yet). */
export function progressPercent(p: UpdateProgress | null | undefined): number {
  if (p == null || !(p.total > 0)) return 0;
  return Math.min(100, Math.max(0, (p.done / p.total) * 100));
}

/** Share of the update taken from the active system instead of the network, in percent. */
export function reusedPercent(downloaded: number, reused: number): number {
  const whole = downloaded + reused;
  return whole > 0 ? Math.min(100, Math.max(0, (reused / whole) * 100)) : 0;
}

/** Whether the page should offer "Install": an update is there and nothing else is going on. */
export function canInstall(s: UpdateStatus): boolean {
  return s.configured && s.available != null && s.pending_reboot == null && s.state !== 'trial' && !isBusy(s.state);
}

/** The wizard's window (start, end): problems per end, as the Updates page checks them. */
export function windowProblems(start: string, end: string): PolicyProblems {
  const problems: PolicyProblems = {};
  const s = normalizeTime(start);
  const e = normalizeTime(end);
  if (!TIME_RE.test(s)) problems.start = 'updates.time_invalid';
  if (!TIME_RE.test(e)) problems.end = 'updates.time_invalid';
  else if (!problems.start && s === e) problems.end = 'updates.window_empty';
  return problems;
}

/** Whether automatic installs are paused at `now` (the policy's `paused_until`). */
export function pausedUntil(p: UpdatePolicy, now: Date = new Date()): Date | null {
  if (!p.paused_until) return null;
  const until = new Date(p.paused_until);
  return Number.isNaN(until.getTime()) || until <= now ? null : until;
}
