// The Network page in Chromium against the real agent, whose network API talks D-Bus to a mock
// NetworkManager (agent/tests/integration/common/nm_mock.rs, served on the test system bus by
// agent/examples/mock_system_bus.rs with the real names, paths and signatures): eth0 connected by
// DHCP, wlan0 idle with networks in range, a saved "OldCafe" Wi-Fi profile. The NetworkManager
// calls the agent makes are read back from the bus ("nm checkpoint …", "nm rollback …").

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  screenshot,
  setup,
  signIn,
} from './helpers.mjs';

/** The Wi-Fi password of the mock's HomeNet (nm_mock::HOME_PSK). */
const HOME_PSK = 'correct horse battery';

describe('network page (real agent, mock NetworkManager on the system bus)', () => {
  let agent;
  let admin;
  let page;
  let problems;
  /** Requests the page made to the network API: "METHOD path body". */
  const seen = [];
  const nmCalls = () => agent.systemCalls().filter((c) => c.startsWith('nm '));

  let fixture;

  before(async () => {
    fixture = await setup({ agent: { systemBus: true } });
    ({ agent, admin, page, problems } = fixture);
    page.on('request', (req) => {
      const path = new URL(req.url()).pathname;
      if (path.startsWith('/api/v1/network/')) seen.push(`${req.method()} ${path} ${req.postData() ?? ''}`.trim());
    });
    await signIn(page, admin, '/network', 'Network');
  });

  after(() => fixture?.teardown());

  it('lists the interfaces with state, speed and addresses', async () => {
    const eth = page.getByTestId('iface-eth0');
    await eth.waitFor();
    const text = await eth.textContent();
    for (const want of ['Connected', '1000 Mbit/s', '52:54:00:12:34:56', '192.168.1.50/24', 'Automatic (DHCP)', 'Wired connection 1']) {
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
    assert.deepEqual(nmCalls(), [], 'NetworkManager was not called');
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
    // The agent answers /api/health, so the page confirms the checkpoint by itself; the agent
    // then destroys NetworkManager's checkpoint (nothing rolls back).
    await page.getByTestId('apply-status').filter({ hasText: 'The new settings work and are kept.' }).waitFor({ timeout: 15_000 });
    const checkpoint = (await agent.waitForSystemCall(/^nm checkpoint /)).split(' ')[2];
    assert.ok(seen.some((s) => /^POST \/api\/v1\/network\/checkpoints\/[^/]+\/confirm$/.test(s)), 'the page confirmed');
    await agent.waitForSystemCall(new RegExp(`^nm destroy ${checkpoint}$`));
    assert.ok(!nmCalls().some((c) => c.startsWith('nm rollback')), `no rollback: ${nmCalls().join(' | ')}`);
    await page.getByTestId('iface-eth0').filter({ hasText: '192.168.1.20/24' }).waitFor();
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
    assert.ok(seen.some((s) => /^POST \/api\/v1\/network\/checkpoints\/[^/]+\/rollback$/.test(s)), 'the page asked');
    await agent.waitForSystemCall(/^nm rollback /);
    await page.unroute('**/api/health');
    // Chromium logs the aborted health checks; they are what this test provoked.
    problems.splice(0, problems.length, ...problems.filter((p) => !/ERR_FAILED/.test(p)));
    assertClean(problems);
  });

  it('lists Wi-Fi networks, connects with a password and forgets a saved one', async () => {
    const wifi = page.getByTestId('wifi');
    await wifi.getByRole('button', { name: 'Connect HomeNet' }).waitFor();
    const names = await wifi.getByRole('listitem').locator('strong').allTextContents();
    assert.deepEqual(names, ['HomeNet', 'Modern', 'Office', 'CafeOpen'], 'strongest first, one entry per name');
    await wifi.getByRole('button', { name: 'Connect HomeNet' }).click();
    await wifi.getByLabel('Password (HomeNet)').fill('short');
    await wifi.getByRole('button', { name: 'Connect to HomeNet' }).click();
    await wifi.getByText('A Wi-Fi password has 8 to 63 characters.').waitFor();
    assert.ok(!nmCalls().some((c) => c.includes('add-activate')), 'a short password is not sent');

    await wifi.getByLabel('Password (HomeNet)').fill('not the password');
    await wifi.getByRole('button', { name: 'Connect to HomeNet' }).click();
    await wifi.getByRole('alert').filter({ hasText: /password/i }).waitFor();
    await screenshot(page, 'network-wifi-wrong-password');

    await wifi.getByLabel('Password (HomeNet)').fill(HOME_PSK);
    await screenshot(page, 'network-wifi-password');
    await assertAccessible(page, 'the Wi-Fi password form');
    await wifi.getByRole('button', { name: 'Connect to HomeNet' }).click();
    await wifi.getByRole('status').filter({ hasText: 'Connected to HomeNet.' }).waitFor();
    assert.ok(seen.includes(`POST /api/v1/network/wifi/connect {"ssid":"HomeNet","password":"${HOME_PSK}"}`));
    await page.getByTestId('iface-wlan0').filter({ hasText: 'Connected' }).waitFor();

    await wifi.getByRole('button', { name: 'Forget HomeNet' }).click();
    await wifi.getByRole('status').filter({ hasText: 'HomeNet was forgotten.' }).waitFor();
    assert.ok(seen.includes('DELETE /api/v1/network/wifi/HomeNet'));
    await agent.waitForSystemCall(/^nm delete /);
    await wifi.getByRole('button', { name: 'Search again' }).click();
    await wifi.getByRole('button', { name: 'Connect Neighbour' }).waitFor();
    await agent.waitForSystemCall(/^nm scan$/);
    // The wrong password was the agent's 422 answer, which Chromium logs as a failed request.
    assertClean(problems, { allowStatus: [422] });
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
