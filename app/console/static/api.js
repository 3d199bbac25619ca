// The REST client: bearer token from sign-in, one error type, and a pause-and-retry when the
// token expires (the sign-in dialog reappears over the screen instead of losing it).

export class ApiError extends Error {
  constructor(status, body) {
    const error = body?.error ?? {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details;
  }

  // Field name → message, for validation errors (details: [{field, message}]).
  fieldErrors() {
    const out = {};
    if (Array.isArray(this.details)) {
      for (const d of this.details) if (d.field && !(d.field in out)) out[d.field] = d.message;
    }
    return out;
  }
}

const session = {
  token: sessionStorage.getItem("console.token"),
  expiresAt: Number(sessionStorage.getItem("console.expires_at") || 0),
  me: null,
};
let reauthenticate = null; // set by the sign-in dialog: () => Promise<void>

export function onSessionExpired(handler) {
  reauthenticate = handler;
}

export function currentToken() {
  return session.token;
}

export function me() {
  return session.me;
}

export function may(permission) {
  return Boolean(session.me?.permissions.includes(permission));
}

export function signedIn() {
  return Boolean(session.token) && session.expiresAt > Date.now();
}

export async function signIn(username, password) {
  const body = new URLSearchParams({ username, password });
  const response = await fetch("/api/v1/auth/token", { method: "POST", body });
  const json = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, json);
  session.token = json.access_token;
  session.expiresAt = Date.now() + json.expires_in * 1000;
  sessionStorage.setItem("console.token", session.token);
  sessionStorage.setItem("console.expires_at", String(session.expiresAt));
  session.me = await request("GET", "/api/v1/auth/me");
  return session.me;
}

export async function loadMe() {
  session.me = await request("GET", "/api/v1/auth/me");
  return session.me;
}

export function signOut() {
  session.token = null;
  session.expiresAt = 0;
  session.me = null;
  sessionStorage.removeItem("console.token");
  sessionStorage.removeItem("console.expires_at");
}

export async function request(method, path, body, { retry = true } = {}) {
  if (retry && session.token && session.expiresAt <= Date.now() + 5000 && reauthenticate) {
    await reauthenticate();
  }
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && retry && reauthenticate) {
    await reauthenticate();
    return request(method, path, body, { retry: false });
  }
  if (response.status === 204) return null;
  const json = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

export const get = (path) => request("GET", path);
export const post = (path, body = {}) => request("POST", path, body);

// Every page of a list endpoint ({items, next_cursor}), up to `max` items.
export async function getAll(path, max = 5000) {
  const items = [];
  let cursor = null;
  do {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(`${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}
