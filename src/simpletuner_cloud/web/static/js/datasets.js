// Datasets: the environments in the configs folder, and what each would upload.
import { api, bytes, el, errorLines, fillTable, show } from "./api.js";

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
  const result = await api("POST", "/api/cloud/data-consent/preview", { config: name });
  if (!result.ok) return show(out, "bad", errorLines(result));
  const p = result.body;
  const table = el("table");
  table.id = "preview-datasets";
  table.append(el("thead"), el("tbody"));
  table.tHead.append(el("tr"));
  for (const h of ["Dataset", "Action", "Files", "Images", "Size", "Why"]) table.tHead.rows[0].append(el("th", h));
  fillTable(table.tBodies[0], p.datasets.map((d) => [d.id, d.action, d.files ?? "", d.images ?? "", bytes(d.bytes), d.reason]));
  const skipped = p.datasets.flatMap((d) => d.skipped.map((s) => `${s.path}: ${s.reason}`));
  const summary = el("p", p.needs_upload
    ? `Archive: ${p.archive_bytes.toLocaleString("en-US")} bytes of ${p.limit_bytes.toLocaleString("en-US")} allowed`
      + (p.within_limit ? "." : " — too large.")
    : "Nothing to upload: the datasets are remote.", p.within_limit ? "ok" : "bad");
  summary.id = "preview-summary";
  out.className = "";
  out.replaceChildren(el("h3", `Upload preview: ${name}`), table, summary);
  if (skipped.length) out.append(el("p", `Skipped: ${skipped.join("; ")}`, "hint"));
  if (p.error) out.append(...errorLines({ body: { error: p.error } }).map((l) => el("p", l.text, l.cls || "bad")));
  for (const warning of p.warnings) out.append(el("p", warning, "hint"));
}
