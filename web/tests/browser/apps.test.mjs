// The app pages against a real agent and the real Docker Engine (images from the local registry
// that ci/apps-deps fills): browse a local test store, install its web app from the app page,
// open it through the "open" link, read its logs (a member only once an admin granted them),
// change a setting, stop and start it, and uninstall it with its data until Docker has nothing
// of it left. The custom-install page checks compose YAML as it is typed and asks for consent
// per finding.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  REPO,
  assertAccessible,
  assertClean,
  call,
  expectHeading,
  openPage,
  screenshot,
  setup,
  signIn,
} from './helpers.mjs';

const run = promisify(execFile);
const FIXTURE = join(REPO, 'agent/tests/fixtures/test-store');
const APP_ID = `hwt${process.pid}`;
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#c2410c"/></svg>';

/** The app's answer at `path` on its host port (the container may still be opening it). */
async function appGet(port, path) {
  let last;
  for (let i = 0; i < 40; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      if (res.ok) return await res.text();
      last = new Error(`HTTP ${res.status}`);
    } catch (e) {
      last = e;
    }
    await new Promise((ok) => setTimeout(ok, 250));
  }
  throw new Error(`http://127.0.0.1:${port}${path} did not answer: ${last?.message}`);
}

async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** Lines of `docker <what> ls` (containers with -a) labelled with the app's Compose project. */
async function dockerObjects(what) {
  const filter = `label=com.docker.compose.project=${APP_ID}`;
  const args = what === 'container' ? ['ps', '-a', '--filter', filter, '-q'] : [what, 'ls', '--filter', filter, '-q'];
  const { stdout } = await run('docker', args);
  return stdout.split('\n').filter(Boolean);
}

/**
 * A copy of the Rust tests' store with a unique app id and a free host port (other suites use
 * the same Docker Engine at the same time), an icon, and an app for another architecture.
 */
async function makeStore(dir, port) {
  await cp(FIXTURE, dir, { recursive: true });
  const composePath = join(dir, 'Apps/WebApp/docker-compose.yml');
  const compose = (await readFile(composePath, 'utf8')).replace(/^name: webapp$/m, `name: ${APP_ID}`).replaceAll('28080', String(port));
  assert.ok(compose.includes(`name: ${APP_ID}`), 'the fixture still names its project');
  await writeFile(composePath, compose);
  await writeFile(join(dir, 'Apps/WebApp/icon.svg'), ICON);
  await mkdir(join(dir, 'Apps/Mainframe'), { recursive: true });
  await writeFile(
    join(dir, 'Apps/Mainframe/docker-compose.yml'),
    compose
      .replace(`name: ${APP_ID}`, `name: ${APP_ID}-mf`)
      .replace('architectures: [amd64, arm64]', 'architectures: [s390x]')
      .replace('en_US: Test Web App', 'en_US: Mainframe Only')
      .replace('id: io.hearth.test.webapp', 'id: io.hearth.test.mainframe'),
  );
  // Its own icon file: the fixture's icon URL (example.invalid) cannot be fetched here, and the
  // agent answers 502 for an icon it cannot fetch.
  await writeFile(join(dir, 'Apps/Mainframe/icon.svg'), ICON);
}

describe('apps pages', () => {
  let agent;
  let browser;
  let page;
  let problems;
  let storeDir;
  let port;
  let admin;
  let fixture;

  before(async () => {
    // A missing engine is a failure, not a skip (as in the Rust tests).
    await run('docker', ['info', '--format', '{{.ServerVersion}}']);
    port = await freePort();
    storeDir = await mkdtemp(join(tmpdir(), 'hearth-web-store-'));
    await makeStore(storeDir, port);
    fixture = await setup({
      agent: { config: { app_stores: [storeDir] } },
      // The "open" link names the device (<hostname>.local); the browser resolves it to this machine.
      browserArgs: ['--host-resolver-rules=MAP *.local 127.0.0.1'],
      signInAt: ['/apps/store', 'App store'],
    });
    ({ agent, admin, browser, page, problems } = fixture);
  });

  after(async () => {
    await fixture?.teardown();
    // Whatever a failed run left behind.
    for (const id of await dockerObjects('container').catch(() => [])) await run('docker', ['rm', '-f', id]).catch(() => {});
    for (const id of await dockerObjects('network').catch(() => [])) await run('docker', ['network', 'rm', id]).catch(() => {});
    for (const id of await dockerObjects('volume').catch(() => [])) await run('docker', ['volume', 'rm', id]).catch(() => {});
    if (storeDir) await rm(storeDir, { recursive: true, force: true });
  });

  it('shows the store: icons, categories, search, and apps for other architectures greyed', async () => {
    const webCard = page.getByTestId('catalog-app-WebApp');
    const mfCard = page.getByTestId('catalog-app-Mainframe');
    await webCard.waitFor();
    await mfCard.waitFor();
    // The icon comes from the agent and really loaded.
    await page.waitForFunction(() => {
      const img = document.querySelector('[data-testid="catalog-app-WebApp"] img');
      return img instanceof HTMLImageElement && img.complete && img.naturalWidth > 0;
    });
    assert.match(await mfCard.textContent(), /Not available for this device: the app is published for s390x only/);
    assert.doesNotMatch(await webCard.textContent(), /Not available/);
    // Available apps come first.
    const order = await page.locator('[data-testid^="catalog-app-"]').evaluateAll((els) => els.map((e) => e.dataset.testid));
    assert.deepEqual(order, ['catalog-app-WebApp', 'catalog-app-Mainframe']);
    await assertAccessible(page, 'the app store');
    await screenshot(page, 'apps-store');

    await page.getByLabel('Search apps').fill('mainframe');
    await webCard.waitFor({ state: 'detached' });
    assert.equal(await mfCard.count(), 1);
    await page.getByLabel('Search apps').fill('');
    await webCard.waitFor();
    // Both test apps are "Developer" apps; the filter keeps them and its list comes from the store.
    await page.getByLabel('Category').selectOption('Developer');
    await webCard.waitFor();
    assert.equal(await page.locator('[data-testid^="catalog-app-"]').count(), 2);
    await page.getByLabel('Category').selectOption('');
  });

  it('shows the app page and installs from it, then the app runs', async () => {
    await page.getByRole('link', { name: 'Test Web App' }).click();
    await expectHeading(page, 'Test Web App');
    const details = page.getByRole('region', { name: 'Details' }).or(page.locator('aside'));
    const facts = await details.first().textContent();
    assert.match(facts, /amd64, arm64/);
    assert.match(facts, /Hearth/);
    assert.match(await page.getByTestId('app-ports').textContent(), new RegExp(`${port} → 8080/tcp`));
    assert.match(await page.locator('main').textContent(), /Serves its version and keeps a boot log/);
    await assertAccessible(page, 'the app page');
    await screenshot(page, 'apps-app-page');

    await page.getByRole('button', { name: 'Install' }).click();
    const dialog = page.getByTestId('install-dialog');
    await dialog.waitFor();
    const portField = page.getByLabel('Host port for 8080/tcp (web)');
    assert.equal(await portField.inputValue(), String(port));
    // A bad port is refused before anything is asked of the agent.
    await portField.fill('99999');
    await page.getByText('Enter a port number from 1 to 65535.').waitFor();
    assert.equal(await dialog.getByRole('button', { name: 'Install' }).isDisabled(), true);
    await portField.fill(String(port));
    await page.waitForFunction(() => {
      const b = [...document.querySelectorAll('[data-testid="install-dialog"] button[type="submit"]')][0];
      return b && !b.disabled;
    });
    assert.match(await dialog.textContent(), new RegExp(`Port ${port} on this device → 8080/tcp of web`));
    await assertAccessible(page, 'the install dialog');
    await screenshot(page, 'apps-install-dialog');

    await dialog.getByRole('button', { name: 'Install' }).click();
    await page.getByTestId('install-progress').waitFor();
    // The install answers when the app is up; the page moves to the installed app.
    // (Docker's new network interfaces make Chromium drop the request; the dialog then follows
    // the install through GET /api/v1/apps/{id}.)
    await page
      .getByRole('heading', { name: 'WebApp', level: 1 })
      .waitFor({ timeout: 120_000 })
      .catch((e) => {
        throw new Error(`${e.message}\nagent log:\n${agent.log().slice(-4000)}`);
      });
    assert.equal(new URL(page.url()).pathname, `/apps/${APP_ID}`);
    await page.locator('[data-testid="app-state"][data-state="running"]').waitFor({ timeout: 60_000 });
    assert.deepEqual((await dockerObjects('container')).length, 2);
  });

  it('opens the app through its link and shows its logs, both streams', async () => {
    const open = page.getByTestId('open-app');
    const href = await open.getAttribute('href');
    assert.equal(href, `http://hearth-test.local:${port}/version.txt`);
    const [popup] = await Promise.all([page.context().waitForEvent('page'), open.click()]);
    await popup.waitForLoadState();
    assert.match(await popup.locator('body').textContent(), /hearth-test-webapp v1/);
    await popup.close();

    const logs = page.getByTestId('app-logs');
    await logs.getByText('hearth test webapp v1 listening on 8080').first().waitFor({ timeout: 20_000 });
    await logs.locator('.stderr', { hasText: 'stderr line from v1' }).first().waitFor();
    await page.getByTestId('app-stats').waitFor({ timeout: 20_000 });
    assert.match(await page.getByTestId('app-stats').textContent(), /web/);
    await assertAccessible(page, 'the installed app page');
    await screenshot(page, 'apps-installed-app');
  });

  it('shows a member the logs only once an admin granted them', async () => {
    const member = { username: 'molly', password: 'member password' };
    const made = await call(agent, 'POST', '/api/v1/users', { body: { ...member, role: 'member' }, jar: admin.jar, csrf: admin.csrf });
    assert.equal(made.status, 201, made.text);
    const other = await openPage(browser, agent);
    try {
      await signIn(other.page, member, `/apps/${APP_ID}`, 'WebApp');
      await other.page.getByTestId('logs-not-granted').filter({ hasText: 'can contain passwords' }).waitFor();
      assert.equal(await other.page.getByTestId('app-logs').count(), 0);

      const granted = await call(agent, 'PATCH', `/api/v1/users/${member.username}`, { body: { app_logs: true }, jar: admin.jar, csrf: admin.csrf });
      assert.equal(granted.status, 200, granted.text);
      await other.page.reload();
      await other.page.getByTestId('app-logs').getByText('hearth test webapp v1 listening on 8080').first().waitFor({ timeout: 20_000 });
      assert.equal(await other.page.getByTestId('logs-not-granted').count(), 0);
      assertClean(other.problems);
    } finally {
      await other.context.close();
    }
  });

  it('changes a setting, which re-creates the app with it', async () => {
    const field = page.getByTestId('settings-form').getByLabel('GREETING').last();
    await field.waitFor();
    assert.equal(await field.inputValue(), 'hello from hearth');
    await field.fill('hello from the browser test');
    await page.getByRole('button', { name: 'Save and re-create' }).click();
    const form = page.getByTestId('settings-form');
    const saved = form.getByText('Settings saved; the app runs with them now.');
    await saved.or(form.getByRole('alert')).first().waitFor({ timeout: 120_000 });
    assert.ok(await saved.isVisible(), `the form says: ${await form.getByRole('alert').allTextContents()}`);
    assert.equal((await appGet(port, '/greeting.txt')).trim(), 'hello from the browser test');
  });

  it('updates to a new store version with the data kept', async () => {
    // The store publishes version 2 of the app.
    const composePath = join(storeDir, 'Apps/WebApp/docker-compose.yml');
    const v2 = (await readFile(composePath, 'utf8')).replaceAll('hearth-test/webapp:1', 'hearth-test/webapp:2').replace('version: "1"', 'version: "2"');
    assert.ok(v2.includes('version: "2"'));
    await writeFile(composePath, v2);
    const refreshed = await call(agent, 'POST', '/api/v1/stores/refresh', { jar: admin.jar, csrf: admin.csrf });
    assert.equal(refreshed.status, 200, refreshed.text);
    await page.reload();
    await expectHeading(page, 'WebApp');
    await page.getByText('Version 2 is available in the store.').waitFor();
    await page.getByRole('button', { name: 'Update now' }).click();
    const updated = page.getByText('The app was updated.');
    await updated.or(page.getByRole('alert')).first().waitFor({ timeout: 120_000 }).catch((e) => {
      throw new Error(`${e.message}\nagent log:\n${agent.log().slice(-4000)}`);
    });
    assert.ok(await updated.isVisible(), `the page says: ${await page.getByRole('alert').allTextContents()}`);
    const version = await appGet(port, '/version.txt').catch(async (e) => {
      const ps = await run('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${APP_ID}`, '--format', '{{.Names}} {{.Status}} {{.Image}}']);
      throw new Error(`${e.message}\n${ps.stdout}\nagent log:\n${agent.log().slice(-5000)}`);
    });
    assert.match(version, /hearth-test-webapp v2/);
    // The boot log in the app's data folder kept the v1 boots.
    assert.match(await appGet(port, '/boots.txt'), /^v1\n[\s\S]*v2\n$/);
    await page.locator('[data-testid="app-state"][data-state="running"]').waitFor({ timeout: 60_000 });
  });

  it('stops and starts the app, live on the installed-apps page', async () => {
    await page.getByRole('link', { name: 'Installed apps' }).first().click();
    await expectHeading(page, 'Installed apps');
    const tile = page.getByTestId(`app-tile-${APP_ID}`);
    await tile.locator('[data-state="running"]').waitFor();
    await assertAccessible(page, 'the installed apps page');
    await screenshot(page, 'apps-installed');
    await tile.getByRole('button', { name: 'Stop WebApp' }).click();
    await tile
      .locator('[data-state="stopped"]')
      .waitFor({ timeout: 60_000 })
      .catch(async (e) => {
        throw new Error(`${e.message}\ntile: ${await tile.textContent()}\nagent log:\n${agent.log().slice(-3000)}`);
      });
    const { stdout } = await run('docker', ['ps', '--filter', `label=com.docker.compose.project=${APP_ID}`, '-q']);
    assert.equal(stdout.trim(), '', 'no container of the app runs');
    await tile.getByRole('button', { name: 'Start WebApp' }).click();
    await tile.locator('[data-state="running"]').waitFor({ timeout: 60_000 });
  });

  it('uninstalls with its data and leaves nothing behind', async () => {
    await page.getByRole('link', { name: 'WebApp', exact: true }).click();
    await expectHeading(page, 'WebApp');
    // Stats are asked for every few seconds; the dialog stops that (the app is about to go).
    await page.getByTestId('app-stats').waitFor({ timeout: 20_000 });
    await page.getByRole('button', { name: 'Uninstall' }).click();
    const dialog = page.getByTestId('uninstall-dialog');
    await dialog.getByLabel(/Also delete the app’s data/).check();
    await assertAccessible(page, 'the uninstall dialog');
    await dialog.getByRole('button', { name: 'Uninstall' }).click();
    await expectHeading(page, 'Installed apps').catch(async (e) => {
      const where = await page.getByRole('alert').evaluateAll((els) => els.map((x) => x.parentElement?.outerHTML.slice(0, 400)));
      throw new Error(`${e.message}\nat ${page.url()}: ${where.join('\n')}`);
    });
    await page.getByText('No apps are installed yet.').waitFor();
    assert.deepEqual(await dockerObjects('container'), []);
    assert.deepEqual(await dockerObjects('network'), []);
    assert.deepEqual(await dockerObjects('volume'), []);
    assert.equal(existsSync(join(agent.dataDir, 'app-data', APP_ID)), false, 'the app-data folder is gone');
  });

  it('manages the stores: refuses plain http, adds a folder whose apps appear, refreshes, removes it', async () => {
    const extra = await mkdtemp(join(tmpdir(), 'hearth-web-store2-'));
    await cp(join(FIXTURE, 'Apps/WebApp'), join(extra, 'Apps/SecondApp'), { recursive: true });
    const composePath = join(extra, 'Apps/SecondApp/docker-compose.yml');
    await writeFile(composePath, (await readFile(composePath, 'utf8')).replace('en_US: Test Web App', 'en_US: Second Store App'));
    await writeFile(join(extra, 'Apps/SecondApp/icon.svg'), ICON);

    await page.goto('/apps/store');
    await page.getByRole('link', { name: 'App stores' }).click();
    await expectHeading(page, 'App stores');
    const configured = page.getByRole('listitem').filter({ hasText: storeDir });
    await configured.getByText('From the device configuration').waitFor();
    assert.match(await configured.textContent(), /2 apps/);
    assert.equal(await configured.getByRole('button').count(), 0, 'a configured store cannot be removed here');

    const field = page.getByLabel('Zip URL or folder');
    await field.fill('http://example.org/store.zip');
    await page.getByRole('button', { name: 'Add store' }).click();
    await page.getByText('A store on the web must use https://').waitFor();
    assert.equal(await field.getAttribute('aria-invalid'), 'true');
    assert.equal((await call(agent, 'GET', '/api/v1/stores', { jar: admin.jar })).json.length, 1, 'nothing was added');

    await field.fill(extra);
    await page.getByRole('button', { name: 'Add store' }).click();
    await page.getByRole('status').filter({ hasText: `${extra} was added with 1 apps.` }).waitFor();
    const added = page.getByRole('listitem').filter({ hasText: extra });
    await added.getByRole('button', { name: `Remove ${extra}` }).waitFor();
    await screenshot(page, 'apps-stores');
    await assertAccessible(page, 'the stores page');

    await page.getByRole('link', { name: 'App store' }).click();
    await page.getByTestId('catalog-app-SecondApp').filter({ hasText: 'Second Store App' }).waitFor();
    await page.goBack();
    await expectHeading(page, 'App stores');
    await page.getByRole('button', { name: 'Refresh all' }).click();
    await page.getByRole('status').filter({ hasText: 'Every store was loaded again.' }).waitFor();

    await page.getByRole('listitem').filter({ hasText: extra }).getByRole('button', { name: `Remove ${extra}` }).click();
    await page.getByRole('status').filter({ hasText: `${extra} was removed.` }).waitFor();
    await page.getByRole('listitem').filter({ hasText: extra }).waitFor({ state: 'detached' });
    const left = (await call(agent, 'GET', '/api/v1/stores', { jar: admin.jar })).json;
    assert.deepEqual(left.map((st) => st.source), [storeDir]);
    await rm(extra, { recursive: true, force: true });
    assertClean(problems);
  });

  it('checks custom compose YAML as it is typed and asks consent per finding', async () => {
    await page.getByRole('link', { name: 'Custom app' }).first().click();
    await expectHeading(page, 'Custom app');
    const editor = page.getByLabel('Compose file (YAML)');
    await editor.fill('services:\n  web:\n    image: [unclosed\n');
    const check = page.getByTestId('custom-check');
    await check.locator('.alert').waitFor();
    assert.ok((await check.textContent()).length > 10, 'the planner says what is wrong');
    await editor.fill(
      [
        `name: ${APP_ID}-custom`,
        'services:',
        '  web:',
        '    image: 127.0.0.1:5000/hearth-test/webapp:1',
        '    cap_add: [NET_ADMIN]',
        '    environment:',
        '      X: $NOT_SET_ANYWHERE',
        '',
      ].join('\n'),
    );
    await check.locator('.notice').waitFor();
    assert.match(await check.textContent(), /NOT_SET_ANYWHERE is not set/);
    const findings = page.getByTestId('findings');
    await findings.waitFor();
    const install = page.getByRole('button', { name: 'Install' });
    assert.equal(await install.isDisabled(), true, 'no install without consent');
    await findings.getByRole('checkbox').check();
    assert.equal(await install.isDisabled(), false);
    await assertAccessible(page, 'the custom install page');
    await screenshot(page, 'apps-custom');
    assertClean(problems);
  });

  it('fits a phone in the dark', async () => {
    const phone = await openPage(browser, agent, { viewport: { width: 390, height: 800 }, colorScheme: 'dark' });
    await phone.context.addCookies(await page.context().cookies());
    await phone.page.goto('/apps/store');
    await expectHeading(phone.page, 'App store');
    await phone.page.getByTestId('catalog-app-WebApp').waitFor();
    const overflow = await phone.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px)`);
    await assertAccessible(phone.page, 'the app store on a phone, dark');
    await screenshot(phone.page, 'apps-store-phone-dark');
    await phone.context.close();
    assertClean(phone.problems);
  });
});
