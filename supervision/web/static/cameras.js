// Admin: every camera with its link, health and refused look-ins; register and revoke.
import { api, el, endText, explain, t } from './common.js';

const when = (iso) => new Date(iso).toLocaleString(document.documentElement.lang === 'sv' ? 'sv-SE' : 'en-GB',
  { dateStyle: 'short', timeStyle: 'short' });

const list = document.getElementById('cameras');
const status = document.getElementById('status');
const form = document.getElementById('register');
const codeBox = document.getElementById('code');

function reasonText(code) {
  const key = 'agents.reason.' + code;
  return t(key) === key ? code : t(key);
}

function reasonOf(prefix, code) {
  const key = prefix + code;
  return t(key) === key ? (code || '') : t(key);
}

function healthLine(h) {
  if (!h) return '';
  const parts = [];
  if (h.camera_present === true) parts.push(t('agents.cameras.camera_present'));
  if (h.camera_present === false) parts.push(t('agents.cameras.camera_missing'));
  if (h.version) parts.push(t('agents.cameras.version', { version: h.version }));
  if (h.free_memory_mb != null) parts.push(t('agents.cameras.free_memory', { mb: h.free_memory_mb }));
  if (h.clock_offset_seconds != null) {
    const offset = t('admin.cameras.clock', { seconds: h.clock_offset_seconds.toFixed(2) });
    parts.push(h.clock_off ? `⚠ ${offset} ${t('admin.cameras.clock_off')}` : offset);
  }
  if (h.video_path) {  // how a look-in's picture leaves the device, and why
    parts.push(t('admin.cameras.video_path', {
      path: t('admin.cameras.video.' + h.video_path), why: reasonOf('admin.cameras.video_reason.', h.video_path_reason) }));
  }
  if (h.last_lookin) parts.push(`${t('agents.cameras.last_lookin')}: ${endText(h.last_lookin, h.last_lookin_detail)}`);
  return parts.join(' · ');
}

function card(c) {
  let state;
  if (c.revoked) state = el('span', { class: 'pill danger' }, t('agents.cameras.revoked'));
  else if (!c.enrolled) state = el('span', { class: 'pill' }, t('agents.cameras.not_enrolled', { until: c.enrolment_expires_at ? when(c.enrolment_expires_at) : '—' }));
  else state = el('span', { class: c.online ? 'pill ok' : 'pill danger' }, t(c.online ? 'agents.cameras.online' : 'agents.cameras.offline'));
  const li = el('li', { class: 'card camera', 'data-camera': c.camera_id },
    el('div', { class: 'alert-head' }, el('strong', {}, c.camera_id), state),
    el('div', {}, c.recipient),
    el('div', { class: 'muted' }, c.last_seen_at ? `${t('agents.cameras.last_seen')} ${when(c.last_seen_at)}` : ''),
    el('div', { class: 'muted' }, healthLine(c.health)));
  if (c.health && c.health.clock_off) li.classList.add('clock-off');
  const refusals = el('ul', { class: 'refusals' });
  for (const r of c.refusals) refusals.append(el('li', {}, `${when(r.at)} · ${reasonText(r.reason)}`));
  li.append(el('h3', {}, t('agents.cameras.refusals')),
    c.refusals.length ? refusals : el('p', { class: 'muted' }, t('agents.cameras.no_refusals')));
  if (!c.revoked) {
    const revoke = el('button', { type: 'button', class: 'revoke' }, t('agents.cameras.revoke'));
    revoke.addEventListener('click', async () => {
      if (!confirm(t('agents.cameras.revoke_confirm'))) return;
      try {
        await api(`/api/cameras/${encodeURIComponent(c.camera_id)}/revoke`, { method: 'POST' });
        load();
      } catch (error) { status.textContent = explain(error); }
    });
    li.append(revoke);
  }
  return li;
}

async function load() {
  try {
    const data = await api('/api/cameras');
    list.replaceChildren(...data.cameras.map(card));
    status.textContent = '';
  } catch (error) { status.textContent = explain(error); }
}

async function recipients() {
  const select = form.elements.recipient_id;
  const people = await api('/api/recipients');
  const rows = Array.isArray(people) ? people : people.recipients || [];
  select.replaceChildren(...rows.map((r) => el('option', { value: String(r.id) }, r.name)));
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const made = await api('/api/cameras', { method: 'POST', body: { recipient_id: Number(form.elements.recipient_id.value) } });
    codeBox.hidden = false;
    codeBox.textContent = t('admin.cameras.code', { camera: made.camera_id, code: made.enrolment_code, until: when(made.expires_at) });
    load();
  } catch (error) { status.textContent = explain(error); }
});

recipients().catch((error) => { status.textContent = explain(error); });
load();
setInterval(load, 10000);
