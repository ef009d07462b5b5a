// One's own password: the current one, then a new one by the rules.
import { api, t } from './common.js';
import { passwordProblem } from './passwords.js';

const form = document.getElementById('own-password');
const status = document.getElementById('status');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  status.className = '';
  try {
    await api('/api/me/password', { method: 'POST', body: { current: form.elements.current.value, new: form.elements.new.value } });
    form.reset();
    status.textContent = t('users.account.saved');
  } catch (error) {
    status.className = 'error';
    status.textContent = passwordProblem(error);
  }
});
