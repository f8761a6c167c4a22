// User management as an admin (add, change role, grant app logs, reset password, delete,
// last-admin guard), then the same dashboard as a member, who has no Users page.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  claimByApi,
  screenshot,
  setup,
  signIn,
} from './helpers.mjs';

describe('users page', () => {
  let agent;
  let admin;
  let page;
  let problems;

  let fixture;

  before(async () => {
    fixture = await setup({ claim: false });
    ({ agent, page, problems } = fixture);
  });

  it('tells a late claimer that the device is taken and sends them to sign in', async () => {
    await page.goto('/');
    await page.getByLabel('Setup code').fill(await agent.setupCode());
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByLabel('Password', { exact: true }).fill('late comer password');
    await page.getByLabel('Repeat the password').fill('late comer password');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByRole('button', { name: 'Next' }).click(); // name and time zone as offered
    admin = await claimByApi(agent); // someone else is quicker
    await page.getByRole('button', { name: 'Finish setup' }).click();
    await page.getByRole('alert').filter({ hasText: 'already been set up' }).waitFor();
    await page.getByRole('button', { name: 'Go to sign in' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    assertClean(problems);
  });

  after(() => fixture?.teardown());

  it('lists, adds, changes, resets and deletes users', async () => {
    await signIn(page, admin);
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users' }).click();
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByTestId('user-admin').waitFor();

    // Another tab signs in again: the cookie now names a new session, so this page's CSRF
    // token is stale. The dashboard fetches the current token and retries, unseen.
    const relogin = await page.request.post('/api/v1/session', {
      data: { username: admin.username, password: admin.password },
    });
    assert.equal(relogin.status(), 200);
    const refused = [];
    page.on('response', (r) => r.status() === 403 && refused.push(`${r.request().method()} ${r.url()}`));

    // The only admin cannot demote themself.
    await page.getByLabel('Role of admin').selectOption('member');
    await page.getByRole('alert').filter({ hasText: 'The last administrator' }).waitFor();
    assert.equal(refused.length, 1, `one request met the stale token: ${refused}`);
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

    // App logs: admins always (their box is fixed), a member only when granted, with the reason.
    const adminLogs = page.getByLabel('May admin read app logs');
    assert.ok((await adminLogs.isChecked()) && (await adminLogs.isDisabled()));
    const carolLogs = page.getByLabel('May carol read app logs');
    assert.equal(await carolLogs.isChecked(), false);
    assert.equal(await carolLogs.getAttribute('aria-describedby'), 'app-logs-why');
    await page.getByText('App logs can contain passwords').waitFor();
    await carolLogs.check();
    await page.getByRole('status').filter({ hasText: 'carol may now read app logs.' }).waitFor();
    const granted = (await (await page.request.get('/api/v1/users')).json()).find((u) => u.username === 'carol');
    assert.equal(granted.app_logs, true);
    await carolLogs.uncheck();
    await page.getByRole('status').filter({ hasText: 'carol may no longer read app logs.' }).waitFor();
    const revoked = (await (await page.request.get('/api/v1/users')).json()).find((u) => u.username === 'carol');
    assert.equal(revoked.app_logs, false);

    await page.getByRole('button', { name: 'Reset password (carol)' }).click();
    await page.getByLabel('New password for carol').fill('a new member password');
    await page.getByRole('button', { name: 'Set password', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'The password of carol was changed.' }).waitFor();
    await screenshot(page, 'users');
    await assertAccessible(page, 'users');
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the table scrolls inside its card, not the page (overflow ${overflow}px)`);
    await screenshot(page, 'users-phone');
    await page.setViewportSize({ width: 1280, height: 860 });

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
    await signIn(page, { username: 'carol', password: 'a new member password' });
    const nav = page.getByRole('navigation', { name: 'Main' });
    await nav.getByRole('link', { name: 'Account' }).waitFor();
    assert.equal(await nav.getByRole('link', { name: 'Users' }).count(), 0);
    assert.equal((await page.request.get('/api/v1/users')).status(), 403);
    // Not granted app logs: the agent refuses them before looking the app up.
    const logs = await page.request.get('/api/v1/apps/anything/logs');
    assert.equal(logs.status(), 403);
    assert.equal((await logs.json()).error.code, 'forbidden');

    await page.goto('/users');
    await page.getByRole('heading', { name: 'Users', level: 1 }).waitFor();
    await page.getByTestId('forbidden').filter({ hasText: 'Only administrators' }).waitFor();
    assert.equal(await page.getByRole('table').count(), 0);
    await screenshot(page, 'users-member');
    await page.goto('/account');
    await page.getByText('Signed in as carol (Member).').waitFor();
    assertClean(problems);
  });

  it('says how long to wait when logins are throttled', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const alert = page.getByRole('alert');
    let text = '';
    for (let attempt = 0; attempt < 10 && !text.startsWith('Too many attempts'); attempt += 1) {
      await page.getByLabel('Username').fill('nobody');
      await page.getByLabel('Password').fill(`wrong guess ${attempt}`);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('button', { name: 'Sign in' }).and(page.locator(':enabled')).waitFor();
      text = (await alert.textContent()) ?? '';
    }
    assert.match(text, /^Too many attempts\. Try again in \d+ s\.$/);
    await screenshot(page, 'login-throttled');
    assertClean(problems);
  });
});
