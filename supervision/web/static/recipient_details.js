// A recipient's details (name, address, unit, access information, contacts, care notes),
// archiving, and consent on record: records, cohabitants, withdrawal.
import { api, el, explain, t } from './common.js';
import { announceConsentView, consentText } from './recipient_status.js';

const data = JSON.parse(document.getElementById('recipient-data').textContent);
const base = `/api/recipients/${data.id}`;
const form = document.getElementById('recipient-form');
const contacts = document.getElementById('contacts');
const detailsStatus = document.getElementById('details-status');

function contactRow(c = { name: '', relation: '', phone: '' }) {
  // named contact.*: a contact's "name" must not join the form's own "name" field
  const field = (name, label, value) => el('label', {}, label, el('input', { name: `contact.${name}`, value, maxLength: name === 'phone' ? 32 : 128 }));
  const remove = el('button', { type: 'button' }, t('manage.remove'));
  const li = el('li', { class: 'grid-form' }, field('name', t('manage.contacts.name'), c.name),
    field('relation', t('manage.contacts.relation'), c.relation), field('phone', t('manage.contacts.phone'), c.phone), remove);
  remove.addEventListener('click', () => li.remove());
  return li;
}

contacts.replaceChildren(...data.contacts.map(contactRow));
document.getElementById('add-contact').addEventListener('click', () => contacts.append(contactRow()));

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const rows = [...contacts.children].map((li) => ({
    name: li.querySelector('[name="contact.name"]').value, relation: li.querySelector('[name="contact.relation"]').value,
    phone: li.querySelector('[name="contact.phone"]').value,
  })).filter((c) => c.name.trim());
  const f = form.elements;
  try {
    await api(base, { method: 'PATCH', body: {
      name: f.name.value, address: f.address.value, unit: f.unit.value, access_info: f.access_info.value,
      care_notes: f.care_notes.value, contacts: rows,
    } });
    detailsStatus.className = '';
    detailsStatus.textContent = t('manage.details.saved');
  } catch (error) { detailsStatus.className = 'error'; detailsStatus.textContent = explain(error); }
});

document.getElementById('archive').addEventListener('click', async () => {
  if (!confirm(t('manage.archive.confirm'))) return;
  try { await api(`${base}/archive`, { method: 'POST' }); location.reload(); } catch (error) { detailsStatus.textContent = explain(error); }
});

// --- consent on record --------------------------------------------------------------
const list = document.getElementById('consent-list');
const summary = document.getElementById('consent-summary');
const consentForm = document.getElementById('consent-form');
const consentLine = document.getElementById('consent-status-line');
const cohabitants = document.getElementById('cohabitants-form');

function record(r) {
  const parts = [t('manage.consent.party.' + r.party), r.name, t('manage.consent.method.' + r.method),
    r.document_ref || r.witness, `${r.given_on} – ${r.valid_until || '…'}`];
  const li = el('li', { 'data-record': String(r.id) }, parts.filter(Boolean).join(' · '));
  if (r.withdrawn_at) li.append(' ', el('span', { class: 'pill danger' }, t('manage.consent.withdrawn')));
  else {
    const button = el('button', { type: 'button', class: 'withdraw' }, t('manage.consent.withdraw'));
    button.addEventListener('click', async () => {
      if (!confirm(t('manage.consent.withdraw_confirm', { name: r.name }))) return;
      try { show(await api(`${base}/consent/${r.id}/withdraw`, { method: 'POST' })); } catch (error) { consentLine.textContent = explain(error); }
    });
    li.append(' ', button);
  }
  return li;
}

function show(view) {
  announceConsentView(view);
  list.replaceChildren(...view.records.map(record));
  cohabitants.elements.names.value = view.cohabitants.join(', ');
  summary.className = view.complete ? (view.expiring ? 'pill warn' : '') : 'error';
  summary.textContent = consentText(view);
}

consentForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  const f = consentForm.elements;
  try {
    show(await api(`${base}/consent`, { method: 'POST', body: {
      party: f.party.value, name: f.name.value, method: f.method.value, witness: f.witness.value,
      document_ref: f.document_ref.value, given_on: f.given_on.value, valid_until: f.valid_until.value || null,
    } }));
    consentForm.reset();
    consentLine.className = '';
    consentLine.textContent = t('manage.consent.saved');
  } catch (error) { consentLine.className = 'error'; consentLine.textContent = explain(error); }
});

cohabitants.addEventListener('submit', async (event) => {
  event.preventDefault();
  const names = cohabitants.elements.names.value.split(',').map((n) => n.trim()).filter(Boolean);
  try { show(await api(`${base}/cohabitants`, { method: 'PUT', body: { names } })); } catch (error) { consentLine.textContent = explain(error); }
});

if (data.archived) for (const node of document.querySelectorAll('#details form, #archive, #consent-records form')) node.inert = true;
api(`${base}/consent`).then(show).catch((error) => { summary.textContent = explain(error); });
