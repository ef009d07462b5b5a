// The coming nights from the preview, and the one the manager picked drawn large with its legend.
import { el, t } from './common.js';
import { dateText } from './dates.js';
import { dstText, nightBar, skipText, windowText } from './plan_timeline.js';

const $ = (id) => document.getElementById(id);
let nights = [];
let shownNight = null; // ISO date of the night on the large timeline, once picked

/** Picks the night the large timeline shows from the next drawing on (if it is among them). */
export function chooseNight(iso) {
  shownNight = iso;
}

/** Draws the nights list and the chosen night from the preview's nights. */
export function drawNights(previewNights) {
  nights = previewNights;
  const list = $('nights');
  list.replaceChildren();
  for (const night of nights) {
    const pills = [];
    if (night.draft) pills.push(el('span', { class: 'pill warn' }, t('manage.draft')));
    else if (night.version != null) pills.push(el('span', { class: 'pill' }, t('manage.version_short', { version: night.version })));
    if (night.dst_change) pills.push(el('span', { class: 'pill dst' }, dstText(night)));
    if (night.skip) pills.push(el('span', { class: 'pill danger' }, skipText(night.skip)));
    if (night.version == null) pills.push(el('span', { class: 'pill' }, t('manage.no_plan_night')));
    const times = night.windows.map((w) => (w.dst === 'gap' ? `${w.at}→${w.due_local}` : w.at)).join(', ');
    const head = el('button', { type: 'button', class: 'link night-date' }, dateText(night.night));
    head.addEventListener('click', () => { shownNight = night.night; showNight(); });
    list.append(el('li', { class: 'night' + (night.dst_change ? ' dst' : '') + (night.skip ? ' skipped' : ''), 'data-night': night.night },
      el('div', { class: 'night-head' }, head, ...pills),
      nightBar(night, false),
      el('div', { class: 'night-times muted' }, times || t('manage.no_checks'))));
  }
  showNight();
}

function showNight() {
  const night = nights.find((n) => n.night === shownNight) || nights[0];
  if (!night) return;
  $('timeline-night').textContent = dateText(night.night, { weekday: 'long', day: 'numeric', month: 'long' });
  $('timeline').replaceChildren(nightBar(night, true));
  const legend = [];
  for (const w of night.windows) legend.push(el('li', { class: w.skip ? 'skipped' : '' }, windowText(w)));
  if (night.dst_change) legend.push(el('li', { class: 'dst' }, dstText(night)));
  if (!night.windows.length) legend.push(el('li', { class: 'muted' }, night.skip ? skipText(night.skip) : t('manage.no_checks')));
  $('timeline-legend').replaceChildren(...legend);
  for (const li of $('nights').children) li.classList.toggle('shown', li.dataset.night === night.night);
}
