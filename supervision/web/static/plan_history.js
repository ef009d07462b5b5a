// The saved plan versions, each with what it changed field by field, worded for people.
import { api, el, explain, t } from './common.js';
import { stampText } from './dates.js';
import { fieldLabel } from './field_errors.js';

/** A plan field's value as a short text: check times with their weekdays, pauses, skips. */
function valueText(field, value) {
  if (value === null || value === undefined) return '—';
  if (field === 'check_times' && Array.isArray(value)) {
    return value.map((c) => (c.weekdays.length === 7 ? c.at
      : `${c.at} (${c.weekdays.map((d) => t('manage.weekday.' + d)).join(' ')})`)).join(', ') || '—';
  }
  if (field === 'pauses' && Array.isArray(value)) return value.map((p) => `${p.start}–${p.end} ${p.reason}`).join('; ') || '—';
  if (field === 'skip_nights' && Array.isArray(value)) return value.map((s) => `${s.night} ${s.reason}`).join('; ') || '—';
  if (field === 'consent' && typeof value === 'object') return `${value.given_on}–${value.valid_until || ''}`;
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/** Fetches and draws the version history into #history. */
export async function refreshHistory(recipientId) {
  const list = document.getElementById('history');
  try {
    const entries = await api(`/api/recipients/${recipientId}/plan/history`);
    list.replaceChildren();
    for (const entry of entries) {
      const head = [t('manage.version_short', { version: entry.version }), stampText(entry.created_at), entry.created_by];
      if (entry.effective_from) head.push(t('manage.effective_from.short', { night: entry.effective_from }));
      const changes = entry.version === 1 && entries.length && entry === entries[entries.length - 1]
        ? [el('li', { class: 'muted' }, t('manage.first_version'))]
        : entry.changes.map((c) => el('li', {}, el('strong', {}, fieldLabel(c.field)), ': ',
          el('span', { class: 'old' }, valueText(c.field, c.old)), ' → ', el('span', { class: 'new' }, valueText(c.field, c.new))));
      list.append(el('li', { 'data-version': String(entry.version) }, el('div', { class: 'history-head' }, head.join(' · ')), el('ul', {}, ...changes)));
    }
    if (!entries.length) list.append(el('li', { class: 'muted' }, t('manage.plan.none')));
  } catch (error) {
    list.replaceChildren(el('li', { class: 'error' }, explain(error)));
  }
}
