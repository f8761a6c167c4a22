// Shared pieces of the browser tests: a real hearth-agent on a fresh data directory, Debian's
// Chromium through playwright-core, API calls from node, TOTP codes, screenshots, and the
// collection of CSP violations and page errors that fail a test.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const AGENT_BIN = process.env.HEARTH_AGENT_BIN ?? join(REPO, 'target/debug/hearth-agent');
export const SCREENSHOTS = join(REPO, 'test-artifacts/screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** A port nobody listens on right now. */
async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/**
 * Starts `hearth-agent --dev` on a fresh data directory and waits for /api/health.
 * Returns { url, dataDir, ca, api, setupCode, stop }. Always call stop() (in `after`).
 *
 * Options: `systemBus: true` also starts a private D-Bus with mock systemd1, login1, hostname1,
 * timedate1 and NetworkManager (agent/examples/mock_system_bus.rs) and points the agent at it;
 * `systemBus: { networkManager: false }` leaves NetworkManager out. The agent then has
 * `systemCalls()` (what the mocks recorded, e.g. "reboot false", "restart docker.service
 * replace", "nm checkpoint …") and `waitForSystemCall(pattern)`. `config` adds drop-in keys
 * ({ journalctl: path }).
 * `dataDir`: start on that directory (an agent restarted on the data of an earlier one); it is
 * left in place by stop().
 */
export async function startAgent(options = {}) {
  if (!existsSync(AGENT_BIN)) {
    throw new Error(`no agent binary at ${AGENT_BIN}: build it or set HEARTH_AGENT_BIN`);
  }
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'hearth-web-test-')));
  const port = await freePort();
  const url = `https://127.0.0.1:${port}`;
  const bus = options.systemBus ? await startSystemBus(options.systemBus.networkManager !== false) : null;
  const extraArgs = await configDropIn(dataDir, { ...options.config, ...(bus && { system_bus_address: bus.address }) });
  const child = spawn(AGENT_BIN, ['--dev', '--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  let exited = null;
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit); // even when the test runner is interrupted
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    process.off('exit', killOnExit);
  });

  const stop = async () => {
    if (exited === null) {
      child.kill('SIGTERM');
      const deadline = Date.now() + 5000;
      while (exited === null && Date.now() < deadline) await sleep(50);
      if (exited === null) child.kill('SIGKILL');
    }
    await bus?.stop();
    if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
  };

  try {
    const caPath = join(dataDir, 'tls/ca.crt');
    let ca = null;
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited !== null) throw new Error(`agent exited early (${JSON.stringify(exited)}):\n${log}`);
      if (Date.now() > deadline) throw new Error(`agent did not answer /api/health in 60 s:\n${log}`);
      if (ca === null && existsSync(caPath)) ca = await readFile(caPath);
      if (ca !== null) {
        const res = await call({ url, ca }, 'GET', '/api/health').catch(() => null);
        if (res?.status === 200) break;
      }
      await sleep(100);
    }
    const agent = { url, dataDir, ca, log: () => log, stop };
    if (bus) {
      agent.systemCalls = () => [...bus.calls];
      agent.waitForSystemCall = bus.waitForCall;
    }
    // The file is for people ("Hearth setup code: ABCD-EFGH"); the code is its last word.
    agent.setupCode = async () => {
      const text = await readFile(join(dataDir, 'setup-code'), 'utf8');
      return text.trim().split(/\s+/).pop();
    };
    return agent;
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The start most specs share: an agent (`agent`: the options of startAgent) whose device an admin
 * claimed through the API (unless `claim: false`), Chromium (`browserArgs`: extra flags) and one
 * page, signed in at `signInAt` ([path, heading], as signIn) when given.
 * Returns { agent, admin, browser, page, problems, teardown }; call teardown() in `after`: it
 * closes the browser and stops the agent. A step that fails stops what was started, then throws.
 */
export async function setup({ agent: agentOptions = {}, claim = true, browserArgs, signInAt } = {}) {
  const fixture = { agent: null, admin: null, browser: null, page: null, problems: null };
  fixture.teardown = async () => {
    await fixture.browser?.close();
    await fixture.agent?.stop();
  };
  try {
    fixture.agent = await startAgent(agentOptions);
    if (claim) fixture.admin = await claimByApi(fixture.agent);
    fixture.browser = await launchBrowser({ args: browserArgs });
    ({ page: fixture.page, problems: fixture.problems } = await openPage(fixture.browser, fixture.agent));
    if (signInAt) await signIn(fixture.page, fixture.admin, ...signInAt);
  } catch (e) {
    await fixture.teardown();
    throw e;
  }
  return fixture;
}

export const MOCK_BUS_BIN =
  process.env.HEARTH_MOCK_BUS_BIN ?? join(dirname(AGENT_BIN), 'examples/mock_system_bus');

/** Writes `keys` as a TOML drop-in; returns the agent arguments that read it ([] for none). */
async function configDropIn(dataDir, keys) {
  const entries = Object.entries(keys ?? {});
  if (entries.length === 0) return [];
  const dir = join(dataDir, 'agent.d');
  await mkdir(dir, { recursive: true });
  // JSON strings, booleans, numbers and arrays of them are valid TOML values.
  await writeFile(join(dir, '50-test.toml'), entries.map(([k, v]) => `${k} = ${JSON.stringify(v)}\n`).join(''));
  return ['--config-dir', dir];
}

/** Starts the mock system bus; resolves once it printed its address. */
async function startSystemBus(networkManager) {
  if (!existsSync(MOCK_BUS_BIN)) {
    throw new Error(`no mock bus at ${MOCK_BUS_BIN}: cargo build -p hearth-agent --examples, or set HEARTH_MOCK_BUS_BIN`);
  }
  const child = spawn(MOCK_BUS_BIN, networkManager ? [] : ['--without-network-manager'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.on('exit', killOnExit);
  let exited = false;
  child.on('exit', () => {
    exited = true;
    process.off('exit', killOnExit);
  });
  const calls = [];
  let address = null;
  let buffer = '';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    buffer += d;
    let nl;
    while ((nl = buffer.indexOf('\n')) !== -1) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (address === null) address = line;
      else if (line.startsWith('call ')) calls.push(line.slice(5));
    }
  });
  const deadline = Date.now() + 20_000;
  while (address === null) {
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the mock system bus did not start:\n${stderr}`);
    }
    await sleep(50);
  }
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const until = Date.now() + 5000;
    while (!exited && Date.now() < until) await sleep(50);
    if (!exited) child.kill('SIGKILL');
  };
  /** Waits (up to 10 s) for a recorded call matching `pattern`; returns it. */
  const waitForCall = async (pattern) => {
    const until = Date.now() + 10_000;
    for (;;) {
      const found = calls.find((c) => pattern.test(c));
      if (found) return found;
      if (Date.now() > until) throw new Error(`no system call matching ${pattern}; got: ${calls.join(' | ')}`);
      await sleep(50);
    }
  };
  return { address, calls, stop, waitForCall };
}

/**
 * One HTTPS call from node to the agent, trusting only its own CA.
 * `jar` (optional) is a Map of cookie name → value, filled from Set-Cookie and sent back.
 */
export function call(agent, method, path, { body, jar, csrf } = {}) {
  const target = new URL(path, agent.url);
  const headers = { Accept: 'application/json' };
  const payload = body === undefined ? undefined : JSON.stringify(body);
  if (payload !== undefined) headers['Content-Type'] = 'application/json';
  if (csrf) headers['X-CSRF-Token'] = csrf;
  if (jar?.size) headers.Cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  return new Promise((ok, fail) => {
    const req = httpsRequest(
      { hostname: target.hostname, port: target.port, path: target.pathname, method, headers, ca: agent.ca },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          for (const c of res.headers['set-cookie'] ?? []) {
            const [pair] = c.split(';');
            const eq = pair.indexOf('=');
            jar?.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
          }
          let json = null;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            // not JSON (the CA certificate, HTML)
          }
          ok({ status: res.statusCode, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', fail);
    req.setTimeout(15_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** Claims the device through the API (for tests about other screens). Returns the admin's session. */
export async function claimByApi(agent, username = 'admin', password = 'correct horse battery') {
  const jar = new Map();
  const res = await call(agent, 'POST', '/api/v1/setup/claim', {
    // "Ask me first": a test device never installs or restarts by itself because the run falls
    // into the default maintenance window (out-of-the-box.test.mjs claims with the default).
    body: {
      code: await agent.setupCode(),
      username,
      password,
      hostname: 'hearth-test',
      timezone: 'Etc/UTC',
      updates: { automatic: false },
    },
    jar,
  });
  if (res.status !== 201) throw new Error(`claim failed: ${res.status} ${res.text}`);
  return { jar, csrf: res.json.csrf_token, username, password };
}

/** `options.args`: extra Chromium flags (e.g. --host-resolver-rules for app links). */
export async function launchBrowser(options = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      ...(options.args ?? []),
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-gpu',
    ],
  });
}

/**
 * A fresh browser context and page on the agent. `problems` collects CSP violations, uncaught
 * page errors and console errors; call assertClean(problems) at the end of the test.
 */
export async function openPage(browser, agent, options = {}) {
  const context = await browser.newContext({
    baseURL: agent.url,
    ignoreHTTPSErrors: true,
    viewport: options.viewport ?? { width: 1280, height: 860 },
    colorScheme: options.colorScheme ?? 'light',
    locale: 'en-US',
  });
  // Runs through the DevTools protocol, outside the page's CSP, so it can report violations.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI} (${e.sourceFile}:${e.lineNumber})`);
    });
  });
  context.setDefaultTimeout(10_000);
  const page = await context.newPage();
  const problems = [];
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|CSP violation/i.test(text)) problems.push(`CSP: ${text}`);
    else if (msg.type() === 'error' && !expectedConsoleError(text)) {
      const url = msg.location()?.url;
      problems.push(`console error: ${text}${url ? ` (${url})` : ''}`);
    }
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  return { context, page, problems };
}

/**
 * Chromium logs every non-2xx fetch as a console error ("Failed to load resource: ... 401").
 * Those are answers the dashboard handles (wrong code, wrong password, no session yet, a name
 * already taken, an edit conflict, a file too large for the editor, a request that matches the
 * API document but is refused for its content or the device's state: 422).
 */
function expectedConsoleError(text) {
  return (
    /Failed to load resource: the server responded with a status of (400|401|403|404|409|412|413|422|429)/.test(text) ||
    // The test machine's interfaces change under Chromium (other test suites and the apps
    // tests' containers add and remove virtual links); it then drops open connections such as
    // the event stream, which reconnects. Chromium reports the drop as either error.
    /Failed to load resource: net::ERR_(NETWORK_CHANGED|SOCKET_NOT_CONNECTED)/.test(text)
  );
}

/**
 * Fails on any problem the page reported. `allowStatus` lists HTTP statuses this step expects
 * (Chromium logs them as console errors); they are dropped from `problems` so later steps start clean.
 */
export function assertClean(problems, { allowStatus = [] } = {}) {
  if (allowStatus.length > 0) {
    const expected = new RegExp(`status of (${allowStatus.join('|')}) `);
    problems.splice(0, problems.length, ...problems.filter((p) => !expected.test(p)));
  }
  if (problems.length > 0) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
}

/**
 * Waits for the page to reach the heading `name`; when an alert shows up instead, fails at
 * once with its text (so a refused login says why rather than timing out).
 */
/**
 * Opens `path`, signs in on the login form it shows and waits for `heading` (skipped when
 * null: the caller checks what the user sees instead, e.g. a member refused a page).
 */
export async function signIn(page, { username, password }, path = '/', heading = 'Home') {
  await page.goto(path);
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (heading) await expectHeading(page, heading);
}

export async function expectHeading(page, name) {
  const heading = page.getByRole('heading', { name, level: 1 });
  const alert = page.getByRole('alert');
  await heading.or(alert).first().waitFor();
  if (!(await heading.isVisible())) {
    throw new Error(`expected the "${name}" page, got the alert: ${await alert.first().textContent()}`);
  }
}

/** Waits until the home screen's CPU chart holds at least `n` samples. */
export async function waitForChartPoints(page, n) {
  await page.waitForFunction(
    (min) => Number(document.querySelector('svg[data-points]')?.getAttribute('data-points')) >= min,
    n,
    { timeout: 20_000 },
  );
}

const require = createRequire(import.meta.url);
let axeSource = null;

/**
 * Runs axe-core on the page and fails on serious or critical accessibility violations
 * (missing labels, contrast, landmarks, ARIA misuse). The script is evaluated through the
 * DevTools protocol, so the page's CSP is not loosened for it.
 */
export async function assertAccessible(page, what) {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility problems on ${what}`);
}

export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.evaluate(() => window.scrollTo(0, 0)); // a sticky header otherwise lands mid-page
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** Decodes RFC 4648 base32 (no padding needed). */
export function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of text.replace(/=+$/, '').toUpperCase()) {
    const idx = alphabet.indexOf(ch);
    if (idx === -1) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | idx;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 TOTP: HMAC-SHA1, 6 digits, 30-second steps; `stepOffset` moves to a later step. */
export function totp(secretBase32, stepOffset = 0, now = Date.now()) {
  const step = BigInt(Math.floor(now / 1000 / 30) + stepOffset);
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(step);
  const digest = createHmac('sha1', base32Decode(secretBase32)).update(counter).digest();
  const offset = digest[19] & 0x0f;
  const bin = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 1_000_000).padStart(6, '0');
}
