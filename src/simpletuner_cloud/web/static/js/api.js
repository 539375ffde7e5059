// The one way the page talks to the server: the same JSON API the CLI uses.

export async function api(method, path, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401) document.getElementById("auth-warning").hidden = false;
  return { ok: response.ok, status: response.status, body: data };
}

export function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

export function show(target, className, lines) {
  target.className = `result ${className}`;
  target.replaceChildren(...lines.filter((l) => l && l.text).map((l) => el("p", l.text, l.cls)));
}

export function errorLines(result) {
  const error = result.body && result.body.error;
  if (!error) return [{ text: `Request failed (HTTP ${result.status}).` }];
  return [{ text: `${error.message} (${error.code})` }, { text: error.hint, cls: "hint" }];
}

export function fillTable(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const row = el("tr");
    for (const cell of cells) {
      const td = el("td");
      if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell ?? "";
      row.appendChild(td);
    }
    return row;
  }));
}

export function usd(value) {
  return value === null || value === undefined ? "—" : `$${Number(value).toFixed(2)}`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = n, unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}
