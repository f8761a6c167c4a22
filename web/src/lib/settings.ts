// Pure helpers of the settings page: the time-zone search and the device's clock.

/** Zones whose name contains every word of `search` (case-insensitive, "_" as space); the
 * selected zone stays in the list so the select never loses it. */
export function filterZones(zones: readonly string[], search: string, selected: string): string[] {
  const words = search.toLowerCase().replace(/_/g, ' ').split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...zones];
  const shown = zones.filter((z) => {
    const name = z.toLowerCase().replace(/_/g, ' ');
    return words.every((w) => name.includes(w));
  });
  if (selected && zones.includes(selected) && !shown.includes(selected)) shown.unshift(selected);
  return shown;
}

/** A moment (ms since the epoch) as date and time in `zone`; in UTC if the zone is unknown. */
export function deviceClock(ms: number, zone: string, locale = 'en'): string {
  const options: Intl.DateTimeFormatOptions = { dateStyle: 'full', timeStyle: 'medium' };
  try {
    return new Intl.DateTimeFormat(locale, { ...options, timeZone: zone }).format(new Date(ms));
  } catch {
    return `${new Intl.DateTimeFormat(locale, { ...options, timeZone: 'UTC' }).format(new Date(ms))} (UTC)`;
  }
}
