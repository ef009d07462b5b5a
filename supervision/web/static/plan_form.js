// The form's single inputs (windows, consent, advanced, effective date) mirror the draft plan.
import { draftPlan, getPath, setPath } from './plan_state.js';
import { bindPlanRows, renderPlanRows } from './plan_rows.js';

const $ = (id) => document.getElementById(id);

/** Inputs named by their dotted path in the plan. */
const SCALAR_FIELDS = ['window_before_minutes', 'window_after_minutes', 'max_lookin_seconds',
  'follow_up.interval_minutes', 'follow_up.max_follow_ups', 'timezone', 'night_boundary',
  'effective_from', 'consent.given_on', 'consent.valid_until'];

let form = null;

/** Numbers stay numbers; anything else goes as typed, for the service to point at. */
function typed(input) {
  if (input.type === 'number') {
    const n = Number(input.value);
    return input.value !== '' && Number.isInteger(n) ? n : input.value;
  }
  if (input.name === 'effective_from' || input.name === 'consent.valid_until') return input.value || null;
  return input.value;
}

/** Listens to every input of the plan form once. `tonight()` is the recipient's current
 * night (ISO date); `changed()` is called after each edit of the draft. */
export function bindPlanForm(planForm, { tonight, changed }) {
  form = planForm;
  for (const name of SCALAR_FIELDS) {
    form.elements[name].addEventListener('input', (event) => {
      if (name.startsWith('consent.') && draftPlan().consent === null) return;
      setPath(name, typed(event.target));
      changed();
    });
  }

  $('consent-given').addEventListener('change', (event) => {
    const plan = draftPlan();
    if (event.target.checked) {
      // Tonight's date (a night is named by its evening), so consent covers tonight.
      plan.consent = { given_on: form.elements['consent.given_on'].value || tonight(), valid_until: form.elements['consent.valid_until'].value || null };
      form.elements['consent.given_on'].value = plan.consent.given_on;
    } else {
      plan.consent = null;
    }
    $('consent-dates').hidden = plan.consent === null;
    changed();
  });

  bindPlanRows({ tonight, changed });
  // recipient_details.js announces every consent view it shows
  document.addEventListener('consent-view', (event) => {
    const view = event.detail;
    showConsentOnRecord(view.records.length > 0 || view.cohabitants.length > 0);
  });
}

/** Once consent is on record it decides, and the plan's own consent is ignored: its
 * inputs are read-only, with a note saying why. */
export function showConsentOnRecord(onRecord) {
  $('plan-consent').disabled = onRecord;
  $('plan-consent-on-record').hidden = !onRecord;
}

/** Shows the draft in the form, replacing whatever the inputs held. */
export function fillPlanForm() {
  for (const name of SCALAR_FIELDS) {
    const value = getPath(name);
    form.elements[name].value = value == null ? '' : String(value);
  }
  const consent = draftPlan().consent;
  $('consent-given').checked = consent !== null;
  $('consent-dates').hidden = consent === null;
  renderPlanRows();
}
