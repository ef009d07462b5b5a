// One night drawn as a bar with its check windows, and windows, skips and DST worded alike everywhere.
import { el, t } from './common.js';
import { dateText } from './dates.js';

/** Where an instant falls in the night, as a percentage of the bar (clamped to 0..100). */
function pct(iso, night) {
  const start = Date.parse(night.starts_at);
  const span = Date.parse(night.ends_at) - start;
  return Math.max(0, Math.min(100, ((Date.parse(iso) - start) / span) * 100));
}

/** One night of the preview as a bar; `big` adds every other hour's label and the due times. */
export function nightBar(night, big) {
  const bar = el('div', { class: 'timeline' + (big ? ' big' : '') + (night.skip ? ' skipped' : '') });
  bar.setAttribute('role', 'img');
  const spoken = night.windows.map((w) => `${w.due_local} (${w.opens_local}–${w.closes_local})`).join(', ');
  bar.setAttribute('aria-label', `${dateText(night.night)}: ${spoken || t('manage.no_checks')}`);
  const every = big ? 2 : 6;
  night.ticks.forEach((tick, i) => {
    if (i % every) return;
    const mark = el('span', { class: 'tick' }, big ? tick.label : '');
    mark.style.left = pct(tick.at, night) + '%';
    bar.append(mark);
  });
  if (night.dst_change) {
    const mark = el('span', { class: 'dst-mark', title: dstText(night) });
    mark.style.left = pct(night.dst_change.at, night) + '%';
    bar.append(mark);
  }
  night.windows.forEach((w, i) => {
    const left = pct(w.opens, night);
    const block = el('span', {
      class: 'win' + (w.skip ? ' skipped' : '') + (w.dst ? ' moved' : ''),
      title: windowText(w),
      'data-at': w.at,
    });
    block.style.left = left + '%';
    block.style.width = Math.max(0.4, pct(w.closes, night) - left) + '%';
    const due = el('span', { class: 'due' });
    const width = Date.parse(w.closes) - Date.parse(w.opens);
    due.style.left = ((Date.parse(w.due) - Date.parse(w.opens)) / width) * 100 + '%';
    block.append(due);
    if (big) block.append(el('span', { class: 'label' + (i % 2 ? ' low' : '') }, w.due_local));
    bar.append(block);
  });
  return bar;
}

/** A check window: its time, when it opens and closes, and what DST or a skip does to it. */
export function windowText(w) {
  let text = `${w.at}: ${w.opens_local}–${w.closes_local}`;
  if (w.dst === 'gap') text += ' · ' + t('manage.dst.gap', { at: w.at, due: w.due_local });
  if (w.dst === 'repeated') text += ' · ' + t('manage.dst.repeated', { at: w.at });
  if (w.skip) text += ' · ' + skipText(w.skip);
  return text;
}

/** Why a night or window is skipped (pause, skip night, no consent), with its reason. */
export function skipText(skip) {
  const what = t('manage.skip.' + skip.code);
  return skip.text ? `${what}: ${skip.text}` : what;
}

/** The clock change in a night, and how many hours the night has because of it. */
export function dstText(night) {
  const c = night.dst_change;
  return t(c.minutes > 0 ? 'manage.dst.forward' : 'manage.dst.back', { hours: night.hours });
}
