// The settings form: GET fills it, Save sends a partial PUT of what the form holds.
import { api, errorLines, show } from "./api.js";

const BASE = "/api/cloud/providers/replicate";
const LISTS = ["webhook_allowed_ips", "trusted_proxies"];

function field(name) {
  return document.getElementById(`setting-${name.replace(".", "-")}`);
}

export async function loadSettings(hardware) {
  const select = field("hardware");
  select.replaceChildren(...hardware.map((h) => new Option(`${h.name} (${h.vram_gb} GB)`, h.id)));
  const [settings, versions] = await Promise.all([api("GET", BASE), api("GET", `${BASE}/versions`)]);
  if (versions.ok) {
    const pin = field("version");
    pin.replaceChildren(new Option("latest", ""), ...versions.body.versions.map(
      (v) => new Option(`${v.id.slice(0, 12)}… (${v.created_at.slice(0, 10)})`, v.id)));
  }
  if (!settings.ok) return;
  const s = settings.body;
  for (const name of ["hardware", "data_consent", "public_url", "proxy_url", "http_timeout"]) {
    field(name).value = s[name] ?? "";
  }
  field("version").value = s.version ?? "";
  for (const name of LISTS) field(name).value = (s[name] || []).join("\n");
  field("require_signature").checked = Boolean(s.require_signature);
  field("cost_limit.enabled").checked = Boolean(s.cost_limit.enabled);
  field("cost_limit.amount").value = s.cost_limit.amount ?? "";
  field("cost_limit.period").value = s.cost_limit.period;
  field("cost_limit.action").value = s.cost_limit.action;
}

function formValues() {
  const text = (name) => field(name).value.trim() || null;
  const lines = (name) => field(name).value.split(/[\s,]+/).map((v) => v.trim()).filter(Boolean);
  const amount = field("cost_limit.amount").value;
  return {
    hardware: field("hardware").value,
    version: text("version"),
    data_consent: field("data_consent").value,
    public_url: text("public_url"),
    proxy_url: text("proxy_url"),
    http_timeout: Number(field("http_timeout").value) || null,
    webhook_allowed_ips: lines("webhook_allowed_ips"),
    trusted_proxies: lines("trusted_proxies"),
    require_signature: field("require_signature").checked,
    cost_limit: {
      enabled: field("cost_limit.enabled").checked,
      amount: amount === "" ? null : Number(amount),
      period: field("cost_limit.period").value,
      action: field("cost_limit.action").value,
    },
  };
}

export async function saveSettings(event, onSaved) {
  event.preventDefault();
  const out = document.getElementById("settings-result");
  const result = await api("PUT", BASE, formValues());
  if (!result.ok) return show(out, "bad", errorLines(result));
  show(out, "ok", [{ text: "Settings saved." }]);
  await onSaved();
}
