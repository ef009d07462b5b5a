// The night roster, on the rounds board and on the managers' roster page: the shifts of
// the units on the board (one per unit and night; on the managers' page, of the night
// chosen), whether I am on each, one button to take it or leave it; shift leads, managers
// and admins add and remove others (supervision/roster.py).
import { api, el, explain, t } from './common.js';
import { dateText } from './dates.js';

const list = document.getElementById('shifts');
const status = document.getElementById('roster-status');
const night = document.getElementById('roster-night'); // the managers' page only
const MAY_TAKE = document.body.dataset.role === 'staff';
const EVERY_MS = 60_000;

function shiftName(s) {
  return t('roster.shift', { unit: s.unit || t('roster.no_unit'), night: dateText(s.night) });
}

async function change(action, shift, username) {
  const buttons = list.querySelectorAll('button');
  for (const b of buttons) b.disabled = true;
  try {
    const body = { night: shift.night, unit: shift.unit };
    if (username) body.username = username;
    await api(`/api/roster/${action}`, { method: 'POST', body });
    await refresh(); // draws the list afresh
  } catch (error) {
    status.textContent = explain(error);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function item(s, roster) {
  const li = el('li', { class: `shift${s.mine ? ' on' : ''}`, 'data-unit': s.unit, 'data-night': s.night },
    el('span', { class: 'name' }, shiftName(s)));
  if (MAY_TAKE) {
    li.append(el('span', { class: 'mine' }, t(s.mine ? 'roster.on' : 'roster.off')));
    const button = el('button', { type: 'button', class: s.mine ? 'leave' : 'primary take' },
      t(s.mine ? 'roster.leave' : 'roster.take'));
    button.addEventListener('click', () => change(s.mine ? 'leave' : 'join', s));
    li.append(button);
  }
  const members = el('p', { class: 'members muted' });
  if (!s.members.length) members.append(t('roster.nobody'));
  else members.append(t('roster.members', { names: s.members.map((m) => m.name).join(', ') }));
  if (roster.may_manage) {
    for (const m of s.members) {
      const remove = el('button', { type: 'button', class: 'link remove', 'data-username': m.username },
        t('roster.remove', { name: m.name }));
      remove.addEventListener('click', () => change('leave', s, m.username));
      members.append(remove);
    }
  }
  li.append(members);
  const absent = roster.staff.filter((p) => !s.members.some((m) => m.username === p.username));
  if (roster.may_manage && absent.length) {
    const choice = el('select', { 'aria-label': `${t('roster.add_label')}: ${shiftName(s)}` },
      ...absent.map((p) => el('option', { value: p.username }, p.name)));
    const form = el('form', { class: 'add' }, choice, el('button', { type: 'submit' }, t('roster.add')));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      change('join', s, choice.value);
    });
    li.append(form);
  }
  return li;
}

function render(roster) {
  status.textContent = roster.shifts.length ? '' : t(night?.value ? 'roster.none_night' : 'roster.none');
  list.replaceChildren(...roster.shifts.map((s) => item(s, roster)));
}

async function refresh() {
  try {
    const chosen = night?.value ? `?night=${encodeURIComponent(night.value)}` : '';
    render(await api(`/api/roster${chosen}`));
  } catch (error) {
    status.textContent = explain(error);
  }
}

night?.addEventListener('change', refresh);
refresh();
setInterval(refresh, EVERY_MS);
