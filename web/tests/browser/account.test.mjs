// The account page: password change, TOTP enrolment from the server's QR code and secret,
// the TOTP step at login, and turning TOTP off again.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  assertAccessible,
  assertClean,
  call,
  expectHeading,
  openPage,
  screenshot,
  setup,
  totp,
} from './helpers.mjs';

const NEW_PASSWORD = 'a brand new password';

describe('account page', () => {
  let agent;
  let browser;
  let admin;
  let page;
  let problems;
  let secret;

  async function fillLogin(password) {
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Username').fill(admin.username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }

  let fixture;

  before(async () => {
    fixture = await setup({ signInAt: ['/account', 'Account'] });
    ({ agent, admin, browser, page, problems } = fixture);
  });

  after(() => fixture?.teardown());

  it('changes the password and keeps this session', async () => {
    // A second browser signed in as the same user: its session ends with the change.
    const other = await openPage(browser, agent);
    await other.page.goto('/');
    await other.page.getByLabel('Username').fill(admin.username);
    await other.page.getByLabel('Password').fill(admin.password);
    await other.page.getByRole('button', { name: 'Sign in' }).click();
    await expectHeading(other.page, 'Home');
    await other.page.getByTestId('connection').filter({ hasText: 'Live' }).waitFor({ timeout: 15_000 });

    const form = page.getByRole('region', { name: 'Password' });
    await form.getByLabel('Current password').fill('wrong current password');
    await form.getByLabel('New password').fill(NEW_PASSWORD);
    await form.getByLabel('Repeat the password').fill(NEW_PASSWORD);
    await form.getByRole('button', { name: 'Change password' }).click();
    await form.getByRole('alert').filter({ hasText: 'That is not your current password.' }).waitFor();

    await form.getByLabel('Current password').fill(admin.password);
    await form.getByRole('button', { name: 'Change password' }).click();
    await form.getByRole('status').filter({ hasText: 'Your password was changed.' }).waitFor();
    assert.equal((await page.request.get('/api/v1/session')).status(), 200, 'this session stays');

    // The old session made by the API claim was another session of the user: now revoked.
    const old = await call(agent, 'GET', '/api/v1/session', { jar: admin.jar });
    assert.equal(old.status, 401);

    // The other browser notices through its event stream, without a reload.
    await other.page.getByRole('heading', { name: 'Sign in' }).waitFor({ timeout: 20_000 });
    await other.page.getByText('Your session has ended.').waitFor();
    await screenshot(other.page, 'login-session-ended');
    assertClean(other.problems);
    await other.context.close();
    assertClean(problems);
  });

  it('enrols TOTP with the QR code and a code from the secret', async () => {
    const section = page.getByRole('region', { name: 'Two-step sign-in' });
    await section.getByTestId('totp-state').filter({ hasText: 'off' }).waitFor();
    await section.getByRole('button', { name: 'Set up two-step sign-in' }).click();
    await section.getByTestId('totp-qr').locator('svg').waitFor();
    secret = (await section.getByTestId('totp-secret').textContent()).trim();
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    const box = await section.getByTestId('totp-qr').locator('svg').boundingBox();
    assert.ok(box.width > 100 && box.height > 100, `the QR code is drawn (${box.width}×${box.height})`);
    await screenshot(page, 'account-totp-enrol');
    await assertAccessible(page, 'account with TOTP enrolment');

    await section.getByLabel('Six-digit code').fill('000000' === totp(secret) ? '111111' : '000000');
    await section.getByRole('button', { name: 'Confirm' }).click();
    await section.getByRole('alert').waitFor();

    await section.getByLabel('Six-digit code').fill(totp(secret));
    await section.getByRole('button', { name: 'Confirm' }).click();
    await section.getByRole('status').filter({ hasText: 'Two-step sign-in is now on.' }).waitFor();
    await section.getByTestId('totp-state').filter({ hasText: 'is on' }).waitFor();
    await screenshot(page, 'account-totp-on');
    assertClean(problems);
  });

  it('asks for the code at login once TOTP is on', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await fillLogin(NEW_PASSWORD);
    await page.getByRole('heading', { name: 'Two-step sign-in' }).waitFor();
    await screenshot(page, 'login-totp');
    await assertAccessible(page, 'the TOTP step');

    const wrong = totp(secret, 5); // a code from the future, outside the accepted window
    await page.getByLabel('Six-digit code').fill(wrong);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'not accepted' }).waitFor();

    // The confirm step used the current step's code; the agent refuses replays, so take the next.
    await page.getByLabel('Six-digit code').fill(totp(secret, 1));
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expectHeading(page, 'Home');
    assertClean(problems);
  });

  it('turns TOTP off with the password', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Account' }).click();
    const section = page.getByRole('region', { name: 'Two-step sign-in' });
    await section.getByLabel('Password').fill(NEW_PASSWORD);
    await section.getByRole('button', { name: 'Turn off two-step sign-in' }).click();
    await section.getByRole('status').filter({ hasText: 'now off' }).waitFor();
    await screenshot(page, 'account');

    await page.getByRole('button', { name: 'Log out' }).click();
    await fillLogin(NEW_PASSWORD);
    await expectHeading(page, 'Home');
    assertClean(problems);
  });
});
