// Every user-visible string goes through t(). English is the reference table: other languages
// may leave keys out and fall back to it, but may not add keys English lacks.

import { en } from './locales/en';
import { ApiError, NETWORK_ERROR } from './api';

export type MessageKey = keyof typeof en;
export type Messages = Record<MessageKey, string>;
export type Params = Record<string, string | number>;

const tables: Record<string, Partial<Messages>> = { en };

let current: Partial<Messages> = en;
let currentLocale = 'en';

/** Picks the first of the browser's languages that has a table; English otherwise. */
export function pickLocale(preferred: readonly string[]): string {
  for (const tag of preferred) {
    const lang = tag.toLowerCase().split('-')[0];
    if (lang in tables) return lang;
  }
  return 'en';
}

export function setLocale(locale: string): void {
  currentLocale = locale in tables ? locale : 'en';
  current = tables[currentLocale];
}

export function locale(): string {
  return currentLocale;
}

/** Replaces `{name}` placeholders; unknown placeholders stay visible so they get noticed. */
export function interpolate(template: string, params: Params = {}): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

export function t(key: MessageKey, params?: Params): string {
  return interpolate(current[key] ?? en[key] ?? key, params);
}

export function hasKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(en, key);
}

/**
 * The sentence to show for a failed call. Known error codes have their own translated text;
 * `invalid_input` and unknown codes show the server's message, which names the field.
 */
export function errorText(err: unknown): string {
  if (!(err instanceof ApiError)) return t('error.unexpected');
  if (err.code === 'throttled') {
    return err.retryAfter === null
      ? t('error.throttled')
      : t('error.throttled_retry', { seconds: err.retryAfter });
  }
  if (err.code === NETWORK_ERROR) return t('error.network');
  const key = `error.${err.code}`;
  if (err.code !== 'invalid_input' && hasKey(key)) return t(key);
  if (err.status >= 500) return t('error.server');
  return err.message || t('error.unexpected');
}
