// The recipient page's entry: wires draft, form, preview, history and status, and saves or reverts.
// The editor keeps the plan as the JSON the API takes; every change asks the service to
// validate the draft and preview its nights, so errors appear next to their field and
// the timeline shows the night as it would be. Saving sends the same JSON.
import { api, el, explain, t } from './common.js';
import { clearErrors, problems, showErrors } from './field_errors.js';
import { bindPlanForm, fillPlanForm } from './plan_form.js';
import { refreshHistory } from './plan_history.js';
import { bindPreview, refreshPreview } from './plan_preview.js';
import { draftPlan, isDirty, startDraft } from './plan_state.js';
import { renderCamera, renderStatus } from './recipient_status.js';

const $ = (id) => document.getElementById(id);
let recipient = JSON.parse($('recipient').textContent);
const form = $('editor');
const summary = $('error-summary');
const saveButton = $('save');
const revertButton = $('revert');
const saveStatus = $('save-status');
const saveWarnings = $('save-warnings');
let previewTimer = null;
// how often the camera's state beside the save button is asked for
const CAMERA_POLL_MS = 10000;

/** Edits `plan` (the saved one, or null for the blank plan) afresh. */
function load(plan) {
  startDraft(plan, recipient.tonight);
  fillPlanForm();
  clearErrors(form, summary);
  dirty();
}

/** Whether the draft has unsaved changes; save and revert are enabled only then. */
function dirty() {
  const isDraftDirty = isDirty();
  saveButton.disabled = !isDraftDirty;
  revertButton.disabled = !isDraftDirty;
  return isDraftDirty;
}

/** After each edit: forget the last save's message and preview the draft shortly. */
function changed() {
  if (dirty()) saveStatus.textContent = '';
  clearTimeout(previewTimer);
  previewTimer = setTimeout(refreshPreview, 300);
}

function savedText(result) {
  if (!result.changed) return t('manage.unchanged');
  const checks = result.checks;
  return [
    t('manage.saved', { version: result.version }),
    t('manage.replanned', { created: checks.created, updated: checks.updated, removed: checks.removed }),
    result.pushed_to.length ? t('manage.pushed')
      : (recipient.camera ? t('manage.not_pushed') : t('manage.camera.none') + '.'),
  ].join(' ');
}

/** What the saved plan means while no look-in can be made (codes from the service). */
function showWarnings(codes) {
  saveWarnings.replaceChildren(...codes.map((code) => el('li', { 'data-warning': code }, t('manage.warning.' + code))));
  saveWarnings.hidden = !codes.length;
}

async function save(event) {
  event.preventDefault();
  saveButton.disabled = true;
  saveStatus.textContent = t('manage.saving');
  showWarnings([]);
  const base = recipient.plan_version || 0;
  try {
    const result = await api(`/api/recipients/${recipient.id}/plan?base_version=${base}`, { method: 'PUT', body: draftPlan() });
    recipient = await api(`/api/recipients/${recipient.id}`);
    load(recipient.plan);
    renderStatus(recipient);
    refreshHistory(recipient.id);
    refreshPreview();
    saveStatus.textContent = savedText(result);
    showWarnings(result.warnings || []);
  } catch (error) {
    const found = problems(error);
    if (found) {
      showErrors(form, found, summary, 'manage.errors');
      saveStatus.textContent = t('manage.not_saved');
    } else {
      saveStatus.textContent = explain(error);
    }
    dirty();
  }
}

bindPlanForm(form, { tonight: () => recipient.tonight, changed });
bindPreview({ recipientId: recipient.id, form, summary, dirty });
form.addEventListener('submit', save);
revertButton.addEventListener('click', () => { load(recipient.plan); refreshPreview(); });

load(recipient.plan);
renderStatus(recipient);
refreshPreview();
refreshHistory(recipient.id);
// the camera's state stays live while the page is open; the draft is left alone
setInterval(async () => {
  try {
    const fresh = await api(`/api/recipients/${recipient.id}`);
    recipient.camera = fresh.camera;
    renderCamera(fresh.camera);
  } catch (error) { /* the next poll tries again; saving reports its own errors */ }
}, CAMERA_POLL_MS);
