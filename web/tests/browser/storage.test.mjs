// The Storage page with a real disk: a loop device on the test machine, formatted through the
// dialog (typed confirmation), mounted (the mock systemd mounts for real, as systemd would),
// unmounted and ejected, and refreshed live when a disk event arrives.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  screenshot,
  setup,
} from './helpers.mjs';

const run = promisify(execFile);

describe('storage page with a loop device', () => {
  let agent;
  let page;
  let problems;
  let dir;
  let device; // "/dev/loopN"
  let name; // "loopN"
  let fixture;

  const card = () => page.getByTestId(`disk-${name}`);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hearth-web-disk-'));
    const image = join(dir, 'disk.img');
    await writeFile(image, '');
    await truncate(image, 64 * 1024 * 1024);
    device = (await run('losetup', ['--find', '--show', '--partscan', image])).stdout.trim();
    name = device.replace('/dev/', '');
    fixture = await setup({
      agent: { systemBus: true, config: { disks_include_loop: true } },
      signInAt: ['/storage', 'Storage'],
    });
    ({ agent, page, problems } = fixture);
  });

  after(async () => {
    await fixture?.teardown();
    if (device) {
      await run('umount', [`${device}p1`]).catch(() => {});
      await run('losetup', ['--detach', device]).catch(() => {});
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('formats a blank disk only after its name is typed', async () => {
    await card().waitFor();
    assert.match(await card().textContent(), /Disk image/);
    await card().getByText('no partitions and no file system').waitFor();
    assert.equal(await card().getByRole('button', { name: `Mount ${name}` }).count(), 0, 'nothing to mount yet');

    await card().getByRole('button', { name: `Format… ${name}` }).click();
    const dialog = page.getByRole('dialog', { name: `Format ${name}` });
    await dialog.waitFor();
    const erase = dialog.getByRole('button', { name: 'Erase and format' });
    assert.equal(await erase.isDisabled(), true);
    await dialog.getByLabel('File system').selectOption('ext4');
    await dialog.getByLabel('Label (optional)').fill('media');
    await dialog.getByLabel(`Type ${name} to confirm`).fill(`${name}x`);
    assert.equal(await erase.isDisabled(), true, 'a wrong name does not unlock the button');
    await dialog.getByLabel(`Type ${name} to confirm`).fill(name);
    await screenshot(page, 'storage-format');
    await assertAccessible(page, 'the format dialog');
    await erase.click();
    await page
      .getByRole('status')
      .filter({ hasText: `${name} was formatted.` })
      .waitFor({ timeout: 60_000 })
      .catch(async (e) => {
        const shown = await page.locator('main, dialog').allTextContents();
        throw new Error(`${e.message}\npage: ${shown.join(' | ')}\nagent log:\n${agent.log().slice(-3000)}`);
      });
    const row = card().getByRole('row', { name: new RegExp(`${name}p1`) });
    await row.waitFor();
    assert.match(await row.textContent(), /ext4 · media/);
    assert.match(await row.textContent(), /not mounted/);
    assertClean(problems);
  });

  it('mounts the disk, shows its usage, and unmounts and ejects it', async () => {
    await card().getByRole('button', { name: `Mount ${name}` }).click();
    await page.getByRole('status').filter({ hasText: `${name} is mounted` }).waitFor({ timeout: 30_000 });
    assert.match(await agent.waitForSystemCall(/^transient /), new RegExp(`${device}p1 .*/media/${name}p1 ext4`));
    const row = card().getByRole('row', { name: new RegExp(`${name}p1`) });
    assert.match(await row.textContent(), new RegExp(`/media/${name}p1`));
    await card().getByRole('meter', { name: `Space used on ${name}p1` }).first().waitFor();
    assert.equal(await card().getByRole('button', { name: `Format… ${name}` }).count(), 0, 'a mounted disk is not formatted');
    const roots = await (await page.request.get('/api/v1/files')).json();
    assert.ok(roots.some((r) => r.name === `disk-${name}p1`), 'the disk is a file root now');
    await screenshot(page, 'storage-mounted');
    await assertAccessible(page, 'a mounted disk');

    await card().getByRole('button', { name: `Unmount ${name}` }).click();
    await page.getByRole('status').filter({ hasText: `${name} is unmounted.` }).waitFor();
    await row.filter({ hasText: 'not mounted' }).waitFor();
    await card().getByRole('button', { name: `Eject ${name}` }).click();
    await page.getByRole('status').filter({ hasText: `${name} can be unplugged now.` }).waitFor();
    assertClean(problems);
  });
});
