// Admin: the people, their roles and shift-lead flag; add, disable, enable, reset.
import { api, el, explain, t } from './common.js';

const ROLES = ['staff', 'patrol', 'manager', 'admin'];
const body = document.querySelector('#users tbody');
const status = document.getElementById('status');
const form = document.getElementById('add-user');
const linkBox = document.getElementById('link');

const when = (iso) => new Date(iso).toLocaleString(document.documentElement.lang === 'sv' ? 'sv-SE' : 'en-GB',
  { dateStyle: 'short', timeStyle: 'short' });

function showLink(made) {
  linkBox.hidden = false;
  linkBox.textContent = t('admin.users.link', {
    name: made.user.display_name, url: `${location.origin}/account/password/${made.token}`, until: when(made.expires_at),
  });
}

async function change(user, values) {
  try {
    await api(`/api/users/${user.id}`, { method: 'PATCH', body: values });
    status.textContent = t('admin.users.changed', { name: user.display_name });
  } catch (error) { status.textContent = explain(error); }
  load();
}

function row(u) {
  const role = el('select', { 'aria-label': t('admin.users.role_of', { name: u.display_name }) },
    ...ROLES.map((r) => el('option', { value: r, selected: r === u.role }, t('role.' + r))));
  role.addEventListener('change', () => change(u, { role: role.value }));
  const lead = el('input', { type: 'checkbox', checked: u.shift_lead, 'aria-label': t('admin.users.shift_lead_of', { name: u.display_name }) });
  lead.addEventListener('change', () => change(u, { shift_lead: lead.checked }));
  const toggle = el('button', { type: 'button', class: 'toggle' }, t(u.active ? 'admin.users.disable' : 'admin.users.enable'));
  toggle.addEventListener('click', () => {
    if (u.active && !confirm(t('admin.users.disable_confirm', { name: u.display_name }))) return;
    change(u, { active: !u.active });
  });
  const reset = el('button', { type: 'button', class: 'reset' }, t('admin.users.reset'));
  reset.addEventListener('click', async () => {
    if (!confirm(t('admin.users.reset_confirm', { name: u.display_name }))) return;
    try { showLink(await api(`/api/users/${u.id}/password-link`, { method: 'POST' })); } catch (error) { status.textContent = explain(error); }
    load();
  });
  const state = u.active
    ? (u.link_pending ? t('admin.users.link_pending') : t('admin.users.active'))
    : t('admin.users.disabled');
  return el('tr', { 'data-user': u.username },
    el('td', {}, u.username), el('td', {}, u.display_name), el('td', {}, role), el('td', {}, lead),
    el('td', { class: 'state' }, state), el('td', {}, toggle, ' ', reset));
}

async function load() {
  try {
    body.replaceChildren(...(await api('/api/users')).map(row));
  } catch (error) { status.textContent = explain(error); }
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  try {
    const made = await api('/api/users', { method: 'POST', body: {
      username: form.elements.username.value, display_name: form.elements.display_name.value,
      role: form.elements.role.value, shift_lead: form.elements.shift_lead.checked,
    } });
    form.reset();
    showLink(made);
    status.textContent = '';
    load();
  } catch (error) { status.textContent = explain(error); }
});

load();
