// The console's account panel (who is logged in, password change, logout), and what the
// console does when its session ends: back to the login page, no stuck screen. A session
// ends with WebSocket close code 4401, a 401 from an API, or a refused reconnect.

import { postJson, errorText } from './auth-form.js';

export const SESSION_REVOKED = 4401;
const LOGIN_PAGE = 'login.html';

const $ = (id) => document.getElementById(id);
let leaving = false;

/** Leaves the console for the login page (once). */
export function sessionEnded() {
  if (leaving) return;
  leaving = true;
  location.replace(LOGIN_PAGE);
}

/** True when the session is still valid; goes to the login page when it is not. */
export async function checkSession() {
  try {
    const response = await fetch('api/auth/me', { credentials: 'same-origin' });
    if (response.status === 401) {
      sessionEnded();
      return false;
    }
    return response.ok;
  } catch {
    return true; // the daemon is unreachable: that is a connection problem, not a logout
  }
}

/** `fetch` for the console's API calls: a 401 sends the page to the login page. */
export async function apiFetch(url, options = {}) {
  const response = await fetch(url, { credentials: 'same-origin', ...options });
  if (response.status === 401) sessionEnded();
  return response;
}

/** Wires the account panel in index.html. */
export function initAccount() {
  const button = $('account-button');
  const panel = $('account-panel');
  const form = $('password-form');
  const result = $('password-result');

  const toggle = (open = panel.hidden) => {
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) showUser();
  };
  button.addEventListener('click', () => toggle());

  async function showUser() {
    const response = await apiFetch('api/auth/me');
    if (!response.ok) return;
    const me = await response.json();
    $('account-user').textContent = me.kind === 'session' ? `Logged in as ${me.user}` : `Token ${me.user}`;
  }

  $('logout-button').addEventListener('click', async () => {
    try {
      await postJson('api/auth/logout', {});
    } finally {
      sessionEnded();
    }
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const { current, new: fresh, repeat } = form.elements;
    const say = (text, ok) => {
      result.textContent = text;
      result.classList.toggle('form-error', !ok);
      result.hidden = false;
    };
    if (fresh.value !== repeat.value) {
      say('The two new passwords differ.', false);
      return;
    }
    const response = await postJson('api/auth/password', { current: current.value, new: fresh.value });
    if (response.status === 401) {
      sessionEnded();
      return;
    }
    if (response.ok) {
      form.reset();
      say('Password changed. Other sessions of this account were logged out.', true);
    } else {
      say(await errorText(response), false);
    }
  });
}
