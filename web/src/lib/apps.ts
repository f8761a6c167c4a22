// Pure logic behind the app pages: catalog filtering, pull progress, the log buffer, the
// settings form and the install request, an app's overall state. No I/O here: the screens call
// the API and feed the answers in, the unit tests feed captured answers in.

import { ApiError, NETWORK_ERROR } from './api';
import type {
  AddStoreRequest,
  AppProgressEvent,
  AppSettings,
  AppView,
  CatalogEntry,
  Finding,
  LogLine,
  Plan,
  ServiceSettings,
} from './types';

// ---- Catalog ----------------------------------------------------------------------------

/**
 * Whether an entry matches a search text and a category, the way the agent's search does
 * (case-insensitive substring of title, tagline or folder name; category compared without
 * case). Used to narrow the grid at once while the debounced server search is on its way.
 */
export function matchesCatalog(entry: CatalogEntry, q: string, category: string): boolean {
  if (category !== '' && (entry.category ?? '').toLowerCase() !== category.toLowerCase()) return false;
  const needle = q.trim().toLowerCase();
  if (needle === '') return true;
  return [entry.title, entry.tagline, entry.app].some((s) => s.toLowerCase().includes(needle));
}

/** Available apps first (each group by title), so greyed-out ones do not crowd the top. */
export function sortCatalog(entries: readonly CatalogEntry[]): CatalogEntry[] {
  return [...entries].sort(
    (a, b) =>
      Number(b.available) - Number(a.available) ||
      a.title.localeCompare(b.title, undefined, { sensitivity: 'base' }),
  );
}

/** The agent's copy of a store app's icon (the browser never loads third-party hosts). */
export function iconUrl(store: string, app: string): string {
  return `/api/v1/catalog/${encodeURIComponent(store)}/${encodeURIComponent(app)}/icon`;
}

/** The dashboard address of a store app's page. */
export function storeAppPath(store: string, app: string): string {
  return `/apps/store/${encodeURIComponent(store)}/${encodeURIComponent(app)}`;
}

/** Store and app from a store page address (`/apps/store/<store>/<app>`), or null. */
export function parseStoreAppPath(path: string): { store: string; app: string } | null {
  const m = /^\/apps\/store\/([^/]+)\/([^/]+)\/?$/.exec(path);
  if (!m) return null;
  try {
    return { store: decodeURIComponent(m[1]), app: decodeURIComponent(m[2]) };
  } catch {
    return null;
  }
}

/** The installed app id from `/apps/<id>` (not `store` or `custom`), or null. */
export function parseInstalledAppPath(path: string): string | null {
  const m = /^\/apps\/([^/]+)\/?$/.exec(path);
  if (!m || m[1] === 'store' || m[1] === 'custom') return null;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

export function isPlan(p: Plan | { error: string }): p is Plan {
  return !('error' in p);
}

// ---- Pull progress ----------------------------------------------------------------------

export interface LayerProgress {
  image: string;
  layer: string;
  status: string;
  current: number;
  total: number;
  done: boolean;
}

export interface ProgressSummary {
  /** Bytes downloaded over bytes known, across every layer that reported a size. */
  current: number;
  total: number;
  layers: number;
  layersDone: number;
  /** The latest step's message ("pulling …", "creating …", "waiting for …"). */
  step: string;
  phase: string;
}

/** Statuses after which a layer needs no more bytes. */
const LAYER_DONE = /^(download complete|pull complete|already exists|extracting|verifying checksum)/i;

/**
 * Folds `app_progress` events of one app into per-layer bytes and a total. Docker reports
 * `Downloading` with current/total, then `Extracting` (current/total of the extraction) and
 * `Pull complete` with no sizes: a finished layer counts as fully downloaded, and a layer's
 * size is the largest total it reported while downloading.
 */
export class PullTracker {
  private readonly layers = new Map<string, LayerProgress>();
  private step = '';
  private phase = '';

  constructor(readonly app: string) {}

  accept(e: AppProgressEvent): boolean {
    if (e.app !== this.app) return false;
    this.phase = e.phase;
    if (e.layer === undefined) {
      this.step = e.message;
      return true;
    }
    const key = `${e.image ?? ''} ${e.layer}`;
    const known = this.layers.get(key) ?? {
      image: e.image ?? '',
      layer: e.layer,
      status: '',
      current: 0,
      total: 0,
      done: false,
    };
    const done = known.done || LAYER_DONE.test(e.message);
    const downloading = /^downloading/i.test(e.message);
    const total = downloading ? Math.max(known.total, e.total ?? 0) : known.total;
    const current = done ? total : downloading ? Math.min(e.current ?? 0, total || Infinity) : known.current;
    this.layers.set(key, { ...known, status: e.message, total, current, done });
    return true;
  }

  list(): LayerProgress[] {
    return [...this.layers.values()];
  }

  summary(): ProgressSummary {
    let current = 0;
    let total = 0;
    let layersDone = 0;
    for (const l of this.layers.values()) {
      current += l.current;
      total += l.total;
      if (l.done) layersDone += 1;
    }
    return { current, total, layers: this.layers.size, layersDone, step: this.step, phase: this.phase };
  }
}

// ---- Logs -------------------------------------------------------------------------------

/** Splits streamed NDJSON text into complete lines, keeping the unfinished rest. */
export function splitNdjson(pending: string, chunk: string): { lines: LogLine[]; rest: string; errors: string[] } {
  const text = pending + chunk;
  const parts = text.split('\n');
  const rest = parts.pop() ?? '';
  const lines: LogLine[] = [];
  const errors: string[] = [];
  for (const part of parts) {
    if (part.trim() === '') continue;
    try {
      const v = JSON.parse(part) as Partial<LogLine> & { error?: string };
      if (typeof v.error === 'string') errors.push(v.error);
      else if (typeof v.text === 'string') {
        lines.push({
          container: String(v.container ?? ''),
          stream: v.stream === 'stderr' ? 'stderr' : 'stdout',
          text: v.text.replace(/\r?\n$/, ''),
        });
      }
    } catch {
      errors.push(part);
    }
  }
  return { lines, rest, errors };
}

export interface NumberedLine extends LogLine {
  /** Increasing number of the line since the viewer opened (a stable key). */
  n: number;
}

/** The last `capacity` log lines; older ones drop off the front. */
export class LogBuffer {
  private items: NumberedLine[] = [];
  private next = 0;
  dropped = 0;

  constructor(readonly capacity = 2000) {}

  push(lines: readonly LogLine[]): void {
    for (const l of lines) this.items.push({ ...l, n: this.next++ });
    const over = this.items.length - this.capacity;
    if (over > 0) {
      this.items.splice(0, over);
      this.dropped += over;
    }
  }

  clear(): void {
    this.items = [];
    this.dropped = 0;
  }

  lines(): NumberedLine[] {
    return [...this.items];
  }
}

// ---- App state --------------------------------------------------------------------------

export type RunState = 'running' | 'stopped' | 'partial' | 'installing' | 'updating' | 'removing' | 'failed' | 'held';

/** One word for a tile: the record's operation if one is going on, else its containers. */
export function runState(app: Pick<AppView, 'state' | 'containers' | 'held'>): RunState {
  if (app.state === 'installing' || app.state === 'updating' || app.state === 'removing') return app.state;
  if (app.held) return 'held';
  if (app.state === 'failed') return 'failed';
  const running = app.containers.filter((c) => c.state === 'running').length;
  if (app.containers.length > 0 && running === app.containers.length) return 'running';
  return running === 0 ? 'stopped' : 'partial';
}

/**
 * Applies an `app_state` event to the list: the event's word becomes the record state
 * (`running`/`stopped` adjust the containers' states so the tile reads right before the next
 * fetch); `removed` takes the app out. Returns whether the list needs a fresh fetch (an app
 * it does not know yet).
 */
export function applyStateEvent(apps: AppView[], app: string, state: string): { apps: AppView[]; refetch: boolean } {
  const known = apps.find((a) => a.id === app);
  if (state === 'removed') return { apps: apps.filter((a) => a.id !== app), refetch: false };
  if (!known) return { apps, refetch: true };
  // Held: the reason and findings come with the record, not with the event.
  if (state === 'held') return { apps, refetch: true };
  const containerState = state === 'running' ? 'running' : state === 'stopped' ? 'exited' : null;
  const recordState = state === 'running' || state === 'stopped' ? 'installed' : state;
  return {
    apps: apps.map((a) =>
      a.id !== app
        ? a
        : {
            ...a,
            state: recordState,
            containers: containerState ? a.containers.map((c) => ({ ...c, state: containerState })) : a.containers,
          },
    ),
    refetch: state === 'running' || state === 'stopped',
  };
}

/** Display name of an installed app: its store folder name, else its id. */
export function appTitle(app: Pick<AppView, 'id' | 'source'>): string {
  return app.source.kind === 'store' ? app.source.app : app.id;
}

// ---- Forms ------------------------------------------------------------------------------

/** What a settings form holds per service: text fields, as typed. */
export interface ServiceForm {
  service: string;
  env: { key: string; value: string }[];
  ports: { key: string; host: string }[];
  volumes: { target: string; source: string }[];
}

export function formFromServices(services: readonly ServiceSettings[]): ServiceForm[] {
  return services.map((s) => ({
    service: s.service,
    env: Object.entries(s.env).map(([key, value]) => ({ key, value })),
    ports: Object.entries(s.ports).map(([key, host]) => ({ key, host: String(host) })),
    volumes: Object.entries(s.volumes).map(([target, source]) => ({ target, source })),
  }));
}

/** A form problem: which service and field, and a message key. */
export interface FormProblem {
  service: string;
  field: string;
  problem: 'port' | 'path' | 'env_name';
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/**
 * The settings to PATCH: the current overrides, plus every value the user changed relative
 * to what the app runs with now. Unchanged values stay out, so a value that comes from the
 * compose file keeps following it on updates. Invalid input comes back as problems.
 */
export function settingsFromForm(
  current: AppSettings,
  before: readonly ServiceSettings[],
  form: readonly ServiceForm[],
): { settings: AppSettings; problems: FormProblem[] } {
  const settings: AppSettings = {
    vars: { ...(current.vars ?? {}) },
    env: clone2(current.env),
    ports: clone2(current.ports),
    volumes: clone2(current.volumes),
  };
  const problems: FormProblem[] = [];
  for (const f of form) {
    const was = before.find((s) => s.service === f.service);
    for (const { key, value } of f.env) {
      const name = key.trim();
      if (name === '') continue;
      if (!ENV_NAME.test(name)) {
        problems.push({ service: f.service, field: `env:${key}`, problem: 'env_name' });
        continue;
      }
      if (was?.env[name] !== value) (settings.env![f.service] ??= {})[name] = value;
    }
    for (const { key, host } of f.ports) {
      const port = Number(host.trim());
      if (!/^\d+$/.test(host.trim()) || port < 1 || port > 65535) {
        problems.push({ service: f.service, field: `port:${key}`, problem: 'port' });
        continue;
      }
      if (was?.ports[key] !== port) (settings.ports![f.service] ??= {})[key] = port;
    }
    for (const { target, source } of f.volumes) {
      const path = source.trim();
      if (!path.startsWith('/')) {
        problems.push({ service: f.service, field: `volume:${target}`, problem: 'path' });
        continue;
      }
      if (was?.volumes[target] !== path) (settings.volumes![f.service] ??= {})[target] = path;
    }
  }
  return { settings: prune(settings), problems };
}

function clone2<T>(m: Record<string, Record<string, T>> | undefined): Record<string, Record<string, T>> {
  return Object.fromEntries(Object.entries(m ?? {}).map(([k, v]) => [k, { ...v }]));
}

/** Drops empty maps, so an untouched form sends `{}`. */
function prune(s: AppSettings): AppSettings {
  const out: AppSettings = {};
  if (s.vars && Object.keys(s.vars).length) out.vars = s.vars;
  for (const k of ['env', 'ports', 'volumes'] as const) {
    const m = Object.fromEntries(Object.entries(s[k] ?? {}).filter(([, v]) => Object.keys(v).length > 0));
    if (Object.keys(m).length) (out as Record<string, unknown>)[k] = m;
  }
  return out;
}

/** The install dialog's fields: host ports per published port, variables the file leaves open. */
export interface InstallForm {
  ports: { service: string; key: string; host: string; requested: number | null }[];
  vars: { name: string; value: string }[];
}

/** Port fields from a plan: one per published port, filled with the port the plan gives. */
export function installFormFromPlan(plan: Plan): InstallForm {
  return {
    ports: plan.ports
      .filter((p) => p.host_port !== null && p.host_port !== undefined)
      .map((p) => ({
        service: p.service,
        key: `${p.container_port}/${p.protocol}`,
        host: String(p.host_port),
        requested: p.host_port ?? null,
      })),
    vars: unsetVariables(plan.warnings).map((name) => ({ name, value: '' })),
  };
}

/** Variables the planner warned about as unset (`variable FOO is not set…`). */
export function unsetVariables(warnings: readonly string[]): string[] {
  const names = new Set<string>();
  for (const w of warnings) {
    const m = /variable[s]? \$?\{?([A-Za-z_][A-Za-z0-9_]*)\}? (?:is )?not set/i.exec(w);
    if (m) names.add(m[1]);
  }
  return [...names];
}

/**
 * The install (and plan) request for a store app: changed ports become overrides, filled
 * variables become `vars`, and the consents given.
 */
export function storeInstallBody(
  store: string,
  app: string,
  form: InstallForm,
  consent: readonly string[],
): { body: { store: string; app: string; settings: AppSettings; consent: string[] }; problems: string[] } {
  const settings: AppSettings = {};
  const problems: string[] = [];
  for (const p of form.ports) {
    const n = Number(p.host.trim());
    if (!/^\d+$/.test(p.host.trim()) || n < 1 || n > 65535) {
      problems.push(`${p.service}:${p.key}`);
      continue;
    }
    if (n !== p.requested) ((settings.ports ??= {})[p.service] ??= {})[p.key] = n;
  }
  for (const v of form.vars) if (v.value !== '') (settings.vars ??= {})[v.name] = v.value;
  return { body: { store, app, settings, consent: [...consent] }, problems };
}

/** Findings not yet consented to (every one needs its own tick). */
export function missingConsent(findings: readonly Finding[], consent: ReadonlySet<string>): Finding[] {
  return findings.filter((f) => !consent.has(f.id));
}

/** The consent set with one finding ticked or unticked (a new set: the old one is state). */
export function toggleConsent(consent: ReadonlySet<string>, id: string, on: boolean): Set<string> {
  const next = new Set(consent);
  if (on) next.add(id);
  else next.delete(id);
  return next;
}

/** Keeps only consents that still match a finding of the current plan. */
export function keepConsent(findings: readonly Finding[], consent: ReadonlySet<string>): Set<string> {
  return new Set(findings.map((f) => f.id).filter((id) => consent.has(id)));
}

/** An app id the agent accepts for custom apps: lower-case letters, digits, `_` and `-`. */
export function appIdProblem(id: string): boolean {
  return !/^[a-z0-9][a-z0-9_-]{0,62}$/.test(id);
}

/** Debounces `fn`: only the last call in a quiet period of `ms` runs. */
export function debounce<A extends unknown[]>(fn: (...a: A) => void, ms: number): ((...a: A) => void) & { cancel(): void } {
  let timer: ReturnType<typeof setTimeout> | null = null;
  const wrapped = (...a: A) => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      fn(...a);
    }, ms);
  };
  wrapped.cancel = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  };
  return wrapped;
}

/**
 * The findings a `consent_required` refusal lists (in its `details`), for changes the dashboard
 * cannot plan ahead (settings edits, updates); none for any other error.
 */
export function consentFindings(e: ApiError): Finding[] {
  return e.details?.kind === 'findings' ? e.details.findings : [];
}

// ---- Calls that outlive their connection ------------------------------------------------

export type Sleep = (ms: number) => Promise<void>;
const realSleep: Sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

const isNetworkError = (e: unknown) => e instanceof ApiError && e.code === NETWORK_ERROR;

/** How a call that lost its connection is followed up. */
export interface FollowUp {
  sleep?: Sleep;
  /** How many checks at most (one a second). */
  limit?: number;
  /**
   * After this many checks in a row without an outcome, the call is sent again: a request
   * can be dropped before it reached the agent. Only for calls that are safe to repeat.
   */
  resendAfter?: number;
  /** Errors of a repeated call that mean "the first one arrived after all" (keep checking). */
  alreadyRunning?: (e: ApiError) => boolean;
}

/**
 * Runs a long call (install, update, uninstall). When its connection drops before the answer
 * (Chromium drops open connections whenever Docker adds or removes a network interface, which
 * installs and stops do), the operation goes on in the agent: `check` is then asked every
 * second until it returns the outcome (non-null) or throws.
 */
export async function outliveDisconnect<T>(
  call: () => Promise<T>,
  check: () => Promise<T | null>,
  { sleep = realSleep, limit = 900, resendAfter = Infinity, alreadyRunning = () => false }: FollowUp = {},
): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (!isNetworkError(e)) throw e;
  }
  let quiet = 0;
  for (let i = 0; i < limit; i++) {
    await sleep(1000);
    let out: T | null;
    try {
      out = await check();
    } catch (e) {
      if (isNetworkError(e)) continue;
      throw e;
    }
    if (out !== null) return out;
    if (++quiet >= resendAfter) {
      quiet = 0;
      try {
        return await call();
      } catch (e) {
        if (!(isNetworkError(e) || (e instanceof ApiError && alreadyRunning(e)))) throw e;
      }
    }
  }
  throw new ApiError(0, NETWORK_ERROR, 'no answer');
}

/** A read that may be cut off while containers come and go: tried again a few times. */
export function readAgain<T>(read: () => Promise<T>, tries = 5, sleep: Sleep = realSleep): Promise<T> {
  return outliveDisconnect(read, read, { sleep, limit: tries });
}

/**
 * The `check` for an install whose answer was lost: still `installing` → wait; another state →
 * done; gone after having been seen (a failed install removes its record) → failed, with the
 * reason from the `app_state` event when one arrived. Never seen → wait (the caller re-sends
 * the install after a while: the request may not have arrived).
 */
export function installCheck(
  get: (id: string) => Promise<AppView>,
  id: string,
  failure: () => string | null,
): () => Promise<AppView | null> {
  let seen = false;
  return async () => {
    try {
      const v = await get(id);
      if (v.state === 'installing') {
        seen = true;
        return null;
      }
      return v;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
      if (seen) throw new ApiError(422, 'install_failed', failure() ?? 'the install failed');
      return null;
    }
  };
}

/**
 * The `check` for an update or settings change: done when the app is no longer `updating` and
 * its record changed (`updated_at`, or a new `last_error` after a roll-back). The agent pulls
 * before it marks the app `updating`; an unchanged record may also mean the request never
 * arrived, which the caller covers by sending it again after a while.
 */
export function updateCheck(
  get: (id: string) => Promise<AppView>,
  before: Pick<AppView, 'id' | 'updated_at' | 'last_error'>,
): () => Promise<AppView | null> {
  return async () => {
    const v = await get(before.id);
    if (v.state === 'updating') return null;
    const changed = v.updated_at !== before.updated_at || (v.last_error ?? null) !== (before.last_error ?? null);
    return changed ? v : null;
  };
}

/** The `check` for start and stop: done when the containers got there (restart: at once). */
export function actionCheck(
  get: (id: string) => Promise<AppView>,
  id: string,
  action: 'start' | 'stop' | 'restart',
): () => Promise<AppView | null> {
  return async () => {
    const v = await get(id);
    const now = runState(v);
    if (action === 'stop') return now === 'stopped' ? v : null;
    if (action === 'start') return now === 'running' ? v : null;
    return v;
  };
}

/**
 * The `check` for an uninstall: done when the app is gone. Still there means still removing, or
 * the request never arrived (the caller sends it again after a while).
 */
export function removalCheck(get: (id: string) => Promise<AppView>, id: string): () => Promise<true | null> {
  return async () => {
    try {
      await get(id);
      return null;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return true;
      throw e;
    }
  };
}

/**
 * What the "add a store" field means: an absolute path is a store folder on the device, anything
 * else a store zip URL, which must be https (the agent checks the rest and says why).
 */
export function storeSource(input: string): { body: AddStoreRequest } | { error: 'empty' | 'https' } {
  const text = input.trim();
  if (text === '') return { error: 'empty' };
  if (text.startsWith('/')) return { body: { path: text } };
  if (!/^https:\/\//i.test(text)) return { error: 'https' };
  return { body: { url: text } };
}
