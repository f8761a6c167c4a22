// Chunked, resumable uploads: a file goes up in pieces with `Content-Range: bytes S-E/TOTAL`.
// After a network failure the agent is asked how much arrived (`bytes */TOTAL`, empty body) and
// the upload continues from there, so a dropped connection costs at most one chunk.

import { ApiError, NETWORK_ERROR, errorFromResponse, type ClientErrorCode, type FetchLike } from './api';
import type { UploadProgress } from './types';

export const CHUNK_SIZE = 8 * 1024 * 1024;

/** One piece of a file: bytes `start` to `end`, both included. */
export interface Chunk {
  start: number;
  end: number;
}

/** The chunks that carry bytes `from`..`size`-1; none for an empty file or a finished upload. */
export function planChunks(size: number, from = 0, chunkSize = CHUNK_SIZE): Chunk[] {
  if (!(chunkSize > 0)) throw new Error('chunk size must be positive');
  const chunks: Chunk[] = [];
  for (let start = Math.max(0, from); start < size; start += chunkSize) {
    chunks.push({ start, end: Math.min(start + chunkSize, size) - 1 });
  }
  return chunks;
}

export function contentRange(chunk: Chunk, total: number): string {
  return `bytes ${chunk.start}-${chunk.end}/${total}`;
}

/** The status question: how much of a `total`-byte upload the agent has. */
export function statusRange(total: number): string {
  return `bytes */${total}`;
}

export interface TransportRequest {
  url: string;
  method: 'PUT';
  headers: Record<string, string>;
  body: Blob | null;
  /** Bytes of this request's body sent so far (when the transport can tell). */
  onProgress?: (loaded: number) => void;
  signal?: AbortSignal;
}

export interface TransportResponse {
  status: number;
  body: string;
}

/**
 * Sends one request. Resolves with any HTTP answer; rejects when there was none (network
 * failure) or when `signal` aborted it (an AbortError).
 */
export type Transport = (request: TransportRequest) => Promise<TransportResponse>;

/** A transport over fetch (no progress within a chunk): for tests and non-browser callers. */
export function fetchTransport(fetchImpl: FetchLike): Transport {
  return async ({ url, method, headers, body, onProgress, signal }) => {
    const res = await fetchImpl(url, { method, headers, body, signal, credentials: 'same-origin' });
    const text = await res.text();
    if (res.ok && body) onProgress?.(body.size);
    return { status: res.status, body: text };
  };
}

/** A transport over XMLHttpRequest, which reports upload progress as the bytes leave. */
export function xhrTransport(): Transport {
  return ({ url, method, headers, body, onProgress, signal }) =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open(method, url);
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => onProgress?.(event.loaded);
      xhr.onload = () => resolve({ status: xhr.status, body: xhr.responseText });
      xhr.onerror = () => reject(new TypeError('network error'));
      xhr.ontimeout = () => reject(new TypeError('timed out'));
      xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
      if (signal?.aborted) {
        reject(new DOMException('aborted', 'AbortError'));
        return;
      }
      signal?.addEventListener('abort', () => xhr.abort(), { once: true });
      xhr.send(body);
    });
}

/** Code of the ApiError thrown when the caller cancelled the upload. */
export const UPLOAD_CANCELLED = 'upload_cancelled' satisfies ClientErrorCode;

export interface UploadOptions {
  file: Blob;
  /** The file's API address (fileUrl), without query. */
  url: string;
  overwrite?: boolean;
  /** Headers every request carries (the CSRF token); read for each request. */
  headers?: () => Record<string, string>;
  /** Called once when a request meets 403 `csrf_invalid`; true when headers() now has a fresh token. */
  refreshCsrf?: () => Promise<boolean>;
  transport: Transport;
  chunkSize?: number;
  /** Bytes the agent has (or that are on their way), out of `total`. */
  onProgress?: (sent: number, total: number) => void;
  signal?: AbortSignal;
  /** Start by asking the agent what an earlier attempt left (a retry after a failure). */
  resume?: boolean;
  /** Network failures in a row before giving up. */
  retries?: number;
  /** Waits between attempts (replaced in tests). */
  wait?: (ms: number) => Promise<void>;
}

function parse<T>(text: string): T | null {
  try {
    return text === '' ? null : (JSON.parse(text) as T);
  } catch {
    return null;
  }
}

function isAbort(e: unknown): boolean {
  return e instanceof Error && e.name === 'AbortError';
}

const sleep = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

/** Back-off after the n-th failure in a row: 0.5 s, 1 s, 2 s, 4 s, then 8 s. */
export function backoff(failures: number): number {
  return Math.min(8000, 500 * 2 ** Math.max(0, failures - 1));
}

/**
 * Uploads `file` in chunks, continuing after network failures from what the agent reports it
 * received. Resolves with the agent's final answer (complete, with the new entry); rejects with
 * an ApiError (the agent's refusal, NETWORK_ERROR after `retries` failures, or UPLOAD_CANCELLED).
 */
export async function uploadFile(options: UploadOptions): Promise<UploadProgress> {
  const {
    file,
    transport,
    chunkSize = CHUNK_SIZE,
    onProgress = () => {},
    signal,
    retries = 5,
    wait = sleep,
  } = options;
  const total = file.size;
  const url = options.overwrite ? `${options.url}?overwrite=true` : options.url;
  let csrfRefreshed = false;

  /** One request; HTTP errors become ApiErrors, a missing answer is rethrown as is. */
  async function send(headers: Record<string, string>, body: Blob | null, progress?: (n: number) => void) {
    if (signal?.aborted) throw new ApiError(0, UPLOAD_CANCELLED, 'cancelled');
    for (;;) {
      let res: TransportResponse;
      try {
        res = await transport({
          url,
          method: 'PUT',
          headers: { ...(options.headers?.() ?? {}), 'Content-Type': 'application/octet-stream', ...headers },
          body,
          onProgress: progress,
          signal,
        });
      } catch (e) {
        if (isAbort(e) || signal?.aborted) throw new ApiError(0, UPLOAD_CANCELLED, 'cancelled');
        throw e;
      }
      if (res.status >= 200 && res.status < 300) {
        return parse<UploadProgress>(res.body) ?? { received: 0, complete: false };
      }
      const err = await errorFromResponse(new Response(res.body, { status: res.status }));
      if (err.code === 'csrf_invalid' && !csrfRefreshed && options.refreshCsrf) {
        csrfRefreshed = true;
        if (await options.refreshCsrf()) continue;
      }
      throw err;
    }
  }

  /** How much of this upload the agent holds. */
  const askReceived = async () => (await send({ 'Content-Range': statusRange(total) }, null)).received;

  if (total === 0) {
    const done = await send({}, file);
    onProgress(0, 0);
    return done;
  }

  let offset = 0;
  let failures = 0;
  let needStatus = options.resume === true;
  let lastChunkFailed = false;
  for (;;) {
    try {
      if (needStatus) {
        try {
          offset = Math.min(await askReceived(), total);
        } catch (e) {
          // The last chunk went through and the file was put in place before the answer got
          // lost: the agent now has the file and nothing partial.
          if (e instanceof ApiError && e.code === 'exists' && lastChunkFailed && !options.overwrite) {
            onProgress(total, total);
            return { received: total, complete: true };
          }
          throw e;
        }
        needStatus = false;
        onProgress(offset, total);
      }
      const [chunk] = planChunks(total, offset, chunkSize);
      if (chunk === undefined) {
        // The agent holds every byte but could not finish (the last step was refused before):
        // a chunk can no longer start there, so the upload starts over.
        offset = 0;
        continue;
      }
      lastChunkFailed = false;
      const answer = await send(
        { 'Content-Range': contentRange(chunk, total) },
        file.slice(chunk.start, chunk.end + 1),
        (loaded) => onProgress(chunk.start + Math.min(loaded, chunk.end - chunk.start + 1), total),
      );
      failures = 0;
      if (answer.complete) {
        onProgress(total, total);
        return answer;
      }
      offset = answer.received;
      onProgress(offset, total);
    } catch (e) {
      if (e instanceof ApiError && e.code === 'upload_offset') {
        // Someone else's view of the upload differs (another tab, a lost answer): ask.
        failures += 1;
        if (failures > retries) throw e;
        needStatus = true;
        continue;
      }
      if (e instanceof ApiError) throw e;
      // No answer at all: the connection dropped. Wait, then ask what arrived.
      failures += 1;
      if (failures > retries) {
        throw new ApiError(0, NETWORK_ERROR, e instanceof Error ? e.message : String(e));
      }
      lastChunkFailed = offset + chunkSize >= total;
      await wait(backoff(failures));
      if (signal?.aborted) throw new ApiError(0, UPLOAD_CANCELLED, 'cancelled');
      needStatus = true;
    }
  }
}
