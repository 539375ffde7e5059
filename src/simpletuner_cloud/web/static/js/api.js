// The one way the page talks to the server: the same JSON API the CLI uses, by relative URLs (the
// page is /cloud, so `api/cloud/...` works unchanged behind a reverse proxy or a tunnel).

export const AUTH_REQUIRED = "simpletuner:auth-required";

/** `{ok, status, body}`; never throws (a dropped connection is status 0, and so is an answer cut
 * off mid-body: its status line said 200, but what it carried cannot be used). */
export async function api(method, path, body, headers) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    return { ok: false, status: 0, body: null };
  }
  let text;
  try {
    text = await response.text();
  } catch (_) {
    return { ok: false, status: 0, body: null };
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null; // not JSON (a proxy's own error page, say): the status still tells
  }
  if (response.status === 401 && !headers?.Authorization) {
    document.dispatchEvent(new CustomEvent(AUTH_REQUIRED));
  }
  return { ok: response.ok, status: response.status, body: data };
}

export const get = (path) => api("GET", path);

/** `path?key=value&...`, repeating a key for a list and leaving out empty values. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const item of Array.isArray(value) ? value : [value]) {
      if (item !== null && item !== undefined && item !== "") query.append(key, String(item));
    }
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}
