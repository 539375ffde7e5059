// Submit: pick an environment (or paste a path), the hardware with its price, see what would be
// uploaded, tick the agreements that apply (consent, merge, rename), choose where the weights go,
// and submit; the job page then shows packaging and upload live.
import { api, get } from "../api.js";
import { card, checkbox, clear, errorOf, field, h, radios, say, sayError, select } from "../dom.js";
import { count, dollars, duration, perHour } from "../format.js";
import { setFlash } from "../flash.js";
import { jobHref } from "./job_parts.js";
import { previewNode } from "./preview.js";

function newKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return "ui-" + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export default {
  title: () => "Submit a job",
  async render(root, ctx) {
    const [configs, hardware, settings, publishing] = await Promise.all([
      get("api/cloud/configs"),
      get("api/cloud/hardware"),
      get("api/cloud/providers/replicate"),
      get("api/cloud/publishing"),
    ]);
    root.append(h("h2", { tabindex: "-1" }, "Submit a job"));
    const failed = [configs, hardware, settings, publishing].find((r) => !r.ok);
    if (failed) {
      const box = h("div", { id: "submit-load-error" });
      root.append(box);
      return sayError(box, failed);
    }
    const consentMode = settings.body.data_consent;
    const envs = configs.body.configs;

    const config = select(
      { id: "submit-config", name: "config" },
      [
        { value: "", label: envs.length ? "Choose an environment" : "No environments found" },
        ...envs.map((c) => ({
          value: c.name,
          label: `${c.name}${c.model_family ? ` (${c.model_family}${c.model_type ? ` ${c.model_type}` : ""})` : ""}${c.problems.length ? " — has problems" : ""}`,
        })),
      ],
      "",
    );
    const path = h("input", { type: "text", id: "submit-path", name: "path", autocomplete: "off", spellcheck: "false", placeholder: "/path/to/config.json" });
    const configProblems = h("div", { id: "submit-config-problems" });
    const hardwareChoice = radios(
      "hardware",
      "Hardware",
      hardware.body.hardware.map((hw) => ({
        value: hw.id,
        id: `hardware-${hw.id}`,
        label: `${hw.name} · ${hw.vram_gb} GB · ${perHour(hw.usd_per_hour)}`,
        hint: hw.best_for,
      })),
      settings.body.hardware,
      { quiet: true },
    );
    const steps = h("input", { type: "number", id: "submit-steps", name: "max_train_steps", min: "1", step: "1", inputmode: "numeric" });
    const estimate = h("div", { id: "submit-estimate", class: "estimate", "aria-live": "polite" });
    const preview = h("div", { id: "preview", "aria-live": "polite" }, h("p", { class: "hint" }, "Choose an environment to see what would be uploaded."));
    const merge = checkbox("Merge several local datasets into one set", { id: "submit-merge" }, "Per-set repeats, size filters, crops and caption strategies are lost: every image is captioned by its file name and centre-cropped square.");
    const rename = checkbox("Name images after their captions", { id: "submit-rename" }, "For textfile captions: the trainer reads each name as its caption; the files on disk keep their names.");
    const consent = checkbox("I agree to upload these files to Replicate's upload servers", { id: "submit-consent" }, "They are deleted at Replicate when the job ends.");
    const consentNote = h("p", { id: "submit-consent-note", class: "hint" });
    merge.hidden = true;
    rename.hidden = true;
    consent.hidden = true;
    const pub = publishing.body;
    const hubHint = pub.hub.token.source
      ? `With ${pub.hub.token.source === "env" ? "HF_TOKEN" : "the saved token"}; ${pub.hub.private ? "a new repo is private" : "a new repo is public"}.`
      : "Needs HF_TOKEN in the server's environment, or a token saved in Publishing.";
    const delivery = radios(
      "delivery",
      "Where the trained weights go",
      [
        { value: "hub", id: "delivery-hub", label: "Push to the Hugging Face Hub", hint: hubHint },
        {
          value: "s3",
          id: "delivery-s3",
          label: "External S3",
          hint: pub.s3.bucket ? `Into s3://${pub.s3.bucket}/${pub.s3.prefix}/<job id>/.` : "Set a bucket and keys in Publishing first.",
        },
        { value: "local", id: "delivery-local", label: "Download to this machine", hint: pub.local.message },
        { value: "none", id: "delivery-none", label: "Nowhere (a test run)", hint: "The weights are lost when Replicate's machine stops." },
      ],
      pub.default_delivery || "hub",
    );
    const hubId = h("input", { type: "text", id: "submit-hub-model-id", name: "hub_model_id", autocomplete: "off", spellcheck: "false", placeholder: "username/my-lora", value: pub.hub.hub_model_id || "" });
    const hubField = field("Hub model id", hubId, "username/repo-name");
    const button = h("button", { type: "submit", id: "submit-button" }, "Submit job");
    const result = h("div", { id: "submit-result", "aria-live": "polite" });
    const form = h(
      "form",
      { id: "submit-form", novalidate: true },
      card("Training environment", { id: "env-card" }, field("Environment", config, `From ${configs.body.configs_dir}`), field("Or a path to a folder or config.json", path), configProblems),
      card("Hardware and cost", { id: "hardware-card" }, hardwareChoice, field("Training steps (empty: the config's max_train_steps)", steps), estimate),
      card("Dataset", { id: "dataset-card", class: "card wide" }, preview, h("div", { class: "agreements", id: "agreements" }, merge, rename, consent, consentNote)),
      card("Delivery", { id: "delivery-card" }, delivery, hubField, h("p", { class: "hint" }, h("a", { href: "#/publishing" }, "Publishing settings"))),
      h("div", { class: "actions submit-actions" }, button),
      result,
    );
    root.append(form);

    let key = newKey();
    const box = (label) => label.querySelector("input");
    const chosen = () => path.value.trim() || config.value;
    const choice = (name) => form.querySelector(`input[name=${name}]:checked`)?.value;

    function showHub() {
      hubField.hidden = choice("delivery") !== "hub";
    }

    function showConsent(needsUpload) {
      consent.hidden = !(needsUpload && consentMode === "ask");
      consentNote.className = "hint";
      if (!needsUpload) consentNote.textContent = "";
      else if (consentMode === "allow") consentNote.textContent = "Data consent is set to allow in Settings: uploads need no confirmation.";
      else if (consentMode === "deny") {
        consentNote.className = "message bad";
        consentNote.textContent = "Data consent is set to deny in Settings: a job that uploads images is refused.";
      } else consentNote.textContent = "";
    }

    let estimateRun = 0;
    async function runEstimate() {
      const name = chosen();
      const mine = ++estimateRun;
      if (!name) return clear(estimate);
      const body = {
        config: name,
        hardware: choice("hardware"),
        merge_local_datasets: box(merge).checked,
        rename_to_captions: box(rename).checked,
      };
      if (steps.value) body.max_train_steps = Number(steps.value);
      const answer = await api("POST", "api/cloud/cost-estimate", body);
      if (mine !== estimateRun || !ctx.current()) return;
      if (!answer.ok) {
        clear(estimate, h("p", { class: "hint", id: "estimate-missing" }, `No cost estimate: ${errorOf(answer).message}`));
        return;
      }
      const e = answer.body;
      const gpu = hardware.body.hardware.find((hw) => hw.id === e.hardware);
      clear(
        estimate,
        h("p", { id: "estimate-cost" }, h("strong", {}, `Estimated cost: ${dollars(e.cost_usd.low)} – ${dollars(e.cost_usd.high)}`)),
        h(
          "p",
          { class: "hint", id: "estimate-time" },
          `${duration(e.duration_seconds.low)} – ${duration(e.duration_seconds.high)} for ${count(e.steps)} steps on ${gpu ? gpu.name : e.hardware} at ${perHour(e.usd_per_hour)}.`,
        ),
        h(
          "p",
          { class: "hint", id: "estimate-basis" },
          `Basis: ${e.basis.description}`,
          e.basis.source === "table" ? " The estimate learns from this installation's finished runs." : "",
        ),
      );
    }
    const estimateSoon = (() => {
      let timer = null;
      ctx.onCleanup(() => clearTimeout(timer));
      return () => {
        clearTimeout(timer);
        timer = setTimeout(runEstimate, 300);
      };
    })();

    let previewRun = 0;
    async function runPreview() {
      const name = chosen();
      const mine = ++previewRun;
      const summary = envs.find((c) => c.name === name);
      clear(configProblems, summary && summary.problems.length ? h("ul", { class: "message warn" }, summary.problems.map((p) => h("li", {}, p))) : null);
      if (!name) {
        clear(preview, h("p", { class: "hint" }, "Choose an environment to see what would be uploaded."));
        showConsent(false);
        runEstimate();
        return;
      }
      say(preview, "muted", `Reading ${name}…`);
      estimateSoon();
      const answer = await api("POST", "api/cloud/data-consent/preview", {
        config: name,
        merge_local_datasets: box(merge).checked,
        rename_to_captions: box(rename).checked,
      });
      if (mine !== previewRun || !ctx.current()) return;
      preview.className = "";
      if (!answer.ok) {
        const error = errorOf(answer);
        // The refusal says which agreement would help; offer that box.
        if (error.code === "dataset_unsupported" && /merge_local_datasets/.test(error.message)) merge.hidden = false;
        if (error.details && error.details.mismatching_files) rename.hidden = false;
        sayError(preview, answer);
        showConsent(false);
        return;
      }
      const p = answer.body;
      if (p.datasets.some((d) => d.caption_changes.length)) rename.hidden = false;
      if (p.warnings.some((w) => /merge/i.test(w))) merge.hidden = false;
      clear(preview, previewNode(p, name));
      showConsent(p.needs_upload && p.within_limit && !p.error);
    }

    function resetAgreements() {
      for (const label of [merge, rename]) {
        label.hidden = true;
        box(label).checked = false;
      }
      box(consent).checked = false;
    }

    config.addEventListener("change", () => {
      path.value = "";
      resetAgreements();
      runPreview();
    });
    let typing = null;
    path.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        resetAgreements();
        runPreview();
      }, 400);
    });
    ctx.onCleanup(() => clearTimeout(typing));
    box(merge).addEventListener("change", runPreview);
    box(rename).addEventListener("change", runPreview);
    for (const input of delivery.querySelectorAll("input")) input.addEventListener("change", showHub);
    for (const input of hardwareChoice.querySelectorAll("input")) input.addEventListener("change", estimateSoon);
    steps.addEventListener("input", estimateSoon);
    form.addEventListener("input", () => {
      key = newKey(); // another form is another job; the same form sent twice is one job
    });
    showHub();

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const name = chosen();
      if (!name) {
        say(result, "bad", "Choose an environment (or give a path) first.");
        config.focus();
        return;
      }
      const body = {
        config: name,
        hardware: choice("hardware"),
        delivery: choice("delivery"),
        consent: box(consent).checked,
        merge_local_datasets: box(merge).checked,
        rename_to_captions: box(rename).checked,
        idempotency_key: key,
      };
      if (body.delivery === "hub") body.hub_model_id = hubId.value.trim() || null;
      if (steps.value) body.max_train_steps = Number(steps.value);
      button.disabled = true;
      say(result, "muted", "Submitting…");
      const answer = await api("POST", "api/cloud/jobs/submit", body);
      button.disabled = false;
      if (!ctx.current()) return;
      if (!answer.ok) {
        sayError(result, answer);
        result.querySelector("p")?.setAttribute("id", "submit-error");
        return;
      }
      // The job's own warnings are on its page; these two belong to this submission.
      setFlash([
        answer.body.idempotent_hit ? "This form was already submitted: here is that job." : null,
        answer.body.cost_limit_warning,
      ]);
      location.hash = jobHref(answer.body.job_id);
    });

    if (envs.length === 1) {
      config.value = envs[0].name;
      await runPreview();
    }
  },
};
