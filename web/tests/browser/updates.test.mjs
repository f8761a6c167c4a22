// The Updates page against a real agent: first one without an update server (the page
// explains), then one configured with a real update repository built by the `hearth-ota` CLI
// (keygen → delegate → sign → publish), served on loopback with HTTP Range support, file-backed
// slots (root-a holds version 1.0.0, root-b is empty) and the file boot-control backend. The
// system bus is the mock one, which records the reboot. The repository server holds the bundle
// download after its first bytes until the test has seen the progress on the page. "Booting"
// is a restart of the agent on the same data with another slot on its command line (the trial),
// then the old slot again with the trial gone (the boot loader's fallback: rolled back).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  AGENT_BIN,
  assertAccessible,
  assertClean,
  call,
  claimByApi,
  expectHeading,
  launchBrowser,
  openPage,
  screenshot,
  startAgent,
} from './helpers.mjs';

const OTA_BIN = process.env.HEARTH_OTA_BIN ?? join(dirname(AGENT_BIN), 'hearth-ota');
const MIB = 1024 * 1024;
const SLOT_SIZE = 16 * MIB;
/** Release notes with markup and two lines: shown as plain text, the markup as written. */
const NOTES = 'Faster file copies.\n<b>Not bold</b> <img src=x onerror=alert(1)>';

async function ota(...args) {
  try {
    return (await promisify(execFile)(OTA_BIN, args)).stdout;
  } catch (e) {
    throw new Error(`hearth-ota ${args.join(' ')}: ${e.stderr || e.message}`);
  }
}

/**
 * A device that runs version 1.0.0 from slot a, and a repository whose stable channel offers
 * 2.0.0: the same image with its middle half changed, so half of it can be reused.
 */
async function makeUpdateFixture(dir) {
  if (!existsSync(OTA_BIN)) throw new Error(`no hearth-ota at ${OTA_BIN}: cargo build -p hearth-ota, or set HEARTH_OTA_BIN`);
  const keys = join(dir, 'keys');
  await mkdir(keys);
  const root = join(keys, 'root.key');
  const release = join(keys, 'release.key');
  await ota('keygen', '--out', root);
  await ota('keygen', '--out', release);
  const keylist = join(keys, 'keys.json');
  await ota('delegate', '--root', root, '--release', `${release}.pub`, '--serial', '1', '--out', keylist);

  const v1 = randomBytes(SLOT_SIZE);
  const v2 = Buffer.from(v1);
  randomBytes(SLOT_SIZE / 2).copy(v2, SLOT_SIZE / 4);
  const slots = join(dir, 'slots');
  await mkdir(slots);
  await writeFile(join(slots, 'root-a'), v1);
  await writeFile(join(slots, 'root-b'), Buffer.alloc(SLOT_SIZE));
  const image = join(dir, 'v2.img');
  await writeFile(image, v2);

  const bundle = join(dir, 'v2.hota');
  const signed = ['--key', release, '--keys', keylist, '--root', `${root}.pub`];
  await ota(
    // Format 3: what releases are, and the index (index-v3.hidx) today's agent reads.
    'sign', ...signed, '--format', '3', '--board', 'qemu-x86_64', '--arch', 'amd64', '--version', '2.0.0',
    '--version-number', '2000000', '--min-version-number', '1000000',
    '--payload', `root=${image}`, '--out', bundle,
  );
  const repo = join(dir, 'repo');
  await ota('publish', '--repo', repo, '--channel', 'stable', bundle, ...signed, '--notes', NOTES, '--expires-days', '7');

  const releaseFile = join(dir, 'release.json');
  const cmdline = join(dir, 'cmdline');
  /** What the boot loader and the booted image tell the agent: slot and release. */
  const boot = async (slot, version, versionNumber) => {
    await writeFile(
      releaseFile,
      JSON.stringify({
        board: 'qemu-x86_64',
        arch: 'amd64',
        version,
        version_number: versionNumber,
        boot: 'systemd-boot',
        build_id: 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
      }),
    );
    await writeFile(cmdline, `quiet root=PARTLABEL=root-${slot} hearth.slot=${slot}\n`);
  };
  await boot('a', '1.0.0', 1000000);
  // The file boot-control backend's state on a fresh device: slot a committed, b empty.
  const bootDir = join(dir, 'boot');
  await mkdir(bootDir);
  await writeFile(join(bootDir, 'boot-state.json'), JSON.stringify({ primary: 'a', trial: null, bootable: ['a'] }));
  return {
    repo,
    boot,
    bundleSize: (await stat(bundle)).size,
    config: {
      update_root_key: `${root}.pub`,
      update_release_file: releaseFile,
      update_slot_dir: slots,
      update_boot: 'file',
      update_boot_dir: bootDir,
      update_cmdline_file: cmdline,
    },
  };
}

/**
 * A static file server for the repository with single-range requests (what the device's
 * delta download uses). `hold(bytes)` pauses bundle responses once that many bundle bytes went
 * out, until `release()`.
 */
async function serveRepo(root) {
  let holdAt = Infinity;
  let releaseGate = () => {};
  let gate = Promise.resolve();
  const state = { bundleBytes: 0, requests: [] };
  const server = createServer(async (req, res) => {
    try {
      const path = normalize(decodeURIComponent(new URL(req.url, 'http://repo').pathname));
      const file = join(root, path);
      if (!file.startsWith(root + sep)) return void res.writeHead(404).end();
      const info = await stat(file).catch(() => null);
      if (!info?.isFile()) return void res.writeHead(404).end();
      let start = 0;
      let end = info.size - 1;
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      if (range) {
        start = Number(range[1]);
        end = range[2] ? Math.min(Number(range[2]), info.size - 1) : info.size - 1;
        if (start >= info.size) return void res.writeHead(416, { 'Content-Range': `bytes */${info.size}` }).end();
      }
      state.requests.push(`${req.method} ${path} ${req.headers.range ?? ''}`.trim());
      res.writeHead(range ? 206 : 200, {
        'Content-Length': end - start + 1,
        'Accept-Ranges': 'bytes',
        ...(range && { 'Content-Range': `bytes ${start}-${end}/${info.size}` }),
      });
      if (req.method === 'HEAD') return void res.end();
      const isBundle = path.endsWith('.hota');
      const fh = await open(file);
      try {
        for (let pos = start; pos <= end && !res.destroyed; ) {
          if (isBundle && state.bundleBytes >= holdAt) await gate;
          const n = Math.min(64 * 1024, end - pos + 1);
          const { buffer } = await fh.read(Buffer.alloc(n), 0, n, pos);
          pos += n;
          if (isBundle) state.bundleBytes += n;
          if (!res.write(buffer)) {
            await new Promise((ok) => {
              const done = () => {
                res.off('drain', done);
                res.off('close', done);
                ok();
              };
              res.on('drain', done);
              res.on('close', done);
            });
          }
        }
      } finally {
        await fh.close();
      }
      res.end();
    } catch {
      res.destroy();
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    state,
    hold(bytes) {
      holdAt = bytes;
      gate = new Promise((ok) => (releaseGate = ok));
    },
    release() {
      holdAt = Infinity;
      releaseGate();
    },
    async close() {
      this.release();
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    },
  };
}

/**
 * Opens `url` and signs in when the page asks. Other suites on this machine add and remove
 * network links, and Chromium then drops connections (ERR_NETWORK_CHANGED): when the dashboard
 * says it cannot reach the device, try again as a person would (at most three times).
 */
async function openUpdates(page, admin, url, { reload = false } = {}) {
  if (reload) await page.reload();
  else await page.goto(url);
  const signInHeading = page.getByRole('heading', { name: 'Sign in' });
  const updates = page.getByRole('heading', { name: 'Updates', level: 1 });
  const unreachable = page.getByRole('heading', { name: 'Cannot reach this Hearth device' });
  for (let attempt = 0; ; attempt += 1) {
    await signInHeading.or(updates).or(unreachable).first().waitFor({ timeout: 30_000 });
    if (attempt < 3 && (await unreachable.isVisible())) {
      await page.getByRole('button', { name: 'Try again' }).click();
      continue;
    }
    if (await signInHeading.isVisible()) {
      await page.getByLabel('Username').fill(admin.username);
      await page.getByLabel('Password').fill(admin.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await updates.or(unreachable).first().waitFor({ timeout: 30_000 });
      if (attempt < 3 && (await unreachable.isVisible())) continue;
    }
    break;
  }
  await expectHeading(page, 'Updates');
}

describe('updates page without an update server', () => {
  let agent;
  let browser;

  before(async () => {
    agent = await startAgent();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
  });

  it('says updates are not set up, and how', async () => {
    const admin = await claimByApi(agent);
    const { page, problems, context } = await openPage(browser, agent);
    await openUpdates(page, admin, '/updates');
    const box = page.getByTestId('not-configured');
    await box.getByRole('heading', { name: 'Updates are not set up on this device' }).waitFor();
    await box.filter({ hasText: 'repo_url setting in the [update] section' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Check now' }).count(), 0, 'nothing to check');
    assert.equal(await page.getByRole('button', { name: 'Save update settings' }).count(), 0, 'no policy to change');
    await page.getByTestId('current-version').waitFor();
    await screenshot(page, 'updates-not-configured');
    await assertAccessible(page, 'the updates page without a server');
    assertClean(problems);
    await context.close();
  });
});

describe('updates page with a real update repository', () => {
  let agent;
  let browser;
  let admin;
  let page;
  let problems;
  let dir;
  let fixture;
  let repo;
  let agentData;

  /** An agent on this device's data (kept across its restarts), update server and slots. */
  function startUpdatingAgent() {
    return startAgent({
      systemBus: true,
      dataDir: agentData,
      config: { ...fixture.config, update_repo_url: repo.url, update_channel: 'stable' },
    });
  }

  async function state() {
    const res = await page.request.get(`${agent.url}/api/v1/update`);
    assert.equal(res.status(), 200, `GET /api/v1/update: ${res.status()}`);
    return res.json();
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-web-ota-'));
    fixture = await makeUpdateFixture(dir);
    repo = await serveRepo(fixture.repo);
    agentData = join(dir, 'agent');
    await mkdir(agentData);
    agent = await startUpdatingAgent();
    admin = await claimByApi(agent);
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser, agent));
    await openUpdates(page, admin, '/updates');
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
    await repo?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('shows the running system', async () => {
    await page.getByTestId('current-version').filter({ hasText: '1.0.0' }).waitFor();
    assert.equal(await page.getByTestId('current-slot').textContent(), 'A');
    await page.getByText('qemu-x86_64 (amd64)').waitFor();
    await page.getByText('Not checked yet.').waitFor();
    assert.equal(await page.getByTestId('not-configured').count(), 0);
    assertClean(problems);
  });

  it('checks, shows the update with its notes as plain text, installs it with progress and reboots after the confirmation', async () => {
    await page.getByRole('button', { name: 'Check now' }).click();
    const available = page.getByTestId('available');
    await available.getByRole('heading', { name: 'Hearth 2.0.0 is available' }).waitFor();
    await page.getByTestId('check-result').filter({ hasText: 'An update was found' }).waitFor();
    const notes = page.getByTestId('release-notes');
    assert.equal(await notes.textContent(), NOTES, 'the notes exactly as published');
    assert.equal(await notes.locator('b, img').count(), 0, 'markup in the notes is not rendered');
    const size = await page.getByTestId('available-size').textContent();
    assert.match(size, /^1[67](\.\d+)? MiB$/, `bundle size shown (${size}, ${fixture.bundleSize} bytes)`);
    await screenshot(page, 'updates-available');
    await assertAccessible(page, 'an available update');

    // Let the first 2 MiB of the bundle through, then hold the download while the page shows it.
    repo.hold(2 * MIB);
    await page.getByRole('button', { name: 'Install 2.0.0' }).click();
    const progress = page.getByTestId('progress');
    await progress.waitFor();
    // The download is held after 2 MiB: the install sits in its write phase, bytes counted.
    await progress.getByTestId('progress-phase').filter({ hasText: 'Downloading and writing the new system' }).waitFor({ timeout: 30_000 });
    await progress.getByTestId('progress-step').filter({ hasText: /^[\d.]+ (KiB|MiB) of 16 MiB \(\d+ %\)$/ }).waitFor();
    assert.match(
      await progress.getByTestId('progress-bytes').textContent(),
      /^Downloaded [1-9][\d.]* (KiB|MiB), reused [\d.]+ (B|KiB|MiB) from the running system$/,
    );
    assert.equal(await progress.getByRole('progressbar').count(), 1);
    await screenshot(page, 'updates-installing');
    await assertAccessible(page, 'an install in progress');
    repo.release();

    const prompt = page.getByTestId('reboot-prompt');
    await prompt.getByRole('heading', { name: 'Restart to finish updating to 2.0.0' }).waitFor({ timeout: 60_000 });
    await available.getByRole('heading', { name: 'Hearth 2.0.0 is installed and starts with the next restart' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Install 2.0.0' }).count(), 0, 'nothing more to install');
    const s = await state();
    assert.equal(s.pending_reboot?.version, '2.0.0');
    assert.equal(s.pending_reboot?.slot, 'b');
    assert.ok(repo.state.bundleBytes < fixture.bundleSize, `delta: ${repo.state.bundleBytes} of ${fixture.bundleSize} bundle bytes fetched`);
    assert.ok(repo.state.requests.some((r) => r.includes('.hota bytes=')), 'the bundle came in Range requests');
    const installed = s.history.find((h) => h.to_version === '2.0.0');
    assert.ok(installed, `the install is in the history: ${JSON.stringify(s.history)}`);
    assert.ok(installed.reused_bytes > 0 && installed.downloaded_bytes > 0, JSON.stringify(installed));
    const entry = page.getByTestId('history').locator('li').filter({ hasText: '1.0.0 → 2.0.0' }).first();
    await entry.waitFor();
    assert.equal(await entry.evaluate((li) => li.classList.contains('bad')), false, 'a successful install is not marked');

    // Cancel first: nothing is recorded; then confirm.
    await prompt.getByRole('button', { name: 'Restart now…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Restart into the update?' });
    await dialog.waitFor();
    await assertAccessible(page, 'the reboot confirmation');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await dialog.waitFor({ state: 'hidden' });
    assert.deepEqual(agent.systemCalls().filter((c) => /reboot/i.test(c)), [], 'cancel reboots nothing');
    await prompt.getByRole('button', { name: 'Restart now…' }).click();
    await dialog.getByRole('button', { name: 'Yes, restart' }).click();
    await page.getByTestId('rebooting').waitFor();
    await agent.waitForSystemCall(/reboot/i);
    await screenshot(page, 'updates-rebooting');
    assertClean(problems);
  });

  it('shows the trial after the restart into the update', async () => {
    // The "boot loader" starts slot b on trial: the agent restarts on the same data, and the
    // booted image is 2.0.0 on slot b.
    await page.goto('about:blank'); // no open stream to the agent that goes away
    await agent.stop();
    await fixture.boot('b', '2.0.0', 2000000);
    agent = await startUpdatingAgent();
    // Cookies do not depend on the port, and the session lives in the agent's store: the
    // browser may still be signed in.
    await openUpdates(page, admin, `${agent.url}/updates`);
    const trial = page.getByTestId('trial');
    await trial.getByRole('heading', { name: 'Trying out Hearth 2.0.0' }).waitFor();
    await trial.filter({ hasText: 'Start attempts left before going back:' }).waitFor();
    assert.equal(await page.getByTestId('current-slot').textContent(), 'B');
    assert.equal(await page.getByTestId('reboot-prompt').count(), 0, 'no reboot prompt on the trial');
    assert.equal((await state()).state, 'trial');
    await page.getByTestId('check-result').filter({ hasText: /^Last checked / }).waitFor();
    await screenshot(page, 'updates-trial');
    await assertAccessible(page, 'the trial state');
    assertClean(problems);
  });

  it('marks the update rolled back when the boot loader went back to the old system', async () => {
    // The trial never got committed and its tries ran out: the boot loader starts slot a
    // (1.0.0) again, with b no longer bootable.
    await page.goto('about:blank');
    await agent.stop();
    await fixture.boot('a', '1.0.0', 1000000);
    await writeFile(
      join(fixture.config.update_boot_dir, 'boot-state.json'),
      JSON.stringify({ primary: 'a', trial: null, bootable: ['a'] }),
    );
    agent = await startUpdatingAgent();
    await openUpdates(page, admin, `${agent.url}/updates`);
    const entry = page.getByTestId('history').locator('li[data-kind=rolled_back]');
    await entry.waitFor();
    await entry.filter({ hasText: 'Rolled back' }).filter({ hasText: '1.0.0 → 2.0.0' }).waitFor();
    assert.equal(await entry.evaluate((li) => li.classList.contains('bad')), true, 'the rollback is marked');
    const reason = (await state()).history.find((h) => h.kind === 'rolled_back')?.reason;
    if (reason) await entry.filter({ hasText: `Reason: ${reason}` }).waitFor();
    assert.equal(await page.getByTestId('trial').count(), 0, 'no trial any more');
    assert.equal(await page.getByTestId('current-version').textContent(), '1.0.0');
    await screenshot(page, 'updates-rolled-back');
    await assertAccessible(page, 'a rolled-back update in the history');

    // The next dashboard visit announces the rollback until it is dismissed; the history keeps it.
    await page.goto(`${agent.url}/`);
    const banner = page.getByTestId('update-banner');
    await banner.filter({ hasText: 'Hearth 2.0.0' }).filter({ hasText: 'rolled back to 1.0.0' }).waitFor();
    assert.equal(await banner.getAttribute('data-kind'), 'rolled_back');
    if (reason) await banner.filter({ hasText: reason }).waitFor();
    await screenshot(page, 'update-banner-rolled-back');
    await assertAccessible(page, 'the rollback banner');
    await banner.getByRole('button', { name: 'Dismiss' }).click();
    await banner.waitFor({ state: 'detached' });
    const answered = page.waitForResponse((r) => new URL(r.url()).pathname === '/api/v1/update');
    await page.reload();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    assert.equal((await (await answered).json()).notice, null);
    assert.equal(await page.getByTestId('update-banner').count(), 0, 'dismissed for good');
    const after = await state();
    assert.equal(after.notice, null);
    assert.ok(after.history.some((h) => h.kind === 'rolled_back'), 'still in the history');
    assertClean(problems);
    await openUpdates(page, admin, `${agent.url}/updates`); // where the next tests start
  });

  it('saves the policy and refuses an invalid maintenance window', async () => {
    const before = (await state()).policy;
    const start = page.getByLabel('From (HH:MM)');
    const end = page.getByLabel('Until (HH:MM)');
    const save = page.getByRole('button', { name: 'Save update settings' });

    await start.fill('25:00');
    await save.click();
    await page.getByTestId('policy-problem').waitFor();
    await page.getByText('Enter times as HH:MM on a 24-hour clock').waitFor();
    assert.equal(await start.getAttribute('aria-invalid'), 'true');
    await start.fill('04:00');
    await end.fill('4:00');
    await save.click();
    await page.getByText('The window must not start and end at the same time.').waitFor();
    await page.getByLabel('Channel').fill('Beta Channel');
    await save.click();
    await page.getByText('A channel is lower-case letters').waitFor();
    assert.deepEqual((await state()).policy, before, 'nothing was sent');

    await page.getByLabel('Channel').fill('beta');
    await page.getByLabel('Install updates automatically').check();
    await page.getByLabel('Restart in the maintenance window').check();
    await start.fill('22:30');
    await end.fill('1:15');
    await end.blur();
    await page.getByText('This window runs past midnight.').waitFor();
    await save.click();
    await page.getByRole('status').filter({ hasText: 'Update settings saved.' }).waitFor();
    assert.deepEqual((await state()).policy, {
      channel: 'beta',
      auto_install: true,
      reboot: 'maintenance_window',
      maintenance_window: { start: '22:30', end: '01:15' },
    });
    assert.equal(await end.inputValue(), '01:15');

    // The agent refuses a bad window on its own too (a client that skips the page's check).
    const refused = await call(agent, 'PATCH', '/api/v1/update/policy', {
      body: { maintenance_window: { start: '24:00', end: '01:00' } },
      jar: admin.jar,
      csrf: admin.csrf,
    });
    assert.equal(refused.status, 400, refused.text);
    assert.equal(typeof refused.json?.error?.code, 'string');

    await page.getByLabel('Channel').fill('stable');
    await page.getByLabel('Install updates automatically').uncheck();
    await save.click();
    await page.getByRole('status').filter({ hasText: 'Update settings saved.' }).waitFor();
    await screenshot(page, 'updates-policy');
    await assertAccessible(page, 'the update settings');
    assertClean(problems);
  });

  it('shows a failed check with its message', async () => {
    await repo.close();
    await openUpdates(page, admin, null, { reload: true });
    await page.getByRole('button', { name: 'Check now' }).click();
    const error = page.getByTestId('check-error');
    await error.waitFor();
    assert.ok((await error.textContent()).trim().length > 10, 'the reason is shown');
    assertClean(problems, { allowStatus: [409, 422, 502] });
  });

  it('fits a phone and reads well in dark mode', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.emulateMedia({ colorScheme: 'dark' });
    await openUpdates(page, admin, null, { reload: true });
    await page.getByTestId('history').waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `nothing sticks out of the page (overflow ${overflow}px)`);
    await screenshot(page, 'updates-phone-dark');
    await assertAccessible(page, 'the updates page on a dark phone');
    // Keyboard: the policy's controls are reachable with Tab.
    await page.getByLabel('Channel').focus();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('type')), 'radio');
    await page.setViewportSize({ width: 1280, height: 860 });
    await page.emulateMedia({ colorScheme: 'light' });
    assertClean(problems);
  });
});
