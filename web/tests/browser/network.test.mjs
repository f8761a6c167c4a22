// The Network page in Chromium. The agent in this tree has no network API yet, so the page's
// calls under /api/v1/network/ are answered inside the browser (page.route) from the contract;
// everything else — sign-in, /api/health for the reachability check, CSP — is the real agent.
// Once the agent serves the network API, drop the routes and point the test at a mock
// NetworkManager on the test system bus.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  claimByApi,
  expectHeading,
  launchBrowser,
  openPage,
  screenshot,
  startAgent,
} from './helpers.mjs';

function interfaces() {
  return {
    interfaces: [
      {
        name: 'eth0',
        kind: 'ethernet',
        state: 'connected',
        mac: '52:54:00:12:34:56',
        speed_mbps: 1000,
        connection: 'Wired connection 1',
        ipv4: { method: 'auto', addresses: ['192.168.1.5/24'], gateway: '192.168.1.1', dns: ['192.168.1.1'] },
        ipv6: { method: 'auto', addresses: ['fd00::5/64'], gateway: null, dns: [] },
      },
      {
        name: 'wlan0',
        kind: 'wifi',
        state: 'disconnected',
        mac: '52:54:00:ab:cd:ef',
        speed_mbps: null,
        connection: null,
        ipv4: { method: 'auto', addresses: [], gateway: null, dns: [] },
        ipv6: { method: 'auto', addresses: [], gateway: null, dns: [] },
      },
      {
        name: 'lo',
        kind: 'loopback',
        state: 'unmanaged',
        mac: null,
        speed_mbps: null,
        connection: null,
        ipv4: { method: 'manual', addresses: ['127.0.0.1/8'], gateway: null, dns: [] },
        ipv6: { method: 'manual', addresses: ['::1/128'], gateway: null, dns: [] },
      },
    ],
  };
}

const WIFI = {
  device: 'wlan0',
  networks: [
    { ssid: 'Neighbours', signal: 35, security: 'wpa2', frequency_mhz: 2437, known: false, active: false },
    { ssid: 'Home', signal: 80, security: 'wpa3', frequency_mhz: 5180, known: false, active: false },
    { ssid: 'Cafe', signal: 55, security: '', frequency_mhz: 2412, known: true, active: false },
  ],
};

describe('network page (network API answered in the browser)', () => {
  let agent;
  let browser;
  let admin;
  let page;
  let problems;
  /** Requests the page made to the network API: "METHOD path body". */
  const seen = [];

  before(async () => {
    agent = await startAgent();
    admin = await claimByApi(agent);
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser, agent));
    await page.route('**/api/v1/network/**', async (route) => {
      const req = route.request();
      const path = new URL(req.url()).pathname;
      seen.push(`${req.method()} ${path} ${req.postData() ?? ''}`.trim());
      const json = (status, body) =>
        route.fulfill({ status, contentType: 'application/json', body: body === undefined ? '' : JSON.stringify(body) });
      if (req.method() === 'GET' && path === '/api/v1/network/interfaces') return json(200, interfaces());
      if (req.method() === 'PATCH') return json(202, { checkpoint: 'cp-1', rollback_seconds: 60 });
      if (path.startsWith('/api/v1/network/checkpoints/')) return route.fulfill({ status: 204 });
      if (req.method() === 'GET' && path === '/api/v1/network/wifi') return json(200, WIFI);
      return route.fulfill({ status: 204 });
    });
    await page.goto('/network');
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Username').fill(admin.username);
    await page.getByLabel('Password').fill(admin.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectHeading(page, 'Network');
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
  });

  it('lists the interfaces with state, speed and addresses', async () => {
    const eth = page.getByTestId('iface-eth0');
    await eth.waitFor();
    const text = await eth.textContent();
    for (const want of ['Connected', '1000 Mbit/s', '52:54:00:12:34:56', '192.168.1.5/24', 'Automatic (DHCP)', 'Wired connection 1']) {
      assert.ok(text.includes(want), `eth0 shows ${want}`);
    }
    assert.equal(await page.getByTestId('iface-lo').getByRole('button').count(), 0, 'loopback is not editable');
    await screenshot(page, 'network');
    await assertAccessible(page, 'the network page');
    assertClean(problems);
  });

  it('refuses a bad static configuration before sending it', async () => {
    await page.getByRole('button', { name: 'Change addresses… (eth0)' }).click();
    const dialog = page.getByRole('dialog', { name: 'Addresses of eth0' });
    await dialog.waitFor();
    const v4 = dialog.getByRole('group', { name: 'IPv4' });
    await v4.getByLabel('Fixed (static)').check();
    await v4.getByLabel('Addresses', { exact: true }).fill('192.168.1.20');
    await v4.getByLabel('Gateway').fill('10.0.0.1');
    await v4.getByLabel('DNS servers').fill('1.1.1.1, dns.example');
    await dialog.getByRole('button', { name: 'Apply' }).click();
    await v4.getByText('Write IPv4 addresses with their prefix').waitFor();
    await v4.getByText('Each DNS server must be an IPv4 or IPv6 address.').waitFor();
    assert.equal(await v4.getByLabel('Addresses', { exact: true }).getAttribute('aria-invalid'), 'true');

    await v4.getByLabel('Addresses', { exact: true }).fill('192.168.1.20/24');
    await dialog.getByRole('button', { name: 'Apply' }).click();
    await v4.getByText('The gateway is not inside the subnet').waitFor();
    assert.deepEqual(seen.filter((s) => s.startsWith('PATCH')), [], 'nothing was sent');
    await screenshot(page, 'network-form-errors');
    await assertAccessible(page, 'the address form with errors');
    assertClean(problems);
  });

  it('applies a static configuration safely: countdown, reachability check, confirm', async () => {
    const dialog = page.getByRole('dialog', { name: 'Addresses of eth0' });
    const v4 = dialog.getByRole('group', { name: 'IPv4' });
    await v4.getByLabel('Gateway').fill('192.168.1.1');
    await v4.getByLabel('DNS servers').fill('1.1.1.1 9.9.9.9');
    await dialog.getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('apply-status').filter({ hasText: 'The old settings come back in' }).waitFor();
    await screenshot(page, 'network-applying');
    const patch = seen.find((s) => s.startsWith('PATCH'));
    assert.ok(patch.startsWith('PATCH /api/v1/network/interfaces/eth0 '));
    assert.deepEqual(JSON.parse(patch.slice(patch.indexOf('{'))), {
      ipv4: { method: 'manual', addresses: ['192.168.1.20/24'], gateway: '192.168.1.1', dns: ['1.1.1.1', '9.9.9.9'] },
      ipv6: { method: 'auto', dns: [] },
    });
    // The real agent answers /api/health, so the page confirms the checkpoint by itself.
    await page.getByTestId('apply-status').filter({ hasText: 'The new settings work and are kept.' }).waitFor({ timeout: 15_000 });
    assert.ok(seen.includes('POST /api/v1/network/checkpoints/cp-1/confirm'));
    assert.ok(!seen.some((s) => s.includes('/rollback')));
    assertClean(problems);
  });

  it('reverts at once when asked', async () => {
    await page.route('**/api/health', (route) => route.abort()); // the device seems gone
    await page.getByRole('button', { name: 'Change addresses… (eth0)' }).click();
    const dialog = page.getByRole('dialog', { name: 'Addresses of eth0' });
    await dialog.getByRole('button', { name: 'Apply' }).click();
    await page.getByTestId('apply-status').filter({ hasText: 'The old settings come back in' }).waitFor();
    await page.getByRole('button', { name: 'Revert now' }).click();
    await page.getByTestId('apply-status').filter({ hasText: 'The old settings are back.' }).waitFor();
    assert.ok(seen.includes('POST /api/v1/network/checkpoints/cp-1/rollback'));
    await page.unroute('**/api/health');
    // Chromium logs the aborted health checks; they are what this test provoked.
    problems.splice(0, problems.length, ...problems.filter((p) => !/ERR_FAILED/.test(p)));
    assertClean(problems);
  });

  it('lists Wi-Fi networks, connects with a password and forgets a saved one', async () => {
    const wifi = page.getByTestId('wifi');
    const names = await wifi.getByRole('listitem').locator('strong').allTextContents();
    assert.deepEqual(names, ['Home', 'Cafe', 'Neighbours'], 'strongest first');
    await wifi.getByRole('button', { name: 'Connect Home' }).click();
    await wifi.getByLabel('Password (Home)').fill('short');
    await wifi.getByRole('button', { name: 'Connect to Home' }).click();
    await wifi.getByText('A Wi-Fi password has 8 to 63 characters.').waitFor();
    await wifi.getByLabel('Password (Home)').fill('correct horse');
    await screenshot(page, 'network-wifi-password');
    await assertAccessible(page, 'the Wi-Fi password form');
    await wifi.getByRole('button', { name: 'Connect to Home' }).click();
    await wifi.getByRole('status').filter({ hasText: 'Connected to Home.' }).waitFor();
    assert.ok(seen.includes('POST /api/v1/network/wifi/connect {"ssid":"Home","password":"correct horse"}'));

    await wifi.getByRole('button', { name: 'Forget Cafe' }).click();
    await wifi.getByRole('status').filter({ hasText: 'Cafe was forgotten.' }).waitFor();
    assert.ok(seen.includes('DELETE /api/v1/network/wifi/Cafe'));
    await wifi.getByRole('button', { name: 'Search again' }).click();
    await wifi.getByRole('button', { name: 'Search again' }).waitFor();
    assert.ok(seen.includes('POST /api/v1/network/wifi/scan'));
    assertClean(problems);
  });

  it('fits a phone in dark mode', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.getByTestId('iface-eth0').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `nothing sticks out of the page (overflow ${overflow}px)`);
    await screenshot(page, 'network-phone-dark');
    await assertAccessible(page, 'the network page on a dark phone');
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.emulateMedia({ colorScheme: 'light' });
    assertClean(problems);
  });
});
