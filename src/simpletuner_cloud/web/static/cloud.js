// The Cloud tab: every value comes from the JSON API the CLI uses too.
"use strict";

async function api(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  return { ok: response.ok, status: response.status, body };
}

function show(element, className, lines) {
  element.className = className;
  element.replaceChildren(...lines.map((line) => {
    const p = document.createElement("p");
    p.textContent = line.text;
    if (line.cls) p.className = line.cls;
    return p;
  }));
}

function errorLines(result) {
  const error = result.body && result.body.error;
  if (!error) return [{ text: `Request failed (HTTP ${result.status}).` }];
  const lines = [{ text: `${error.message} (${error.code})` }];
  if (error.hint) lines.push({ text: error.hint, cls: "hint" });
  return lines;
}

async function validate() {
  const out = document.getElementById("validate-result");
  show(out, "muted", [{ text: "Checking the token with Replicate…" }]);
  const result = await api("/api/cloud/providers/replicate/validate");
  if (!result.ok) return show(out, "bad", errorLines(result));
  const v = result.body;
  if (!v.valid) return show(out, "bad", [{ text: v.message || "Invalid token" }, { text: v.hint || "", cls: "hint" }]);
  const account = v.account || {};
  show(out, "ok", [
    { text: `Token works: ${account.username} (${account.name || account.username}, ${account.type}).` },
    { text: `Token source: ${v.token_source}.`, cls: "hint" },
  ]);
}

async function loadStatus() {
  const out = document.getElementById("system-status");
  const result = await api("/api/cloud/system-status");
  if (!result.ok) return show(out, "bad", errorLines(result));
  const s = result.body;
  const cls = s.indicator === "none" ? "ok" : s.indicator === "unknown" ? "muted" : "bad";
  show(out, cls, [{ text: `${s.indicator}: ${s.description || s.reason || ""}` }]);
}

async function loadHardware() {
  const body = document.querySelector("#hardware tbody");
  const result = await api("/api/cloud/hardware");
  if (!result.ok) return;
  const items = result.body.hardware || result.body;
  body.replaceChildren(...items.map((h) => {
    const row = document.createElement("tr");
    for (const value of [h.name + (h.default ? " (default)" : ""), `${h.vram_gb} GB`, h.usd_per_hour.toFixed(2), h.model]) {
      const cell = document.createElement("td");
      cell.textContent = value;
      row.appendChild(cell);
    }
    return row;
  }));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("validate").addEventListener("click", validate);
  loadStatus();
  loadHardware();
});
