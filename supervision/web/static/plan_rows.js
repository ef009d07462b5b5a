// The plan's lists (check times, pauses, skip nights) as rows that edit their item of the draft.
import { el, t } from './common.js';
import { fieldLabel } from './field_errors.js';
import { draftPlan } from './plan_state.js';

const $ = (id) => document.getElementById(id);
const ALL_DAYS = [0, 1, 2, 3, 4, 5, 6];
let changed = () => {};

function removeButton(list, index, rerender) {
  const button = el('button', { type: 'button', class: 'link remove' }, t('manage.remove'));
  button.addEventListener('click', () => { list.splice(index, 1); rerender(); changed(); });
  return button;
}

function input(attrs, onInput) {
  const node = el('input', attrs);
  node.addEventListener('input', () => { onInput(node); changed(); });
  return node;
}

function renderCheckTimes() {
  const plan = draftPlan();
  const list = $('check-times');
  list.replaceChildren();
  plan.check_times.forEach((check, i) => {
    if (!Array.isArray(check.weekdays)) check.weekdays = ALL_DAYS.slice();
    const at = input({ type: 'time', value: check.at || '', class: 'at', name: `check_times.${i}.at` },
      (node) => { check.at = node.value; });
    const days = el('div', { class: 'weekdays', 'data-field': `check_times.${i}.weekdays`, role: 'group', 'aria-label': t('manage.field.check_times.weekdays') });
    for (const day of ALL_DAYS) {
      const box = el('input', { type: 'checkbox', checked: check.weekdays.includes(day), value: String(day) });
      box.addEventListener('change', () => {
        check.weekdays = ALL_DAYS.filter((d) => (d === day ? box.checked : check.weekdays.includes(d)));
        changed();
      });
      days.append(el('label', { class: 'day' }, box, t('manage.weekday.' + day)));
    }
    list.append(el('li', { class: 'row check-time', 'data-field': `check_times.${i}` },
      el('label', { class: 'field', 'data-field': `check_times.${i}.at` }, fieldLabel(`check_times.${i}.at`), at),
      days, removeButton(plan.check_times, i, renderCheckTimes)));
  });
}

function renderPauses() {
  const plan = draftPlan();
  const list = $('pauses');
  list.replaceChildren();
  plan.pauses.forEach((pause, i) => {
    list.append(el('li', { class: 'row', 'data-field': `pauses.${i}` },
      el('label', { 'data-field': `pauses.${i}.start` }, t('manage.field.pauses.start'),
        input({ type: 'date', value: pause.start || '', name: `pauses.${i}.start` }, (n) => { pause.start = n.value; })),
      el('label', { 'data-field': `pauses.${i}.end` }, t('manage.field.pauses.end'),
        input({ type: 'date', value: pause.end || '', name: `pauses.${i}.end` }, (n) => { pause.end = n.value; })),
      el('label', { class: 'wide', 'data-field': `pauses.${i}.reason` }, t('manage.field.pauses.reason'),
        input({ type: 'text', value: pause.reason || '', maxLength: 200, name: `pauses.${i}.reason` }, (n) => { pause.reason = n.value; })),
      removeButton(plan.pauses, i, renderPauses)));
  });
}

function renderSkipNights() {
  const plan = draftPlan();
  const list = $('skip-nights');
  list.replaceChildren();
  plan.skip_nights.forEach((skip, i) => {
    list.append(el('li', { class: 'row', 'data-field': `skip_nights.${i}` },
      el('label', { 'data-field': `skip_nights.${i}.night` }, t('manage.field.skip_nights.night'),
        input({ type: 'date', value: skip.night || '', name: `skip_nights.${i}.night` }, (n) => { skip.night = n.value; })),
      el('label', { class: 'wide', 'data-field': `skip_nights.${i}.reason` }, t('manage.field.skip_nights.reason'),
        input({ type: 'text', value: skip.reason || '', maxLength: 200, name: `skip_nights.${i}.reason` }, (n) => { skip.reason = n.value; })),
      removeButton(plan.skip_nights, i, renderSkipNights)));
  });
}

/** Draws every list's rows from the draft. */
export function renderPlanRows() {
  renderCheckTimes();
  renderPauses();
  renderSkipNights();
}

/** The "add" buttons; new pauses and skips start on `tonight()`. */
export function bindPlanRows(options) {
  changed = options.changed;
  $('add-time').addEventListener('click', () => {
    draftPlan().check_times.push({ at: '', weekdays: ALL_DAYS.slice() });
    renderCheckTimes();
    const inputs = $('check-times').querySelectorAll('input.at');
    inputs[inputs.length - 1].focus();
    changed();
  });
  $('add-pause').addEventListener('click', () => {
    draftPlan().pauses.push({ start: options.tonight(), end: options.tonight(), reason: '' });
    renderPauses();
    changed();
  });
  $('add-skip').addEventListener('click', () => {
    draftPlan().skip_nights.push({ night: options.tonight(), reason: '' });
    renderSkipNights();
    changed();
  });
}
