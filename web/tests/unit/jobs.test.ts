import { describe, expect, it } from 'vitest';
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
