// Shared helpers: translated strings handed over by the page, CSRF-protected JSON calls.
export const strings = JSON.parse(document.getElementById('strings').textContent || '{}');

const lang = document.documentElement.lang || 'sv';
const plural = new Intl.PluralRules(lang);

/** The page's words for `key` with `values` put in by name, once, and only those given
 *  (as supervision.i18n.Translator does). A message about a number has a key per plural
 *  form, `<key>.one` and `<key>.other`, picked by `values.count`. */
export function t(key, values = {}) {
  let text = strings[key];
  if (text === undefined && typeof values.count === 'number') {
    text = strings[`${key}.${plural.select(values.count)}`] ?? strings[`${key}.other`];
  }
  return (text ?? key).replace(/\{(\w+)\}/g, (whole, name) =>
    (Object.hasOwn(values, name) && values[name] != null ? String(values[name]) : whole));
}

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';

/** A refusal from the service; its message is the sentence a person reads (the code is
 *  `body.detail.code`), so showing `error.message` can never lose the refusal's values. */
export class ApiError extends Error {
  constructor(status, body) {
    super(refusalText(body?.detail) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  get code() { return this.body?.detail?.code; }
}

/** The words of a refusal's `detail`: the service's own sentence, already in the page's
 *  language with every value (and the words for coded values) put in; else the page's
 *  words for its code with its values; a validation error's list as its messages. */
function refusalText(detail) {
  if (detail && typeof detail === 'object' && !Array.isArray(detail)) {
    if (typeof detail.message === 'string' && detail.message) return detail.message;
    if (detail.code) return t(detail.code, detail);
  }
  if (Array.isArray(detail)) return detail.map((d) => d?.msg).filter(Boolean).join('; ');
  return typeof detail === 'string' ? detail : '';
}

export async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    // the service answers (and refuses) in the page's language, whatever the browser's
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf, 'Accept-Language': lang },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** Any error as a sentence in the user's language: the service's refusal, a page's own
 *  error named by its key (`new Error('error.insecure_context')`), else a network error. */
export function explain(error) {
  if (error instanceof ApiError) return refusalText(error.body?.detail) || t('error.http', { status: error.status });
  const own = error instanceof Error ? error.message : '';
  if (own.startsWith('error.') && strings[own] !== undefined) return t(own);
  return t('error.network');
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

const clocks = new Map();

/** An instant as HH:MM on the wall clock of `timeZone` (an IANA name: the recipient's plan
 *  zone), never the browser's own zone unless none is given. */
export function clock(iso, timeZone) {
  const zone = timeZone || undefined;
  let format = clocks.get(zone);
  if (!format) {
    try {
      format = new Intl.DateTimeFormat(lang === 'sv' ? 'sv-SE' : 'en-GB',
        { hour: '2-digit', minute: '2-digit', timeZone: zone });
    } catch (error) { // a zone this browser does not know: its own zone, not no time at all
      format = new Intl.DateTimeFormat(lang === 'sv' ? 'sv-SE' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
    }
    clocks.set(zone, format);
  }
  return format.format(new Date(iso));
}

/** A countdown as m:ss, or h:mm:ss from an hour on; never negative. */
export function mmss(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A check's or alert's reason code in words, with the free text that goes with it
 *  (a pause's "hospital"); the two arrive apart and are never parsed out of one string. */
export function reasonText(code, detail) {
  const text = t('reason.' + code);
  return detail ? `${text}: ${detail}` : text;
}

/** How a look-in ended, in words: `agents.end.<code>.<detail>` if there is such a key,
 *  else the words for the code with the detail's words (a refusal's reason code) or the
 *  detail itself; a code the page has no words for is shown as it is. */
export function endText(code, detail) {
  const specific = `agents.end.${code}.${detail}`;
  if (detail && strings[specific] !== undefined) return t(specific);
  const base = strings[`agents.end.${code}`] !== undefined ? t(`agents.end.${code}`) : code;
  if (!detail) return base;
  const reason = `agents.reason.${detail}`;
  return `${base}: ${strings[reason] !== undefined ? t(reason) : detail}`;
}
