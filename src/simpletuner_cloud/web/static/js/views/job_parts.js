// Pieces of a job shown in several views: its link, status, progress and cost.
import { badge, bar, h } from "../dom.js";
import { bytes, count, duration, money, percent } from "../format.js";

export const ACTIVE = ["created", "packaging", "uploading", "submitting", "queued", "running"];
export const TERMINAL = ["succeeded", "failed", "canceled"];
export const STATUSES = [...ACTIVE, ...TERMINAL];

export function isActive(job) {
  return ACTIVE.includes(job.status);
}

export function jobHref(id) {
  return `#/jobs/${encodeURIComponent(id)}`;
}

export function jobLink(job) {
  return h("a", { href: jobHref(job.id), class: "mono" }, job.id);
}

export { badge };

/** Bytes while uploading, steps while training; a number a person can read beside the bar. */
export function progressParts(job) {
  const p = job.progress || {};
  if ((p.phase === "packaging" || p.phase === "uploading") && p.bytes_total) {
    return {
      value: (100 * (p.bytes_done || 0)) / p.bytes_total,
      text: `${p.phase === "packaging" ? "Packaging" : "Uploading"} ${bytes(p.bytes_done || 0)} of ${bytes(p.bytes_total)}`,
    };
  }
  if (p.step !== null && p.step !== undefined) {
    const of = p.total_steps ? ` of ${count(p.total_steps)}` : "";
    const eta = p.eta_seconds !== null && p.eta_seconds !== undefined && job.status === "running" ? ` · ETA ${duration(p.eta_seconds)}` : "";
    return { value: p.percent, text: `Step ${count(p.step)}${of} (${percent(p.percent)})${eta}` };
  }
  const words = {
    waiting: "Waiting to start",
    packaging: "Packaging the dataset",
    uploading: "Uploading the dataset",
    submitting: "Creating the prediction",
    queued: "Queued at Replicate",
    training: p.stage || "Starting the trainer",
    finished: job.status === "succeeded" ? "Done" : "Ended",
  };
  return { value: job.status === "succeeded" ? 100 : null, text: words[p.phase] || p.phase || "" };
}

export function progressCell(job) {
  const { value, text } = progressParts(job);
  const active = isActive(job);
  return h(
    "div",
    { class: "progress-cell" },
    active || job.status === "succeeded" ? bar(`Progress of ${job.id}`, value) : null,
    h("span", { class: "hint" }, text),
  );
}

/** Final cost when the job ended, else what it has cost so far. */
export function costText(job) {
  const c = job.cost || {};
  if (TERMINAL.includes(job.status)) return money(c.final_usd ?? c.so_far_usd);
  if (c.so_far_usd !== null && c.so_far_usd !== undefined) return `${money(c.so_far_usd)} so far`;
  return "—";
}
