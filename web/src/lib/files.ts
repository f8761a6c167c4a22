// Paths of the file manager: inside a root they are "a/b/c" (no leading slash, "" for the top).
// In URLs every name is percent-encoded on its own and the slashes between names are kept, so a
// name with "/", "%", "?" or "#" can never change which file a request means.

import type { MessageKey } from './i18n';

/** "a/b" → ["a", "b"]; "" and "/" → []. Leading, trailing and doubled slashes are dropped. */
export function splitPath(path: string): string[] {
  return path.split('/').filter((part) => part !== '');
}

/** The path as the dashboard keeps it: the agent's "/a/b" becomes "a/b". */
export function normalizePath(path: string): string {
  return splitPath(path).join('/');
}

export function joinPath(dir: string, name: string): string {
  const base = normalizePath(dir);
  return base === '' ? name : `${base}/${name}`;
}

/** The folder holding `path` ("" for a top-level name or the top itself). */
export function parentPath(path: string): string {
  return splitPath(path).slice(0, -1).join('/');
}

/** The last name of `path` ("" for the top). */
export function baseName(path: string): string {
  return splitPath(path).at(-1) ?? '';
}

/** Each name percent-encoded on its own, joined with "/". */
export function encodePath(path: string): string {
  return splitPath(path).map(encodeURIComponent).join('/');
}

export type QueryValue = string | number | boolean | undefined | null;

/** `?a=1&b=x` from the defined values, "" when there are none. */
export function queryString(params: Record<string, QueryValue> = {}): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== false) search.set(key, String(value));
  }
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** The API address of a file or folder, e.g. /api/v1/files/home/My%20Photos/a%23b.jpg?inline=true */
export function fileUrl(root: string, path: string, params?: Record<string, QueryValue>): string {
  const rest = encodePath(path);
  const base = `/api/v1/files/${encodeURIComponent(root)}${rest === '' ? '' : `/${rest}`}`;
  return base + queryString(params);
}

/** The dashboard page of a folder: /files/home/My%20Photos */
export function filesPagePath(root: string, path = ''): string {
  const rest = encodePath(path);
  return `/files/${encodeURIComponent(root)}${rest === '' ? '' : `/${rest}`}`;
}

/**
 * The root and folder a dashboard location names: "/files/home/a%20b" → { root: "home",
 * path: "a b" }. "/files" names no root yet. Undecodable names (a stray "%") are kept as typed.
 */
export function parseFilesPagePath(pathname: string): { root: string | null; path: string } {
  const parts = splitPath(pathname);
  if (parts[0] !== 'files' || parts.length < 2) return { root: null, path: '' };
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  };
  const [root, ...rest] = parts.slice(1).map(decode);
  return { root, path: rest.join('/') };
}

/** Names the agent keeps for itself at the top of every root. */
export const RESERVED_NAMES = ['.hearth-trash', '.hearth-uploads'] as const;

const MAX_NAME_BYTES = 255;

/**
 * Why `name` cannot be a file name (the agent's rules: not empty, not "." or "..", no "/" or
 * control characters, at most 255 bytes, not one of the agent's own names at the top), or null.
 */
export function nameProblem(name: string, atTop = false): MessageKey | null {
  if (name.trim() === '') return 'validate.required';
  if (name === '.' || name === '..') return 'files.name_dots';
  // eslint-disable-next-line no-control-regex
  if (/[/\u0000-\u001f\u007f-\u009f]/.test(name)) return 'files.name_chars';
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) return 'files.name_long';
  if (atTop && (RESERVED_NAMES as readonly string[]).includes(name)) return 'files.name_reserved';
  return null;
}

function extension(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** Images the agent serves inline (`?inline=true`); anything else would be a download. */
const IMAGE_EXTENSIONS = new Set(['png', 'jpg', 'jpeg', 'gif', 'webp', 'avif']);

/**
 * Files worth opening as text, and names without an extension (README, Dockerfile, .env); the
 * agent still refuses non-UTF-8 content and files over 1 MiB.
 */
const TEXT_EXTENSIONS = new Set([
  'txt', 'md', 'markdown', 'log', 'csv', 'tsv', 'json', 'yaml', 'yml', 'toml', 'ini', 'conf', 'cfg',
  'env', 'xml', 'html', 'htm', 'css', 'js', 'mjs', 'ts', 'svelte', 'rs', 'py', 'rb', 'go', 'java',
  'c', 'h', 'cpp', 'hpp', 'sh', 'bash', 'zsh', 'fish', 'sql', 'service', 'nix', 'srt', 'vtt',
  'properties', 'svg',
]);

export type PreviewKind = 'image' | 'text' | null;

export function previewKind(name: string): PreviewKind {
  const ext = extension(name);
  if (IMAGE_EXTENSIONS.has(ext)) return 'image';
  if (TEXT_EXTENSIONS.has(ext) || ext === '') return 'text';
  return null;
}

export function isTextName(name: string): boolean {
  return previewKind(name) === 'text';
}
