// The JSON API client: the base path and the auth mode (from the page's meta
// tags), the bearer token (kept in sessionStorage), problem documents as errors.

const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? '';

/** The server's base path ('' or '/x'). */
export const BASE = meta('semiont-base');
/** Whether the API wants a bearer token. */
export const AUTH_REQUIRED = meta('semiont-auth') === 'required';

const TOKEN_KEY = 'semiont-jobs-token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An API answer that was not 2xx: status, the problem's detail and code. */
export class ApiError extends Error {
  constructor(status, detail, code) {
    super(detail);
    this.status = status;
    this.code = code;
  }
}

/** Request headers with the token. */
export function headers(extra = {}) {
  const h = { Accept: 'application/json', ...extra };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/** Calls `method path` below /api/v1 with an optional JSON body. */
export async function api(method, path, body) {
  // Signed out (or not yet in): ask nothing the server would refuse.
  if (AUTH_REQUIRED && !token()) throw new ApiError(401, 'not signed in', 'unauthorized');
  const init = { method, headers: headers(), cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`${BASE}/api/v1${path}`, init);
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    throw new ApiError(resp.status, data?.detail ?? `${method} ${path}: HTTP ${resp.status}`, data?.code);
  }
  return data;
}

export const get = (path) => api('GET', path);

/** The text at `path` below the base path (e.g. /metrics). */
export async function text(path) {
  if (AUTH_REQUIRED && !token()) throw new ApiError(401, 'not signed in', 'unauthorized');
  const resp = await fetch(`${BASE}${path}`, { headers: headers({ Accept: 'text/plain' }), cache: 'no-store' });
  if (!resp.ok) throw new ApiError(resp.status, `GET ${path}: HTTP ${resp.status}`);
  return resp.text();
}
export const post = (path, body) => api('POST', path, body);
export const del = (path) => api('DELETE', path);

/** `?a=b&c=d` from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
