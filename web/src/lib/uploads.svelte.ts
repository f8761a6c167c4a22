// The upload queue: files picked or dropped go up one after another (a small device has little
// to gain from parallel streams), each with its progress, and survive a change of page. A failed
// upload can be resumed; one refused because the name is taken can replace the file.

import { ApiError } from './api';
import { fileUrl, joinPath } from './files';
import { session } from './session.svelte';
import { UPLOAD_CANCELLED, uploadFile, xhrTransport, type Transport } from './upload';

export type UploadState = 'queued' | 'uploading' | 'done' | 'failed' | 'exists' | 'cancelled';

export interface UploadTask {
  id: number;
  root: string;
  /** The folder it goes to ("a/b"). */
  dir: string;
  name: string;
  size: number;
  sent: number;
  state: UploadState;
  error: ApiError | null;
  overwrite: boolean;
  /** True after a failure: the next attempt asks the agent what arrived. */
  resume: boolean;
}

class Uploads {
  tasks = $state<UploadTask[]>([]);
  /** Bumped when an upload finishes; pages watch it to reload the folder. */
  finished = $state<{ root: string; dir: string; count: number }>({ root: '', dir: '', count: 0 });

  private files = new Map<number, File>();
  private controllers = new Map<number, AbortController>();
  private nextId = 1;
  private running = false;
  transport: Transport = xhrTransport();

  add(files: Iterable<File>, root: string, dir: string): void {
    for (const file of files) {
      const id = this.nextId++;
      this.files.set(id, file);
      this.tasks.push({
        id,
        root,
        dir,
        name: file.name,
        size: file.size,
        sent: 0,
        state: 'queued',
        error: null,
        overwrite: false,
        resume: false,
      });
    }
    void this.pump();
  }

  get active(): boolean {
    return this.tasks.some((t) => t.state === 'queued' || t.state === 'uploading');
  }

  cancel(id: number): void {
    const task = this.find(id);
    if (!task) return;
    if (task.state === 'uploading') this.controllers.get(id)?.abort();
    else if (task.state === 'queued' || task.state === 'failed' || task.state === 'exists') {
      task.state = 'cancelled';
      this.files.delete(id);
    }
  }

  /** Tries a failed upload again, continuing from what the agent already has. */
  retry(id: number): void {
    const task = this.find(id);
    if (!task || task.state !== 'failed') return;
    task.state = 'queued';
    task.error = null;
    void this.pump();
  }

  /** Uploads again over the existing file of the same name. */
  replace(id: number): void {
    const task = this.find(id);
    if (!task || task.state !== 'exists') return;
    task.overwrite = true;
    task.state = 'queued';
    task.error = null;
    void this.pump();
  }

  clearFinished(): void {
    for (const t of this.tasks) if (t.state === 'done' || t.state === 'cancelled') this.files.delete(t.id);
    this.tasks = this.tasks.filter((t) => t.state !== 'done' && t.state !== 'cancelled');
  }

  private find(id: number): UploadTask | undefined {
    return this.tasks.find((t) => t.id === id);
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const task = this.tasks.find((t) => t.state === 'queued');
        if (!task) break;
        await this.run(task);
      }
    } finally {
      this.running = false;
    }
  }

  private async run(task: UploadTask): Promise<void> {
    const file = this.files.get(task.id);
    if (!file) {
      task.state = 'cancelled';
      return;
    }
    const controller = new AbortController();
    this.controllers.set(task.id, controller);
    task.state = 'uploading';
    const api = session.api;
    try {
      await uploadFile({
        file,
        url: fileUrl(task.root, joinPath(task.dir, task.name)),
        overwrite: task.overwrite,
        headers: () => api.csrfHeaders(),
        refreshCsrf: () => api.renewCsrfToken(),
        transport: this.transport,
        signal: controller.signal,
        resume: task.resume,
        onProgress: (sent) => {
          task.sent = sent;
        },
      });
      task.state = 'done';
      task.sent = task.size;
      this.files.delete(task.id);
      this.finished = { root: task.root, dir: task.dir, count: this.finished.count + 1 };
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError(0, 'unexpected', String(e));
      if (err.code === UPLOAD_CANCELLED) {
        task.state = 'cancelled';
        this.files.delete(task.id);
      } else if (err.code === 'exists') {
        task.state = 'exists';
        task.error = err;
      } else {
        task.state = 'failed';
        task.error = err;
        task.resume = true;
      }
    } finally {
      this.controllers.delete(task.id);
    }
  }
}

export const uploads = new Uploads();
