// The login page: sends the user name and password to /api/auth/login; the answer sets the
// session cookie (HttpOnly: this script never sees it) and the console opens.

import { postJson, errorText } from './auth-form.js';

const form = document.getElementById('login-form');
const error = document.getElementById('login-error');

// Already logged in, or no account yet: go where that leads.
const status = await fetch('api/auth/status').then((r) => r.json()).catch(() => null);
if (status?.setup_required) location.replace('setup.html');
else if (status?.user) location.replace('./');

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.hidden = true;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  try {
    const response = await postJson('api/auth/login', {
      username: form.elements.username.value,
      password: form.elements.password.value,
    });
    if (response.ok) {
      location.replace('./');
      return;
    }
    form.elements.password.value = '';
    error.textContent = await errorText(response);
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});
