import { describe, expect, it, vi } from 'vitest';
import { LiveStatus } from '../../src/lib/live.svelte';
import type { JobStatus } from '../../src/lib/types';

const job = (state: JobStatus['state'], bytes_done: number, id = 'j1'): JobStatus => ({
  id,
  kind: 'copy',
  owner: 'admin',
  description: 'Copy home/a to home/b',
  state,
  bytes_done,
  error: null,
});

describe('job progress from the event stream', () => {
  it('keeps the latest state of each job', () => {
    const live = new LiveStatus();
    live.acceptJob(job('running', 0));
    live.acceptJob(job('running', 8 << 20));
    live.acceptJob(job('running', 0, 'j2'));
    expect(live.jobs.j1.bytes_done).toBe(8 << 20);
    expect(Object.keys(live.jobs).sort()).toEqual(['j1', 'j2']);
  });

  it('does not let a late "running" event undo a finished job', () => {
    const live = new LiveStatus();
    live.acceptJob(job('done', 100));
    live.acceptJob(job('running', 50));
    expect(live.jobs.j1.state).toBe('done');
  });

  it('forgets finished jobs on request and everything when stopped', () => {
    const live = new LiveStatus();
    live.acceptJob(job('cancelled', 10));
    live.acceptJob(job('running', 5, 'j2'));
    live.forgetFinished();
    expect(Object.keys(live.jobs)).toEqual(['j2']);
    live.stop();
    expect(live.jobs).toEqual({});
  });
});

describe('disk events from the stream', () => {
  /** An EventSource double: records listeners by event name so the test can fire them. */
  class FakeSource {
    static CLOSED = 2;
    static last: FakeSource | null = null;
    readyState = 1;
    listeners = new Map<string, ((e: unknown) => void)[]>();
    constructor(readonly url: string) {
      FakeSource.last = this;
    }
    addEventListener(name: string, fn: (e: unknown) => void) {
      this.listeners.set(name, [...(this.listeners.get(name) ?? []), fn]);
    }
    close() {}
    fire(name: string, data = '{}') {
      for (const fn of this.listeners.get(name) ?? []) fn({ data });
    }
  }

  it('counts every disk_* event so the storage page reloads, and nothing else', () => {
    vi.stubGlobal('EventSource', FakeSource);
    try {
      const live = new LiveStatus();
      live.start(async () => true);
      const source = FakeSource.last!;
      expect(source.url).toBe('/api/v1/events');
      source.fire('disk_added');
      source.fire('disk_changed');
      source.fire('disk_removed');
      source.fire('job', JSON.stringify(job('running', 1)));
      source.fire('app_state');
      expect(live.diskChanges).toBe(3);
      live.stop();
    } finally {
      vi.unstubAllGlobals();
    }
  });
});
