// Recent samples for the live charts: a fixed-size ring buffer per series, so memory stays
// bounded however long the dashboard stays open.

import type { SystemStatus } from './types';

export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`ring buffer capacity must be a positive integer, got ${capacity}`);
    }
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Appends a value, dropping the oldest one when full. */
  push(value: T): void {
    const end = (this.start + this.count) % this.capacity;
    this.items[end] = value;
    if (this.count < this.capacity) this.count += 1;
    else this.start = (this.start + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i += 1) out.push(this.items[(this.start + i) % this.capacity] as T);
    return out;
  }

  last(): T | undefined {
    return this.count === 0 ? undefined : this.items[(this.start + this.count - 1) % this.capacity];
  }

  clear(): void {
    this.items.fill(undefined);
    this.start = 0;
    this.count = 0;
  }
}

/** How many samples the charts keep: two minutes at the agent's two-second pace. */
export const HISTORY_SAMPLES = 60;

export interface NetworkSeries {
  rx: number[];
  tx: number[];
}

/** A snapshot of the history, shaped for the charts (arrays, oldest first). */
export interface HistoryView {
  samples: number;
  cpu: number[];
  cores: number[][];
  memoryPercent: number[];
  network: Record<string, NetworkSeries>;
}

/**
 * The series the home screen draws, fed one status at a time. An interface or core that
 * appears later starts its own series then; one that disappears is dropped.
 */
export class StatusHistory {
  private readonly cpu: RingBuffer<number>;
  private cores: RingBuffer<number>[] = [];
  private readonly memory: RingBuffer<number>;
  private network = new Map<string, { rx: RingBuffer<number>; tx: RingBuffer<number> }>();
  private samples = 0;

  constructor(readonly capacity: number = HISTORY_SAMPLES) {
    this.cpu = new RingBuffer(capacity);
    this.memory = new RingBuffer(capacity);
  }

  add(status: SystemStatus): void {
    this.samples += 1;
    this.cpu.push(status.cpu.usage_percent);
    const cores = status.cpu.cores;
    if (cores.length !== this.cores.length) {
      this.cores = cores.map(() => new RingBuffer<number>(this.capacity));
    }
    cores.forEach((c, i) => this.cores[i].push(c.usage_percent));
    const mem = status.memory;
    this.memory.push(mem.total_bytes > 0 ? (mem.used_bytes / mem.total_bytes) * 100 : 0);

    const seen = new Set<string>();
    for (const n of status.network) {
      seen.add(n.interface);
      let series = this.network.get(n.interface);
      if (!series) {
        series = { rx: new RingBuffer(this.capacity), tx: new RingBuffer(this.capacity) };
        this.network.set(n.interface, series);
      }
      series.rx.push(n.rx_bytes_per_sec);
      series.tx.push(n.tx_bytes_per_sec);
    }
    for (const name of [...this.network.keys()]) {
      if (!seen.has(name)) this.network.delete(name);
    }
  }

  clear(): void {
    this.cpu.clear();
    this.memory.clear();
    this.cores = [];
    this.network.clear();
    this.samples = 0;
  }

  view(): HistoryView {
    const network: Record<string, NetworkSeries> = {};
    for (const [name, s] of this.network) network[name] = { rx: s.rx.toArray(), tx: s.tx.toArray() };
    return {
      samples: this.samples,
      cpu: this.cpu.toArray(),
      cores: this.cores.map((c) => c.toArray()),
      memoryPercent: this.memory.toArray(),
      network,
    };
  }
}
