// The live system status: one EventSource on /api/v1/events while signed in, the latest status
// and the chart history, and the progress of jobs (copies). Unknown event names are ignored
// (later features add their own).

import { EVENTS_URL } from './api';
import { DISK_EVENTS } from './disks';
import { StatusHistory, type HistoryView } from './history';
import type { AppProgressEvent, AppStateEvent, JobStatus, SystemStatus } from './types';

/** App events for the app pages; `resync` after the stream reopened (events may have been missed). */
export type AppEvent =
  | { kind: 'progress'; data: AppProgressEvent }
  | { kind: 'state'; data: AppStateEvent }
  | { kind: 'resync' };

export type Connection = 'idle' | 'connecting' | 'live' | 'reconnecting';

/** How long to wait before reopening a stream the browser gave up on. */
const REOPEN_DELAY_MS = 5000;

export class LiveStatus {
  status = $state.raw<SystemStatus | null>(null);
  history = $state.raw<HistoryView>(new StatusHistory().view());
  connection = $state<Connection>('idle');
  /** Jobs by id, as the stream (or GET /api/v1/jobs) last told. */
  jobs = $state.raw<Record<string, JobStatus>>({});
  /** Counts `disk_*` events: a disk came, went or changed (the storage page reloads). */
  diskChanges = $state(0);

  private readonly store = new StatusHistory();
  /** Listeners of app progress and state events (the app pages); not kept as state. */
  private appListeners: ((e: AppEvent) => void)[] = [];
  private source: EventSource | null = null;
  private reopenTimer: ReturnType<typeof setTimeout> | null = null;
  /** Asked whether to reopen after the server closed the stream (false: the session is gone). */
  private stillSignedIn: () => Promise<boolean> = async () => true;

  start(stillSignedIn: () => Promise<boolean>): void {
    this.stillSignedIn = stillSignedIn;
    if (this.source) return;
    this.open();
  }

  stop(): void {
    if (this.reopenTimer !== null) clearTimeout(this.reopenTimer);
    this.reopenTimer = null;
    this.source?.close();
    this.source = null;
    this.store.clear();
    this.status = null;
    this.history = this.store.view();
    this.connection = 'idle';
    this.jobs = {};
  }

  /** Records a job's state (from the stream, a start answer or the job list). */
  acceptJob(job: JobStatus): void {
    const known = this.jobs[job.id];
    // An older "running" event can arrive after the final one; a finished job stays finished.
    if (known && known.state !== 'running' && job.state === 'running') return;
    this.jobs = { ...this.jobs, [job.id]: job };
  }

  /** Forgets finished jobs (the list the dashboard shows). */
  forgetFinished(): void {
    this.jobs = Object.fromEntries(Object.entries(this.jobs).filter(([, j]) => j.state === 'running'));
  }

  /** Calls `fn` with every app event until the returned function is called. */
  onApp(fn: (e: AppEvent) => void): () => void {
    this.appListeners = [...this.appListeners, fn];
    return () => {
      this.appListeners = this.appListeners.filter((f) => f !== fn);
    };
  }

  private emitApp(e: AppEvent): void {
    for (const fn of this.appListeners) fn(e);
  }

  /** Feeds one status (from the stream or a one-off fetch) into the charts. */
  accept(status: SystemStatus): void {
    this.status = status;
    this.store.add(status);
    this.history = this.store.view();
  }

  private open(): void {
    this.connection = this.status ? 'reconnecting' : 'connecting';
    const source = new EventSource(EVENTS_URL);
    this.source = source;
    source.addEventListener('open', () => {
      const again = this.connection === 'reconnecting';
      this.connection = 'live';
      if (again) this.emitApp({ kind: 'resync' });
    });
    source.addEventListener('status', (event) => {
      try {
        this.accept(JSON.parse((event as MessageEvent<string>).data) as SystemStatus);
        this.connection = 'live';
      } catch {
        // A malformed event is skipped; the next one comes in two seconds.
      }
    });
    source.addEventListener('job', (event) => {
      try {
        this.acceptJob(JSON.parse((event as MessageEvent<string>).data) as JobStatus);
      } catch {
        // A malformed event is skipped; the job list can be fetched again.
      }
    });
    for (const name of DISK_EVENTS) {
      source.addEventListener(name, () => {
        this.diskChanges += 1;
      });
    }
    for (const [name, kind] of [
      ['app_progress', 'progress'],
      ['app_state', 'state'],
    ] as const) {
      source.addEventListener(name, (event) => {
        let data: unknown;
        try {
          data = JSON.parse((event as MessageEvent<string>).data);
        } catch {
          return; // a malformed event is skipped; the pages fetch the app list again
        }
        this.emitApp({ kind, data } as AppEvent);
      });
    }
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) void this.reopenLater(source);
      else this.connection = 'reconnecting'; // the browser retries by itself
    });
  }

  private async reopenLater(closed: EventSource): Promise<void> {
    if (this.source !== closed) return;
    this.source = null;
    this.connection = 'reconnecting';
    if (!(await this.stillSignedIn())) return;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      if (!this.source && this.connection !== 'idle') this.open();
    }, REOPEN_DELAY_MS);
  }
}

export const live = new LiveStatus();
