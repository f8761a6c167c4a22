// A fresh device as a new owner meets it (issue 18): the developer agent set up like an image
// (the bundled CasaOS store as its default store, a release.json, slot b on its command line,
// no update server), claimed through the wizard with its update step; then the Updates page
// shows version, board and slot without an update server, and the app store lists the bundled
// store's apps.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  REPO,
  assertAccessible,
  assertClean,
  call,
  launchBrowser,
  openPage,
  screenshot,
  startAgent,
} from './helpers.mjs';

const PASSWORD = 'correct horse battery';
const STORE = join(REPO, 'stores/casaos');

describe('a fresh device, out of the box', () => {
  let agent;
  let browser;
  let page;
  let problems;
  let files;

  before(async () => {
    // What the image would hold: release.json and the kernel command line naming slot b.
    files = await mkdtemp(join(tmpdir(), 'hearth-oob-'));
    await writeFile(
      join(files, 'release.json'),
      JSON.stringify({ board: 'qemu-x86_64', arch: 'amd64', version: '1.2.3', version_number: 1002003, boot: 'file', build_id: 'abc123def4567890' }),
    );
    await writeFile(join(files, 'cmdline'), 'quiet hearth.slot=b\n');
    agent = await startAgent({
      config: {
        'apps.default_store_dir': STORE,
        'update.release_file': join(files, 'release.json'),
        'update.cmdline_file': join(files, 'cmdline'),
      },
    });
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser, agent));
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    if (files) await rm(files, { recursive: true, force: true });
  });

  it('asks how to update in the wizard, refuses an empty window, and stores the choice with the claim', async () => {
    await page.goto('/');
    await page.getByLabel('Setup code').fill(await agent.setupCode());
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Name the device' }).waitFor();
    await page.getByLabel('Device name').fill('attic');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('heading', { name: 'Updates', level: 1 }).waitFor();
    assert.equal(await page.getByLabel('Keep Hearth up to date automatically').isChecked(), true, 'automatic is the default');
    assert.equal(await page.getByLabel('From (HH:MM)').inputValue(), '03:00');
    assert.equal(await page.getByLabel('Until (HH:MM)').inputValue(), '05:00');
    await page.getByTestId('updates-not-configured').waitFor(); // this device names no update server
    await screenshot(page, 'claim-updates-step');
    await assertAccessible(page, 'the wizard update step');

    await page.getByLabel('From (HH:MM)').fill('04:00');
    await page.getByLabel('Until (HH:MM)').fill('4:00');
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.getByRole('alert').filter({ hasText: 'The window must not start and end at the same time.' }).waitFor();
    assert.equal((await call(agent, 'GET', '/api/health')).json.claimed, false, 'nothing was sent');

    // The agent refuses what the page would not send, and stays unclaimed.
    for (const updates of [
      { automatic: true, maintenance_window: { start: '04:00', end: '04:00' } },
      { automatic: true, channel: 'nightly' },
    ]) {
      const res = await call(agent, 'POST', '/api/v1/setup/claim', {
        body: { code: await agent.setupCode(), username: 'admin', password: PASSWORD, updates },
      });
      assert.equal(res.status, 400, res.text);
      assert.equal(res.json.error.code, 'invalid_input');
    }
    assert.equal((await call(agent, 'GET', '/api/health')).json.claimed, false);

    await page.getByLabel('Until (HH:MM)').fill('06:00');
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.getByRole('heading', { name: 'All set' }).waitFor();
    assert.equal(await page.getByTestId('next-address').textContent(), 'https://attic.local');
    const ca = page.getByRole('link', { name: 'Download the device certificate' });
    assert.equal(await ca.getAttribute('href'), '/api/v1/tls/ca.crt');
    const pem = await call(agent, 'GET', '/api/v1/tls/ca.crt');
    assert.equal(pem.status, 200);
    assert.match(pem.text, /BEGIN CERTIFICATE/);
    await screenshot(page, 'claim-done-address');
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/v1/update')).json());
    assert.deepEqual(status.policy, {
      channel: 'stable',
      auto_install: true,
      reboot: 'maintenance_window',
      maintenance_window: { start: '04:00', end: '06:00' },
    });
    assertClean(problems, { allowStatus: [400] });
  });

  it('shows version, board and slot on the Updates page without an update server', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Updates' }).click();
    await page.getByRole('heading', { name: 'Updates', level: 1 }).waitFor();
    await page.getByTestId('not-configured').waitFor();
    assert.equal(await page.getByTestId('current-version').textContent(), '1.2.3');
    await page.getByText('qemu-x86_64 (amd64)').waitFor();
    assert.equal(await page.getByTestId('current-slot').textContent(), 'B');
    assert.equal(
      (await page.getByTestId('update-mode').textContent()).trim(),
      'On: installs and restarts between 04:00 and 06:00',
      'the wizard’s choice',
    );
    await screenshot(page, 'updates-without-server');
    await assertAccessible(page, 'the Updates page without an update server');
    assertClean(problems);
  });

  it('lists the bundled store’s apps in the app store, and an admin can remove the store for good', async () => {
    const bundled = (await readdir(join(STORE, 'Apps'))).length;
    const stores = await page.evaluate(async () => (await fetch('/api/v1/stores')).json());
    assert.equal(stores.length, 1, JSON.stringify(stores));
    assert.equal(stores[0].id, 'zimaos-appstore');
    assert.equal(stores[0].configured, false, 'removable like any store');
    assert.equal(stores[0].apps, bundled);

    await page.goto('/apps/store');
    await page.getByTestId('catalog-app-Gitea').waitFor();
    await page.getByLabel('Search apps').fill('jellyfin');
    await page.getByTestId('catalog-app-Jellyfin').waitFor();
    assert.equal(await page.getByTestId('catalog-app-Gitea').count(), 0, 'the search filters');
    await screenshot(page, 'app-store-bundled');
    // Apps whose icon is only a URL in the store (no icon file in the store's folder): offline,
    // the agent answers 502 image_unavailable and the card shows its placeholder.
    assertClean(problems, { allowStatus: [502] });

    const admin = await page.evaluate(async () => (await fetch('/api/v1/session')).json());
    const csrf = admin.csrf_token;
    const removed = await page.evaluate(
      async (token) => (await fetch('/api/v1/stores/zimaos-appstore', { method: 'DELETE', headers: { 'X-CSRF-Token': token } })).status,
      csrf,
    );
    assert.equal(removed, 204);
    const again = await page.evaluate(async () => (await fetch('/api/v1/stores')).json());
    assert.deepEqual(again, []);
    // The saved list is written now (empty), so the next start does not seed the store again
    // (the restart itself: apps::catalog's unit test).
    assert.deepEqual(JSON.parse(await readFile(join(agent.dataDir, 'app-stores.json'), 'utf8')), []);
  });
});
