// The patrol's phone: alerts arrive live over a WebSocket that reconnects by itself, and by
// Web Push through the service worker (/sw.js) when the phone is locked or the page is in
// the background. Every new alert sounds (or the page says plainly that one tap turns the
// sound on), vibrates, and shows a notification through the worker (`new Notification()`
// throws on Android). Alerts for one person share a card; resolving asks, then waits a
// few seconds for an undo before it is sent.
import { api, el, explain, clock, reasonText, t } from './common.js';

const $ = (id) => document.getElementById(id);
const list = $('alerts');
const empty = $('empty');
const linkState = $('link-state');
const soundOff = $('sound-off');
const alerts = new Map(); // id -> the alert as the service last said
const signalled = new Set(); // what this page load has already sounded for: `id`, `id:escalated`
const stage = new Map(); // id -> {step: 'confirm' | 'undo', until, timer}: a resolve in progress
const notes = new Map(); // id -> the resolution note being written
const UNDO_SECONDS = 5;
const NEXT = { new: 'acknowledged', acknowledged: 'on-the-way', 'on-the-way': 'arrived', arrived: 'resolved' };
const csrf = document.querySelector('meta[name="csrf-token"]')?.content || '';
let audio = null;
let soundOwed = null; // the alert whose sound waits for a tap
let registration = null;
let attempt = 0;
let scrolledTo = null; // the #alert-N already brought into view

// --- what the worker needs: the session's CSRF token, for the acknowledge action --------

function keep(key, value) {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open('nattillsyn', 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore('kv');
    opening.onerror = () => reject(opening.error);
    opening.onsuccess = () => {
      const tx = opening.result.transaction('kv', 'readwrite');
      tx.objectStore('kv').put(value, key);
      tx.oncomplete = () => resolve();
      tx.onerror = () => reject(tx.error);
    };
  });
}

// --- sound: every new alert, whether or not anything was pressed in this page load ------

function audioContext() {
  try { audio = audio || new AudioContext(); } catch (e) { audio = null; }
  return audio;
}

/** Whether sound plays now: the browser may hold audio until a tap (autoplay policy). */
async function soundReady() {
  const ctx = audioContext();
  if (!ctx) return false;
  if (ctx.state !== 'running') {
    await Promise.race([ctx.resume().catch(() => {}), new Promise((r) => setTimeout(r, 300))]);
  }
  return ctx.state === 'running';
}

function beep(priority) {
  const now = audio.currentTime;
  for (let i = 0; i < 3; i++) {
    const osc = audio.createOscillator();
    const gain = audio.createGain();
    osc.frequency.value = priority === 1 ? 1046 : 784;
    gain.gain.setValueAtTime(0.5, now + i * 0.3);
    gain.gain.exponentialRampToValueAtTime(0.001, now + i * 0.3 + 0.25);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.3);
    osc.stop(now + i * 0.3 + 0.25);
  }
  document.body.dataset.sound = 'played';
}

function showSoundState(ready) {
  soundOff.hidden = ready;
  if (ready) return;
  document.body.dataset.sound = 'blocked';
  document.addEventListener('pointerdown', unlock, true); // one tap anywhere
  document.addEventListener('keydown', unlock, true);
}

async function unlock() {
  if (!(await soundReady())) return;
  showSoundState(true);
  document.removeEventListener('pointerdown', unlock, true);
  document.removeEventListener('keydown', unlock, true);
  if (soundOwed) { beep(soundOwed.priority); soundOwed = null; }
}

async function signal(a) {
  const key = a.escalated ? `${a.id}:escalated` : String(a.id);
  if (signalled.has(key)) return; // the socket, the re-send and the worker may all tell us
  signalled.add(key);
  document.body.dataset.signalled = [...signalled].join(' ');
  navigator.vibrate?.([400, 150, 400, 150, 400]);
  if (await soundReady()) { showSoundState(true); beep(a.priority); } else { soundOwed = a; showSoundState(false); }
  if (document.visibilityState !== 'visible') notify(a);
  document.title = '(!) ' + document.title.replace(/^\(!\) /, '');
}

/** A system notification through the worker (the same tag as the push: one per alert). */
function notify(a) {
  if (!registration || !('Notification' in window) || Notification.permission !== 'granted') return;
  registration.showNotification(t('push.title.' + (a.escalated ? 'escalated' : 'raised'), { reason: reasonText(a.reason) }), {
    body: a.recipient.address, tag: `alert-${a.id}`, renotify: true, requireInteraction: true,
    vibrate: [400, 150, 400], icon: '/static/icons/patrol-192.png',
    data: { v: 1, alert: a.id, delivery: 0, url: `/patrol#alert-${a.id}` },
    actions: [{ action: 'acknowledge', title: t('patrol.do.acknowledged') }],
  }).catch(() => {});
}

function closeNotification(id) {
  registration?.getNotifications({ tag: `alert-${id}` })
    .then((shown) => shown.forEach((n) => n.close())).catch(() => {});
}

// --- the cards: one per person, each alert of theirs inside -----------------------------

function mapsHref(address) {
  const q = encodeURIComponent(address);
  if (/iPhone|iPad|Macintosh/.test(navigator.userAgent)) return `https://maps.apple.com/?q=${q}`;
  if (/Android/.test(navigator.userAgent)) return `geo:0,0?q=${q}`;
  return `https://www.openstreetmap.org/search?query=${q}`;
}

function group(items) {
  const first = items[0];
  const r = first.recipient;
  const li = el('li', { class: `alert group prio-${Math.min(...items.map((a) => a.priority))}`, id: `recipient-${r.id}`, 'data-recipient': String(r.id) },
    el('div', { class: 'name' }, r.name),
    el('div', { class: 'address' }, r.address),
    el('a', { class: 'maps', href: mapsHref(r.address), rel: 'noopener' }, t('patrol.maps')));
  const withDetails = items.find((a) => a.contacts !== undefined);
  if (withDetails?.contacts?.length) {
    li.append(el('ul', { class: 'contacts', 'aria-label': t('patrol.contacts') },
      ...withDetails.contacts.map((c) => el('li', {},
        el('a', { href: `tel:${c.phone.replace(/[^+\d]/g, '')}` },
          `${c.name}${c.relation ? ' (' + c.relation + ')' : ''}: ${c.phone}`)))));
  }
  if (withDetails?.care_notes) {
    li.append(el('div', { class: 'care-notes' }, t('patrol.care_notes') + ': ' + withDetails.care_notes));
  }
  for (const a of items) li.append(card(a));
  return li;
}

function card(a) {
  const box = el('div', { class: `alert-item prio-${a.priority} state-${a.state}`, id: `alert-${a.id}`, 'data-alert': String(a.id) },
    el('div', { class: 'alert-head' },
      el('strong', { class: 'reason' }, reasonText(a.reason)),
      el('span', { class: 'pill' }, t('alert.state.' + a.state)),
      a.escalated ? el('span', { class: 'pill danger' }, t('patrol.escalated')) : ''),
    el('div', { class: 'muted' }, t('patrol.raised_by', { time: clock(a.created_at), name: a.raised_by || '' }) +
      (a.acknowledged_by ? ' · ' + t('patrol.by', { name: a.acknowledged_by }) : '')));
  if (a.staff_note) {
    box.append(el('div', { class: 'staff-note' }, t('patrol.staff_note', { name: a.raised_by || '' }) + ': ' + a.staff_note));
  }
  if (a.access_info) box.append(el('div', { class: 'access' }, t('patrol.access') + ': ' + a.access_info));
  const next = NEXT[a.state];
  if (next) box.append(actions(a, next));
  return box;
}

function actions(a, next) {
  const area = el('div', { class: 'actions' });
  const step = stage.get(a.id);
  if (next === 'resolved' && step?.step === 'undo') {
    const left = Math.max(0, Math.ceil((step.until - Date.now()) / 1000));
    const undo = el('button', { class: 'big undo', type: 'button' }, t('patrol.undo', { count: left }));
    undo.addEventListener('click', () => { clearTimeout(step.timer); stage.delete(a.id); render(); });
    area.append(undo);
    return area;
  }
  if (next === 'resolved' && step?.step === 'confirm') {
    const yes = el('button', { class: 'primary big confirm-yes', type: 'button' }, t('patrol.confirm_yes'));
    const no = el('button', { class: 'big', type: 'button' }, t('patrol.cancel'));
    yes.addEventListener('click', () => startUndo(a));
    no.addEventListener('click', () => { stage.delete(a.id); render(); });
    area.append(el('p', {}, t('patrol.confirm_resolve')), el('div', { class: 'confirm' }, yes, no));
    return area;
  }
  if (next === 'resolved') {
    const note = el('textarea', { class: 'note', placeholder: t('patrol.note'), rows: 2, value: notes.get(a.id) || '' });
    note.addEventListener('input', () => notes.set(a.id, note.value));
    area.append(note);
  }
  const button = el('button', { class: `primary big act-${next}`, type: 'button' }, t('patrol.do.' + next));
  button.addEventListener('click', () => {
    if (next === 'resolved') { stage.set(a.id, { step: 'confirm' }); render(); return; }
    send(a, next, null, button);
  });
  area.append(button);
  return area;
}

function startUndo(a) {
  const step = { step: 'undo', until: Date.now() + UNDO_SECONDS * 1000, timer: 0 };
  const tick = () => {
    if (stage.get(a.id) !== step) return;
    if (Date.now() >= step.until) { stage.delete(a.id); send(a, 'resolved', notes.get(a.id) || null, null); return; }
    render();
    step.timer = setTimeout(tick, 250);
  };
  stage.set(a.id, step);
  tick();
}

async function send(a, next, note, button) {
  if (button) button.disabled = true;
  try {
    const updated = await api(`/api/alerts/${a.id}/state`, { method: 'POST', body: { state: next, note } });
    notes.delete(a.id);
    upsert(updated, false);
    if (next === 'resolved') loadTonight();
  } catch (error) {
    if (button) button.disabled = false;
    document.getElementById(`alert-${a.id}`)?.append(el('p', { class: 'error' }, explain(error)));
  }
}

function upsert(a, fresh) {
  const known = alerts.get(a.id);
  if (known && new Date(known.updated_at) > new Date(a.updated_at)) return;
  const same = known && known.updated_at === a.updated_at && known.escalated === a.escalated;
  if (a.state === 'resolved') alerts.delete(a.id); else alerts.set(a.id, a);
  if (a.state !== 'new') closeNotification(a.id);
  if (!same) render();
  if (fresh && a.state === 'new') signal(a);
}

function render() {
  const active = document.activeElement;
  const focused = active?.classList.contains('note') ? active.closest('[data-alert]')?.dataset.alert : null;
  const byPerson = new Map();
  for (const a of alerts.values()) {
    if (!byPerson.has(a.recipient.id)) byPerson.set(a.recipient.id, []);
    byPerson.get(a.recipient.id).push(a);
  }
  const order = (x, y) => x.priority - y.priority || x.created_at.localeCompare(y.created_at);
  const groups = [...byPerson.values()].map((items) => items.sort(order)).sort((x, y) => order(x[0], y[0]));
  list.replaceChildren(...groups.map(group));
  empty.hidden = groups.length > 0;
  if (focused) document.querySelector(`#alert-${focused} .note`)?.focus();
  // opened from a notification (/patrol#alert-N): that alert, once it is on screen
  const wanted = /^#alert-\d+$/.test(location.hash) ? document.querySelector(location.hash) : null;
  if (wanted && scrolledTo !== location.hash) { scrolledTo = location.hash; wanted.scrollIntoView(); }
}

// --- tonight: what was resolved, for a patrol that takes over ---------------------------
// The plan's night (its zone and boundary, as planning has it), and in the morning also the
// night just ended: supervision/patrol.py night_alerts.

async function loadTonight() {
  try {
    const done = await api('/api/alerts/tonight');
    $('tonight').replaceChildren(...done.map((a) => el('li', { 'data-alert': String(a.id) },
      el('strong', {}, `${clock(a.updated_at)} ${a.recipient.name}`), ' · ', reasonText(a.reason),
      el('div', { class: 'muted' }, t('patrol.resolved_by', { name: a.acknowledged_by || '' })),
      a.note ? el('div', { class: 'resolution-note' }, t('patrol.resolution_note') + ': ' + a.note) : '')));
    $('tonight-empty').hidden = done.length > 0;
  } catch (e) { /* the list is a help, not the alarm: it is tried again at the next change */ }
}

// --- the live link ------------------------------------------------------------------------

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws/patrol`);
  ws.onopen = () => { attempt = 0; linkState.textContent = t('patrol.live'); linkState.className = 'pill ok'; };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.type === 'snapshot') {
      const ids = new Set(msg.alerts.map((a) => a.id));
      for (const id of [...alerts.keys()]) if (!ids.has(id)) alerts.delete(id);
      for (const a of msg.alerts) upsert(a, true);
      render();
      loadTonight();
    } else if (msg.type === 'alert') {
      upsert(msg.alert, true);
      if (msg.alert.state === 'resolved') loadTonight();
    } else if (msg.type === 'alerts') { // the re-send of every alert still new
      for (const a of msg.alerts) upsert(a, true);
    }
  };
  const ping = setInterval(() => { if (ws.readyState === 1) ws.send('{"type":"ping"}'); }, 20000);
  ws.onclose = (event) => {
    clearInterval(ping);
    linkState.className = 'pill danger';
    // 4401 not signed in as patrol; 4440 the session ended (signed out, disabled, role
    // changed, expired): no door code stays on screen, and the person signs in again
    if (event.code === 4401 || event.code === 4440) {
      alerts.clear();
      render();
      location.href = '/login?next=/patrol';
      return;
    }
    // 4403: this page is not on the service's own address; retrying cannot help
    if (event.code === 4403) { linkState.textContent = t('patrol.wrong_origin'); return; }
    linkState.textContent = t('patrol.reconnecting');
    const delay = Math.min(15000, 500 * 2 ** attempt++) * (0.5 + Math.random() / 2);
    setTimeout(connect, delay);
  };
}

// --- push: the worker, the subscription, the install hint -------------------------------

function keyBytes(b64) {
  const s = atob(b64.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((b64.length + 3) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

async function subscribe() {
  const state = $('push-state');
  const key = (await api('/api/push/key')).public_key;
  let sub = await registration.pushManager.getSubscription();
  try {
    sub = sub || await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  } catch (e) {
    state.textContent = t('patrol.push_failed');
    return;
  }
  const { endpoint, keys } = sub.toJSON();
  await api('/api/push/subscriptions', { method: 'POST', body: { endpoint, keys, device: navigator.platform || '' } });
  $('push-on').hidden = true;
  state.textContent = t('patrol.push_active');
}

async function setUpPush() {
  if (!('serviceWorker' in navigator)) return;
  navigator.serviceWorker.addEventListener('message', (event) => {
    const msg = event.data || {};
    if (msg.type === 'push' && msg.push?.event !== 'settled' && !alerts.has(msg.push?.alert)) {
      api('/api/alerts').then((all) => all.forEach((a) => upsert(a, true))).catch(() => {});
    } else if (msg.type === 'open') {
      document.getElementById(new URL(msg.url, location.href).hash.slice(1))?.scrollIntoView();
    }
  });
  registration = await navigator.serviceWorker.register('/sw.js', { scope: '/' });
  const panel = $('push-panel');
  const button = $('push-on');
  const state = $('push-state');
  panel.hidden = false;
  if (!('PushManager' in window) || !('Notification' in window)) { state.textContent = t('patrol.push_unsupported'); return; }
  if (Notification.permission === 'denied') { state.textContent = t('patrol.push_denied'); return; }
  if (Notification.permission === 'granted') { await subscribe(); return; }
  button.hidden = false; // asking needs a tap
  button.addEventListener('click', async () => {
    unlock();
    if (await Notification.requestPermission() !== 'granted') {
      button.hidden = true;
      state.textContent = t('patrol.push_denied');
      return;
    }
    await subscribe().catch((e) => { state.textContent = explain(e); });
  });
}

function installHint() {
  const phone = /Android|iPhone|iPad/.test(navigator.userAgent);
  const standalone = matchMedia('(display-mode: standalone)').matches || navigator.standalone;
  if (!phone || standalone) return;
  if (/iPhone|iPad/.test(navigator.userAgent)) { $('install').hidden = false; $('install-ios').hidden = false; return; }
  window.addEventListener('beforeinstallprompt', (event) => {
    event.preventDefault();
    $('install').hidden = false;
    $('install-app').hidden = false;
    $('install-app').onclick = async () => { event.prompt(); await event.userChoice; $('install').hidden = true; };
  });
}

const manifest = el('link', { rel: 'manifest', href: '/manifest.webmanifest' });
// the phone's status bar in the page's own background, light or dark theme
const themeColor = el('meta', { name: 'theme-color', content: getComputedStyle(document.body).backgroundColor });
document.head.append(manifest, themeColor);
window.matchMedia('(prefers-color-scheme: light)').addEventListener('change', () => {
  themeColor.content = getComputedStyle(document.body).backgroundColor;
});
keep('csrf', csrf).catch(() => {});
soundReady().then(showSoundState);
installHint();
render();
connect();
setInterval(loadTonight, 10 * 60 * 1000); // the list follows the night across its boundary
setUpPush().catch((e) => { $('push-state').textContent = explain(e); });
