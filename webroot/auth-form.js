// What the login, setup and account forms share: a same-origin JSON POST, and the error
// message to show for a refused one.

export function postJson(url, body) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'same-origin',
  });
}

/** The server's reason for refusing, in words for a person. */
export async function errorText(response) {
  let reason = '';
  try {
    reason = (await response.json()).error ?? '';
  } catch {
    reason = '';
  }
  if (response.status === 429) {
    const wait = response.headers.get('retry-after');
    return `Too many failed attempts. Try again in ${wait ?? 'a few'} seconds.`;
  }
  if (response.status === 401) return 'Wrong user name or password.';
  return reason || `The server refused (${response.status}).`;
}
