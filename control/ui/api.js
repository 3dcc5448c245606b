// cost-control's API with the token the user entered. The token lives in
// sessionStorage (this tab only) and travels only in the Authorization
// header, never in a URL.

const KEY = 'cost-control-token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

// Called on any 401: the token is wrong or was changed on the server.
let onUnauthorized = () => {};
export function whenUnauthorized(f) {
  onUnauthorized = f;
}

function explain(status, error, field) {
  const what = field ? `${field}: ${error}` : error;
  switch (status) {
    case 401:
      return `cost-control refused this token (401: ${error}). Sign in with its gateway or admin token.`;
    case 403:
      return `This needs the admin token (403: ${error}).`;
    case 400:
      return `cost-control refused the request: ${what}.`;
    case 503:
      return `cost-control's store is unavailable (503); try again shortly.`;
    default:
      return `cost-control answered ${status}: ${what}`;
  }
}

export async function call(method, path, body) {
  const headers = { authorization: `Bearer ${token.get() ?? ''}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `cost-control did not answer (${e.message}).`);
  }
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, explain(resp.status, json?.error ?? resp.statusText, json?.field), json?.field);
    if (resp.status === 401) onUnauthorized(err);
    throw err;
  }
  return json;
}

/// A GET with query parameters (undefined and null ones left out).
export function get(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return call('GET', s ? `${path}?${s}` : path);
}
