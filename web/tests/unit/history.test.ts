import { describe, expect, it } from 'vitest';
import { RingBuffer, StatusHistory } from '../../src/lib/history';
import type { SystemStatus } from '../../src/lib/types';

describe('RingBuffer', () => {
  it('keeps insertion order until full', () => {
    const ring = new RingBuffer<number>(3);
    ring.push(1);
    ring.push(2);
    expect(ring.toArray()).toEqual([1, 2]);
    expect(ring.length).toBe(2);
    expect(ring.last()).toBe(2);
  });

  it('drops the oldest value once full', () => {
    const ring = new RingBuffer<number>(3);
    for (let i = 1; i <= 7; i += 1) ring.push(i);
    expect(ring.toArray()).toEqual([5, 6, 7]);
    expect(ring.length).toBe(3);
    expect(ring.last()).toBe(7);
  });

  it('starts over after clear', () => {
    const ring = new RingBuffer<string>(2);
    ring.push('a');
    ring.push('b');
    ring.push('c');
    ring.clear();
    expect(ring.toArray()).toEqual([]);
    expect(ring.last()).toBeUndefined();
    ring.push('d');
    expect(ring.toArray()).toEqual(['d']);
  });

  it('refuses a useless capacity', () => {
    expect(() => new RingBuffer(0)).toThrow(RangeError);
    expect(() => new RingBuffer(1.5)).toThrow(RangeError);
  });
});

function status(over: {
  cpu?: number;
  cores?: number[];
  used?: number;
  net?: Record<string, [number, number]>;
}): SystemStatus {
  const cores = over.cores ?? [10, 20];
  return {
    version: '0.1.0',
    hostname: 'hearth',
    timezone: 'Etc/UTC',
    uptime_secs: 10,
    time: '2025-01-01T00:00:00Z',
    load: [0, 0, 0],
    cpu: { usage_percent: over.cpu ?? 15, cores: cores.map((usage_percent) => ({ usage_percent })) },
    memory: {
      total_bytes: 1000,
      available_bytes: 1000 - (over.used ?? 250),
      used_bytes: over.used ?? 250,
      swap_total_bytes: 0,
      swap_used_bytes: 0,
    },
    disks: [],
    temperatures: [],
    network: Object.entries(over.net ?? { eth0: [1, 2] }).map(([name, [rx, tx]]) => ({
      interface: name,
      virtual: false,
      rx_bytes: 0,
      tx_bytes: 0,
      rx_bytes_per_sec: rx,
      tx_bytes_per_sec: tx,
    })),
  };
}

describe('StatusHistory', () => {
  it('collects one point per status for every series', () => {
    const h = new StatusHistory(10);
    h.add(status({ cpu: 10, cores: [5, 15], used: 100, net: { eth0: [100, 200] } }));
    h.add(status({ cpu: 30, cores: [25, 35], used: 500, net: { eth0: [300, 400] } }));
    const v = h.view();
    expect(v.samples).toBe(2);
    expect(v.cpu).toEqual([10, 30]);
    expect(v.cores).toEqual([
      [5, 25],
      [15, 35],
    ]);
    expect(v.memoryPercent).toEqual([10, 50]);
    expect(v.network.eth0).toEqual({ rx: [100, 300], tx: [200, 400] });
  });

  it('keeps at most its capacity', () => {
    const h = new StatusHistory(4);
    for (let i = 0; i < 9; i += 1) h.add(status({ cpu: i }));
    expect(h.view().cpu).toEqual([5, 6, 7, 8]);
    expect(h.view().samples).toBe(9);
  });

  it('starts a series for a new interface and drops a vanished one', () => {
    const h = new StatusHistory(5);
    h.add(status({ net: { eth0: [1, 1] } }));
    h.add(status({ net: { eth0: [2, 2], wlan0: [9, 9] } }));
    h.add(status({ net: { wlan0: [8, 8] } }));
    const v = h.view();
    expect(Object.keys(v.network)).toEqual(['wlan0']);
    expect(v.network.wlan0.rx).toEqual([9, 8]);
  });

  it('restarts core series when the core count changes', () => {
    const h = new StatusHistory(5);
    h.add(status({ cores: [1, 2] }));
    h.add(status({ cores: [1, 2, 3, 4] }));
    expect(h.view().cores).toEqual([[1], [2], [3], [4]]);
  });

  it('reads zero memory use when the total is unknown', () => {
    const s = status({});
    s.memory.total_bytes = 0;
    const h = new StatusHistory(2);
    h.add(s);
    expect(h.view().memoryPercent).toEqual([0]);
  });
});
