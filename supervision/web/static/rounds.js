// The rounds board: what is overdue, open now and coming soon, with live countdowns,
// and the look-in panel with its outcome buttons.
import { api, clock, el, endText, explain, mmss, reasonText, t } from './common.js';
import { LookIn, PreparedOffer } from './lookin.js';

const groups = document.getElementById('groups');
const status = document.getElementById('board-status');
const panel = document.getElementById('lookin');
const video = document.getElementById('lookin-video');
const panelStatus = document.getElementById('lookin-status');
const countdown = document.getElementById('lookin-countdown');
const why = document.getElementById('outcome-why');
const note = document.getElementById('outcome-note');
let checks = [];
let skew = 0; // server clock minus ours
let current = null; // { check, lookin, seen }
const MAY_LOOK = document.body.dataset.role === 'staff';

// Offers made before Start is pressed (see PreparedOffer), by 'any' (the service's ICE
// servers carry nothing per look-in: no TURN) or by check id (each with that check's own
// short-lived TURN credential, made only for the row under the pointer or the focus).
// A value is a promise of a PreparedOffer, or of null when none could be made.
const prepared = new Map();
let perLookin = null; // null: not known yet; true: TURN credentials, one per look-in
let sharedIce = null; // { ice, at }: the last ICE servers that carry nothing per look-in
let pointed = null; // the check whose row is under the pointer or has the focus
let pointedAt = 0; // when the pointer last moved there (or the focus came)
const SHARED_MS = 60_000; // an offer for any check is made afresh after this
const PER_CHECK_MS = 15_000; // one with a TURN credential at most this long ...
const CREDENTIAL_MARGIN_MS = 10_000; // ... and never this close to its credential's end
const POINTED_MS = 60_000; // a pointer resting longer on a row gets no more TURN offers
const DWELL_MS = 100; // nor one passing over a row (no TURN allocation per row swept)
let dwell = null;

function bucket(c, now) {
  if (c.state === 'open' && new Date(c.due_at) < now) return 'overdue';
  if (c.state === 'open') return 'open';
  if (c.state === 'planned') return 'soon';
  return 'done';
}

function render() {
  const now = new Date(Date.now() + skew);
  const by = { overdue: [], open: [], soon: [], done: [] };
  for (const c of checks) by[bucket(c, now)].push(c);
  groups.replaceChildren();
  for (const name of ['overdue', 'open', 'soon', 'done']) {
    if (!by[name].length && name !== 'open') continue;
    const list = el('ul', { class: 'checks' });
    for (const c of by[name]) list.append(row(c, now));
    if (!by[name].length) list.append(el('li', { class: 'muted' }, t('rounds.none_open')));
    groups.append(el('section', { class: `group ${name}` }, el('h2', {}, t(`rounds.${name}`)), list));
  }
}

function row(c, now) {
  const due = new Date(c.due_at);
  const closes = new Date(c.closes_at);
  const opens = new Date(c.opens_at);
  let timing;
  if (c.state === 'planned') timing = t('rounds.opens_in', { time: mmss((opens - now) / 1000) });
  else if (c.state === 'open') timing = t('rounds.closes_in', { time: mmss((closes - now) / 1000) });
  else timing = t(`state.${c.state}`) + (c.reason ? ` · ${reasonText(c.reason, c.reason_detail)}` : '');
  const li = el('li', { class: `check state-${c.state}`, 'data-check': String(c.id) },
    el('span', { class: 'due' }, clock(c.due_at, c.timezone)),
    el('span', { class: 'who' }, c.recipient, c.follow_ups ? el('span', { class: 'pill' }, t('rounds.follow_up')) : ''),
    el('span', { class: 'timing' }, timing),
    el('span', { class: c.camera_online ? 'cam ok' : 'cam off' }, c.camera_online ? t('rounds.camera_ok') : t('rounds.camera_off')));
  if (!MAY_LOOK) {
    // the shift lead or an admin follows the board; only night staff look in
  } else if (c.state === 'open' && c.camera_online) {
    const start = el('button', { class: 'primary start', type: 'button' }, t('rounds.start'));
    start.addEventListener('click', () => open(c));
    li.append(start);
  } else if (c.state === 'open') {
    // no picture to be had: send someone rather than wait for the window to pass
    const tech = el('button', { class: 'start tech', type: 'button' }, t('outcome.technical-failure'));
    tech.addEventListener('click', async () => {
      tech.disabled = true;
      try {
        await api(`/api/checks/${c.id}/outcome`, { method: 'POST', body: { outcome: 'technical-failure' } });
        refresh();
      } catch (error) {
        tech.disabled = false;
        status.textContent = explain(error);
      }
    });
    li.append(tech);
  }
  if (c.alert) li.append(el('span', { class: 'pill danger' }, t('rounds.alert', { state: t(`alert.state.${c.alert}`) })));
  if (c.alert_note) li.append(el('span', { class: 'alert-note' }, t('patrol.resolution_note') + ': ' + c.alert_note));
  return li;
}

async function refresh() {
  try {
    const data = await api('/api/rounds');
    skew = new Date(data.now) - Date.now();
    checks = data.checks;
    status.textContent = t('rounds.updated', { time: clock(data.now, data.timezone) });
    const esc = document.getElementById('escalations');
    esc.hidden = !data.escalations;
    esc.textContent = t('rounds.escalations', { n: data.escalations });
    render();
    prepareAhead();
  } catch (error) {
    status.textContent = explain(error);
  }
}

/** Checks a look-in may start on now, as far as the board knows. */
function lookable() {
  return checks.filter((c) => c.state === 'open' && c.camera_online);
}

/** Close and forget what is prepared under `key`, unless a look-in took it. */
function discard(key) {
  const entry = prepared.get(key);
  if (!entry) return;
  prepared.delete(key);
  entry.dropped = true;
  entry.offer?.close();
}

function discardAll() {
  for (const key of [...prepared.keys()]) discard(key);
}

/** The ICE servers for a look-in on `check`: the shared ones if known and fresh (nothing
 *  to ask: no request in the time to first frame), else asked of the service (with a TURN
 *  credential of the look-in's own when one is configured). */
async function iceFor(check) {
  if (perLookin === false && sharedIce && performance.now() - sharedIce.at < SHARED_MS) return sharedIce.ice;
  const ice = await api(`/api/checks/${check.id}/ice`, { method: 'POST' });
  perLookin = ice.expires_at != null;
  sharedIce = perLookin ? null : { ice, at: performance.now() };
  return ice;
}

/** Start making an offer ahead under `key` ('any' or a check id) for `check`. With TURN
 *  ('any' finds out) nothing is made for 'any': an offer with a check's credential is
 *  made only for that check's row. */
function prepare(key, check) {
  const entry = { offer: null, dropped: false };
  prepared.set(key, entry);
  entry.ready = (async () => {
    try {
      const ice = await iceFor(check);
      if (entry.dropped || (key === 'any') === perLookin) return null;
      let lifetime = SHARED_MS;
      if (perLookin) {
        const left = new Date(ice.expires_at) - (Date.now() + skew) - CREDENTIAL_MARGIN_MS;
        lifetime = Math.min(PER_CHECK_MS, left);
        if (lifetime <= 0) return null;
      }
      entry.offer = new PreparedOffer(ice, perLookin ? check.id : null, lifetime);
      // at its end it is closed, and made afresh if it is still wanted
      setTimeout(() => {
        if (prepared.get(key) !== entry) return;
        discard(key);
        prepareAhead();
      }, lifetime);
      return await entry.offer.ready;
    } catch (error) {
      entry.offer?.close();
      return null;
    }
  })();
  // nothing made (a refusal, TURN for 'any', TURN gone for a check): asked again later
  entry.ready.then((offer) => { if (!offer && prepared.get(key) === entry) prepared.delete(key); });
}

/** Offers ready before Start: one for any check when the ICE servers carry nothing per
 *  look-in, else one for the check the pointer or focus is on; none made while a look-in
 *  runs or the page is hidden; each closed once its check (or every check) is no longer
 *  open. */
function prepareAhead() {
  const open = lookable();
  for (const key of [...prepared.keys()]) {
    if (key === 'any' ? !open.length : !open.some((c) => c.id === key)) discard(key);
  }
  if (!MAY_LOOK || document.hidden || current || !open.length) return;
  if (perLookin !== true && !prepared.has('any')) prepare('any', open[0]);
  if (perLookin !== true) return;
  // one check's credential at a time: the row pointed at, if it still may be looked in on
  for (const key of [...prepared.keys()]) if (key !== 'any' && key !== pointed) discard(key);
  const row = open.find((c) => c.id === pointed);
  if (row && !prepared.has(row.id) && performance.now() - pointedAt < POINTED_MS) prepare(row.id, row);
}

/** The prepared offer a look-in on `check` may use (its own, else one for any check;
 *  waiting for it if it is still being made), taken so that nobody else uses or closes
 *  it; null if there is none. Whatever else is prepared is closed: nothing is kept ahead
 *  while a look-in runs. */
async function takePrepared(check) {
  const entry = prepared.get(check.id) || prepared.get('any');
  if (entry) prepared.delete(prepared.get(check.id) === entry ? check.id : 'any');
  discardAll();
  const offer = entry ? await entry.ready : null;
  if (offer?.fits(check.id)) return offer.take();
  offer?.close();
  return null;
}

function pointAt(event) {
  const li = event.target.closest?.('li.check[data-check]');
  const id = li ? Number(li.dataset.check) : null;
  pointedAt = performance.now();
  if (id === pointed) return;
  pointed = id;
  clearTimeout(dwell);
  if (perLookin === true) dwell = setTimeout(prepareAhead, DWELL_MS);
}

if (MAY_LOOK) {
  groups.addEventListener('pointerover', pointAt);
  groups.addEventListener('pointermove', pointAt);
  groups.addEventListener('focusin', pointAt);
  groups.addEventListener('pointerleave', () => { pointed = null; });
  // nothing prepared is kept while nobody can press Start
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) discardAll();
    else prepareAhead();
  });
  window.addEventListener('pagehide', discardAll);
}

// The look-in panel is a modal dialog: the board and the header behind it are inert while
// it is open, the keyboard starts on its heading, and goes back to what opened it.
let opener = null;
function showPanel() {
  opener = document.activeElement;
  panel.hidden = false;
  for (const behind of [document.getElementById('board'), document.querySelector('header.bar')]) {
    if (behind) behind.inert = true;
  }
  document.getElementById('lookin-name').focus();
}
function hidePanel() {
  panel.hidden = true;
  for (const behind of [document.getElementById('board'), document.querySelector('header.bar')]) {
    if (behind) behind.inert = false;
  }
  const back = opener && opener.isConnected ? opener : document.querySelector('#board button.start');
  opener = null;
  back?.focus();
}

async function open(check) {
  if (current) return;
  showPanel();
  document.getElementById('lookin-name').textContent = `${check.recipient} · ${clock(check.due_at, check.timezone)}`;
  panelStatus.textContent = t('lookin.connecting');
  note.value = '';
  setOutcomes('waiting');
  const lookin = new LookIn(check.id, video, {
    onFirstFrame: (ms, accepted) => {
      panelStatus.textContent = '';
      panel.dataset.ttff = String(ms);
      if (accepted) current.seen = true;
      setOutcomes(accepted ? 'seen' : 'failed');
    },
    onEnd: (reason) => {
      countdown.textContent = '';
      panelStatus.textContent = t('lookin.ended');
      if (current && !current.seen) setOutcomes('failed');
      if (!['ended', 'expired', 'error'].includes(reason)) explainEnd(lookin);
    },
  });
  current = { check, lookin, seen: false };
  try {
    // an offer made before the press if there is one for this check; else STUN/TURN
    // (with this viewer's short-lived TURN credential) before the offer, which must
    // already carry the relayed candidates. All after the LookIn is made, so the time to
    // first frame counts from the press, any wait and request included.
    lookin.prepared = await takePrepared(check);
    if (!lookin.prepared) {
      const ice = await iceFor(check);
      lookin.iceServers = ice.ice_servers;
      lookin.iceTransportPolicy = ice.ice_transport_policy;
    }
    await lookin.start();
    tick();
  } catch (error) {
    lookin.finish('error');
    setOutcomes('failed');
    panelStatus.textContent = explain(error);
  }
}

/** The picture stopped early: ask how the camera saw it end (e.g. the camera failed). */
async function explainEnd(lookin) {
  if (!lookin.session) return;
  for (let i = 0; i < 10; i++) {
    try {
      const visit = await api(`/api/lookins/${lookin.session}`);
      if (visit.end_reason) {
        panelStatus.textContent = `${t('lookin.ended_early')} ${endText(visit.end_reason, visit.end_detail)}`;
        return;
      }
    } catch (error) { return; }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

function tick() {
  if (!current || current.lookin.ended) return;
  countdown.textContent = mmss((current.lookin.expiresAt - Date.now()) / 1000);
  setTimeout(tick, 250);
}

/** Which outcomes the look-in can back, and why the others are disabled:
 *  waiting (no picture yet), seen (the service has the picture: all but a failure),
 *  failed (no picture: only a technical failure), busy (recording), done. */
function setOutcomes(mode) {
  for (const b of panel.querySelectorAll('.outcome')) {
    const tech = b.dataset.outcome === 'technical-failure';
    b.disabled = !((mode === 'seen' && !tech) || (mode === 'failed' && tech));
  }
  const reason = { waiting: 'lookin.why_waiting', seen: 'lookin.why_seen', failed: 'lookin.why_failed' }[mode];
  why.textContent = reason ? t(reason) : '';
}

for (const button of panel.querySelectorAll('.outcome')) {
  button.addEventListener('click', async () => {
    if (!current) return;
    const mode = current.seen ? 'seen' : 'failed';
    setOutcomes('busy');
    const { check, lookin } = current;
    try {
      await lookin.stop();
      await api(`/api/checks/${check.id}/outcome`, {
        method: 'POST',
        body: { outcome: button.dataset.outcome, session: lookin.session, note: note.value.trim() || null },
      });
      panelStatus.textContent = t('lookin.recorded', { outcome: t('outcome.' + button.dataset.outcome) });
      current = null;
      setTimeout(() => { if (!current && !panel.hidden) hidePanel(); }, 1200);
      refresh();
    } catch (error) {
      panelStatus.textContent = explain(error);
      if (error?.body?.detail?.code === 'error.check_recorded') {
        setOutcomes('done');  // someone else recorded it: nothing left to press
        refresh();
      } else {
        setOutcomes(mode);
      }
    }
  });
}

document.getElementById('lookin-close').addEventListener('click', async () => {
  if (current) await current.lookin.stop();
  current = null;
  hidePanel();
  prepareAhead(); // ready for the next Start
});

refresh();
setInterval(refresh, 5000);
setInterval(render, 1000);
