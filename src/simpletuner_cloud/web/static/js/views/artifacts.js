// A job's results on its page (`GET api/cloud/jobs/<id>/artifacts`): each delivery's state with its
// reason and hint (and Check again), the validation samples by step, every file with a download
// link, and how long Replicate still keeps the prediction's data when a delivery is not verified.
import { api, get } from "../api.js";
import { clear, h, sayError, table } from "../dom.js";
import { bytes, count, dateTime, duration } from "../format.js";

const WHERE = { local: "This machine", s3: "External S3", hub: "Hugging Face Hub" };
// Files arriving announce only the first one (the delivery's move to `receiving`), so while one is
// receiving the panel reads again this long after its last read (job events read it sooner).
const FOLLOW_MS = 2000;
const KINDS = { weights: "weights", checkpoint: "checkpoint", validation_image: "sample", model_card: "model card", cache: "cache", other: "file" };

/** The API names files by absolute path; the page keeps every URL relative (reverse proxies). */
function relative(url) {
  return url.replace(/^\/+/, "");
}

function target(d) {
  const t = d.target || {};
  if (d.destination === "hub") return t.repo_id || "";
  if (d.destination === "s3") return `s3://${t.bucket}/${t.prefix || ""}`;
  return t.folder || "";
}

export class ArtifactsPanel {
  constructor(jobId) {
    this.jobId = jobId;
    this.path = `api/cloud/jobs/${encodeURIComponent(jobId)}`;
    this.element = h("div", { id: "job-artifacts", "aria-live": "polite" }, h("p", { class: "hint" }, "Loading…"));
    this.retention = null;
    this.receiving = false; // a delivery is receiving files: the list is growing
    this.follow = null;
    this.destroyed = false;
    this.timer = setInterval(() => this.tick(), 30_000);
  }

  destroy() {
    this.destroyed = true;
    clearInterval(this.timer);
    clearTimeout(this.follow);
  }

  /** No read of its own until the next `load` (the job is being deleted). */
  stopFollowing() {
    clearTimeout(this.follow);
    this.follow = null;
  }

  async load() {
    const answer = await get(`${this.path}/artifacts`);
    if (this.destroyed) return;
    if (!answer.ok) return sayError(this.element, answer);
    this.draw(answer.body);
  }

  tick() {
    if (!this.retention || !this.retentionNode) return;
    const left = (new Date(this.retention.ends_at).getTime() - Date.now()) / 1000;
    this.retentionNode.textContent =
      left > 0
        ? `Replicate keeps this prediction's output and logs for another ${duration(left)} (until ${dateTime(this.retention.ends_at)}).`
        : "Replicate's retention has passed: what is listed here is what remains.";
  }

  async retry(destination, button) {
    button.disabled = true;
    const answer = await api("POST", `${this.path}/deliveries/${destination}/retry`);
    button.disabled = false;
    if (!answer.ok) return sayError(this.element.querySelector(".deliveries-result"), answer);
    await this.load();
  }

  draw(a) {
    this.receiving = a.deliveries.some((d) => d.state === "receiving");
    clearTimeout(this.follow);
    this.follow = this.receiving ? setTimeout(() => this.load(), FOLLOW_MS) : null;
    const deliveries = a.deliveries.map((d) => {
      const again = ["failed", "expired", "delivered"].includes(d.state)
        ? h("button", { type: "button", class: "secondary small", "data-retry": d.destination }, "Check again")
        : null;
      if (again) again.addEventListener("click", () => this.retry(d.destination, again));
      return h(
        "li",
        { class: "delivery-state", "data-destination": d.destination },
        h("strong", {}, WHERE[d.destination] || d.destination),
        " ",
        h("span", { class: `badge delivery-${d.state}` }, d.state),
        " ",
        h("span", { class: "mono" }, target(d)),
        h("span", { class: "hint" }, ` · ${count(d.files)} files, ${bytes(d.bytes)}`),
        d.reason
          ? h("div", { class: "message bad" }, h("p", {}, d.reason.message, " ", h("code", {}, `(${d.reason.code})`)), d.reason.hint ? h("p", { class: "hint" }, d.reason.hint) : null)
          : null,
        d.next_check_at ? h("p", { class: "hint" }, `Checked again at ${dateTime(d.next_check_at)}.`) : null,
        again,
      );
    });
    const samples = a.validation_samples.map((group) =>
      h(
        "figure",
        { class: "sample", "data-step": group.step ?? "" },
        group.images.map((img) =>
          h("a", { href: relative(img.download_url), download: img.name.split("/").pop() }, h("img", { src: relative(img.download_url), alt: `Validation sample at step ${group.step ?? "?"}: ${img.name.split("/").pop()}`, loading: "lazy", width: "160", height: "160" })),
        ),
        h("figcaption", {}, group.step !== null ? `Step ${count(group.step)}` : "Final"),
      ),
    );
    const files = a.artifacts.filter((f) => f.kind !== "validation_image");
    const rows = files.map((f) => [
      h("a", { href: relative(f.download_url), download: f.name.split("/").pop(), class: "mono" }, f.name),
      KINDS[f.kind] || f.kind,
      f.step ?? "",
      bytes(f.size),
      WHERE[f.destination] || f.destination,
    ]);
    const showRetention = a.retention.ends_at && !a.retention.passed && a.deliveries.some((d) => d.state !== "verified");
    this.retention = showRetention ? a.retention : null;
    this.retentionNode = showRetention ? h("p", { id: "artifacts-retention", class: "message warn" }) : null;
    clear(
      this.element,
      h("p", { id: "artifacts-message" }, a.message),
      this.retentionNode,
      deliveries.length ? h("ul", { class: "deliveries", id: "job-deliveries" }, deliveries) : null,
      h("div", { class: "deliveries-result", "aria-live": "polite" }),
      samples.length ? [h("h4", {}, "Validation samples"), h("div", { class: "gallery", id: "job-samples" }, samples)] : null,
      rows.length ? [h("h4", {}, "Files"), table(["File", "Kind", "Step", "Size", "Where"], rows, { id: "job-files", label: "Files of this job" })] : null,
      a.caches.files ? h("p", { class: "hint" }, `Also ${count(a.caches.files)} cache files (${bytes(a.caches.bytes)}), not listed.`) : null,
    );
    this.tick();
  }
}
