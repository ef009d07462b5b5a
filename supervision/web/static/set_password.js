// A one-time link: the password it was issued for, then on to log in.
import { api, t } from './common.js';
import { passwordProblem } from './passwords.js';

const form = document.getElementById('set-password');
const status = document.getElementById('status');
const token = location.pathname.split('/').pop();

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  status.className = '';
  try {
    await api(`/api/password-links/${encodeURIComponent(token)}`, { method: 'POST', body: { password: form.elements.password.value } });
    form.hidden = true;
    status.replaceChildren(t('users.link.done') + ' ', Object.assign(document.createElement('a'), { href: '/login', textContent: t('users.link.login') }));
  } catch (error) {
    status.className = 'error';
    status.textContent = passwordProblem(error);
  }
});
