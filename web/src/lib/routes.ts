// The dashboard's pages: one list that the navigation, the router and the page titles share.

import type { MessageKey } from './i18n';

export type RouteId =
  | 'home'
  | 'apps'
  | 'app-store'
  | 'app-custom'
  | 'app-stores'
  | 'files'
  | 'storage'
  | 'network'
  | 'services'
  | 'updates'
  | 'settings'
  | 'users'
  | 'account'
  | 'about';

export interface RouteDef {
  id: RouteId;
  path: string;
  title: MessageKey;
  /** Pages that later work fills in; until then they say so. */
  comingSoon?: boolean;
  adminOnly?: boolean;
  /** The page also answers addresses below its path (/files/home/Photos). */
  nested?: boolean;
  /** A sub-page: not in the navigation, which marks the parent as current instead. */
  parent?: RouteId;
}

export const ROUTES: readonly RouteDef[] = [
  { id: 'home', path: '/', title: 'nav.home' },
  { id: 'apps', path: '/apps', title: 'nav.apps', nested: true },
  { id: 'app-store', path: '/apps/store', title: 'apps.store_title', nested: true, parent: 'apps' },
  { id: 'app-custom', path: '/apps/custom', title: 'apps.custom_title', parent: 'apps' },
  { id: 'app-stores', path: '/apps/stores', title: 'stores.title', parent: 'apps', adminOnly: true },
  { id: 'files', path: '/files', title: 'nav.files', nested: true },
  { id: 'storage', path: '/storage', title: 'nav.storage', adminOnly: true },
  { id: 'network', path: '/network', title: 'nav.network', adminOnly: true },
  { id: 'services', path: '/services', title: 'nav.services', adminOnly: true },
  { id: 'updates', path: '/updates', title: 'nav.updates', adminOnly: true },
  { id: 'settings', path: '/settings', title: 'nav.settings', adminOnly: true },
  { id: 'users', path: '/users', title: 'nav.users', adminOnly: true },
  { id: 'account', path: '/account', title: 'nav.account' },
  { id: 'about', path: '/about', title: 'nav.about' },
];

/**
 * The route for a location path; trailing slashes are ignored; null when none matches. An
 * exact path wins, then the nested route with the longest path (/apps/store/x is the store's).
 */
export function matchRoute(pathname: string): RouteDef | null {
  const normalized = pathname.length > 1 ? pathname.replace(/\/+$/, '') || '/' : pathname;
  const exact = ROUTES.find((r) => r.path === normalized);
  if (exact) return exact;
  const nested = ROUTES.filter((r) => r.nested === true && normalized.startsWith(`${r.path}/`));
  return nested.sort((a, b) => b.path.length - a.path.length)[0] ?? null;
}
