// The first-start page: the one-time code from the daemon's setup link (#code=...) creates
// the first admin, who is then logged in.

import { postJson, errorText } from './auth-form.js';

const form = document.getElementById('setup-form');
const error = document.getElementById('setup-error');

/** Takes the code from the setup link (#code=...) into the form. */
function codeFromLink() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('code');
  if (!fromLink) return;
  form.elements.code.value = fromLink;
  // The code stays out of the history and of anything that copies the address.
  history.replaceState(null, '', location.pathname);
}
codeFromLink();
// The link opened where this page is already shown only changes the fragment.
window.addEventListener('hashchange', codeFromLink);

const status = await fetch('api/auth/status').then((r) => r.json()).catch(() => null);
if (status && !status.setup_required) location.replace(status.user ? './' : 'login.html');

function fail(text) {
  error.textContent = text;
  error.hidden = false;
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  error.hidden = true;
  const { code, username, password, repeat } = form.elements;
  if (password.value !== repeat.value) {
    fail('The two passwords differ.');
    return;
  }
  const response = await postJson('api/auth/setup', {
    code: code.value.trim(),
    username: username.value,
    password: password.value,
  });
  if (response.ok) {
    location.replace('./');
  } else if (response.status === 401) {
    fail('Wrong setup code.');
  } else if (response.status === 409) {
    location.replace('login.html');
  } else {
    fail(await errorText(response));
  }
});
