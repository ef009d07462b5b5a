// The cards atop a recipient's page (consent, camera, plan version), redrawn after each save.
import { el, t } from './common.js';
import { stampText } from './dates.js';

const $ = (id) => document.getElementById(id);

function consentCard(c) {
  const consent = [el('span', { class: `pill consent-${c.state}` },
    c.on_record ? t('manage.consent.' + c.state) : t('manage.consent.not_recorded'))];
  if (c.given_on) {
    consent.push(el('p', {}, c.valid_until ? t('manage.consent.period', { from: c.given_on, until: c.valid_until })
      : t('manage.consent.period_open', { from: c.given_on })));
  }
  if (c.state !== 'valid') consent.push(el('p', { class: 'hint' }, t('manage.consent.none_hint')));
  if (c.plan_consent_only) consent.push(el('p', { class: 'hint' }, t('manage.consent.plan_only')));
  return consent;
}

// The consent view the records give, for every part of the page that shows it.
// recipient_details.js announces each one it loads; the plan editor is a module script of
// its own that may finish loading after the first view came, so a listener bound late
// gets the last one at once rather than never.
let lastConsentView = null;

/** Tell the page's listeners about this consent view, and keep it for later ones. */
export function announceConsentView(view) {
  lastConsentView = view;
  document.dispatchEvent(new CustomEvent('consent-view', { detail: view }));
}

/** Call `show` with every consent view announced from now on, and the last one already. */
export function onConsentView(show) {
  document.addEventListener('consent-view', (event) => show(event.detail));
  if (lastConsentView) show(lastConsentView);
}

/** One line on a consent view (GET .../consent): complete for which nights, or what is missing. */
export function consentText(view) {
  if (view.complete) {
    return t(view.expiring ? 'manage.consent.complete_expiring' : 'manage.consent.complete',
      { from: view.given_on, until: view.valid_until || '…' });
  }
  const missing = view.missing.map((m) => (m === 'person' ? t('manage.consent.party.person') : m));
  return view.records.length || view.cohabitants.length
    ? t('manage.consent.incomplete', { missing: [...missing, ...view.withdrawn].join(', ') })
    : t('manage.consent.not_on_record');
}

function cameraPill(cam) {
  if (!cam) return el('span', { class: 'pill danger', 'data-camera-state': 'none' }, t('manage.camera.none'));
  const state = cam.online ? 'online' : (cam.enrolled ? 'offline' : 'not_enrolled');
  return el('span', { class: 'pill ' + (cam.online ? 'ok' : 'danger'), 'data-camera-state': state }, t('manage.camera.' + state));
}

function cameraCard(cam) {
  if (!cam) return [el('p', { class: 'muted' }, t('manage.camera.none'))];
  return [
    el('p', {}, cam.id, ' ', cameraPill(cam)),
    cam.last_seen_at ? el('p', { class: 'muted' }, t('manage.camera.last_seen', { time: stampText(cam.last_seen_at) })) : ''];
}

function planCard(recipient) {
  if (recipient.plan_version == null) return [el('p', { class: 'muted' }, t('manage.plan.none'))];
  const plan = [el('p', {}, t('manage.plan.version', { version: recipient.plan_version, by: recipient.plan_created_by, time: stampText(recipient.plan_created_at) }))];
  if (recipient.in_force_version !== recipient.plan_version) {
    plan.push(el('p', { class: 'pill warn' }, t('manage.plan.pending', {
      version: recipient.plan_version, from: recipient.plan.effective_from,
      current: recipient.in_force_version == null ? '—' : recipient.in_force_version,
    })));
  }
  return plan;
}

export function renderStatus(recipient) {
  $('consent-status').replaceChildren(...consentCard(recipient.consent));
  renderCamera(recipient.camera);
  $('plan-status').replaceChildren(...planCard(recipient));
}

/** The camera's state, atop the page and beside the save button (redrawn as it changes). */
export function renderCamera(cam) {
  $('camera-status').replaceChildren(...cameraCard(cam));
  $('camera-now').replaceChildren(t('manage.camera_now'), ' ', cameraPill(cam));
}
