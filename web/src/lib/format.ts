// Numbers as people read them: sizes, rates, percentages and durations. Pure functions; the
// locale is a parameter so tests do not depend on the machine's.

import { t } from './i18n';

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'] as const;

function number(value: number, locale: string, maxFractionDigits: number): string {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: maxFractionDigits }).format(value);
}

/** 1536 → "1.5 KiB". Binary units, three significant digits at most past the first unit. */
export function formatBytes(bytes: number, locale = 'en'): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '–';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${number(value, locale, digits)} ${BYTE_UNITS[unit]}`;
}

/** Bytes per second → "1.2 MiB/s". */
export function formatRate(bytesPerSec: number, locale = 'en'): string {
  const size = formatBytes(bytesPerSec, locale);
  return size === '–' ? size : `${size}/s`;
}

/** 12.345 → "12.3 %" (values are clamped to 0..100). */
export function formatPercent(percent: number, locale = 'en'): string {
  if (!Number.isFinite(percent)) return '–';
  const clamped = Math.min(100, Math.max(0, percent));
  return `${number(clamped, locale, clamped < 10 ? 1 : 0)} %`;
}

/** Share of a whole in percent, 0 when the whole is empty. */
export function percentOf(part: number, whole: number): number {
  if (!(whole > 0) || !Number.isFinite(part)) return 0;
  return Math.min(100, Math.max(0, (part / whole) * 100));
}

/** Seconds → the two largest units: "3 d 4 h", "5 h 2 min", "2 min 5 s", "42 s". */
export function formatDuration(totalSecs: number): string {
  if (!Number.isFinite(totalSecs) || totalSecs < 0) return '–';
  const secs = Math.floor(totalSecs);
  const parts: [number, 'duration.days' | 'duration.hours' | 'duration.minutes' | 'duration.seconds'][] = [
    [Math.floor(secs / 86400), 'duration.days'],
    [Math.floor((secs % 86400) / 3600), 'duration.hours'],
    [Math.floor((secs % 3600) / 60), 'duration.minutes'],
    [secs % 60, 'duration.seconds'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  if (first === -1) return t('duration.seconds', { n: 0 });
  return parts
    .slice(first, first + 2)
    .filter(([n], i) => i === 0 || n > 0)
    .map(([n, key]) => t(key, { n }))
    .join(' ');
}

/** Load averages → "0.12 · 0.34 · 0.56". */
export function formatLoad(load: readonly number[], locale = 'en'): string {
  return load.map((l) => number(l, locale, 2)).join(' · ');
}

export function formatCelsius(celsius: number, locale = 'en'): string {
  return Number.isFinite(celsius) ? `${number(celsius, locale, 1)} °C` : '–';
}

/** An RFC 3339 time as a local date, e.g. "12 Mar 2025". */
export function formatDate(rfc3339: string, locale = 'en'): string {
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium' }).format(d);
}
