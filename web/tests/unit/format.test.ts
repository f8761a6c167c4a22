import { describe, expect, it } from 'vitest';
import {
  formatBytes,
  formatCelsius,
  formatDateTime,
  formatDuration,
  formatLoad,
  formatPercent,
  formatRate,
  percentOf,
} from '../../src/lib/format';

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1,023 B'],
    [1024, '1 KiB'],
    [1536, '1.5 KiB'],
    [10 * 1024 * 1024 + 512 * 1024, '10.5 MiB'],
    [512 * 1024 ** 3, '512 GiB'],
    [2.25 * 1024 ** 4, '2.25 TiB'],
  ])('%d → %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });

  it('shows a dash for impossible values', () => {
    expect(formatBytes(-1)).toBe('–');
    expect(formatBytes(Number.NaN)).toBe('–');
  });

  it('uses the locale for the decimal separator', () => {
    expect(formatBytes(1536, 'de')).toBe('1,5 KiB');
  });
});

describe('formatRate', () => {
  it('adds per second', () => {
    expect(formatRate(0)).toBe('0 B/s');
    expect(formatRate(1024 * 1024 * 3.2)).toBe('3.2 MiB/s');
    expect(formatRate(Number.POSITIVE_INFINITY)).toBe('–');
  });
});

describe('formatPercent and percentOf', () => {
  it('rounds and clamps', () => {
    expect(formatPercent(12.345)).toBe('12 %');
    expect(formatPercent(3.14159)).toBe('3.1 %');
    expect(formatPercent(130)).toBe('100 %');
    expect(formatPercent(-2)).toBe('0 %');
  });

  it('guards against an empty whole', () => {
    expect(percentOf(5, 0)).toBe(0);
    expect(percentOf(1, 4)).toBe(25);
    expect(percentOf(8, 4)).toBe(100);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '0 s'],
    [42, '42 s'],
    [125, '2 min 5 s'],
    [3600, '1 h'],
    [3 * 3600 + 2 * 60 + 9, '3 h 2 min'],
    [86400 * 3 + 3600 * 4 + 59, '3 d 4 h'],
    [86400 + 30, '1 d'],
  ])('%d s → %s', (secs, text) => {
    expect(formatDuration(secs)).toBe(text);
  });

  it('shows a dash for negative input', () => {
    expect(formatDuration(-5)).toBe('–');
  });
});

describe('small helpers', () => {
  it('formats load and temperatures', () => {
    expect(formatLoad([0.1, 1.234, 12])).toBe('0.1 · 1.23 · 12');
    expect(formatCelsius(48.25)).toBe('48.3 °C');
  });
});

describe('formatDateTime', () => {
  it('reads Unix seconds and RFC 3339 alike', () => {
    const fromSecs = formatDateTime(1_700_000_000);
    expect(fromSecs).toMatch(/2023/);
    expect(formatDateTime('2023-11-14T22:13:20Z')).toBe(fromSecs);
  });

  it('passes through what it cannot read', () => {
    expect(formatDateTime('not a date')).toBe('not a date');
  });
});
