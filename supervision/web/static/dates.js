// The manage pages name nights and instants in the page's language; one place decides how.
const lang = document.documentElement.lang === 'sv' ? 'sv-SE' : 'en-GB';

/** A night (or any day) by its ISO date, e.g. "tis 3 dec"; noon so no zone shifts the day. */
export function dateText(iso, opts = { weekday: 'short', day: 'numeric', month: 'short' }) {
  return new Date(iso + 'T12:00:00').toLocaleDateString(lang, opts);
}

/** An instant (when a version was saved, a camera last seen) as date and time. */
export function stampText(iso) {
  return new Date(iso).toLocaleString(lang, { dateStyle: 'medium', timeStyle: 'short' });
}
