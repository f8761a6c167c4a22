// The device pages against a real agent whose system bus is a private dbus-daemon with mock
// systemd1, login1, hostname1 and timedate1 (agent/examples/mock_system_bus.rs): Settings
// (rename, time zone, NTP, reboot behind a confirmation), Services (restart and start recorded
// by the mock, the journal with filters and "load more"), Storage (the machine's real block
// devices; the system disk without actions) and Network (the bus has no NetworkManager here:
// the page says so; network.test.mjs covers the page with one).

import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
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

/** 150 journal entries, one a minute, newest last; every tenth an error, every seventh a warning. */
function journalEntries(nowMs) {
  return Array.from({ length: 150 }, (_, i) => ({
    __REALTIME_TIMESTAMP: String((nowMs - (150 - i) * 60_000) * 1000),
    PRIORITY: String(i % 10 === 0 ? 3 : i % 7 === 0 ? 4 : 6),
    SYSLOG_IDENTIFIER: 'dockerd',
    MESSAGE: i % 10 === 0 ? `entry ${i}: listen failed` : `entry ${i}: all well`,
  }));
}

/**
 * A stand-in for journalctl (the test machine has no journal): answers the agent's argument
 * vector (--reverse --lines=N --priority=0..P --unit=U) from fixed entries, as journalctl would.
 */
async function fakeJournalctl(dir) {
  const path = join(dir, 'journalctl');
  const entries = JSON.stringify(journalEntries(Date.now()));
  await writeFile(
    path,
    `#!${process.execPath}
const args = process.argv.slice(2);
const arg = (name) => args.find((a) => a.startsWith('--' + name + '='))?.split('=')[1];
let entries = ${entries};
const unit = arg('unit');
if (unit !== 'docker.service') entries = [];
const priority = arg('priority');
if (priority) entries = entries.filter((e) => Number(e.PRIORITY) <= Number(priority.split('..')[1]));
if (args.includes('--reverse')) entries.reverse();
entries = entries.slice(0, Number(arg('lines') ?? 10));
process.stdout.write(entries.map((e) => JSON.stringify({ ...e, _SYSTEMD_UNIT: unit })).join('\\n') + '\\n');
`,
  );
  await chmod(path, 0o755);
  return path;
}

describe('device pages: settings, services, storage, network', () => {
  let agent;
  let browser;
  let admin;
  let page;
  let problems;
  let toolDir;

  async function api(path) {
    const res = await page.request.get(path);
    assert.equal(res.status(), 200, `${path}: ${res.status()}`);
    return res.json();
  }

  async function open(name) {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: new RegExp(`^${name}`) }).click();
    await expectHeading(page, name);
  }

  let fixture;

  before(async () => {
    toolDir = await mkdtemp(join(tmpdir(), 'hearth-web-tools-'));
    fixture = await setup({
      agent: { systemBus: { networkManager: false }, config: { journalctl: await fakeJournalctl(toolDir) } },
      signInAt: ['/settings', 'Settings'],
    });
    ({ agent, admin, browser, page, problems } = fixture);
  });

  after(async () => {
    await fixture?.teardown();
    if (toolDir) await rm(toolDir, { recursive: true, force: true });
  });

  it('renames the device', async () => {
    const name = page.getByRole('textbox', { name: 'Device name' });
    assert.equal(await name.inputValue(), 'hearth-test');
    await name.fill('Kitchen Box');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.getByRole('alert').filter({ hasText: 'lower-case letters' }).waitFor();
    assert.equal((await api('/api/v1/system/settings')).hostname, 'hearth-test', 'nothing sent for a bad name');
    await name.fill('kitchen-box');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.getByRole('status').filter({ hasText: 'The device is now called kitchen-box.' }).waitFor();
    assert.equal((await api('/api/v1/system/settings')).hostname, 'kitchen-box');
    assertClean(problems);
  });

  it('changes the time zone through a searchable list, and NTP', async () => {
    assert.equal(await page.getByTestId('device-zone').textContent(), 'Etc/UTC');
    assert.match(await page.getByTestId('device-time').textContent(), /\d{1,2}:\d{2}:\d{2}/);
    await page.getByLabel('Search time zones').fill('berl');
    const zone = page.getByLabel('Time zone', { exact: true });
    assert.ok((await zone.locator('option').allTextContents()).includes('Europe/Berlin'));
    assert.ok((await zone.locator('option').count()) < 5, 'the search narrows the list');
    await zone.selectOption('Europe/Berlin');
    await page.getByRole('button', { name: 'Save time zone' }).click();
    await page.getByRole('status').filter({ hasText: 'The time zone is now Europe/Berlin.' }).waitFor();
    // Read back from the mock timedate1 through the agent.
    assert.equal((await api('/api/v1/system/settings')).timezone, 'Europe/Berlin');
    assert.equal(await page.getByTestId('device-zone').textContent(), 'Europe/Berlin');

    const ntp = page.getByLabel('Set the time automatically from the internet (NTP)');
    assert.equal(await ntp.isChecked(), true);
    await ntp.uncheck();
    await page.getByRole('status').filter({ hasText: 'no longer set automatically' }).waitFor();
    assert.equal((await api('/api/v1/system/settings')).ntp, false);
    await screenshot(page, 'settings');
    await assertAccessible(page, 'the settings page');
    assertClean(problems);
  });

  it('reboots only after the confirmation', async () => {
    await page.getByRole('button', { name: 'Restart…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Restart the device?' });
    await dialog.waitFor();
    await screenshot(page, 'settings-reboot-confirm');
    await assertAccessible(page, 'the reboot confirmation');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(agent.systemCalls().filter((c) => /reboot|poweroff/.test(c)), [], 'cancel sends nothing');

    await page.getByRole('button', { name: 'Power off…' }).click();
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'hidden' });

    await page.getByRole('button', { name: 'Restart…' }).click();
    await dialog.getByRole('button', { name: 'Yes, restart' }).click();
    await page.getByTestId('power-done').filter({ hasText: 'The device is restarting.' }).waitFor();
    assert.equal(await agent.waitForSystemCall(/^reboot/), 'reboot false');
    assert.deepEqual(agent.systemCalls().filter((c) => /poweroff/.test(c)), []);
    assertClean(problems);
  });

  it('lists services with their state and restarts one', async () => {
    await open('Services');
    const docker = page.getByTestId('service-docker.service');
    await docker.waitFor();
    assert.match(await docker.getByTestId('state').textContent(), /active \(running\)/);
    const smbd = page.getByTestId('service-smbd.service');
    assert.match(await smbd.getByTestId('state').textContent(), /inactive \(dead\)/);
    // Units the mock does not know are "not installed" and offer no actions.
    const ssh = page.getByTestId('service-ssh.service');
    assert.match(await ssh.textContent(), /not installed/);
    assert.equal(await ssh.getByRole('button', { name: /^(Start|Stop|Restart) / }).count(), 0);
    // The agent itself may only be restarted.
    const self = page.getByTestId('service-hearth-agent.service');
    assert.deepEqual(await self.getByRole('button', { name: /^(Start|Stop|Restart) / }).allTextContents(), [
      'Restart hearth-agent.service',
    ]);
    await screenshot(page, 'services');
    await assertAccessible(page, 'the services page');

    await docker.getByRole('button', { name: 'Restart docker.service' }).click();
    await page.getByRole('status').filter({ hasText: 'docker.service was restarted.' }).waitFor();
    assert.equal(await agent.waitForSystemCall(/^restart docker/), 'restart docker.service replace');

    await smbd.getByRole('button', { name: 'Start smbd.service', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'smbd.service was started.' }).waitFor();
    await agent.waitForSystemCall(/^start smbd/);
    await smbd.getByTestId('state').filter({ hasText: 'active (running)' }).waitFor();
    assert.equal(await smbd.getByRole('button', { name: 'Start smbd.service', exact: true }).count(), 0);
    assertClean(problems);
  });

  it('shows a journal newest first, filters it and loads older entries', async () => {
    await page.getByRole('button', { name: 'Journal docker.service' }).click();
    const journal = page.getByTestId('journal');
    await journal.getByRole('heading', { name: 'Journal of docker.service' }).waitFor();
    const entries = journal.getByRole('list', { name: /Journal entries of docker.service/ }).getByRole('listitem');
    await entries.first().waitFor();
    assert.equal(await entries.count(), 100);
    assert.match(await entries.first().textContent(), /entry 149: all well/);
    assert.match(await entries.nth(1).textContent(), /entry 148/);
    await screenshot(page, 'services-journal');
    await assertAccessible(page, 'the journal');

    await journal.getByRole('button', { name: 'Load older entries' }).click();
    await entries.nth(149).waitFor();
    assert.match(await entries.nth(149).textContent(), /entry 0: listen failed/);
    assert.equal(await journal.getByRole('button', { name: 'Load older entries' }).count(), 0, 'all loaded');

    await journal.getByLabel('Importance').selectOption({ label: 'err and more urgent' });
    await journal.getByRole('button', { name: 'Show' }).click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=journal] li').length === 15);
    assert.ok((await entries.allTextContents()).every((text) => /listen failed/.test(text) && /err/.test(text)));

    await journal.getByLabel('Importance').selectOption({ label: 'All' });
    await journal.getByLabel('Containing').fill('entry 14');
    await journal.getByLabel('From').selectOption({ label: 'The last hour' });
    await journal.getByRole('button', { name: 'Show' }).click();
    // entry 140…149 are the last ten minutes; entry 14 is two hours old.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=journal] li').length === 10);
    assert.match(await entries.first().textContent(), /entry 149/);
    assertClean(problems);
  });

  it('lists the disks with the system disk kept out of reach', async () => {
    await open('Storage');
    const disks = await api('/api/v1/disks');
    for (const disk of disks) {
      const card = page.getByTestId(`disk-${disk.name}`);
      await card.waitFor();
      assert.match(await card.textContent(), new RegExp(disk.path));
      const buttons = await card.getByRole('button').allTextContents();
      if (disk.system) {
        await card.getByTestId('system-disk').waitFor();
        assert.deepEqual(buttons, [], `${disk.name}: the system disk offers no actions`);
      } else {
        assert.ok(buttons.some((b) => b.startsWith('Eject')), `${disk.name} can be ejected`);
      }
    }
    if (disks.length === 0) await page.getByTestId('no-disks').waitFor();
    await screenshot(page, 'storage');
    await assertAccessible(page, 'the storage page');
    assertClean(problems);
  });

  it('says when network management is unavailable', async () => {
    await open('Network');
    await page.getByTestId('unavailable').filter({ hasText: 'Network management is not available' }).waitFor();
    await screenshot(page, 'network-unavailable');
    // The agent answers 503 network_unavailable (no NetworkManager on the mock bus).
    assertClean(problems, { allowStatus: [503] });
  });

  it('fits a phone and reads well in dark mode', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    for (const [path, name] of [
      ['/settings', 'Settings'],
      ['/services', 'Services'],
      ['/storage', 'Storage'],
    ]) {
      await page.goto(path);
      await expectHeading(page, name);
      await page.locator('main .card').first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${name}: nothing sticks out of the page (overflow ${overflow}px)`);
      await screenshot(page, `${name.toLowerCase()}-phone-dark`);
      await assertAccessible(page, `${name} on a dark phone`);
    }
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.emulateMedia({ colorScheme: 'light' });
    assertClean(problems);
  });

  it('gives a member none of the device pages', async () => {
    const res = await call(agent, 'POST', '/api/v1/users', {
      body: { username: 'dora', password: 'a member password', role: 'member' },
      jar: admin.jar,
      csrf: admin.csrf,
    });
    assert.equal(res.status, 201, res.text);
    const member = await openPage(browser, agent);
    await signIn(member.page, { username: 'dora', password: 'a member password' }, '/settings', null);
    await member.page.getByTestId('forbidden').filter({ hasText: 'Only administrators' }).waitFor();
    const nav = member.page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Account' }).waitFor();
    for (const name of ['Settings', 'Services', 'Storage', 'Network']) {
      assert.equal(await nav.getByRole('link', { name }).count(), 0, `${name} is not in a member's navigation`);
    }
    for (const path of ['/services', '/storage', '/network']) {
      await member.page.goto(path);
      await member.page.getByTestId('forbidden').waitFor();
    }
    assert.equal((await member.page.request.post('/api/v1/system/reboot', { data: { confirm: true } })).status(), 403);
    assert.ok(!agent.systemCalls().some((c) => c.startsWith('poweroff')));
    await member.context.close();
    assertClean(member.problems);
  });
});
