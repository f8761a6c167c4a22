// History-API routing: same-origin links to dashboard pages change the URL without a reload.
// The agent answers index.html for any unknown non-/api path, so deep links work too.

class Router {
  path = $state(typeof location === 'undefined' ? '/' : location.pathname);

  navigate(path: string, replace = false): void {
    if (path === this.path) return;
    if (replace) history.replaceState(null, '', path);
    else history.pushState(null, '', path);
    this.path = path;
  }

  /** Starts listening to back/forward and link clicks; returns the function that stops it. */
  start(): () => void {
    const onPop = () => {
      this.path = location.pathname;
    };
    const onClick = (event: MouseEvent) => {
      const path = interceptablePath(event);
      if (path === null) return;
      event.preventDefault();
      this.navigate(path);
    };
    window.addEventListener('popstate', onPop);
    document.addEventListener('click', onClick);
    return () => {
      window.removeEventListener('popstate', onPop);
      document.removeEventListener('click', onClick);
    };
  }
}

/** The in-app path a click should go to, or null when the browser should handle it. */
function interceptablePath(event: MouseEvent): string | null {
  if (event.defaultPrevented || event.button !== 0) return null;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return null;
  const anchor = (event.target as Element | null)?.closest?.('a');
  if (!anchor || anchor.target || anchor.hasAttribute('download')) return null;
  const url = new URL(anchor.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return null;
  if (url.pathname === location.pathname && url.hash) return null; // in-page anchor (skip link)
  return url.pathname;
}

export const router = new Router();
