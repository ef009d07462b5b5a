// The service's refusals (422) shown next to their fields and in a summary, shared by both manage pages.
import { el, t } from './common.js';

/** A field path as people read it: "check_times.1.at" -> "Check time 2". */
export function fieldLabel(path) {
  if (!path) return t('manage.field.plan');
  const parts = path.split('.');
  const words = parts.filter((p) => !/^\d+$/.test(p));
  const index = parts.find((p) => /^\d+$/.test(p));
  // "pauses" is the list, "pauses.0" one of its items, "pauses.0.end" a field of it.
  const key = 'manage.field.' + words.join('.') + (index !== undefined && words.length === 1 ? '.item' : '');
  const name = t(key) === key ? path : t(key);
  return index === undefined ? name : `${name} ${Number(index) + 1}`;
}

/** A plan problem in the page's language: plan_error.<code> with its params when there is
 * such a key (a unit code in params.unit translated as plan_error.unit.<unit>), else the
 * service's English msg. */
function problemText(d) {
  const key = typeof d.code === 'string' && d.code ? 'plan_error.' + d.code : '';
  if (!key || t(key) === key) return d.msg;
  const params = { ...(d.params || {}) };
  if (typeof params.unit === 'string') {
    const unit = 'plan_error.unit.' + params.unit;
    if (t(unit) !== unit) params.unit = t(unit);
  }
  return t(key, params);
}

/** [{field, msg}] from a 422 of ours ({detail: [{field, msg, code, params}]}) or of FastAPI ({loc}). */
export function problems(error) {
  const detail = error && error.body && error.body.detail;
  if (error && error.status === 422 && Array.isArray(detail)) {
    return detail.map((d) => ({
      field: typeof d.field === 'string' ? d.field
        : (d.loc || []).filter((p) => p !== 'body').join('.'),
      msg: problemText(d),
    }));
  }
  return null;
}

/** Removes every message and mark from `root`; hides `summary` when given. */
export function clearErrors(root, summary = null) {
  for (const node of root.querySelectorAll('.field-error')) node.remove();
  for (const node of root.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  for (const node of root.querySelectorAll('.invalid')) node.classList.remove('invalid');
  if (summary) summary.hidden = true;
}

/** Each message next to its field (or the nearest enclosing one), all listed in `summary`. */
export function showErrors(root, found, summary) {
  clearErrors(root);
  const items = [];
  for (const { field, msg } of found) {
    let path = field;
    let target = null;
    while (path && !(target = root.querySelector(`[data-field="${path}"]`))) {
      path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '';
    }
    const label = fieldLabel(field);
    if (target) {
      target.classList.add('invalid');
      for (const input of target.querySelectorAll('input, select, textarea')) input.setAttribute('aria-invalid', 'true');
      target.append(el('p', { class: 'field-error', 'data-error-for': field }, `${label}: ${msg}`));
    }
    items.push(el('li', {}, el('strong', {}, label), ` ${msg}`));
  }
  if (summary) {
    summary.replaceChildren(el('p', {}, t('manage.errors', { n: found.length })), el('ul', {}, ...items));
    summary.hidden = false;
  }
}
