// Publishing (the seed's Publishing tab): where trained models go. Push to Hub with `hub_model_id`
// and privacy (HF_TOKEN or a saved token, with a check), an external S3 bucket with its test
// button, and whether local download can work. Secrets are write-only: typed, saved, never shown.
import { api, get } from "../api.js";
import { card, checkbox, clear, facts, field, h, radios, say, sayError } from "../dom.js";
import { bytes } from "../format.js";

const BASE = "api/cloud/publishing";
const DELIVERIES = [
  { value: "", label: "Ask for each job", hint: "A job must say where its weights go." },
  { value: "hub", label: "Hugging Face Hub" },
  { value: "s3", label: "External S3" },
  { value: "local", label: "Local download", hint: "Into cloud_outputs/ on this machine." },
  { value: "none", label: "Nowhere", hint: "Test runs: the weights are lost." },
];

function secretState(saved, what) {
  return saved ? `The ${what} is saved (type a new one to replace it).` : `No ${what} saved.`;
}

export default {
  title: () => "Publishing",
  async render(root, ctx) {
    root.append(h("h2", { tabindex: "-1" }, "Publishing"));
    const answer = await get(BASE);
    if (!answer.ok) {
      const box = h("div", { id: "publishing-load-error" });
      root.append(box);
      return sayError(box, answer);
    }
    let saved = answer.body;

    const f = {
      pushToHub: checkbox("Push to Hub", { id: "pub-push_to_hub" }, "Every job pushes its LoRA to the repo below."),
      hubModelId: h("input", { type: "text", id: "pub-hub_model_id", autocomplete: "off", spellcheck: "false", placeholder: "username/my-lora" }),
      private: checkbox("Private repository", { id: "pub-private" }, "New repos are created private."),
      hubToken: h("input", { type: "password", id: "pub-hub_token", autocomplete: "off", spellcheck: "false", placeholder: "hf_..." }),
      endpoint: h("input", { type: "url", id: "pub-s3-endpoint_url", autocomplete: "off", spellcheck: "false", placeholder: "https://s3.us-west-002.backblazeb2.com" }),
      region: h("input", { type: "text", id: "pub-s3-region", autocomplete: "off", spellcheck: "false" }),
      bucket: h("input", { type: "text", id: "pub-s3-bucket", autocomplete: "off", spellcheck: "false" }),
      prefix: h("input", { type: "text", id: "pub-s3-prefix", autocomplete: "off", spellcheck: "false" }),
      publicBase: h("input", { type: "url", id: "pub-s3-public_base_url", autocomplete: "off", spellcheck: "false" }),
      accessKey: h("input", { type: "password", id: "pub-s3-access_key", autocomplete: "off", spellcheck: "false" }),
      secretKey: h("input", { type: "password", id: "pub-s3-secret_key", autocomplete: "off", spellcheck: "false" }),
    };
    const box = (label) => label.querySelector("input");
    const defaults = radios("default_delivery", "Where a job's weights go unless it says", DELIVERIES.map((d) => ({ ...d, id: `pub-default-${d.value || "ask"}` })), saved.default_delivery ?? "", { quiet: true });
    const tokenState = h("p", { id: "pub-token-state", class: "hint" });
    const hubCheck = h("div", { id: "pub-hub-check", "aria-live": "polite" });
    const keysState = h("p", { id: "pub-s3-keys-state", class: "hint" });
    const s3Result = h("div", { id: "pub-s3-test-result", "aria-live": "polite" });
    const local = h("div", { id: "pub-local" });
    const warnings = h("div", { id: "pub-warnings" });
    const result = h("div", { id: "publishing-result", "aria-live": "polite" });
    const form = h(
      "form",
      { id: "publishing-form", novalidate: true },
      h(
        "div",
        { class: "cards" },
        card("Default delivery", { id: "pub-default-card" }, defaults),
        card(
          "Hugging Face Hub",
          { id: "pub-hub-card" },
          f.pushToHub,
          field("hub_model_id", f.hubModelId, "username/repo-name"),
          f.private,
          tokenState,
          field("Hugging Face token", f.hubToken, "HF_TOKEN in the server's environment wins over a saved token."),
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: "secondary", id: "pub-hub-test" }, "Check token"),
            h("button", { type: "button", class: "secondary", id: "pub-hub-token-delete" }, "Delete saved token"),
          ),
          hubCheck,
        ),
        card(
          "External S3",
          { id: "pub-s3-card" },
          h("p", { class: "hint" }, "AWS S3, MinIO, Backblaze B2 or any S3-compatible store; each job writes under <prefix>/<job id>/."),
          field("Endpoint URL (empty: AWS S3)", f.endpoint),
          field("Region", f.region),
          field("Bucket", f.bucket),
          field("Key prefix", f.prefix),
          field("Public base URL (optional)", f.publicBase, "Only shapes the links the trainer returns."),
          keysState,
          field("Access key", f.accessKey),
          field("Secret key", f.secretKey),
          h("div", { class: "actions" }, h("button", { type: "button", class: "secondary", id: "pub-s3-test" }, "Test S3")),
          s3Result,
        ),
        card("Local download", { id: "pub-local-card" }, local),
      ),
      warnings,
      h("div", { class: "actions" }, h("button", { type: "submit", id: "publishing-save" }, "Save publishing")),
      result,
    );
    root.append(form);

    /** The form's fields from saved settings (throws away what is typed). */
    function fill(p) {
      const choice = form.querySelector(`input[name=default_delivery][value="${p.default_delivery ?? ""}"]`);
      if (choice) choice.checked = true;
      box(f.pushToHub).checked = p.hub.push_to_hub;
      f.hubModelId.value = p.hub.hub_model_id ?? "";
      box(f.private).checked = p.hub.private;
      f.hubToken.value = "";
      f.endpoint.value = p.s3.endpoint_url ?? "";
      f.region.value = p.s3.region ?? "";
      f.bucket.value = p.s3.bucket ?? "";
      f.prefix.value = p.s3.prefix ?? "";
      f.publicBase.value = p.s3.public_base_url ?? "";
      f.accessKey.value = "";
      f.secretKey.value = "";
      showSaved(p);
    }

    /** What is saved, around the fields (which secrets, local download, warnings), fields untouched. */
    function showSaved(p) {
      tokenState.textContent =
        p.hub.token.source === "env"
          ? "Token: HF_TOKEN from the server's environment."
          : p.hub.token.source === "saved"
            ? "Token: the saved token."
            : 'No token: export HF_TOKEN="hf_..." before starting the server, or save one here.';
      keysState.textContent = `${secretState(p.s3.access_key.saved, "access key")} ${secretState(p.s3.secret_key.saved, "secret key")}`;
      clear(
        local,
        h("p", { id: "pub-local-state", class: p.local.available ? "ok" : "warn" }, p.local.message),
        facts([
          ["Folder", h("span", { class: "mono" }, p.local.folder)],
          ["Upload endpoint", p.local.endpoint_url ? h("span", { class: "mono" }, p.local.endpoint_url) : "—"],
          ["Largest file", bytes(p.local.max_object_bytes)],
        ]),
      );
      clear(warnings, p.warnings.length ? h("ul", { class: "message warn" }, p.warnings.map((w) => h("li", {}, w))) : null);
    }

    function s3Values() {
      const text = (node) => node.value.trim() || null;
      return { endpoint_url: text(f.endpoint), region: text(f.region), bucket: text(f.bucket), prefix: text(f.prefix), public_base_url: text(f.publicBase) };
    }

    function changes() {
      const out = {};
      const chosen = form.querySelector("input[name=default_delivery]:checked")?.value || null;
      if (chosen !== (saved.default_delivery ?? null)) out.default_delivery = chosen;
      const hub = {};
      if (box(f.pushToHub).checked !== saved.hub.push_to_hub) hub.push_to_hub = box(f.pushToHub).checked;
      if ((f.hubModelId.value.trim() || null) !== (saved.hub.hub_model_id ?? null)) hub.hub_model_id = f.hubModelId.value.trim() || null;
      if (box(f.private).checked !== saved.hub.private) hub.private = box(f.private).checked;
      if (f.hubToken.value.trim()) hub.token = f.hubToken.value.trim();
      if (Object.keys(hub).length) out.hub = hub;
      const s3 = {};
      for (const [key, value] of Object.entries(s3Values())) if (value !== (saved.s3[key] ?? null)) s3[key] = value;
      if (f.accessKey.value.trim()) s3.access_key = f.accessKey.value.trim();
      if (f.secretKey.value.trim()) s3.secret_key = f.secretKey.value.trim();
      if (Object.keys(s3).length) out.s3 = s3;
      return out;
    }

    async function save(body, target) {
      const answer = await api("PUT", BASE, body);
      f.hubToken.value = "";
      f.accessKey.value = "";
      f.secretKey.value = "";
      if (!answer.ok) return sayError(target, answer) || false;
      saved = answer.body;
      fill(saved);
      if (answer.body.hub_check) showHubCheck(answer.body.hub_check);
      return true;
    }

    function showHubCheck(c) {
      say(hubCheck, c.ok ? "ok" : c.status === "unreachable" ? "warn" : "bad", c.message, c.hint);
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = changes();
      if (!Object.keys(body).length) return say(result, "muted", "Nothing to save: no setting changed.");
      if (await save(body, result)) say(result, "ok", "Publishing saved.");
    });
    form.querySelector("#pub-hub-test").addEventListener("click", async () => {
      say(hubCheck, "muted", "Checking the token with the Hub…");
      const typed = f.hubToken.value.trim();
      const answer = await api("POST", `${BASE}/hub/test`, typed ? { token: typed } : {});
      if (!answer.ok) return sayError(hubCheck, answer);
      showHubCheck(answer.body);
    });
    form.querySelector("#pub-hub-token-delete").addEventListener("click", async () => {
      // Only the token changes: the rest of the form keeps what is typed and not saved yet.
      const answer = await api("PUT", BASE, { hub: { token: null } });
      if (!ctx.current()) return;
      if (!answer.ok) return sayError(hubCheck, answer);
      saved = answer.body;
      showSaved(saved);
      say(hubCheck, "ok", "The saved token was deleted.");
    });
    form.querySelector("#pub-s3-test").addEventListener("click", async () => {
      say(s3Result, "muted", "Writing, reading back and deleting a small object…");
      // What the form shows, cleared fields as null: an empty Endpoint tests AWS S3 (what Save would
      // switch to), never the saved endpoint. Secrets are write-only, so an empty one means the saved one.
      const body = s3Values();
      if (f.accessKey.value.trim()) body.access_key = f.accessKey.value.trim();
      if (f.secretKey.value.trim()) body.secret_key = f.secretKey.value.trim();
      const answer = await api("POST", `${BASE}/s3/test`, body);
      if (!ctx.current()) return;
      if (!answer.ok) return sayError(s3Result, answer);
      const t = answer.body;
      say(s3Result, t.ok ? "ok" : "bad", t.message, t.hint);
      s3Result.append(
        h(
          "ul",
          { class: "steps" },
          t.steps.map((s) => h("li", { "data-step": s.step }, h("strong", {}, `${s.step}: ${s.ok === null ? "not reached" : s.ok ? "ok" : "failed"}`), s.detail ? ` — ${s.detail}` : "")),
        ),
      );
    });

    fill(saved);
  },
};
