import { describe, expect, it } from 'vitest';
import {
  baseName,
  encodePath,
  filesPagePath,
  fileUrl,
  joinPath,
  nameProblem,
  normalizePath,
  parentPath,
  parseFilesPagePath,
  previewKind,
  queryString,
  splitPath,
} from '../../src/lib/files';
import { matchRoute } from '../../src/lib/routes';

describe('paths inside a root', () => {
  it('split, join and walk up without stray slashes', () => {
    expect(splitPath('')).toEqual([]);
    expect(splitPath('/')).toEqual([]);
    expect(splitPath('/a//b/')).toEqual(['a', 'b']);
    expect(normalizePath('/Photos/2024')).toBe('Photos/2024');
    expect(joinPath('', 'a.txt')).toBe('a.txt');
    expect(joinPath('/x/y/', 'a.txt')).toBe('x/y/a.txt');
    expect(parentPath('x/y/a.txt')).toBe('x/y');
    expect(parentPath('a.txt')).toBe('');
    expect(parentPath('')).toBe('');
    expect(baseName('x/y/a.txt')).toBe('a.txt');
    expect(baseName('')).toBe('');
  });
});

describe('file URLs', () => {
  it('encode every name on its own and keep the slashes between names', () => {
    expect(encodePath('My Photos/a#b?c.jpg')).toBe('My%20Photos/a%23b%3Fc.jpg');
    expect(encodePath('100%/ä ö')).toBe('100%25/%C3%A4%20%C3%B6');
    expect(encodePath('..%2F/x')).toBe('..%252F/x');
  });

  it('address the top of a root and anything below it', () => {
    expect(fileUrl('home', '')).toBe('/api/v1/files/home');
    expect(fileUrl('home', 'a b/c.txt')).toBe('/api/v1/files/home/a%20b/c.txt');
    expect(fileUrl('shared', 'x.png', { inline: true })).toBe('/api/v1/files/shared/x.png?inline=true');
    expect(fileUrl('home', 'd', { offset: 200, limit: 200, sort: 'size' })).toBe(
      '/api/v1/files/home/d?offset=200&limit=200&sort=size',
    );
  });

  it('leave unset and false parameters out', () => {
    expect(queryString({})).toBe('');
    expect(queryString({ overwrite: false, offset: undefined, sort: null })).toBe('');
    expect(queryString({ overwrite: true, name: 'a&b=c' })).toBe('?overwrite=true&name=a%26b%3Dc');
  });
});

describe('dashboard addresses of folders', () => {
  it('round-trip names with spaces, "#", "%" and non-ASCII letters', () => {
    for (const path of ['', 'a', 'My Photos/2024', 'x#1/100%', 'Ünïcödé/日本']) {
      const page = filesPagePath('home', path);
      expect(page.startsWith('/files/home')).toBe(true);
      expect(parseFilesPagePath(new URL(page, 'https://h.local').pathname)).toEqual({ root: 'home', path });
    }
  });

  it('name no root for /files, and survive a broken escape', () => {
    expect(parseFilesPagePath('/files')).toEqual({ root: null, path: '' });
    expect(parseFilesPagePath('/files/')).toEqual({ root: null, path: '' });
    expect(parseFilesPagePath('/files/home/%E0%A4%A/x')).toEqual({ root: 'home', path: '%E0%A4%A/x' });
  });

  it('belong to the Files page', () => {
    expect(matchRoute('/files')?.id).toBe('files');
    expect(matchRoute('/files/home/a%20b/')?.id).toBe('files');
    expect(matchRoute('/filesystem')).toBeNull();
    expect(matchRoute('/users/carol')).toBeNull();
  });
});

describe('names', () => {
  it('follow the agent rules', () => {
    expect(nameProblem('notes.txt')).toBeNull();
    expect(nameProblem('  ')).toBe('validate.required');
    expect(nameProblem('..')).toBe('files.name_dots');
    expect(nameProblem('a/b')).toBe('files.name_chars');
    expect(nameProblem('tab\there')).toBe('files.name_chars');
    expect(nameProblem('x'.repeat(255))).toBeNull();
    expect(nameProblem('é'.repeat(128))).toBe('files.name_long'); // 256 bytes
    expect(nameProblem('.hearth-trash', true)).toBe('files.name_reserved');
    expect(nameProblem('.hearth-trash', false)).toBeNull();
  });

  it('pick a preview by extension', () => {
    expect(previewKind('a.JPG')).toBe('image');
    expect(previewKind('notes.md')).toBe('text');
    expect(previewKind('README')).toBe('text');
    expect(previewKind('.env')).toBe('text');
    expect(previewKind('movie.mkv')).toBeNull();
    expect(previewKind('page.html')).toBe('text');
  });
});
