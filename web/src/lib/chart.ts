// Geometry for the hand-written SVG line charts: values → `points` of a <polyline>.

/**
 * Largest value of all series, rounded up to a "nice" ceiling, at least `floor`. With `base`
 * 1024 the ceiling is 1, 2 or 5 × 10^n of a binary unit (e.g. 5 KiB, 200 MiB) so the axis
 * label reads well in formatBytes; with base 10 it is 1, 2 or 5 × 10^n.
 */
export function niceMax(series: readonly (readonly number[])[], floor = 1, base = 10): number {
  let max = floor;
  for (const s of series) for (const v of s) if (Number.isFinite(v) && v > max) max = v;
  let unit = 1;
  if (base !== 10) while (unit * base <= max) unit *= base;
  const scaled = max / unit;
  const magnitude = 10 ** Math.floor(Math.log10(scaled));
  for (const step of [1, 2, 5]) {
    if (scaled <= step * magnitude) return step * magnitude * unit;
  }
  return 10 * magnitude * unit;
}

/**
 * The `points` attribute for one series drawn into a width × height box, right-aligned so the
 * newest sample sits on the right edge and `capacity` samples span the full width.
 */
export function polylinePoints(
  values: readonly number[],
  width: number,
  height: number,
  max: number,
  capacity: number,
): string {
  if (values.length === 0 || capacity < 2) return '';
  const step = width / (capacity - 1);
  const offset = width - (values.length - 1) * step;
  return values
    .map((v, i) => {
      const clamped = Math.min(max, Math.max(0, Number.isFinite(v) ? v : 0));
      const x = offset + i * step;
      const y = height - (clamped / max) * height;
      return `${round(x)},${round(y)}`;
    })
    .join(' ');
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
