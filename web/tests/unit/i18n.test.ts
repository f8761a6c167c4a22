import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR } from '../../src/lib/api';
import { errorText, interpolate, pickLocale, t } from '../../src/lib/i18n';
import { en } from '../../src/lib/locales/en';
import type { ErrorCode } from '../../src/lib/types';

const SRC = join(__dirname, '../../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|svelte)$/.test(name) && !path.includes('/locales/') ? [path] : [];
  });
}

const files = sourceFiles(SRC).map((path) => ({
  path: relative(SRC, path),
  text: readFileSync(path, 'utf8'),
}));
const namespaces = new Set(Object.keys(en).map((k) => k.split('.')[0]));

/** Literal keys in t('…') calls, and any other literal that looks like a key of a known namespace. */
function usedKeys(): { key: string; path: string }[] {
  const found: { key: string; path: string }[] = [];
  for (const { path, text } of files) {
    for (const m of text.matchAll(/\bt\(\s*['"`]([^'"`]+)['"`]/g)) found.push({ key: m[1], path });
    for (const m of text.matchAll(/['"]([a-z_]+(?:\.[a-z0-9_]+)+)['"]/g)) {
      if (namespaces.has(m[1].split('.')[0])) found.push({ key: m[1], path });
    }
  }
  return found;
}

describe('translation table', () => {
  it('scans a plausible amount of source', () => {
    expect(files.length).toBeGreaterThan(10);
    expect(usedKeys().length).toBeGreaterThan(100);
  });

  it('has every key the source uses', () => {
    const missing = usedKeys().filter(({ key }) => !(key in en));
    expect(missing).toEqual([]);
  });

  it('has no key the source never uses (error.* keys are looked up by code)', () => {
    const used = new Set(usedKeys().map(({ key }) => key));
    const unused = Object.keys(en).filter((k) => !used.has(k) && !k.startsWith('error.'));
    expect(unused).toEqual([]);
  });

  it('has no empty text', () => {
    expect(Object.entries(en).filter(([, v]) => v.trim() === '')).toEqual([]);
  });

  it('keeps markup text out of the components (no bare words between tags)', () => {
    // A crude guard: text nodes in .svelte markup must come from {t(...)}; brand name excepted.
    const offenders: string[] = [];
    for (const { path, text } of files.filter((f) => f.path.endsWith('.svelte'))) {
      const markup = text.replace(/<script[\s\S]*?<\/script>/g, '').replace(/<style[\s\S]*?<\/style>/g, '');
      const noComments = markup.replace(/<!--[\s\S]*?-->/g, '');
      for (const m of noComments.matchAll(/>([^<>{}]*[A-Za-z]{2,}[^<>{}]*)</g)) {
        const words = m[1].trim();
        if (words && words !== 'Hearth') offenders.push(`${path}: ${words}`);
      }
    }
    expect(offenders).toEqual([]);
  });
});

describe('t and friends', () => {
  it('fills placeholders and leaves unknown ones visible', () => {
    expect(t('claim.step', { n: 2, total: 4 })).toBe('Step 2 of 4');
    expect(interpolate('{a} and {b}', { a: 1 })).toBe('1 and {b}');
  });

  it('picks English for languages without a table', () => {
    expect(pickLocale(['fr-FR', 'de'])).toBe('en');
    expect(pickLocale(['en-GB'])).toBe('en');
  });

  it('explains errors by code, with the wait time when throttled', () => {
    expect(errorText(new ApiError(429, 'throttled', 'x', 12))).toBe(
      'Too many attempts. Try again in 12 s.',
    );
    expect(errorText(new ApiError(403, 'setup_code_invalid', 'x'))).toBe(en['error.setup_code_invalid']);
    expect(errorText(new ApiError(0, NETWORK_ERROR, 'x'))).toBe(en['error.network']);
  });

  it('shows the server message for invalid_input and unknown codes, never 5xx internals', () => {
    expect(errorText(new ApiError(400, 'invalid_input', 'hostname: too long'))).toBe('hostname: too long');
    // A code this dashboard does not know yet (a newer agent's).
    expect(errorText(new ApiError(418, 'teapot' as ErrorCode, 'I am a teapot'))).toBe('I am a teapot');
    expect(errorText(new ApiError(500, 'internal', 'db exploded'))).toBe(en['error.server']);
    expect(errorText(new Error('boom'))).toBe(en['error.unexpected']);
  });
});
