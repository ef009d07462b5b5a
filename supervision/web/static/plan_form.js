// The form's single inputs (windows, advanced, effective date) mirror the draft plan; the
// consent is not the plan's but on record, and the form only shows it.
import { getPath, setPath } from './plan_state.js';
import { bindPlanRows, renderPlanRows } from './plan_rows.js';
import { consentText, onConsentView } from './recipient_status.js';

const $ = (id) => document.getElementById(id);

/** Inputs named by their dotted path in the plan. */
const SCALAR_FIELDS = ['window_before_minutes', 'window_after_minutes', 'max_lookin_seconds',
  'follow_up.interval_minutes', 'follow_up.max_follow_ups', 'timezone', 'night_boundary',
  'effective_from'];

let form = null;

/** Numbers stay numbers; anything else goes as typed, for the service to point at. */
function typed(input) {
  if (input.type === 'number') {
    const n = Number(input.value);
    return input.value !== '' && Number.isInteger(n) ? n : input.value;
  }
  if (input.name === 'effective_from') return input.value || null;
  return input.value;
}

/** Listens to every input of the plan form once. `tonight()` is the recipient's current
 * night (ISO date); `changed()` is called after each edit of the draft. */
export function bindPlanForm(planForm, { tonight, changed }) {
  form = planForm;
  for (const name of SCALAR_FIELDS) {
    form.elements[name].addEventListener('input', (event) => {
      setPath(name, typed(event.target));
      changed();
    });
  }

  bindPlanRows({ tonight, changed });
  // recipient_details.js announces every consent view it shows: the records decide
  onConsentView((view) => {
    const state = $('plan-consent-state');
    state.textContent = consentText(view);
    state.className = view.complete && !view.expiring ? '' : 'error';
  });
}

/** Shows the draft in the form, replacing whatever the inputs held. */
export function fillPlanForm() {
  for (const name of SCALAR_FIELDS) {
    const value = getPath(name);
    form.elements[name].value = value == null ? '' : String(value);
  }
  renderPlanRows();
}
