import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR, errorFromResponse } from '../../src/lib/api';
import {
  LogBuffer,
  actionCheck,
  readAgain,
  installCheck,
  outliveDisconnect,
  removalCheck,
  updateCheck,
  PullTracker,
  appIdProblem,
  applyStateEvent,
  consentFindings,
  formFromServices,
  installFormFromPlan,
  keepConsent,
  matchesCatalog,
  missingConsent,
  parseInstalledAppPath,
  parseStoreAppPath,
  runState,
  settingsFromForm,
  sortCatalog,
  splitNdjson,
  storeAppPath,
  storeInstallBody,
  storeSource,
  toggleConsent,
  unsetVariables,
} from '../../src/lib/apps';
import type { AppView, CatalogEntry, ContainerStatus, Finding, Plan, ServiceSettings } from '../../src/lib/types';

const entry = (over: Partial<CatalogEntry>): CatalogEntry => ({
  store: 'main',
  app: 'X',
  title: 'X',
  tagline: '',
  category: null,
  version: '1',
  icon: null,
  available: true,
  architectures: [],
  ...over,
});

describe('catalog', () => {
  const jelly = entry({ app: 'Jellyfin', title: 'Jellyfin', tagline: 'Media server', category: 'Media' });
  const pihole = entry({ app: 'Pi-hole', title: 'Pi-hole', tagline: 'Blocks ads', category: 'Network' });

  it('matches title, tagline and folder name without case, and the category', () => {
    expect(matchesCatalog(jelly, 'MEDIA', '')).toBe(true);
    expect(matchesCatalog(jelly, 'jelly', 'media')).toBe(true);
    expect(matchesCatalog(jelly, 'jelly', 'Network')).toBe(false);
    expect(matchesCatalog(pihole, 'ads', '')).toBe(true);
    expect(matchesCatalog(pihole, 'media', '')).toBe(false);
    expect(matchesCatalog(pihole, '  ', '')).toBe(true);
  });

  it('puts unavailable apps after available ones, each by title', () => {
    const arm = entry({ app: 'Aardvark', title: 'aardvark', available: false, architectures: ['arm'] });
    expect(sortCatalog([pihole, arm, jelly]).map((e) => e.app)).toEqual(['Jellyfin', 'Pi-hole', 'Aardvark']);
  });

  it('round-trips store page addresses with odd names', () => {
    const path = storeAppPath('my store', 'A/B#1');
    expect(path).toBe('/apps/store/my%20store/A%2FB%231');
    expect(parseStoreAppPath(path)).toEqual({ store: 'my store', app: 'A/B#1' });
    expect(parseStoreAppPath('/apps/store')).toBeNull();
    expect(parseStoreAppPath('/apps/store/%E0%A4%A/x')).toBeNull();
    expect(parseInstalledAppPath('/apps/webapp')).toBe('webapp');
    expect(parseInstalledAppPath('/apps/store')).toBeNull();
    expect(parseInstalledAppPath('/apps/custom/')).toBeNull();
    expect(parseInstalledAppPath('/apps')).toBeNull();
  });
});

describe('pull progress', () => {
  const ev = (layer: string, message: string, current?: number, total?: number) => ({
    app: 'web',
    operation: 'install',
    phase: 'pull',
    message,
    image: 'img:1',
    layer,
    current,
    total,
  });

  it('adds up bytes per layer and counts finished layers', () => {
    const p = new PullTracker('web');
    p.accept({ app: 'web', operation: 'install', phase: 'pull', message: 'pulling img:1' });
    p.accept(ev('a', 'Downloading', 100, 1000));
    p.accept(ev('b', 'Downloading', 50, 500));
    p.accept(ev('a', 'Downloading', 600, 1000));
    expect(p.summary()).toMatchObject({ current: 650, total: 1500, layers: 2, layersDone: 0, step: 'pulling img:1' });
    // Extraction reports its own current/total: the layer counts as downloaded, sizes stay.
    p.accept(ev('a', 'Extracting', 10, 99999));
    p.accept(ev('a', 'Pull complete', 0, 0));
    p.accept(ev('b', 'Already exists', 0, 0));
    expect(p.summary()).toMatchObject({ current: 1500, total: 1500, layers: 2, layersDone: 2 });
  });

  it('ignores other apps and never goes backwards after a layer is done', () => {
    const p = new PullTracker('web');
    expect(p.accept({ ...ev('a', 'Downloading', 5, 10), app: 'other' })).toBe(false);
    p.accept(ev('a', 'Download complete', 0, 0));
    p.accept(ev('a', 'Downloading', 1, 10));
    expect(p.list()[0]).toMatchObject({ done: true, current: 10, total: 10 });
  });
});

describe('logs', () => {
  it('splits NDJSON across chunk borders and keeps the unfinished line', () => {
    const a = splitNdjson('', '{"container":"web","stream":"stdout","text":"one\\n"}\n{"container":"db","str');
    expect(a.lines).toEqual([{ container: 'web', stream: 'stdout', text: 'one' }]);
    const b = splitNdjson(a.rest, 'eam":"stderr","text":"two"}\n{"error":"gone"}\nnot json\n');
    expect(b.lines).toEqual([{ container: 'db', stream: 'stderr', text: 'two' }]);
    expect(b.errors).toEqual(['gone', 'not json']);
    expect(b.rest).toBe('');
  });

  it('keeps the last lines with stable numbers', () => {
    const buf = new LogBuffer(3);
    buf.push([1, 2, 3, 4].map((n) => ({ container: 'c', stream: 'stdout' as const, text: String(n) })));
    buf.push([{ container: 'c', stream: 'stdout', text: '5' }]);
    expect(buf.lines().map((l) => [l.n, l.text])).toEqual([
      [2, '3'],
      [3, '4'],
      [4, '5'],
    ]);
    expect(buf.dropped).toBe(2);
    buf.clear();
    expect(buf.lines()).toEqual([]);
  });
});

const container = (state: ContainerStatus['state']): ContainerStatus => ({
  id: 'x',
  name: 'n',
  state,
  health: 'none',
  image_id: 'i',
  labels: {},
});
const view = (id: string, state: string, containers: ContainerStatus[]): AppView => ({
  id,
  source: { kind: 'custom' },
  state,
  containers,
  findings: [],
  consents: [],
  installed_at: '',
  updated_at: '',
  update_available: false,
  updated_images: [],
  auto_update: false,
});

describe('app state', () => {
  it('reads the record state, then the containers', () => {
    expect(runState(view('a', 'installed', [container('running'), container('running')]))).toBe('running');
    expect(runState(view('a', 'installed', [container('running'), container('exited')]))).toBe('partial');
    expect(runState(view('a', 'installed', [container('exited')]))).toBe('stopped');
    expect(runState(view('a', 'installed', []))).toBe('stopped');
    expect(runState(view('a', 'updating', [container('running')]))).toBe('updating');
  });

  it('shows an app the policy holds stopped as held, and refetches on the held event', () => {
    const held = {
      ...view('a', 'installed', [container('exited')]),
      held: { reason: 'refused' as const, message: 'm', at: '' },
    };
    expect(runState(held)).toBe('held');
    const apps = [view('a', 'installed', [container('running')])];
    expect(applyStateEvent(apps, 'a', 'held')).toEqual({ apps, refetch: true });
  });

  it('applies state events and asks for a fetch for unknown apps', () => {
    const apps = [view('a', 'installed', [container('running')])];
    const stopped = applyStateEvent(apps, 'a', 'stopped');
    expect(runState(stopped.apps[0])).toBe('stopped');
    expect(runState(applyStateEvent(apps, 'a', 'updating').apps[0])).toBe('updating');
    expect(applyStateEvent(apps, 'a', 'removed').apps).toEqual([]);
    expect(applyStateEvent(apps, 'b', 'installing')).toEqual({ apps, refetch: true });
  });
});

describe('settings form → PATCH body', () => {
  const before: ServiceSettings[] = [
    {
      service: 'web',
      image: 'img',
      env: { GREETING: 'hi', TZ: 'UTC' },
      ports: { '8080/tcp': 28080 },
      volumes: { '/data': '/srv/app/web' },
    },
  ];

  it('sends nothing for an untouched form', () => {
    expect(settingsFromForm({}, before, formFromServices(before))).toEqual({ settings: {}, problems: [] });
  });

  it('sends only changed values, on top of the overrides already there', () => {
    const form = formFromServices(before);
    form[0].env[0].value = 'hello';
    form[0].ports[0].host = '28081';
    form[0].volumes[0].source = '/srv/other ';
    const out = settingsFromForm({ env: { db: { X: '1' } } }, before, form);
    expect(out.problems).toEqual([]);
    expect(out.settings).toEqual({
      env: { db: { X: '1' }, web: { GREETING: 'hello' } },
      ports: { web: { '8080/tcp': 28081 } },
      volumes: { web: { '/data': '/srv/other' } },
    });
  });

  it('reports bad ports, relative folders and bad variable names', () => {
    const form = formFromServices(before);
    form[0].ports[0].host = '70000';
    form[0].volumes[0].source = 'relative';
    form[0].env.push({ key: 'BAD NAME', value: 'x' });
    const out = settingsFromForm({}, before, form);
    expect(out.problems.map((p) => p.problem).sort()).toEqual(['env_name', 'path', 'port']);
  });
});

describe('install dialog → request', () => {
  const plan: Plan = {
    app_id: 'webapp',
    containers: [],
    host_folders: [],
    networks: [],
    volumes: [],
    files: [],
    ports: [
      { service: 'web', container_port: 8080, protocol: 'tcp', requested: 28080, host_port: 28081 },
      { service: 'web', container_port: 9000, protocol: 'tcp', requested: null, host_port: null },
    ],
    architecture_supported: true,
    findings: [
      { id: 'privileged:web', kind: 'privileged', service: 'web', subject: '', message: 'runs privileged' },
      { id: 'device:web:/dev/ttyUSB0', kind: 'device', service: 'web', subject: '/dev/ttyUSB0', message: 'uses a device' },
    ],
    warnings: ['variable OPENAI_KEY is not set; an empty string is used instead', 'services.web: something'],
  };

  it('offers the planned host ports and the unset variables', () => {
    const form = installFormFromPlan(plan);
    expect(form.ports).toEqual([{ service: 'web', key: '8080/tcp', host: '28081', requested: 28081 }]);
    expect(form.vars).toEqual([{ name: 'OPENAI_KEY', value: '' }]);
    expect(unsetVariables(['nothing here'])).toEqual([]);
  });

  it('maps changed ports and filled variables, with consent', () => {
    const form = installFormFromPlan(plan);
    expect(storeInstallBody('main', 'WebApp', form, []).body).toEqual({ store: 'main', app: 'WebApp', settings: {}, consent: [] });
    form.ports[0].host = '30000';
    form.vars[0].value = 'k';
    const out = storeInstallBody('main', 'WebApp', form, ['privileged:web']);
    expect(out.body.settings).toEqual({ ports: { web: { '8080/tcp': 30000 } }, vars: { OPENAI_KEY: 'k' } });
    expect(out.body.consent).toEqual(['privileged:web']);
    form.ports[0].host = 'x';
    expect(storeInstallBody('main', 'WebApp', form, []).problems).toEqual(['web:8080/tcp']);
  });

  it('needs a tick per finding and drops ticks for findings that went away', () => {
    let consent = toggleConsent(new Set(), 'privileged:web', true);
    expect(missingConsent(plan.findings, consent).map((f) => f.id)).toEqual(['device:web:/dev/ttyUSB0']);
    consent = toggleConsent(consent, 'gone:web', true);
    expect([...keepConsent(plan.findings, consent)]).toEqual(['privileged:web']);
    expect([...toggleConsent(consent, 'privileged:web', false)]).toEqual(['gone:web']);
  });

  it('reads the findings of a consent_required refusal from its details', async () => {
    const findings = [
      { id: 'privileged:web', kind: 'privileged', service: 'web', subject: '', message: 'runs privileged' },
      { id: 'host_path:web:/etc', kind: 'host_path', service: 'web', subject: '/etc', message: 'bind mount /etc' },
    ] satisfies Finding[];
    const body = {
      error: { code: 'consent_required', message: 'the app needs consent', details: { kind: 'findings', findings } },
    };
    const refusal = await errorFromResponse(new Response(JSON.stringify(body), { status: 409 }));
    expect(refusal.code).toBe('consent_required');
    expect(consentFindings(refusal)).toEqual(findings);
    expect(consentFindings(new ApiError(409, 'conflict', 'no details'))).toEqual([]);
  });

  it('checks custom app ids like the agent', () => {
    expect(appIdProblem('my-app_1')).toBe(false);
    expect(appIdProblem('My App')).toBe(true);
    expect(appIdProblem('-x')).toBe(true);
    expect(appIdProblem('a'.repeat(64))).toBe(true);
  });
});

describe('calls that lose their connection', () => {
  const netErr = () => new ApiError(0, NETWORK_ERROR, 'Failed to fetch');
  const noSleep = async () => {};

  it('returns the answer when there is one, and passes other errors through', async () => {
    expect(await outliveDisconnect(async () => 1, async () => 2, { sleep: noSleep })).toBe(1);
    const conflict = new ApiError(409, 'consent_required', 'x');
    await expect(outliveDisconnect(async () => Promise.reject(conflict), async () => 2, { sleep: noSleep })).rejects.toBe(conflict);
  });

  it('asks until the operation is over after the connection dropped', async () => {
    const answers: (string | null | Error)[] = [null, netErr(), null, 'done'];
    let asked = 0;
    const out = await outliveDisconnect(
      async () => Promise.reject(netErr()),
      async () => {
        const a = answers[asked++];
        if (a instanceof Error) throw a;
        return a;
      },
      { sleep: noSleep },
    );
    expect(out).toBe('done');
    expect(asked).toBe(4);
  });

  it('sends the call again when nothing happens (the request may never have arrived)', async () => {
    let calls = 0;
    const call = async () => {
      calls += 1;
      if (calls === 1) throw netErr();
      if (calls === 2) throw new ApiError(409, 'app_exists', 'exists');
      return 'sent again';
    };
    const out = await outliveDisconnect(call, async () => null, {
      sleep: noSleep,
      resendAfter: 3,
      alreadyRunning: (e) => e.code === 'app_exists',
    });
    expect(out).toBe('sent again');
    expect(calls).toBe(3);
    await expect(outliveDisconnect(async () => Promise.reject(netErr()), async () => null, { sleep: noSleep, limit: 5 })).rejects.toThrow();
  });

  it('follows a lost install to running, or to its failure with the reason', async () => {
    const installing = view('a', 'installing', []);
    const installed = view('a', 'installed', [container('running')]);
    const seq = [installing, installing, installed];
    const get = async () => seq.shift()!;
    const check = installCheck(get, 'a', () => null);
    expect(await check()).toBeNull();
    expect(await check()).toBeNull();
    expect(await check()).toBe(installed);

    const gone = new ApiError(404, 'not_found', 'gone');
    const seq2: (AppView | ApiError)[] = [installing, gone];
    const failing = installCheck(
      async () => {
        const v = seq2.shift()!;
        if (v instanceof ApiError) throw v;
        return v;
      },
      'a',
      () => 'image pull failed',
    );
    expect(await failing()).toBeNull();
    await expect(failing()).rejects.toThrow('image pull failed');

    // Never seen: keep waiting (the record may not exist yet, or the request never arrived).
    const never = installCheck(async () => Promise.reject(gone), 'a', () => null);
    expect(await never()).toBeNull();
    expect(await never()).toBeNull();
  });

  it('knows when an uninstall or an update is over', async () => {
    const gone = new ApiError(404, 'not_found', 'gone');
    expect(await removalCheck(async () => Promise.reject(gone), 'a')()).toBe(true);
    expect(await removalCheck(async () => view('a', 'removing', []), 'a')()).toBeNull();
    expect(await removalCheck(async () => view('a', 'installed', []), 'a')()).toBeNull();
  });

  it('waits for an update to change the record (the agent pulls before it says "updating")', async () => {
    const before = { ...view('a', 'installed', []), updated_at: 't1' };
    const seq = [before, { ...before, state: 'updating' }, { ...before, updated_at: 't2' }];
    const check = updateCheck(async () => seq.shift()!, before);
    expect(await check()).toBeNull();
    expect(await check()).toBeNull();
    expect((await check())?.updated_at).toBe('t2');
    // A roll-back keeps updated_at but sets last_error.
    const rolled = updateCheck(async () => ({ ...before, last_error: 'rolled back' }), before);
    expect((await rolled())?.last_error).toBe('rolled back');
    // Unchanged: not done yet (still pulling, or the request is lost and will be sent again).
    expect(await updateCheck(async () => before, before)()).toBeNull();
  });

  it('waits for start and stop to reach the containers', async () => {
    const running = view('a', 'installed', [container('running')]);
    const exited = view('a', 'installed', [container('exited')]);
    expect(await actionCheck(async () => running, 'a', 'stop')()).toBeNull();
    expect(await actionCheck(async () => exited, 'a', 'stop')()).toBe(exited);
    expect(await actionCheck(async () => exited, 'a', 'start')()).toBeNull();
    expect(await actionCheck(async () => running, 'a', 'start')()).toBe(running);
    expect(await actionCheck(async () => exited, 'a', 'restart')()).toBe(exited);
  });
});

describe('reads that may be cut off', () => {
  it('tries a read again after a dropped connection, a few times', async () => {
    let n = 0;
    const flaky = async () => {
      n += 1;
      if (n < 3) throw new ApiError(0, NETWORK_ERROR, 'dropped');
      return 'ok';
    };
    expect(await readAgain(flaky, 5, async () => {})).toBe('ok');
    await expect(readAgain(async () => Promise.reject(new ApiError(0, NETWORK_ERROR, 'x')), 2, async () => {})).rejects.toThrow();
  });
});

describe('storeSource', () => {
  it('reads a folder on the device as a path and an https address as a URL', () => {
    expect(storeSource('  /media/usb1/AppStore ')).toEqual({ body: { path: '/media/usb1/AppStore' } });
    expect(storeSource('https://example.org/store.zip')).toEqual({ body: { url: 'https://example.org/store.zip' } });
    expect(storeSource('HTTPS://example.org/s.zip')).toEqual({ body: { url: 'HTTPS://example.org/s.zip' } });
  });

  it('refuses an empty field and web addresses without https', () => {
    expect(storeSource('   ')).toEqual({ error: 'empty' });
    expect(storeSource('http://example.org/store.zip')).toEqual({ error: 'https' });
    expect(storeSource('example.org/store.zip')).toEqual({ error: 'https' });
    expect(storeSource('ftp://example.org/store.zip')).toEqual({ error: 'https' });
  });
});
