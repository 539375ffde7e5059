// Settings (the seed's Cloud -> Settings): the Replicate token, the webhook's public URL with its
// test, the IP allowlist (with Replicate's ranges as a preset) and trusted proxies, the cost limit,
// data consent, the trainer defaults and the proxy. Save sends only what changed (a partial PUT).
import { api, get } from "../api.js";
import { card, checkbox, clear, errorOf, field, h, radios, say, sayError, select } from "../dom.js";
import { count } from "../format.js";
import { loadProvider } from "./overview.js";

const BASE = "api/cloud/providers/replicate";
// The seed's webhook source ranges (Google Cloud us-west1).
export const REPLICATE_WEBHOOK_RANGES = ["34.82.0.0/16", "35.185.0.0/16"];

function lines(text) {
  return text
    .split(/[\s,]+/)
    .map((v) => v.trim())
    .filter(Boolean);
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export default {
  title: () => "Settings",
  async render(root, ctx) {
    root.append(h("h2", { tabindex: "-1" }, "Settings"));
    const [settingsAnswer, hardware] = await Promise.all([get(BASE), get("api/cloud/hardware")]);
    if (!settingsAnswer.ok || !hardware.ok) {
      const box = h("div", { id: "settings-load-error" });
      root.append(box);
      return sayError(box, settingsAnswer.ok ? hardware : settingsAnswer);
    }
    let saved = settingsAnswer.body;

    // --- the token (its own endpoints; never shown back) ---
    const tokenState = h("div", { id: "token-state", "aria-live": "polite" });
    const tokenInput = h("input", { type: "password", id: "token-input", name: "api_token", autocomplete: "off", spellcheck: "false", placeholder: "r8_..." });
    const tokenResult = h("div", { id: "token-result", "aria-live": "polite" });
    const tokenForm = h(
      "form",
      { id: "token-form", autocomplete: "off" },
      field("API token", tokenInput, "From replicate.com/account/api-tokens. REPLICATE_API_TOKEN in the server's environment always wins over a saved token."),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "token-save" }, "Save token"), h("button", { type: "button", id: "token-delete", class: "secondary" }, "Delete saved token")),
    );

    // --- the settings form ---
    const f = {
      public_url: h("input", { type: "url", id: "setting-public_url", autocomplete: "off", spellcheck: "false", placeholder: "https://example.ngrok.app" }),
      webhook_allowed_ips: h("textarea", { id: "setting-webhook_allowed_ips", rows: "3", spellcheck: "false" }),
      trusted_proxies: h("textarea", { id: "setting-trusted_proxies", rows: "2", spellcheck: "false" }),
      require_signature: checkbox("Require webhook signatures", { id: "setting-require_signature" }, "Off, a webhook is only a hint: the job is re-read from Replicate."),
      enabled: checkbox("Cost Limit enabled", { id: "setting-cost_limit-enabled" }),
      amount: h("input", { type: "text", inputmode: "decimal", id: "setting-cost_limit-amount", autocomplete: "off", placeholder: "50.00" }),
      period: select({ id: "setting-cost_limit-period" }, ["daily", "weekly", "monthly"].map((p) => ({ value: p, label: p })), saved.cost_limit.period),
      action: radios(
        "cost_limit.action",
        "When the limit is reached",
        [
          { value: "warn", id: "setting-cost_limit-action-warn", label: "Warn", hint: "jobs are still submitted, with a warning" },
          { value: "block", id: "setting-cost_limit-action-block", label: "Block", hint: "new jobs are refused until the period resets" },
        ],
        saved.cost_limit.action,
      ),
      cancelRunning: checkbox("Cancel running jobs at the limit", { id: "setting-cost_limit-cancel_running_at_limit" }, "Off: jobs already running finish; only new ones are warned or blocked."),
      cancelOn: select(
        { id: "setting-cost_limit-cancel_on" },
        [
          { value: "accrued", label: "when what they have cost reaches the limit" },
          { value: "projected", label: "as soon as their projected cost would pass it" },
        ],
        saved.cost_limit.cancel_on,
      ),
      timeZone: h("input", { type: "text", id: "setting-cost_limit-time_zone", autocomplete: "off", spellcheck: "false", placeholder: "Europe/Lisbon" }),
      hardware: select({ id: "setting-hardware" }, hardware.body.hardware.map((hw) => ({ value: hw.id, label: `${hw.name} (${hw.vram_gb} GB)` })), saved.hardware),
      version: select({ id: "setting-version" }, [{ value: "", label: "latest" }], ""),
      data_consent: select(
        { id: "setting-data_consent" },
        [
          { value: "ask", label: "ask before each job" },
          { value: "allow", label: "allow" },
          { value: "deny", label: "deny" },
        ],
        saved.data_consent,
      ),
      proxy_url: h("input", { type: "text", id: "setting-proxy_url", autocomplete: "off", spellcheck: "false", placeholder: "http://proxy:8080" }),
      http_timeout: h("input", { type: "number", id: "setting-http_timeout", min: "1", max: "600", step: "1" }),
    };
    const box = (label) => label.querySelector("input");
    const webhookUrl = h("p", { id: "setting-webhook-url", class: "hint" });
    const testButton = h("button", { type: "button", id: "webhook-test", class: "secondary" }, "Test webhook");
    const testResult = h("div", { id: "webhook-test-result", "aria-live": "polite" });
    const preset = h("button", { type: "button", id: "allowlist-preset", class: "secondary" }, "Add Replicate's ranges");
    const saveButton = h("button", { type: "submit", id: "settings-save" }, "Save settings");
    const result = h("div", { id: "settings-result", "aria-live": "polite" });
    const warnings = h("div", { id: "settings-warnings" });

    const form = h(
      "form",
      { id: "settings-form", novalidate: true },
      h(
        "div",
        { class: "cards" },
        card(
          "Webhooks",
          { id: "webhooks-settings" },
          field("Webhook URL (your public URL, no path)", f.public_url, "A tunnel (ngrok http 8080, cloudflared tunnel --url http://localhost:8080) or your server's address. Empty: jobs are followed by polling."),
          webhookUrl,
          h("div", { class: "actions" }, testButton),
          testResult,
          field("Webhook allowed IPs (one per line)", f.webhook_allowed_ips, `Addresses or CIDR ranges; empty: the signature alone decides. Replicate sends from ${REPLICATE_WEBHOOK_RANGES.join(" and ")}.`),
          h("div", { class: "actions" }, preset),
          field("Trusted proxies (one per line)", f.trusted_proxies, "Reverse proxies whose X-Forwarded-For / X-Real-IP are believed."),
          f.require_signature,
        ),
        card(
          "Cost Limit",
          { id: "cost-settings" },
          f.enabled,
          field("Amount (USD)", f.amount, "More than 0, at most 1,000,000."),
          field("Period", f.period),
          field("Time zone of the period", f.timeZone, "An IANA name; empty: this machine's. A day, week (from Monday) or month starts at midnight there."),
          f.action,
          f.cancelRunning,
          field("Cancel", f.cancelOn),
        ),
        card(
          "Jobs",
          { id: "job-settings" },
          field("Default hardware", f.hardware),
          field("Trainer version", f.version, "Latest unless you pin one."),
          field("Training data upload (data consent)", f.data_consent),
        ),
        card(
          "Network",
          { id: "network-settings" },
          field("Proxy URL for calls to Replicate", f.proxy_url, "Empty: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY from the server's environment, if set."),
          field("HTTP timeout (seconds)", f.http_timeout),
        ),
      ),
      warnings,
      h("div", { class: "actions" }, saveButton),
      result,
    );
    root.append(
      card("Replicate token", { id: "token-card" }, tokenState, tokenForm, tokenResult),
      form,
    );

    function fill(s) {
      f.public_url.value = s.public_url ?? "";
      f.webhook_allowed_ips.value = s.webhook_allowed_ips.join("\n");
      f.trusted_proxies.value = s.trusted_proxies.join("\n");
      box(f.require_signature).checked = s.require_signature;
      box(f.enabled).checked = s.cost_limit.enabled;
      f.amount.value = s.cost_limit.amount ?? "";
      f.period.value = s.cost_limit.period;
      box(f.cancelRunning).checked = s.cost_limit.cancel_running_at_limit;
      f.cancelOn.value = s.cost_limit.cancel_on;
      f.timeZone.value = s.cost_limit.time_zone ?? "";
      const action = form.querySelector(`input[name="cost_limit.action"][value="${s.cost_limit.action}"]`);
      if (action) action.checked = true;
      f.hardware.value = s.hardware;
      f.version.value = s.version ?? "";
      f.data_consent.value = s.data_consent;
      f.proxy_url.value = s.proxy_url ?? "";
      f.http_timeout.value = s.http_timeout ?? "";
      webhookUrl.textContent = s.derived.webhook_url ? `Webhooks go to ${s.derived.webhook_url}` : "No webhook URL: jobs are followed by polling.";
      clear(warnings, s.warnings.length ? h("ul", { class: "message warn" }, s.warnings.map((w) => h("li", {}, w))) : null);
    }

    function values() {
      const text = (node) => node.value.trim() || null;
      const amount = f.amount.value.trim();
      return {
        public_url: text(f.public_url),
        webhook_allowed_ips: lines(f.webhook_allowed_ips.value),
        trusted_proxies: lines(f.trusted_proxies.value),
        require_signature: box(f.require_signature).checked,
        cost_limit: {
          enabled: box(f.enabled).checked,
          amount: amount === "" ? null : amount, // a decimal string, exact
          period: f.period.value,
          action: form.querySelector('input[name="cost_limit.action"]:checked')?.value || "warn",
          cancel_running_at_limit: box(f.cancelRunning).checked,
          cancel_on: f.cancelOn.value,
          time_zone: text(f.timeZone),
        },
        hardware: f.hardware.value,
        version: f.version.value || null,
        data_consent: f.data_consent.value,
        proxy_url: text(f.proxy_url),
        http_timeout: f.http_timeout.value === "" ? null : Number(f.http_timeout.value),
      };
    }

    function loadedValues() {
      return {
        ...saved,
        cost_limit: { ...saved.cost_limit, amount: saved.cost_limit.amount === null ? null : String(saved.cost_limit.amount) },
      };
    }

    function changes() {
      const now = values();
      const before = loadedValues();
      const out = {};
      for (const [key, value] of Object.entries(now)) {
        if (key === "cost_limit") {
          const c = before.cost_limit;
          const amountSame = value.amount === c.amount || (value.amount !== null && c.amount !== null && Number(value.amount) === Number(c.amount));
          const others = ["enabled", "period", "action", "cancel_running_at_limit", "cancel_on", "time_zone"];
          if (!amountSame || others.some((k) => value[k] !== (c[k] ?? null))) out.cost_limit = value;
        } else if (!same(value, before[key] ?? null)) {
          out[key] = value;
        }
      }
      return out;
    }

    async function showTokenState() {
      const p = await loadProvider(h("div"));
      if (!p) return;
      clear(
        tokenState,
        h(
          "p",
          { id: "token-source" },
          p.configured ? `In use: the token from ${{ env: "REPLICATE_API_TOKEN", saved: "the saved file", sandbox: "the sandbox" }[p.token_source] || p.token_source}.` : "No token: export REPLICATE_API_TOKEN, or save one here.",
        ),
      );
      return p;
    }

    async function loadVersions(p) {
      if (!p || !p.configured) return;
      const versions = await get(`${BASE}/versions`);
      if (!ctx.current()) return;
      if (!versions.ok) {
        const error = errorOf(versions);
        f.version.closest(".field").append(h("span", { class: "message warn", id: "setting-version-error" }, `The versions could not be listed: ${error.message}`));
        return;
      }
      for (const v of versions.body.versions) {
        f.version.append(new Option(`${v.id.slice(0, 12)}… (${(v.created_at || "").slice(0, 10)})`, v.id));
      }
      f.version.value = saved.version ?? "";
      if (versions.body.warning) f.version.closest(".field").append(h("span", { class: "message warn" }, versions.body.warning));
    }

    tokenForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = await api("PUT", `${BASE}/token`, { api_token: tokenInput.value });
      tokenInput.value = ""; // the secret does not linger in the page
      if (!answer.ok) return sayError(tokenResult, answer);
      say(tokenResult, "ok", `Saved token ${answer.body.token} (${answer.body.account.username}).`, answer.body.note);
      await showTokenState();
    });
    tokenForm.querySelector("#token-delete").addEventListener("click", async () => {
      const answer = await api("DELETE", `${BASE}/token`);
      if (!answer.ok) return sayError(tokenResult, answer);
      say(tokenResult, "ok", answer.body.deleted ? "Deleted the saved token." : "No saved token to delete.", answer.body.note);
      await showTokenState();
    });

    preset.addEventListener("click", () => {
      const current = lines(f.webhook_allowed_ips.value);
      f.webhook_allowed_ips.value = [...current, ...REPLICATE_WEBHOOK_RANGES.filter((r) => !current.includes(r))].join("\n");
      f.webhook_allowed_ips.focus();
    });

    testButton.addEventListener("click", async () => {
      if ((f.public_url.value.trim() || null) !== (saved.public_url ?? null)) {
        say(testResult, "warn", "Save the settings first: the test goes through the saved webhook URL.");
        return;
      }
      testButton.disabled = true;
      say(testResult, "muted", "Sending a signed test event through the public URL…");
      const answer = await api("POST", `${BASE}/test-webhook`);
      testButton.disabled = false;
      if (!answer.ok) return sayError(testResult, answer);
      const t = answer.body;
      say(
        testResult,
        t.ok ? "ok" : "bad",
        t.message,
        t.hint,
        [t.status !== null ? `HTTP ${t.status}` : null, t.latency_ms !== null ? `${count(Math.round(t.latency_ms))} ms` : null, t.client_ip ? `seen from ${t.client_ip}` : null, t.problem ? `problem: ${t.problem}` : null]
          .filter(Boolean)
          .join(" · "),
      );
    });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = changes();
      if (!Object.keys(body).length) {
        say(result, "muted", "Nothing to save: no setting changed.");
        return;
      }
      saveButton.disabled = true;
      const answer = await api("PUT", BASE, body);
      saveButton.disabled = false;
      if (!answer.ok) return sayError(result, answer);
      saved = answer.body;
      fill(saved);
      say(result, "ok", "Settings saved.");
      showTokenState();
    });

    fill(saved);
    const provider = await showTokenState();
    await loadVersions(provider);
  },
};
