// A small hash router: `#/jobs/<id>?x=1` picks a view by its path pattern; the query string is the
// view's own state (filters), so Back and a reload keep it.

export function parseHash(hash) {
  const text = (hash || "").replace(/^#\/?/, "");
  const [path, query = ""] = text.split("?");
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

/** `routes`: [{pattern: "jobs/:id", view}]; the first whose parts match wins. */
export function match(routes, parts) {
  for (const route of routes) {
    const pattern = route.pattern.split("/").filter(Boolean);
    if (pattern.length !== parts.length) continue;
    const params = {};
    const ok = pattern.every((piece, i) => {
      if (piece.startsWith(":")) {
        params[piece.slice(1)] = parts[i];
        return true;
      }
      return piece === parts[i];
    });
    if (ok) return { route, params };
  }
  return null;
}

export function hashFor(path, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  const text = query.toString();
  return `#/${path}${text ? `?${text}` : ""}`;
}

/** Change the query of the current view without adding a history entry per keystroke. */
export function replaceQuery(path, params) {
  history.replaceState(null, "", hashFor(path, params));
}
