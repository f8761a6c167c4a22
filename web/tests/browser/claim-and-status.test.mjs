// The first visit: claim a fresh agent through the wizard (a wrong code first), land on the
// live home screen, walk every page, toggle dark mode, use a phone-sized window, log out and in.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  call,
  openPage,
  screenshot,
  setup,
  waitForChartPoints,
} from './helpers.mjs';

const PASSWORD = 'correct horse battery';

describe('claim wizard, live status, navigation, theme, logout and login', () => {
  let agent;
  let browser;
  let page;
  let problems;

  let fixture;

  before(async () => {
    fixture = await setup({ claim: false });
    ({ agent, browser, page, problems } = fixture);
  });

  after(() => fixture?.teardown());

  it('serves the dashboard under the strict CSP', async () => {
    const res = await call(agent, 'GET', '/');
    assert.equal(res.status, 200);
    const csp = res.headers['content-security-policy'] ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /style-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.match(res.text, /<div id="app">/);
  });

  it('refuses a wrong setup code, then claims with the right one', async () => {
    await page.goto('/');
    await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
    await screenshot(page, 'claim-1-code');
    await assertAccessible(page, 'the claim wizard');

    await page.getByLabel('Setup code').fill('WRONG-CODE-123');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Create the administrator' }).waitFor();
    assert.equal(await page.getByLabel('Username').inputValue(), 'admin');
    await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
    await page.getByLabel('Repeat the password').fill('something else');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('alert').filter({ hasText: 'The two passwords differ.' }).waitFor();
    await page.getByLabel('Repeat the password').fill(PASSWORD);
    await screenshot(page, 'claim-2-account');
    await page.getByRole('button', { name: 'Next' }).click();

    await page.getByRole('heading', { name: 'Name the device' }).waitFor();
    await page.getByLabel('Device name').fill('hearth-test');
    const zone = await page.getByLabel('Time zone').inputValue();
    assert.ok(zone.includes('/') || zone === 'UTC', `a time zone is preselected, got "${zone}"`);
    await screenshot(page, 'claim-3-device');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('heading', { name: 'Updates', level: 1 }).waitFor();
    await page.getByRole('button', { name: 'Finish setup' }).click();

    // The wrong code sends us back to the first step with the error.
    await page.getByRole('heading', { name: 'Welcome to Hearth' }).waitFor();
    await page.getByRole('alert').filter({ hasText: 'That setup code is not right' }).waitFor();
    await screenshot(page, 'claim-wrong-code');

    await page.getByLabel('Setup code').fill(await agent.setupCode());
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click(); // account answers were kept
    await page.getByRole('button', { name: 'Next' }).click(); // and the device's
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.getByRole('heading', { name: 'All set' }).waitFor();
    await screenshot(page, 'claim-4-done');
    await page.getByRole('button', { name: 'Open the dashboard' }).click();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();

    const health = await call(agent, 'GET', '/api/health');
    assert.equal(health.json.claimed, true);
    assertClean(problems);
  });

  it('shows live status that moves as events arrive', async () => {
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });
    const cpuChart = page.getByRole('img', { name: /Processor use of \d+ cores/ });
    await cpuChart.waitFor();
    const points = async () => Number(await cpuChart.getAttribute('data-points'));
    const before = await points();
    // The agent pushes a status about every two seconds: two more points within ~5 s
    // (allowing for a loaded machine), and the per-second numbers are re-rendered.
    await waitForChartPoints(page, before + 2);
    const afterWait = await points();
    assert.ok(afterWait >= before + 2, `chart grew from ${before} to ${afterWait} points`);

    const cores = Number((await cpuChart.getAttribute('aria-label')).match(/of (\d+) cores/)[1]);
    assert.ok(cores >= 1);
    assert.equal(await cpuChart.locator('polyline').count(), cores);
    assert.match(await page.getByTestId('cpu-usage').textContent(), /^\d+(\.\d)? %$/);
    assert.match(await page.getByTestId('memory-usage').textContent(), /^\d+(\.\d)? %$/);
    const health = await call(agent, 'GET', '/api/health');
    assert.equal(await page.getByTestId('version').textContent(), health.json.version);
    assert.ok((await page.getByRole('meter').count()) >= 1, 'disks and cores have usage bars');
    await screenshot(page, 'home');
    await assertAccessible(page, 'home');
    assertClean(problems);
  });

  it('has a skip link that moves focus to the main content', async () => {
    await page.reload();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement?.textContent?.trim());
    assert.equal(focused, 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'main');
    assertClean(problems);
  });

  it('moves focus to the heading of a page opened from the navigation', async () => {
    // Updates: an admin page of its own (web/tests/browser/updates.test.mjs); this agent has no
    // update server configured, and the page says so.
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: /^Updates/ }).click();
    await page.getByRole('heading', { name: 'Updates', level: 1 }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/updates');
    const focused = await page.evaluate(() => document.activeElement?.tagName);
    assert.equal(focused, 'H1', 'focus moves to the new page heading');
    assert.match(await page.title(), /^Updates · /);
    await page.getByTestId('not-configured').waitFor();
    await page.goBack();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    assertClean(problems);
  });

  it('shows the version and offers the CA certificate on About', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'About' }).click();
    await page.getByRole('heading', { name: 'About', level: 1 }).waitFor();
    const health = await call(agent, 'GET', '/api/health');
    await page.getByTestId('about-version').filter({ hasText: health.json.version }).waitFor();
    await page.getByTestId('about-hostname').filter({ hasText: 'hearth-test' }).waitFor();
    const link = page.getByRole('link', { name: 'Download the certificate' });
    assert.equal(await link.getAttribute('href'), '/api/v1/tls/ca.crt');
    const cert = await page.request.get('/api/v1/tls/ca.crt');
    assert.equal(cert.status(), 200);
    assert.match(await cert.text(), /^-----BEGIN CERTIFICATE-----/);
    await screenshot(page, 'about');
    await assertAccessible(page, 'about');
    assertClean(problems);
  });

  it('opens deep links and answers unknown pages', async () => {
    await page.goto('/account');
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    await page.goto('/no-such-page');
    await page.getByRole('heading', { name: 'Page not found' }).waitFor();
    await page.getByRole('link', { name: 'Go to Home' }).click();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    assertClean(problems);
  });

  it('switches to dark mode and remembers it', async () => {
    const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const light = await background();
    const toggle = page.getByRole('button', { name: 'Dark mode' });
    assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
    await toggle.click();
    assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
    assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
    const dark = await background();
    assert.notEqual(dark, light);
    await page.reload();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    assert.equal(await background(), dark, 'the choice survives a reload');
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });
    await waitForChartPoints(page, 3);
    await screenshot(page, 'home-dark');
    await assertAccessible(page, 'home in dark mode');
    await page.getByRole('button', { name: 'Dark mode' }).click();
    assert.equal(await background(), light);
    assertClean(problems);
  });

  it('follows the system dark preference until the user chooses', async () => {
    const dark = await openPage(browser, agent, { colorScheme: 'dark' });
    try {
      await dark.page.goto('/');
      await dark.page.getByRole('heading', { name: 'Sign in' }).waitFor();
      const bg = await dark.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, 'rgb(20, 18, 17)');
      assert.equal(await dark.page.getByRole('button', { name: 'Dark mode' }).getAttribute('aria-pressed'), 'true');
      assertClean(dark.problems);
    } finally {
      await dark.context.close();
    }
  });

  it('fits a phone screen with a menu button', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const nav = page.getByRole('navigation', { name: 'Main' });
    const menu = page.getByRole('button', { name: 'Menu' });
    assert.ok(await menu.isVisible());
    assert.equal(await nav.isVisible(), false);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (overflow ${overflow}px)`);
    await screenshot(page, 'home-phone');
    await menu.click();
    assert.equal(await menu.getAttribute('aria-expanded'), 'true');
    await page.keyboard.press('Escape');
    assert.equal(await nav.isVisible(), false, 'Escape closes the menu');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent?.trim()), 'Menu');
    await menu.click();
    await screenshot(page, 'menu-phone');
    await assertAccessible(page, 'the phone menu');
    await nav.getByRole('link', { name: 'Account' }).click();
    await page.getByRole('heading', { name: 'Account', level: 1 }).waitFor();
    assert.equal(await nav.isVisible(), false, 'the menu closes after choosing a page');
    await screenshot(page, 'account-phone');
    await page.setViewportSize({ width: 1280, height: 860 });
    assertClean(problems);
  });

  it('logs out, refuses a wrong password, and logs back in', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    assert.equal((await page.request.get('/api/v1/session')).status(), 401);
    await screenshot(page, 'login');

    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('not the password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
    await screenshot(page, 'login-wrong-password');
    await assertAccessible(page, 'login');

    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    await page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });
    assert.equal((await page.request.get('/api/v1/session')).status(), 200);
    assertClean(problems);
  });

  it('would notice a CSP violation (the check above is not vacuous)', async () => {
    assert.equal(problems.length, 0);
    await page.evaluate(() => {
      const div = document.createElement('div');
      div.innerHTML = '<p style="color: red">inline style</p>';
      document.body.append(div);
    });
    await page.waitForTimeout(300);
    assert.ok(
      problems.some((p) => p.startsWith('CSP:')),
      `an inline style attribute is reported: ${JSON.stringify(problems)}`,
    );
    problems.length = 0;
  });
});
