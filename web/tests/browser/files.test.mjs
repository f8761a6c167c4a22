// The Files page against a real agent: uploads (one of them larger than a chunk, one resumed
// after a broken connection, one dropped), listing, download with byte comparison, preview,
// the editor with an edit conflict, trash and restore, folders, rename, copy jobs with progress
// and cancel, paging, and the phone and dark layouts.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  call,
  expectHeading,
  openPage,
  screenshot,
  setup,
  signIn,
} from './helpers.mjs';

const MiB = 1024 * 1024;
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/** A 1×1 orange PNG. */
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFgwJ/l8bJVwAAAABJRU5ErkJggg==',
  'base64',
);

describe('files page', () => {
  let agent;
  let browser;
  let admin;
  let page;
  let problems;
  let home; // the admin's home root on disk
  const big = randomBytes(20 * MiB);

  /** The browser session's CSRF token, for changing files behind the page's back. */
  async function csrf() {
    return (await (await page.request.get('/api/v1/session')).json()).csrf_token;
  }

  async function apiList(path = '') {
    const res = await page.request.get(`/api/v1/files/home${path ? `/${path}` : ''}`);
    assert.equal(res.status(), 200);
    return (await res.json()).entries;
  }

  const row = (name) => page.getByTestId(`entry-${name}`);
  const browserCard = () => page.getByTestId('browser');

  async function openMore(name) {
    await page.getByRole('button', { name: `More (${name})`, exact: true }).click();
  }

  async function uploadDone(name) {
    await page.locator(`[data-testid="upload-${name}"][data-state="done"]`).waitFor({ timeout: 60_000 });
  }

  let fixture;

  before(async () => {
    fixture = await setup({ signInAt: ['/files', 'Files'] });
    ({ agent, admin, browser, page, problems } = fixture);
    home = join(agent.dataDir, 'files/home', admin.username);
  });

  after(() => fixture?.teardown());

  it('opens the first place and shows an empty folder', async () => {
    await page.waitForURL('**/files/home');
    const places = page.getByRole('navigation', { name: 'Places' });
    assert.deepEqual(await places.getByRole('link').allTextContents(), ['My files', 'Shared', 'App data']);
    assert.equal(await places.getByRole('link', { name: 'My files' }).getAttribute('aria-current'), 'page');
    await page.getByRole('heading', { name: 'My files', level: 2 }).waitFor();
    await browserCard().getByText('This folder is empty.').waitFor();
    await screenshot(page, 'files-empty');
    await assertAccessible(page, 'an empty folder');
    assertClean(problems);
  });

  it('uploads through the file picker, in 8 MiB chunks, and downloads the same bytes', async () => {
    const ranges = [];
    page.on('request', (r) => {
      if (r.method() === 'PUT' && r.url().includes('/big.bin')) ranges.push(r.headers()['content-range']);
    });
    await page.getByLabel('Upload files').setInputFiles([
      { name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('Hello from Hearth\n') },
      { name: 'big.bin', mimeType: 'application/octet-stream', buffer: big },
    ]);
    const uploadsCard = page.getByTestId('uploads');
    await uploadsCard.getByRole('heading', { name: 'Uploads' }).waitFor();
    await uploadDone('hello.txt');
    await uploadDone('big.bin');
    assert.deepEqual(ranges, ['bytes 0-8388607/20971520', 'bytes 8388608-16777215/20971520', 'bytes 16777216-20971519/20971520']);
    await uploadsCard.getByText('Uploaded (20 MiB)').waitFor();
    const bar = uploadsCard.getByRole('progressbar', { name: 'Upload of big.bin' });
    assert.equal(await bar.getAttribute('value'), await bar.getAttribute('max'));

    await row('big.bin').waitFor();
    await row('hello.txt').waitFor();
    assert.match(await row('big.bin').textContent(), /20 MiB/);
    await screenshot(page, 'files-uploaded');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download (big.bin)' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'big.bin');
    const got = await readFile(await download.path());
    assert.equal(got.length, big.length);
    assert.equal(sha256(got), sha256(big), 'the download has the uploaded bytes');
    assertClean(problems);
  });

  it('resumes an upload whose connection broke, from what the device received', async () => {
    const data = randomBytes(12 * MiB);
    const ranges = [];
    let broken = false;
    await page.route('**/api/v1/files/home/resume.bin*', async (route) => {
      const range = route.request().headers()['content-range'];
      ranges.push(range);
      if (!broken && range?.startsWith('bytes 8388608-')) {
        broken = true;
        await route.abort('connectionreset');
      } else {
        await route.continue();
      }
    });
    await page.getByLabel('Upload files').setInputFiles({ name: 'resume.bin', mimeType: 'application/octet-stream', buffer: data });
    await uploadDone('resume.bin');
    await page.unroute('**/api/v1/files/home/resume.bin*');
    assert.deepEqual(ranges, [
      'bytes 0-8388607/12582912',
      'bytes 8388608-12582911/12582912', // broken off
      'bytes */12582912', // how much arrived?
      'bytes 8388608-12582911/12582912',
    ]);
    const res = await page.request.get('/api/v1/files/home/resume.bin');
    assert.equal(sha256(await res.body()), sha256(data));
    // The browser reports the connection this test broke; that is the only error allowed.
    const rest = problems.filter((p) => !/ERR_CONNECTION_RESET/.test(p));
    problems.length = 0;
    assertClean(rest);
  });

  it('says when a name is taken, and replaces the file when asked', async () => {
    await page.getByLabel('Upload files').setInputFiles({ name: 'hello.txt', mimeType: 'text/plain', buffer: Buffer.from('Replaced!\n') });
    const task = page.locator('[data-testid="upload-hello.txt"][data-state="exists"]');
    await task.getByText('A file with this name is already there.').waitFor();
    // The first upload of hello.txt is still listed as done: wait for one more finished task.
    const done = page.locator('[data-testid="upload-hello.txt"][data-state="done"]');
    const before = await done.count();
    await task.getByRole('button', { name: 'Replace it (hello.txt)' }).click();
    await done.nth(before).waitFor();
    assert.equal(await (await page.request.get('/api/v1/files/home/hello.txt')).text(), 'Replaced!\n');
    await page.getByRole('button', { name: 'Clear finished' }).first().click();
    assertClean(problems);
  });

  it('uploads files dropped on the folder', async () => {
    await browserCard().evaluate((card) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File(['dropped in\n'], 'dropped.txt', { type: 'text/plain' }));
      for (const type of ['dragenter', 'dragover']) {
        card.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }));
      }
      card.dispatchEvent(new DragEvent('drop', { bubbles: true, cancelable: true, dataTransfer: transfer }));
    });
    await uploadDone('dropped.txt');
    await row('dropped.txt').waitFor();
    assert.equal(await (await page.request.get('/api/v1/files/home/dropped.txt')).text(), 'dropped in\n');
    assertClean(problems);
  });

  it('previews text and pictures', async () => {
    await row('hello.txt').getByRole('button', { name: 'hello.txt', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: 'hello.txt' });
    await dialog.getByText('Replaced!').waitFor();
    await screenshot(page, 'files-preview-text');
    await assertAccessible(page, 'the text preview');
    await dialog.getByRole('button', { name: 'Close' }).click();
    await dialog.waitFor({ state: 'hidden' });

    await page.getByLabel('Upload files').setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
    await uploadDone('dot.png');
    await row('dot.png').getByRole('button', { name: 'dot.png', exact: true }).click();
    const picture = page.getByRole('dialog', { name: 'dot.png' }).getByRole('img', { name: 'dot.png' });
    await picture.waitFor();
    await page.waitForFunction(() => document.querySelector('dialog img')?.naturalWidth === 1);
    await screenshot(page, 'files-preview-image');
    await page.keyboard.press('Escape');
    await picture.waitFor({ state: 'hidden' });
    assertClean(problems);
  });

  it('edits a text file, and refuses to overwrite a change made meanwhile', async () => {
    await openMore('hello.txt');
    await page.getByRole('button', { name: 'Edit', exact: true }).click();
    const editor = page.getByRole('dialog', { name: 'Editing hello.txt' });
    const text = editor.getByLabel('Text of hello.txt');
    await text.waitFor();
    assert.equal(await text.inputValue(), 'Replaced!\n');
    await text.fill('Edited in the dashboard\n');
    await editor.getByRole('button', { name: 'Save', exact: true }).click();
    await editor.getByRole('status').filter({ hasText: 'hello.txt was saved.' }).waitFor();
    assert.equal(await (await page.request.get('/api/v1/files/home/hello.txt')).text(), 'Edited in the dashboard\n');

    // Someone else changes the file while it is open here (another size, so another ETag).
    await text.fill('My second edit\n');
    const theirs = await page.request.put('/api/v1/files/home/hello.txt?overwrite=true', {
      headers: { 'X-CSRF-Token': await csrf(), 'Content-Type': 'application/octet-stream' },
      data: Buffer.from('Their change, made elsewhere\n'),
    });
    assert.equal(theirs.status(), 201);
    await editor.getByRole('button', { name: 'Save', exact: true }).click();
    const conflict = editor.getByTestId('edit-conflict');
    await conflict.getByText('Someone changed this file since you opened it.').waitFor();
    assert.equal(
      await (await page.request.get('/api/v1/files/home/hello.txt')).text(),
      'Their change, made elsewhere\n',
      'their change is still there',
    );
    await screenshot(page, 'files-edit-conflict');
    await assertAccessible(page, 'the editor with a conflict');

    await conflict.getByRole('button', { name: 'Load their version' }).click();
    await conflict.waitFor({ state: 'detached' });
    assert.equal(await text.inputValue(), 'Their change, made elsewhere\n');
    await text.fill('Mine after all\n');
    await editor.getByRole('button', { name: 'Save', exact: true }).click();
    await editor.getByRole('status').filter({ hasText: 'hello.txt was saved.' }).waitFor();
    assert.equal(await (await page.request.get('/api/v1/files/home/hello.txt')).text(), 'Mine after all\n');

    // Closing with unsaved changes warns once; closing again throws them away.
    await text.fill('Never saved\n');
    await editor.getByRole('button', { name: 'Close' }).click();
    await editor.getByRole('alert').filter({ hasText: 'Your changes are not saved.' }).waitFor();
    await editor.getByRole('button', { name: 'Close' }).click();
    await editor.waitFor({ state: 'hidden' });
    assert.equal(await (await page.request.get('/api/v1/files/home/hello.txt')).text(), 'Mine after all\n');
    assertClean(problems);
  });

  it('moves a file to the trash, puts it back, undoes a delete and empties the trash', async () => {
    await openMore('hello.txt');
    await page.getByRole('button', { name: 'Move to trash' }).click();
    await page.getByRole('status').filter({ hasText: 'hello.txt was moved to the trash.' }).waitFor();
    await row('hello.txt').waitFor({ state: 'detached' });

    await page.getByRole('button', { name: 'Trash', exact: true }).click();
    const trash = page.getByTestId('trash');
    await trash.getByRole('heading', { name: 'Trash of My files' }).waitFor();
    await trash.getByRole('rowheader', { name: 'hello.txt' }).waitFor();
    await screenshot(page, 'files-trash');
    await assertAccessible(page, 'the trash');
    await trash.getByRole('button', { name: 'Put back (hello.txt)' }).click();
    await trash.getByRole('status').filter({ hasText: 'hello.txt was put back.' }).waitFor();
    await trash.getByTestId('trash-empty').waitFor();
    await page.getByRole('button', { name: 'Back to the files' }).click();
    await row('hello.txt').waitFor();
    assert.equal(await (await page.request.get('/api/v1/files/home/hello.txt')).text(), 'Mine after all\n');

    // Undo right after deleting.
    await openMore('dropped.txt');
    await page.getByRole('button', { name: 'Move to trash' }).click();
    await row('dropped.txt').waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Undo' }).click();
    await page.getByRole('status').filter({ hasText: 'dropped.txt was put back.' }).waitFor();
    await row('dropped.txt').waitFor();

    // Empty the trash for good.
    await openMore('dropped.txt');
    await page.getByRole('button', { name: 'Move to trash' }).click();
    await row('dropped.txt').waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Trash', exact: true }).click();
    await trash.getByRole('rowheader', { name: 'dropped.txt' }).waitFor();
    await trash.getByRole('button', { name: 'Empty trash' }).click();
    await trash.getByRole('button', { name: 'Yes, delete for good' }).click();
    await trash.getByTestId('trash-empty').waitFor();
    assert.deepEqual(await (await page.request.get('/api/v1/trash/home')).json(), []);
    await page.getByRole('button', { name: 'Back to the files' }).click();
    assertClean(problems);
  });

  it('creates and renames a folder, walks in and out by breadcrumbs', async () => {
    await page.getByRole('button', { name: 'New folder' }).click();
    await page.getByLabel('Name of the new folder').fill('..');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('alert').filter({ hasText: 'cannot be “.” or “..”' }).waitFor();
    await page.getByLabel('Name of the new folder').fill('Projects');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('status').filter({ hasText: 'Folder Projects was created.' }).waitFor();
    await row('Projects').waitFor();
    assert.equal(await row('Projects').getAttribute('data-kind'), 'directory');

    await openMore('Projects');
    await page.getByRole('button', { name: 'Rename', exact: true }).click();
    await page.getByLabel('New name for Projects').fill('Work #1 & more');
    await page.getByRole('button', { name: 'Rename', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Projects is now called Work #1 & more.' }).waitFor();
    await row('Work #1 & more').waitFor();

    await row('Work #1 & more').getByRole('link', { name: 'Work #1 & more' }).click();
    await page.waitForURL((url) => url.pathname === '/files/home/Work%20%231%20%26%20more');
    await page.getByRole('heading', { name: 'Work #1 & more', level: 2 }).waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'h-folder', 'focus on the folder heading');
    const crumbs = page.getByRole('navigation', { name: 'Folder path' });
    assert.deepEqual(await crumbs.getByRole('link').allTextContents(), ['My files', 'Work #1 & more']);
    await browserCard().getByText('This folder is empty.').waitFor();
    await page.goBack();
    await row('Work #1 & more').waitFor();
    await page.goForward();
    await crumbs.getByRole('link', { name: 'My files' }).click();
    await row('big.bin').waitFor();
    assertClean(problems);
  });

  it('copies a file with job progress, and moves one', async () => {
    await openMore('big.bin');
    await page.getByRole('button', { name: 'Move or copy…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Move or copy big.bin' });
    await dialog.getByRole('button', { name: 'Work #1 & more' }).click();
    await dialog.getByText('No folders inside.').waitFor();
    await screenshot(page, 'files-move-copy');
    await assertAccessible(page, 'the move/copy dialog');
    await dialog.getByRole('button', { name: 'Copy here' }).click();
    const jobs = page.getByTestId('jobs');
    await jobs.locator('li[data-state="done"]').getByText('Done (20 MiB)').waitFor({ timeout: 30_000 });
    const bar = jobs.locator('li[data-state="done"]').getByRole('progressbar').first();
    assert.equal(await bar.getAttribute('value'), await bar.getAttribute('max'));
    await screenshot(page, 'files-copy-job');
    const copied = await apiList('Work%20%231%20%26%20more');
    assert.deepEqual(copied.map((e) => [e.name, e.size]), [['big.bin', 20 * MiB]]);
    const again = await page.request.get('/api/v1/files/home/Work%20%231%20%26%20more/big.bin');
    assert.equal(sha256(await again.body()), sha256(big));

    // Copy into the same folder under another name, then move that one into the folder.
    await openMore('dot.png');
    await page.getByRole('button', { name: 'Move or copy…' }).click();
    const dot = page.getByRole('dialog', { name: 'Move or copy dot.png' });
    await dot.getByLabel('Name there').fill('dot copy.png');
    await dot.getByRole('button', { name: 'Copy here' }).click();
    await row('dot copy.png').waitFor();
    await openMore('dot copy.png');
    await page.getByRole('button', { name: 'Move or copy…' }).click();
    const move = page.getByRole('dialog', { name: 'Move or copy dot copy.png' });
    await move.getByRole('button', { name: 'Work #1 & more' }).click();
    await move.getByRole('button', { name: 'Move here' }).click();
    await page.getByRole('status').filter({ hasText: 'dot copy.png was moved.' }).waitFor();
    await row('dot copy.png').waitFor({ state: 'detached' });
    const inside = (await apiList('Work%20%231%20%26%20more')).map((e) => e.name).sort();
    assert.deepEqual(inside, ['big.bin', 'dot copy.png']);
    assertClean(problems);
  });

  it('cancels a long copy', async () => {
    // A sparse 2 GiB file: cheap to make, and its copy takes long enough to cancel.
    await writeFile(join(home, 'huge.bin'), '');
    await truncate(join(home, 'huge.bin'), 2048 * MiB);
    await page.reload();
    await row('huge.bin').waitFor();
    await openMore('huge.bin');
    await page.getByRole('button', { name: 'Move or copy…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Move or copy huge.bin' });
    await dialog.getByLabel('Name there').fill('huge copy.bin');
    await dialog.getByRole('button', { name: 'Copy here' }).click();
    const running = page.getByTestId('jobs').locator('li[data-state="running"]');
    await running.getByRole('button', { name: /^Cancel/ }).click();
    await page.getByTestId('jobs').locator('li[data-state="cancelled"]').getByText('Cancelled').waitFor({ timeout: 30_000 });
    await page.waitForFunction(async () => {
      const res = await fetch('/api/v1/files/home');
      return !(await res.json()).entries.some((e) => e.name === 'huge copy.bin');
    });
    await page.getByTestId('jobs').getByRole('button', { name: 'Clear finished' }).click();
    await page.getByTestId('jobs').waitFor({ state: 'detached' });
    const del = await page.request.delete('/api/v1/files/home/huge.bin?permanent=true', {
      headers: { 'X-CSRF-Token': await csrf() },
    });
    assert.equal(del.status(), 204);
    assertClean(problems);
  });

  it('pages through a big folder and sorts it', async () => {
    await mkdir(join(home, 'many'));
    for (let i = 0; i < 205; i += 1) {
      await writeFile(join(home, 'many', `f${String(i).padStart(3, '0')}.txt`), 'x'.repeat(i));
    }
    await page.goto('/files/home/many');
    await row('f000.txt').waitFor();
    await page.getByRole('status').filter({ hasText: '1–200 of 205' }).waitFor();
    assert.equal(await row('f204.txt').count(), 0);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('status').filter({ hasText: '201–205 of 205' }).waitFor();
    await row('f204.txt').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Next' }).isDisabled(), true);

    await page.getByRole('button', { name: 'Size', exact: true }).click();
    await page.waitForFunction(() => document.querySelector('th[aria-sort="descending"]')?.textContent?.includes('Size'));
    await page.getByRole('status').filter({ hasText: '1–200 of 205' }).waitFor(); // a new order starts at page 1
    const names = await page.locator('tbody [data-testid^="entry-"]').evaluateAll((rows) =>
      rows.map((r) => r.getAttribute('data-testid')),
    );
    assert.equal(names[0], 'entry-f204.txt', 'largest first');
    assert.equal(names.length, 200);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('status').filter({ hasText: '201–205 of 205' }).waitFor();
    await row('f000.txt').waitFor();
    await page.getByRole('button', { name: 'Previous' }).click();
    await page.getByRole('status').filter({ hasText: '1–200 of 205' }).waitFor();
    assertClean(problems);
  });

  it('gives a member their own home and the shared folder granted to them, not app data', async () => {
    const res = await call(agent, 'POST', '/api/v1/users', {
      body: { username: 'carol', password: 'member password', role: 'member' },
      jar: admin.jar,
      csrf: admin.csrf,
    });
    assert.equal(res.status, 201);
    const grant = await call(agent, 'PATCH', '/api/v1/shares/shared', {
      body: { grants: { carol: 'write' } },
      jar: admin.jar,
      csrf: admin.csrf,
    });
    assert.equal(grant.status, 200);
    const member = await openPage(browser, agent);
    await signIn(member.page, { username: 'carol', password: 'member password' }, '/files', null);
    await expectHeading(member.page, 'Files');
    await member.page.waitForURL('**/files/home');
    const places = member.page.getByRole('navigation', { name: 'Places' });
    await places.getByRole('link', { name: 'Shared' }).waitFor();
    assert.deepEqual(await places.getByRole('link').allTextContents(), ['My files', 'Shared']);
    await member.page.getByTestId('browser').getByText('This folder is empty.').waitFor();
    await member.page.goto('/files/appdata');
    await member.page.getByRole('alert').waitFor();
    assert.equal(await member.page.getByTestId('entry-big.bin').count(), 0);
    await member.context.close();
    assertClean(member.problems);
  });

  it('fits a phone and reads well in dark mode', async () => {
    await page.goto('/files/home');
    await row('big.bin').waitFor();
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `nothing sticks out of the page (overflow ${overflow}px)`);
    await screenshot(page, 'files-phone');
    await openMore('big.bin');
    await screenshot(page, 'files-phone-actions');
    await page.emulateMedia({ colorScheme: 'dark' });
    await screenshot(page, 'files-phone-dark');
    await page.setViewportSize({ width: 1280, height: 860 });
    await screenshot(page, 'files-dark');
    await assertAccessible(page, 'the files page in dark mode');
    await page.emulateMedia({ colorScheme: 'light' });
    assertClean(problems);
  });

  it('round-trips a file: upload → download → delete → restore → the same bytes again', async () => {
    await page.goto('/files/home');
    await expectHeading(page, 'Files');
    const name = 'round-trip.bin';
    const data = randomBytes(9 * MiB + 123); // two chunks
    await page.getByLabel('Upload files').setInputFiles([{ name, mimeType: 'application/octet-stream', buffer: data }]);
    await uploadDone(name);
    await row(name).waitFor();

    const download = async () => {
      const [d] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: `Download (${name})` }).click(),
      ]);
      return readFile(await d.path());
    };
    assert.equal(sha256(await download()), sha256(data), 'the first download has the uploaded bytes');

    await openMore(name);
    await page.getByRole('button', { name: 'Move to trash' }).click();
    await row(name).waitFor({ state: 'detached' });
    assert.equal((await page.request.get(`/api/v1/files/home/${name}`)).status(), 404, 'gone from the folder');

    await page.getByRole('button', { name: 'Trash', exact: true }).click();
    const trash = page.getByTestId('trash');
    await trash.getByRole('rowheader', { name }).waitFor();
    await trash.getByRole('button', { name: `Put back (${name})` }).click();
    await trash.getByRole('status').filter({ hasText: `${name} was put back.` }).waitFor();
    await page.getByRole('button', { name: 'Back to the files' }).click();
    await row(name).waitFor();
    assert.equal(sha256(await download()), sha256(data), 'the restored file downloads with the same bytes');
    assertClean(problems);
  });
});
