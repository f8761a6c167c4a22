// User management as an admin (add, change role, reset password, delete, last-admin guard),
// then the same dashboard as a member, who has no Users page.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertClean, claimByApi, launchBrowser, openPage, screenshot, startAgent } from './helpers.mjs';

async function signIn(page, username, password) {
  await page.goto('/');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
}

describe('users page', () => {
  let agent;
  let browser;
  let admin;
  let page;
  let problems;

  before(async () => {
    agent = await startAgent();
    admin = await claimByApi(agent);
    browser = await launchBrowser();
    ({ page, problems } = await openPage(browser, agent));
  });

  after(async () => {
    await browser?.close();
    await agent?.stop();
  });

  it('lists, adds, changes, resets and deletes users', async () => {
    await signIn(page, admin.username, admin.password);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByTestId('user-admin').waitFor();

    // The only admin cannot demote themself.
    await page.getByLabel('Role of admin').selectOption('member');
    await page.getByRole('alert').filter({ hasText: 'The last administrator' }).waitFor();
    assert.equal(await page.getByLabel('Role of admin').inputValue(), 'admin');

    const add = page.getByRole('region', { name: 'Add a user' });
    await add.getByLabel('Username').fill('Carol!');
    await add.getByLabel('Password').fill('member password');
    await add.getByRole('button', { name: 'Add user' }).click();
    await add.getByRole('alert').filter({ hasText: 'lower-case letters' }).waitFor();

    await add.getByLabel('Username').fill('carol');
    await add.getByRole('button', { name: 'Add user' }).click();
    await page.getByRole('status').filter({ hasText: 'carol was added.' }).waitFor();
    await page.getByTestId('user-carol').waitFor();
    assert.equal(await page.getByLabel('Role of carol').inputValue(), 'member');

    await add.getByLabel('Username').fill('carol');
    await add.getByLabel('Password').fill('member password');
    await add.getByRole('button', { name: 'Add user' }).click();
    await add.getByRole('alert').filter({ hasText: 'already exists' }).waitFor();

    await add.getByLabel('Username').fill('dave');
    await add.getByLabel('Password').fill('dave password');
    await add.getByLabel('Role').selectOption('admin');
    await add.getByRole('button', { name: 'Add user' }).click();
    await page.getByTestId('user-dave').waitFor();
    assert.equal(await page.getByLabel('Role of dave').inputValue(), 'admin');
    await page.getByLabel('Role of dave').selectOption('member');
    await page.getByRole('status').filter({ hasText: 'The role of dave was changed.' }).waitFor();

    await page.getByRole('button', { name: 'Reset password (carol)' }).click();
    await page.getByLabel('New password for carol').fill('a new member password');
    await page.getByRole('button', { name: 'Set password' }).click();
    await page.getByRole('status').filter({ hasText: 'The password of carol was changed.' }).waitFor();
    await screenshot(page, 'users');

    await page.getByRole('button', { name: 'Delete (dave)' }).click();
    await page.getByText('Delete dave? This cannot be undone.').waitFor();
    await screenshot(page, 'users-delete-confirm');
    await page.getByRole('button', { name: 'Yes, delete' }).click();
    await page.getByRole('status').filter({ hasText: 'dave was deleted.' }).waitFor();
    assert.equal(await page.getByTestId('user-dave').count(), 0);

    // What the page shows is what the agent has.
    const list = await page.request.get('/api/v1/users');
    const names = (await list.json()).map((u) => u.username).sort();
    assert.deepEqual(names, ['admin', 'carol']);
    assertClean(problems);
  });

  it('gives a member no Users page', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await signIn(page, 'carol', 'a new member password');
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Account' }).waitFor();
    assert.equal(await nav.getByRole('link', { name: 'Users' }).count(), 0);
    assert.equal((await page.request.get('/api/v1/users')).status(), 403);

    await page.goto('/users');
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByTestId('forbidden').filter({ hasText: 'Only administrators' }).waitFor();
    assert.equal(await page.getByRole('table').count(), 0);
    await screenshot(page, 'users-member');
    await page.goto('/account');
    await page.getByText('Signed in as carol (Member).').waitFor();
    assertClean(problems);
  });
});
