// The service's refusals (422) shown next to their fields and in a summary, shared by both manage pages.
import { el, strings, t } from './common.js';

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

/** A framework (pydantic) validation error in the page's language, by its type and the
 * limits in its ctx: the service's msg is English whatever the page's language. */
function validationText(d) {
  const ctx = d.ctx || {};
  if (d.type === 'missing' || (d.type === 'string_too_short' && ctx.min_length === 1)) return t('validation.missing');
  if (d.type === 'string_too_short') return t('validation.string_too_short', { count: ctx.min_length });
  if (d.type === 'string_too_long') return t('validation.string_too_long', { count: ctx.max_length });
  const key = 'validation.' + d.type;
  return strings[key] !== undefined ? t(key) : t('validation.invalid');
}

/** A problem in the page's language: a plan problem as plan_error.<code> with its params
 * when there is such a key (a unit code in params.unit translated as plan_error.unit.<unit>);
 * a problem with a code of another kind (the service's own refusals) as its msg, which the
 * service wrote in the page's language; else a framework error by its type. */
function problemText(d) {
  const key = typeof d.code === 'string' && d.code ? 'plan_error.' + d.code : '';
  if (!key) return validationText(d);
  if (t(key) === key) return d.msg;
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

/** Each message next to its field (or the nearest enclosing one), all listed in `summary`
 * under `heading` (a plural key given the count: "The form has 2 problems"). */
export function showErrors(root, found, summary, heading = 'manage.form_errors') {
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
    summary.replaceChildren(el('p', {}, t(heading, { count: found.length })), el('ul', {}, ...items));
    summary.hidden = false;
  }
}
