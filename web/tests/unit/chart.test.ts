import { describe, expect, it } from 'vitest';
import { niceMax, polylinePoints } from '../../src/lib/chart';

describe('polylinePoints', () => {
  it('puts the newest sample on the right edge', () => {
    expect(polylinePoints([0, 50, 100], 100, 10, 100, 5)).toBe('50,10 75,5 100,0');
  });

  it('spans the width when full and clamps out-of-range values', () => {
    expect(polylinePoints([-5, 200, Number.NaN], 10, 10, 100, 3)).toBe('0,10 5,0 10,10');
  });

  it('draws nothing without data', () => {
    expect(polylinePoints([], 100, 10, 100, 5)).toBe('');
  });
});

describe('niceMax', () => {
  it('rounds up to 1, 2 or 5 times a power of ten', () => {
    expect(niceMax([[0, 3]])).toBe(5);
    expect(niceMax([[120], [80]])).toBe(200);
    expect(niceMax([[501]])).toBe(1000);
    expect(niceMax([[1000]])).toBe(1000);
  });

  it('never goes below the floor', () => {
    expect(niceMax([[0, 0]], 1024)).toBe(2000);
    expect(niceMax([], 1)).toBe(1);
  });

  it('rounds to binary units with base 1024', () => {
    expect(niceMax([[0]], 1024, 1024)).toBe(1024);
    expect(niceMax([[3000]], 1024, 1024)).toBe(5 * 1024);
    expect(niceMax([[150 * 1024 * 1024]], 1024, 1024)).toBe(200 * 1024 * 1024);
  });
});
