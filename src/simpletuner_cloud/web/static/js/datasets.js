// Datasets: the environments in the configs folder, and what each would upload.
import { api, bytes, el, errorLines, fillTable, show } from "./api.js";

function merging() {
  return document.getElementById("merge-local").checked;
}

function renaming() {
  return document.getElementById("rename-captions").checked;
}

// The agreements the user ticked, sent with both the preview and the upload (the same archive).
function choices() {
  return { merge_local_datasets: merging(), rename_to_captions: renaming() };
}

function table(id, headers, rows) {
  const node = el("table");
  node.id = id;
  node.append(el("thead"), el("tbody"));
  node.tHead.append(el("tr"));
  for (const h of headers) node.tHead.rows[0].append(el("th", h));
  fillTable(node.tBodies[0], rows);
  return node;
}

export async function loadConfigs() {
  const tbody = document.querySelector("#configs tbody");
  const result = await api("GET", "/api/cloud/configs");
  if (!result.ok) return;
  if (!result.body.configs.length) {
    fillTable(tbody, [[`No environments in ${result.body.configs_dir}.`, "", "", "", ""]]);
    return;
  }
  fillTable(tbody, result.body.configs.map((c) => {
    const button = el("button", "Preview upload", "secondary");
    button.type = "button";
    button.dataset.config = c.name;
    button.addEventListener("click", () => preview(c.name));
    return [c.name, c.model_family || "", c.datasets, c.problems.length ? c.problems.join("; ") : "none", button];
  }));
}

export async function preview(name) {
  const out = document.getElementById("preview");
  show(out, "muted", [{ text: `Reading ${name}…` }]);
  const result = await api("POST", "/api/cloud/data-consent/preview", { config: name, ...choices() });
  if (!result.ok) return show(out, "bad", errorLines(result));
  const p = result.body;
  const datasets = table("preview-datasets", ["Dataset", "Action", "Files", "Images", "Size", "Why"],
    p.datasets.map((d) => [d.id, d.action, d.files ?? "", d.images ?? "", bytes(d.bytes), d.reason]));
  const skipped = p.datasets.flatMap((d) => d.skipped.map((s) => `${s.path}: ${s.reason}`));
  const unlisted = p.datasets.reduce((n, d) => n + Math.max(0, (d.skipped_count || 0) - d.skipped.length), 0);
  if (unlisted) skipped.push(`and ${unlisted.toLocaleString("en-US")} more`);
  const changes = p.datasets.flatMap((d) => d.caption_changes.map((c) =>
    [c.path, c.archive_name, c.trainer_caption, c.changes.map((x) => x.explanation).join("; ")]));
  const contents = el("details");
  contents.id = "preview-archive";
  contents.append(el("summary", "Archive contents"), table("preview-archive-files", ["Dataset", "File", "Name in the archive"],
    p.datasets.flatMap((d) => d.archive_files.map((f) => [d.id, f.path, f.archive_name]))));
  const summary = el("p", p.needs_upload
    ? `Archive: ${p.archive_bytes.toLocaleString("en-US")} bytes of ${p.limit_bytes.toLocaleString("en-US")} allowed`
      + (p.within_limit ? "." : " — too large.")
    : "Nothing to upload: the datasets are remote.", p.within_limit ? "ok" : "bad");
  summary.id = "preview-summary";
  out.className = "";
  out.replaceChildren(el("h3", `Upload preview: ${name}`), datasets, summary);
  if (skipped.length) out.append(el("p", `Skipped: ${skipped.join("; ")}`, "hint"));
  if (changes.length) {
    out.append(el("h4", "Captions that change"),
      table("preview-caption-changes", ["File", "Name in the archive", "The trainer reads", "Why"], changes));
  }
  if (p.needs_upload) out.append(contents);
  if (p.error) out.append(...errorLines({ body: { error: p.error } }).map((l) => el("p", l.text, l.cls || "bad")));
  for (const warning of p.warnings) out.append(el("p", warning, "hint"));
  if (p.needs_upload && p.within_limit && !p.error) out.append(uploadForm(name));
}

function uploadForm(name) {
  const form = el("form");
  form.id = "upload-form";
  const consent = el("input");
  consent.type = "checkbox";
  consent.id = "upload-consent";
  const label = el("label", " I agree to upload these files to Replicate's upload servers (a job deletes them when it ends).");
  label.prepend(consent);
  const button = el("button", "Upload to Replicate");
  button.type = "submit";
  const bar = el("progress");
  bar.id = "upload-progress";
  bar.max = 1;
  bar.value = 0;
  bar.hidden = true;
  const status = el("div", "", "result");
  status.id = "upload-result";
  status.setAttribute("aria-live", "polite");
  form.append(label, button, bar, status);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    button.disabled = true;
    upload(name, consent.checked, bar, status).finally(() => { button.disabled = false; });
  });
  return form;
}

async function upload(name, consent, bar, status) {
  const started = await api("POST", "/api/cloud/data/uploads", { config: name, consent, ...choices() });
  if (!started.ok) return show(status, "bad", errorLines(started));
  bar.hidden = false;
  await new Promise((resolve) => {
    const source = new EventSource(started.body.events_url);
    const update = (event, done) => {
      const task = JSON.parse(event.data);
      bar.max = task.bytes_total || 1;
      bar.value = task.bytes_done;
      if (task.state === "succeeded") {
        const r = task.result;
        show(status, "ok", [
          { text: `${r.reused ? "Reused" : "Uploaded"} ${r.size.toLocaleString("en-US")} bytes (${r.files} files).` },
          { text: `reused: ${r.reused}; file ${r.file_id}; expires ${r.expires_at || "unknown"}.`, cls: "hint" },
        ]);
      } else if (task.state === "failed") {
        show(status, "bad", errorLines({ body: { error: task.error } }));
      } else {
        show(status, "muted", [{ text: `${task.state}: ${bytes(task.bytes_done)} of ${bytes(task.bytes_total)}` }]);
      }
      if (done) { source.close(); resolve(); }
    };
    source.addEventListener("progress", (event) => update(event, false));
    source.addEventListener("succeeded", (event) => update(event, true));
    source.addEventListener("failed", (event) => update(event, true));
    source.onerror = () => { source.close(); resolve(); };
  });
}
