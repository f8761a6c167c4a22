// Light or dark: the system's preference until the user picks one, then the pick (kept in
// localStorage). The choice lands on <html data-theme>, which the style sheet reads.

export type Theme = 'light' | 'dark';

const STORAGE_KEY = 'hearth.theme';

export function storedTheme(): Theme | null {
  try {
    const v = localStorage.getItem(STORAGE_KEY);
    return v === 'light' || v === 'dark' ? v : null;
  } catch {
    return null; // storage disabled
  }
}

export function systemTheme(): Theme {
  return window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
}

export function effectiveTheme(): Theme {
  return storedTheme() ?? systemTheme();
}

export function applyTheme(theme: Theme | null): void {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}

export function saveTheme(theme: Theme): void {
  try {
    localStorage.setItem(STORAGE_KEY, theme);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  applyTheme(theme);
}
