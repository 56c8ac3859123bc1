// Calls to the JSON API with the session cookie; state-changing calls carry the CSRF token the login returned.

let csrf = sessionStorage.getItem('hv.csrf') || '';

/** ApiError is an HTTP error answered by the API, with its status and message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const MESSAGES = {
  401: 'Session expirée : reconnectez-vous.',
  403: 'Accès refusé : cette ressource est hors de votre périmètre.',
  404: 'Introuvable (ou hors de votre périmètre).',
  429: 'Trop de requêtes : réessayez dans un instant.',
  503: 'Service momentanément indisponible.',
};

export function setCsrf(token) {
  csrf = token || '';
  if (csrf) sessionStorage.setItem('hv.csrf', csrf);
  else sessionStorage.removeItem('hv.csrf');
}

/** query builds a query string, leaving out empty values; arrays repeat the parameter. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    for (const x of Array.isArray(v) ? v : [v]) q.append(k, String(x));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/** api calls path and returns the decoded JSON; it throws ApiError on an HTTP error. */
export async function api(path, { method = 'GET', params, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') {
    if (csrf) headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
  }
  let r;
  try {
    r = await fetch(path + query(params), {
      method, headers, signal, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'Serveur injoignable : vérifiez la connexion.');
  }
  let data = null;
  if ((r.headers.get('Content-Type') || '').includes('json')) data = await r.json().catch(() => null);
  if (!r.ok) {
    if (r.status === 401 && path !== '/api/v1/session') window.dispatchEvent(new CustomEvent('hv:unauthorized'));
    const detail = data && data.error ? ` (${data.error})` : '';
    throw new ApiError(r.status, (MESSAGES[r.status] || `Erreur ${r.status}`) + detail);
  }
  return data;
}

/** login opens a session; it returns the user {name, role, epcis}. */
export async function login(username, password) {
  const u = await api('/api/v1/session', { method: 'POST', body: { username, password } });
  setCsrf(u && u.csrf_token);
  return u;
}

export async function logout() {
  try {
    await api('/api/v1/session', { method: 'DELETE' });
  } finally {
    setCsrf('');
  }
}

/** me returns the current user, or null without a session. */
export async function me() {
  try {
    const u = await api('/api/v1/me');
    if (u && u.csrf_token) setCsrf(u.csrf_token);
    return u;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}
