import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR, type FetchLike } from '../../src/lib/api';
import {
  UPLOAD_CANCELLED,
  backoff,
  contentRange,
  fetchTransport,
  planChunks,
  statusRange,
  uploadFile,
  type UploadOptions,
} from '../../src/lib/upload';

describe('chunk planner', () => {
  it('covers every byte once, in order', () => {
    expect(planChunks(0)).toEqual([]);
    expect(planChunks(1, 0, 10)).toEqual([{ start: 0, end: 0 }]);
    expect(planChunks(10, 0, 10)).toEqual([{ start: 0, end: 9 }]);
    expect(planChunks(25, 0, 10)).toEqual([
      { start: 0, end: 9 },
      { start: 10, end: 19 },
      { start: 20, end: 24 },
    ]);
  });

  it('starts where the device left off, even mid-chunk', () => {
    expect(planChunks(25, 13, 10)).toEqual([
      { start: 13, end: 22 },
      { start: 23, end: 24 },
    ]);
    expect(planChunks(25, 25, 10)).toEqual([]);
    expect(planChunks(25, -3, 10)[0]).toEqual({ start: 0, end: 9 });
  });

  it('uses 8 MiB chunks by default: a 20 MiB file is three requests', () => {
    const chunks = planChunks(20 * 1024 * 1024);
    expect(chunks.map((c) => c.end - c.start + 1)).toEqual([8 << 20, 8 << 20, 4 << 20]);
  });

  it('refuses a useless chunk size', () => {
    expect(() => planChunks(10, 0, 0)).toThrow();
  });

  it('writes the headers the agent parses', () => {
    expect(contentRange({ start: 0, end: 9 }, 25)).toBe('bytes 0-9/25');
    expect(statusRange(25)).toBe('bytes */25');
  });

  it('backs off up to 8 s', () => {
    expect([1, 2, 3, 4, 5, 6, 9].map(backoff)).toEqual([500, 1000, 2000, 4000, 8000, 8000, 8000]);
  });
});

type Failure = 'lose-request' | 'lose-answer' | 'half-then-drop';

interface Seen {
  range: string | null;
  csrf: string | undefined;
  url: string;
  bytes: number;
}

/**
 * The agent's upload rules in miniature: a partial upload per path, chunks must start at what
 * arrived, `bytes *\/TOTAL` reports it, the last chunk puts the file in place (409 `exists`
 * for a taken name unless ?overwrite=true). `failures[n]` breaks the n-th request.
 */
function fakeAgent(failures: Record<number, Failure> = {}, existing = false) {
  let partial: number[] = [];
  let file: number[] | null = existing ? [1, 2, 3] : null;
  const seen: Seen[] = [];
  const reply = (status: number, body: unknown) =>
    new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  const fetch: FetchLike = async (url, init) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const range = headers['Content-Range'] ?? null;
    const body = init?.body instanceof Blob ? new Uint8Array(await init.body.arrayBuffer()) : new Uint8Array();
    const n = seen.length;
    seen.push({ range, csrf: headers['X-CSRF-Token'], url, bytes: body.length });
    const failure = failures[n];
    if (failure === 'lose-request') throw new TypeError('Failed to fetch');
    const overwrite = url.includes('overwrite=true');
    if (file !== null && !overwrite) return reply(409, { error: { code: 'exists', message: 'exists' } });
    if (range === null) {
      file = Array.from(body);
      return reply(201, { received: body.length, complete: true, entry: null });
    }
    const status = /^bytes \*\/(\d+)$/.exec(range);
    if (status) return reply(202, { received: partial.length, complete: false });
    const [, s, e, total] = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(range)!.map(Number);
    if (s === 0) partial = [];
    else if (s !== partial.length) {
      return reply(409, { error: { code: 'upload_offset', message: `continues at ${partial.length}` } });
    }
    if (failure === 'half-then-drop') {
      partial.push(...body.slice(0, Math.floor(body.length / 2)));
      throw new TypeError('connection reset');
    }
    partial.push(...body);
    expect(partial.length).toBe(e + 1);
    if (partial.length === total) {
      file = partial;
      partial = [];
      if (failure === 'lose-answer') throw new TypeError('connection reset');
      return reply(201, { received: total, complete: true, entry: { name: 'x', kind: 'file', size: total, modified: 1 } });
    }
    if (failure === 'lose-answer') throw new TypeError('connection reset');
    return reply(202, { received: partial.length, complete: false });
  };
  return { fetch, seen, file: () => file, partial: () => partial };
}

function bytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 1) out[i] = (i * 7 + 3) % 251;
  return out;
}

function options(agent: ReturnType<typeof fakeAgent>, data: Uint8Array<ArrayBuffer>, extra: Partial<UploadOptions> = {}) {
  const progress: number[] = [];
  const waits: number[] = [];
  const opts: UploadOptions = {
    file: new Blob([data]),
    url: '/api/v1/files/home/a%20b.bin',
    transport: fetchTransport(agent.fetch),
    chunkSize: 10,
    headers: () => ({ 'X-CSRF-Token': 'tok' }),
    onProgress: (sent) => progress.push(sent),
    wait: async (ms) => {
      waits.push(ms);
    },
    ...extra,
  };
  return { opts, progress, waits };
}

describe('uploads', () => {
  it('send the file in chunks with Content-Range and the CSRF token', async () => {
    const agent = fakeAgent();
    const data = bytes(25);
    const { opts, progress } = options(agent, data);
    const done = await uploadFile(opts);
    expect(done.complete).toBe(true);
    expect(agent.seen.map((s) => s.range)).toEqual(['bytes 0-9/25', 'bytes 10-19/25', 'bytes 20-24/25']);
    expect(agent.seen.every((s) => s.csrf === 'tok' && s.url === '/api/v1/files/home/a%20b.bin')).toBe(true);
    expect(agent.file()).toEqual(Array.from(data));
    expect(progress.at(-1)).toBe(25);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress); // never goes back
  });

  it('ask what arrived after a dropped request and continue from there', async () => {
    const agent = fakeAgent({ 1: 'lose-request' });
    const data = bytes(25);
    const { opts, waits } = options(agent, data);
    await uploadFile(opts);
    expect(agent.seen.map((s) => s.range)).toEqual([
      'bytes 0-9/25',
      'bytes 10-19/25', // lost
      'bytes */25',
      'bytes 10-19/25',
      'bytes 20-24/25',
    ]);
    expect(waits).toEqual([500]);
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('continue mid-chunk when the connection broke inside one', async () => {
    const agent = fakeAgent({ 1: 'half-then-drop' });
    const data = bytes(25);
    await uploadFile(options(agent, data).opts);
    expect(agent.seen.map((s) => s.range)).toEqual([
      'bytes 0-9/25',
      'bytes 10-19/25',
      'bytes */25',
      'bytes 15-24/25',
    ]);
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('do not send a chunk twice when only its answer was lost', async () => {
    const agent = fakeAgent({ 0: 'lose-answer' });
    const data = bytes(25);
    await uploadFile(options(agent, data).opts);
    expect(agent.seen.map((s) => s.range)).toEqual([
      'bytes 0-9/25',
      'bytes */25',
      'bytes 10-19/25',
      'bytes 20-24/25',
    ]);
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('count a lost answer to the last chunk as done once the file is in place', async () => {
    const agent = fakeAgent({ 2: 'lose-answer' });
    const data = bytes(25);
    const done = await uploadFile(options(agent, data).opts);
    expect(done).toEqual({ received: 25, complete: true });
    expect(agent.seen.map((s) => s.range).at(-1)).toBe('bytes */25');
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('start a retry by asking what an earlier attempt left', async () => {
    const agent = fakeAgent();
    const data = bytes(25);
    await agent.fetch('/api/v1/files/home/a%20b.bin', {
      method: 'PUT',
      headers: { 'Content-Range': 'bytes 0-9/25' },
      body: new Blob([data.slice(0, 10)]),
    });
    agent.seen.length = 0;
    await uploadFile(options(agent, data, { resume: true }).opts);
    expect(agent.seen.map((s) => s.range)).toEqual(['bytes */25', 'bytes 10-19/25', 'bytes 20-24/25']);
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('re-sync when the device has more than expected (409 upload_offset)', async () => {
    const agent = fakeAgent();
    const data = bytes(25);
    let meddled = false;
    const { opts } = options(agent, data, {
      onProgress: (sent) => {
        if (sent === 10 && !meddled) {
          meddled = true; // another tab sends the second chunk meanwhile
          void agent.fetch('/api/v1/files/home/a%20b.bin', {
            method: 'PUT',
            headers: { 'Content-Range': 'bytes 10-19/25' },
            body: new Blob([data.slice(10, 20)]),
          });
        }
      },
    });
    await uploadFile(opts);
    expect(agent.seen.map((s) => s.range)).toEqual([
      'bytes 0-9/25',
      'bytes 10-19/25', // the other tab
      'bytes 10-19/25', // refused: upload_offset
      'bytes */25',
      'bytes 20-24/25',
    ]);
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('give up after the allowed number of network failures in a row', async () => {
    const failures = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [i, 'lose-request' as const]));
    const agent = fakeAgent(failures);
    const { opts, waits } = options(agent, bytes(25), { retries: 3 });
    const err = await uploadFile(opts).catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.code).toBe(NETWORK_ERROR);
    expect(waits).toEqual([500, 1000, 2000]);
  });

  it('stop at a refusal without retrying', async () => {
    const agent = fakeAgent({}, true);
    const err = await uploadFile(options(agent, bytes(25)).opts).catch((e) => e);
    expect(err.code).toBe('exists');
    expect(agent.seen).toHaveLength(1);
  });

  it('replace an existing file with ?overwrite=true', async () => {
    const agent = fakeAgent({}, true);
    const data = bytes(12);
    await uploadFile(options(agent, data, { overwrite: true }).opts);
    expect(agent.seen.every((s) => s.url.endsWith('?overwrite=true'))).toBe(true);
    expect(agent.file()).toEqual(Array.from(data));
  });

  it('stop when cancelled', async () => {
    const agent = fakeAgent();
    const controller = new AbortController();
    const { opts } = options(agent, bytes(25), {
      signal: controller.signal,
      onProgress: (sent) => {
        if (sent >= 10) controller.abort();
      },
    });
    const err = await uploadFile(opts).catch((e) => e);
    expect(err.code).toBe(UPLOAD_CANCELLED);
    expect(agent.seen.length).toBeLessThan(3);
    expect(agent.file()).toBeNull();
  });

  it('send an empty file in one request without a range', async () => {
    const agent = fakeAgent();
    await uploadFile(options(agent, bytes(0)).opts);
    expect(agent.seen.map((s) => [s.range, s.bytes])).toEqual([[null, 0]]);
    expect(agent.file()).toEqual([]);
  });

  it('fetch a fresh CSRF token once when the session changed', async () => {
    let token = 'stale';
    let calls = 0;
    const inner = fakeAgent();
    const fetch: FetchLike = async (url, init) => {
      calls += 1;
      const headers = (init?.headers ?? {}) as Record<string, string>;
      if (headers['X-CSRF-Token'] !== 'fresh') {
        return new Response(JSON.stringify({ error: { code: 'csrf_invalid', message: 'x' } }), { status: 403 });
      }
      return inner.fetch(url, init);
    };
    const data = bytes(15);
    await uploadFile({
      ...options(inner, data).opts,
      transport: fetchTransport(fetch),
      headers: () => ({ 'X-CSRF-Token': token }),
      refreshCsrf: async () => {
        token = 'fresh';
        return true;
      },
    });
    expect(calls).toBe(3);
    expect(inner.file()).toEqual(Array.from(data));
  });
});
