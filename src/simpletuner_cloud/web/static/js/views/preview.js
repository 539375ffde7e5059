// What a job would upload (`POST api/cloud/data-consent/preview`), drawn for the Submit view: per
// dataset what happens and why, the archive against Replicate's 100 MiB limit, skipped files with
// their reasons, captions that change, and every entry of the archive.
import { errorBox, h, table } from "../dom.js";
import { bytes, count } from "../format.js";

function skippedList(datasets) {
  const items = [];
  const reasons = {};
  let unlisted = 0;
  for (const d of datasets) {
    for (const s of d.skipped) items.push(h("li", {}, h("span", { class: "mono" }, `${d.id}/${s.path}`), ` — ${s.explanation} (${s.reason})`));
    for (const [reason, n] of Object.entries(d.skipped_reasons || {})) reasons[reason] = (reasons[reason] || 0) + n;
    unlisted += Math.max(0, (d.skipped_count || 0) - d.skipped.length);
  }
  const total = Object.values(reasons).reduce((a, b) => a + b, 0) || items.length;
  if (!total) return null;
  const byReason = Object.entries(reasons)
    .map(([reason, n]) => `${reason}: ${count(n)}`)
    .join(", ");
  return h(
    "details",
    { id: "preview-skipped" },
    h("summary", {}, `Skipped files (${count(total)})`),
    byReason ? h("p", { class: "hint" }, `By reason: ${byReason}.`) : null,
    h("ul", {}, items, unlisted ? h("li", {}, `and ${count(unlisted)} more`) : null),
  );
}

export function previewNode(p, name) {
  const datasets = table(
    ["Dataset", "Action", "Files", "Images", "Size", "Why"],
    p.datasets.map((d) => [d.id, d.action, d.files ?? "", d.images ?? "", d.bytes === null || d.bytes === undefined ? "" : bytes(d.bytes), d.reason]),
    { id: "preview-datasets", responsive: true },
  );
  const changes = p.datasets.flatMap((d) =>
    d.caption_changes.map((c) => [c.path, c.archive_name, c.trainer_caption, c.changes.map((x) => x.explanation).join("; ")]),
  );
  const entries = p.datasets.flatMap((d) => d.archive_files.map((f) => [d.id, f.path, f.archive_name]));
  let summary;
  if (p.needs_upload) {
    const meter = h("meter", { id: "preview-size", min: "0", max: String(p.limit_bytes), high: String(Math.floor(p.limit_bytes * 0.9)), optimum: "0", "aria-label": "Archive size against the upload limit" });
    meter.value = Math.min(p.archive_bytes, p.limit_bytes);
    summary = h(
      "div",
      { class: "gauge" },
      meter,
      h(
        "p",
        { id: "preview-summary", class: p.within_limit ? "ok" : "bad" },
        `Archive: ${bytes(p.archive_bytes)} (${count(p.archive_bytes)} bytes) of ${bytes(p.limit_bytes)} allowed` + (p.within_limit ? "." : " — too large."),
      ),
    );
  } else {
    summary = h("p", { id: "preview-summary", class: "ok" }, "Nothing to upload: the datasets are remote.");
  }
  return h(
    "div",
    { class: "preview" },
    h("h4", {}, `What ${name} would upload`),
    summary,
    datasets,
    skippedList(p.datasets),
    changes.length
      ? [h("h4", {}, "Captions that change"), table(["File", "Name in the archive", "The trainer reads", "Why"], changes, { id: "preview-caption-changes", responsive: true })]
      : null,
    entries.length
      ? h(
          "details",
          { id: "preview-archive" },
          h("summary", {}, `Archive contents (${count(entries.length)} files)`),
          table(["Dataset", "File", "Name in the archive"], entries, { id: "preview-archive-files", label: "Archive contents" }),
        )
      : null,
    p.error ? errorBox(p.error) : null,
    p.warnings.map((w) => h("p", { class: "message warn" }, w)),
    p.problems.map((w) => h("p", { class: "message warn" }, w)),
  );
}
