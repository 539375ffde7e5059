// The Replicate card: which token is used, Validate, save or delete the token, billing, status, prices.
import { api, el, errorLines, fillTable, show, usd } from "./api.js";

const BASE = "/api/cloud/providers/replicate";

export async function loadProvider() {
  const result = await api("GET", "/api/cloud/providers");
  if (!result.ok) return;
  const replicate = result.body.providers.find((p) => p.id === "replicate");
  document.getElementById("provider-model").textContent = replicate.model;
  document.getElementById("provider-webhook").textContent = replicate.webhook_url || "not set";
  const token = document.getElementById("provider-token");
  token.textContent = replicate.configured
    ? `from ${replicate.token_source}${replicate.ready ? "" : " (not ready)"}`
    : "not set: export REPLICATE_API_TOKEN or save one below";
}

export async function validate() {
  const out = document.getElementById("validate-result");
  show(out, "muted", [{ text: "Checking the token with Replicate…" }]);
  const result = await api("GET", `${BASE}/validate`);
  if (!result.ok) return show(out, "bad", errorLines(result));
  const { account, token_source: source, token } = result.body;
  show(out, "ok", [
    { text: `Token works: ${account.username} (${account.name || account.username}, ${account.type}).` },
    { text: `Token ${token} from ${source}.`, cls: "hint" },
  ]);
}

export async function saveToken(event) {
  event.preventDefault();
  const input = document.getElementById("token-input");
  const out = document.getElementById("token-result");
  const result = await api("PUT", `${BASE}/token`, { api_token: input.value });
  input.value = "";
  if (!result.ok) return show(out, "bad", errorLines(result));
  show(out, "ok", [{ text: `Saved token ${result.body.token}.` }, { text: result.body.note, cls: "hint" }]);
  await loadProvider();
}

export async function deleteToken() {
  const out = document.getElementById("token-result");
  const result = await api("DELETE", `${BASE}/token`);
  if (!result.ok) return show(out, "bad", errorLines(result));
  show(out, "ok", [
    { text: result.body.deleted ? "Deleted the saved token." : "No saved token to delete." },
    { text: result.body.note, cls: "hint" },
  ]);
  await loadProvider();
}

export async function loadBilling() {
  const out = document.getElementById("billing");
  const result = await api("GET", `${BASE}/billing`);
  if (!result.ok) return show(out, "bad", errorLines(result));
  const b = result.body;
  const limit = b.cost_limit;
  const link = el("a", "Replicate account page");
  link.href = b.account_url;
  link.rel = "noreferrer";
  const balance = el("p", `Balance: unknown (${b.balance_reason}). See the `);
  balance.id = "billing-balance";
  balance.append(link, ".");
  const spend = el("p", `Spent by this tool: today ${usd(b.spend.day)}, this week ${usd(b.spend.week)}, `
    + `this month ${usd(b.spend.month)}.`);
  spend.id = "billing-spend";
  const limitLine = el("p", limit.enabled
    ? `Cost limit: ${usd(limit.amount)} ${limit.period}, action ${limit.action}: ${limit.state}, `
      + `${usd(limit.remaining)} left until ${new Date(limit.resets_at).toLocaleString()}.`
    : "Cost limit: off.");
  limitLine.id = "billing-limit";
  out.className = "";
  out.replaceChildren(balance, spend, limitLine);
}

export async function loadStatus() {
  const out = document.getElementById("system-status");
  const result = await api("GET", "/api/cloud/system-status");
  if (!result.ok) return show(out, "bad", errorLines(result));
  const s = result.body;
  const cls = s.indicator === "none" ? "ok" : s.indicator === "unknown" ? "muted" : "bad";
  show(out, cls, [{ text: s.description || `Status unknown: ${s.reason}` }, { text: `indicator: ${s.indicator}`, cls: "hint" }]);
}

export async function loadHardware() {
  const result = await api("GET", "/api/cloud/hardware");
  if (!result.ok) return [];
  fillTable(document.querySelector("#hardware tbody"), result.body.hardware.map((h) => [
    h.name + (h.default ? " (default)" : ""), `${h.vram_gb} GB`, h.usd_per_hour.toFixed(2), h.best_for, h.model,
  ]));
  return result.body.hardware;
}
