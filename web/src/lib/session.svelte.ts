// Which screen the dashboard is in (claim wizard, login, signed in) and who is signed in.
// The session itself is an HttpOnly cookie; this only keeps the user and the CSRF token.

import { ApiClient, ApiError } from './api';
import { errorText } from './i18n';
import { live } from './live.svelte';
import type { SessionGrant, SetupInfo, User } from './types';

export type Phase = 'loading' | 'unclaimed' | 'login' | 'ready' | 'unreachable';

class Session {
  phase = $state<Phase>('loading');
  user = $state<User | null>(null);
  setup = $state<SetupInfo | null>(null);
  /** Why the agent could not be reached at start-up. */
  problem = $state('');
  /** Set when the session ended without the user logging out (expired, revoked). */
  expired = $state(false);

  readonly api = new ApiClient({ onUnauthenticated: () => this.lost() });

  /** Learns whether the device is claimed and whether a session exists. */
  async start(): Promise<void> {
    this.phase = 'loading';
    try {
      this.setup = await this.api.setup();
      if (!this.setup.claimed) {
        this.phase = 'unclaimed';
        return;
      }
      this.signedIn(await this.api.session());
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        this.phase = 'login';
        this.expired = false;
        return;
      }
      this.problem = errorText(e);
      this.phase = 'unreachable';
    }
  }

  signedIn(grant: SessionGrant): void {
    this.api.setCsrfToken(grant.csrf_token);
    this.user = grant.user;
    this.expired = false;
    this.phase = 'ready';
    live.start(() => this.check());
  }

  /** Re-reads the session (e.g. after TOTP changes); false when it is gone. */
  async check(): Promise<boolean> {
    try {
      const info = await this.api.session();
      this.api.setCsrfToken(info.csrf_token);
      this.user = info.user;
      return true;
    } catch {
      return this.phase === 'ready';
    }
  }

  /** Ends the session on the server; locally it ends even if the server cannot be reached. */
  async logout(): Promise<void> {
    try {
      await this.api.logout();
    } catch {
      // The cookie expires on its own; nothing more the dashboard can do.
    }
    this.end(false);
  }

  private lost(): void {
    if (this.phase === 'ready') this.end(true);
  }

  private end(expired: boolean): void {
    this.api.setCsrfToken(null);
    this.user = null;
    this.expired = expired;
    this.phase = 'login';
    live.stop();
  }
}

export const session = new Session();
