// Shared helpers: translated strings handed over by the page, CSRF-protected JSON calls.
export const strings = JSON.parse(document.getElementById('strings').textContent || '{}');

export function t(key, values = {}) {
  let text = strings[key] ?? key;
  for (const [k, v] of Object.entries(values)) text = text.replaceAll(`{${k}}`, String(v));
  return text;
}

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail?.code || body?.detail || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = 'GET', body } = {}) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) { location.href = '/login?next=' + encodeURIComponent(location.pathname); }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

/** A refusal from the service as a sentence in the user's language. */
export function explain(error) {
  const detail = error?.body?.detail;
  if (detail && typeof detail === 'object' && detail.code) return t(detail.code, detail);
  if (typeof detail === 'string') return detail;
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

export function clock(iso) {
  return new Date(iso).toLocaleTimeString(document.documentElement.lang === 'sv' ? 'sv-SE' : 'en-GB',
    { hour: '2-digit', minute: '2-digit' });
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
