// The patrol's service worker: shows each Web Push as a notification (which works on a
// locked phone and on Android, where `new Notification()` throws), lets the patrol
// acknowledge straight from it, and opens the alert when tapped. It caches nothing.
//
// A push says what and where only (see supervision/push.py); the page fetches the rest.
// It carries one message, or several (`{v: 2, items: [...]}`: alerts due at once for this
// phone travel together): each shows as its own notification, one per alert.
// Delivery is at least once: a doubled push (same delivery id) is dropped, and one tag per
// alert makes a repeat replace the notification rather than pile up.

/** A value the patrol page keeps for the worker (IndexedDB: the worker has no cookies to
 *  read and no page to ask). The page writes it with the same names (patrol.js). */
function readValue(key) {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open('nattillsyn', 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore('kv');
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
      const get = opening.result.transaction('kv').objectStore('kv').get(key);
      get.onsuccess = () => resolve(get.result ?? null);
      get.onerror = () => reject(get.error);
    };
  });
}

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let msg = null;
  try { msg = event.data ? event.data.json() : null; } catch (e) { msg = null; }
  event.waitUntil(showAll(msg));
});

/** The messages of one push, each shown in turn (in order: a later one of the same alert
 *  replaces an earlier). */
async function showAll(msg) {
  const items = msg && msg.v === 2 && Array.isArray(msg.items) ? msg.items : [msg];
  for (const item of items) await show(item);
}

async function show(msg) {
  if (!msg || msg.v !== 1 || typeof msg.alert !== 'number') {
    // a push must always show something; this one we cannot read
    return self.registration.showNotification('Nattillsyn', { tag: 'unreadable' });
  }
  const tag = `alert-${msg.alert}`;
  const shown = await self.registration.getNotifications({ tag });
  // the same push again, or an older one arriving after a newer: the newer stays
  if (shown.some((n) => n.data && n.data.delivery >= msg.delivery)) return tell(msg);
  const loud = msg.event !== 'settled';
  const options = {
    body: msg.body, tag, data: msg, icon: '/static/icons/patrol-192.png',
    timestamp: Date.parse(msg.at) || Date.now(),
    renotify: loud, requireInteraction: loud, silent: !loud,
    actions: loud ? [{ action: 'acknowledge', title: msg.ack }] : [],
  };
  if (loud) options.vibrate = [400, 150, 400, 150, 400];
  await self.registration.showNotification(msg.title, options);
  return tell(msg);
}

/** Open patrol pages hear of the push too (they de-duplicate with the socket's news). */
async function tell(msg) {
  const pages = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const page of pages) page.postMessage({ type: 'push', push: msg });
}

self.addEventListener('notificationclick', (event) => {
  const work = respond(event.notification, event.action);
  try { event.waitUntil(work); } catch (e) { /* a synthetic event: the work runs anyway */ }
});

async function respond(notification, action) {
  const msg = notification.data || {};
  notification.close();
  if (action === 'acknowledge' && typeof msg.alert === 'number' && await acknowledge(msg.alert)) return;
  await open(msg.url || '/patrol');
}

/** The same request the page makes: the session cookie goes with a same-origin fetch, and
 *  the session's CSRF token is the one the patrol page stored at its last load. True when
 *  the alert is acknowledged (by this patrol, or already by someone else). */
async function acknowledge(alertId) {
  const csrf = await readValue('csrf').catch(() => null);
  if (!csrf) return false;
  try {
    const reply = await fetch(`/api/alerts/${alertId}/state`, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify({ state: 'acknowledged' }),
    });
    return reply.ok || reply.status === 409;
  } catch (e) {
    return false; // offline: the page opens and says so
  }
}

async function open(url) {
  const pages = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  const page = pages.find((p) => new URL(p.url).pathname === '/patrol');
  if (page) {
    await page.focus();
    page.postMessage({ type: 'open', url });
    return;
  }
  await self.clients.openWindow(url);
}
