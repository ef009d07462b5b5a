// The recipients list page's script: create a recipient (the plan editor starts in plan_editor.js).
import { api, explain } from './common.js';
import { clearErrors, problems, showErrors } from './field_errors.js';

const form = document.getElementById('new-recipient');
const status = document.getElementById('new-recipient-status');

form?.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors(form);
  status.textContent = '';
  const body = {};
  for (const name of ['name', 'address', 'unit', 'access_info']) body[name] = form.elements[name].value;
  try {
    const made = await api('/api/recipients', { method: 'POST', body });
    location.href = `/manage/recipients/${made.id}`;
  } catch (error) {
    const found = problems(error);
    if (found) showErrors(form, found, status);
    else status.textContent = explain(error);
  }
});
