// The patrol's phone: alerts arrive live over a WebSocket that reconnects by itself.
// Each new alert sounds, vibrates and raises a system notification (when allowed).
import { api, el, explain, clock, reasonText, t } from './common.js';

const list = document.getElementById('alerts');
const empty = document.getElementById('empty');
const linkState = document.getElementById('link-state');
const enable = document.getElementById('enable-alerts');
const alerts = new Map();
let audio = null;
let attempt = 0;

const NEXT = { new: 'acknowledged', acknowledged: 'on-the-way', 'on-the-way': 'arrived', arrived: 'resolved' };

function signal(alert) {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (let i = 0; i < 3; i++) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = alert.priority === 1 ? 1046 : 784;
      gain.gain.setValueAtTime(0.4, now + i * 0.3);
      gain.gain.exponentialRampToValueAtTime(0.001, now + i * 0.3 + 0.25);
      osc.connect(gain).connect(audio.destination);
      osc.start(now + i * 0.3);
      osc.stop(now + i * 0.3 + 0.25);
    }
  } catch (e) { /* no audio: the notification and the screen still show it */ }
  navigator.vibrate?.([300, 100, 300]);
  if ('Notification' in window && Notification.permission === 'granted') {
    new Notification(t('patrol.notify_title', { reason: reasonText(alert.reason) }),
      { body: `${alert.recipient.name}, ${alert.recipient.address}`, tag: `alert-${alert.id}`, requireInteraction: true });
  } else {
    document.title = '(!) ' + document.title.replace(/^\(!\) /, '');
  }
}

function card(a) {
  const li = el('li', { class: `alert prio-${a.priority} state-${a.state}`, 'data-alert': String(a.id) },
    el('div', { class: 'alert-head' },
      el('strong', { class: 'reason' }, reasonText(a.reason)),
      el('span', { class: 'pill' }, t('alert.state.' + a.state)),
      a.escalated ? el('span', { class: 'pill danger' }, t('patrol.escalated')) : ''),
    el('div', { class: 'name' }, a.recipient.name),
    el('div', { class: 'address' }, a.recipient.address),
    el('div', { class: 'muted' }, t('patrol.raised_at', { time: clock(a.created_at) }) +
      (a.acknowledged_by ? ' · ' + t('patrol.by', { name: a.acknowledged_by }) : '')));
  if (a.staff_note) {
    li.append(el('div', { class: 'staff-note' }, t('patrol.staff_note', { name: a.raised_by || '' }) + ': ' + a.staff_note));
  }
  if (a.access_info) li.append(el('div', { class: 'access' }, t('patrol.access') + ': ' + a.access_info));
  const next = NEXT[a.state];
  if (next) {
    const note = next === 'resolved' ? el('textarea', { class: 'note', placeholder: t('patrol.note'), rows: 2 }) : null;
    if (note) li.append(note);
    const button = el('button', { class: `primary big act-${next}`, type: 'button' }, t('patrol.do.' + next));
    button.addEventListener('click', async () => {
      button.disabled = true;
      try {
        const updated = await api(`/api/alerts/${a.id}/state`, { method: 'POST', body: { state: next, note: note?.value || null } });
        upsert(updated, false);
      } catch (error) {
        button.disabled = false;
        li.append(el('p', { class: 'error' }, explain(error)));
      }
    });
    li.append(button);
  }
  return li;
}

function upsert(a, fresh) {
  const known = alerts.get(a.id);
  if (known && new Date(known.updated_at) > new Date(a.updated_at)) return;
  const isNew = !known || (a.escalated && !known.escalated);
  if (a.state === 'resolved') alerts.delete(a.id); else alerts.set(a.id, a);
  render();
  if (fresh && isNew && a.state === 'new') signal(a);
}

function render() {
  const sorted = [...alerts.values()].sort((x, y) => x.priority - y.priority || x.created_at.localeCompare(y.created_at));
  list.replaceChildren(...sorted.map(card));
  empty.hidden = sorted.length > 0;
}

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
    } else if (msg.type === 'alert') {
      upsert(msg.alert, true);
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

enable.hidden = !('Notification' in window) || Notification.permission !== 'default';
enable.addEventListener('click', async () => {
  audio = audio || new AudioContext();
  await audio.resume?.();
  if ('Notification' in window) await Notification.requestPermission();
  enable.hidden = true;
});

render();
connect();
