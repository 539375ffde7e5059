// One job: status and timeline, progress with ETA, cost (so far, projected, final), the loss and
// learning-rate chart, the live log, errors with their hints, and Cancel / Delete. The snapshot is
// read over REST after the live feed is open; the feed then brings every change.
import { api, get } from "../api.js";
import { LossChart } from "../chart.js";
import { confirmAction } from "../dialog.js";
import { bar, card, clear, errorBox, externalLink, facts, h, say, sayError } from "../dom.js";
import { costOf, duration, formatMicros, money, perHour, timeNode } from "../format.js";
import { takeFlash } from "../flash.js";
import { live, throttle } from "../live.js";
import { LogView } from "../logview.js";
import { ArtifactsPanel } from "./artifacts.js";
import { TERMINAL, badge, progressParts } from "./job_parts.js";

const QUIET_KINDS = new Set(["progress", "upload_progress", "logs"]);

function timelineItem(event) {
  const what =
    event.kind === "status"
      ? [badge(event.to_status), event.from_status ? ` from ${event.from_status}` : ""]
      : [h("span", { class: "kind" }, event.kind.replaceAll("_", " "))];
  return h("li", {}, timeNode(event.at), " ", what, event.message ? h("span", { class: "hint" }, ` ${event.message}`) : null);
}

function costFacts(job) {
  const c = job.cost;
  const p = job.progress;
  let projected = null;
  if (job.status === "running" && p.eta_seconds !== null && c.billed_seconds !== null) {
    projected = formatMicros(costOf(c.usd_per_hour, c.billed_seconds + p.eta_seconds));
  }
  const ended = TERMINAL.includes(job.status);
  return facts(
    [
      ["Rate", `${perHour(c.usd_per_hour)} (${job.hardware})`, "job-cost-rate"],
      c.estimated_usd !== null ? ["Estimate", money(c.estimated_usd), "job-cost-estimate"] : null,
      !ended ? ["So far", c.so_far_usd !== null ? money(c.so_far_usd) : "nothing yet (billing starts when training starts)", "job-cost-so-far"] : null,
      !ended && projected ? ["Projected", projected, "job-cost-projected"] : null,
      ended ? ["Final", money(c.final_usd ?? c.so_far_usd), "job-cost-final"] : null,
      c.billed_seconds !== null ? ["Billed time", duration(c.billed_seconds), "job-cost-time"] : null,
    ],
    { id: "job-cost-facts" },
  );
}

function detailFacts(job) {
  return facts(
    [
      ["Environment", job.config, "job-config"],
      ["Hardware", job.hardware],
      ["Trainer", h("span", { class: "mono" }, job.model)],
      ["Version", job.version ? h("span", { class: "mono", title: job.version }, `${job.version.slice(0, 12)}…`) : "latest"],
      ["Delivery", job.delivery],
      ["Prediction", job.prediction_id ? externalLink(job.replicate_url, job.prediction_id) : "not created yet", "job-prediction"],
      ["Replicate status", job.provider_status || "—"],
      ["Created", timeNode(job.created_at)],
      ["Started", timeNode(job.started_at)],
      ["Ended", timeNode(job.completed_at)],
    ],
    { id: "job-facts" },
  );
}

export default {
  title: (params) => `Job ${params.id}`,
  async render(root, ctx) {
    const id = ctx.params.id;
    const path = `api/cloud/jobs/${encodeURIComponent(id)}`;
    let job = null;
    let snapshotLoaded = false;
    let deleted = false; // from Delete's click: late events and timers must not read the job again
    let stale = false; // the last refresh failed and says so above the cards
    const pendingLogs = [];

    const status = h("span", { id: "job-status", "aria-live": "polite" });
    const cancel = h("button", { type: "button", id: "job-cancel", class: "danger", hidden: true }, "Cancel job");
    const remove = h("button", { type: "button", id: "job-delete", class: "danger", hidden: true }, "Delete job");
    const actionResult = h("div", { id: "job-action-result", "aria-live": "polite" });
    const flash = takeFlash();
    if (flash.length) clear(actionResult, h("ul", { class: "message warn", id: "submit-notes" }, flash.map((line) => h("li", {}, line))));
    const problems = h("div", { id: "job-problems" });
    const progressBox = h("div", { id: "job-progress", "aria-live": "polite" });
    const costBox = h("div", { id: "job-cost" });
    const detailBox = h("div", { id: "job-details" });
    const timeline = h("ol", { id: "job-timeline", class: "timeline" });
    const chart = new LossChart({ id: "loss-chart" });
    const logs = new LogView(id);
    const results = new ArtifactsPanel(id);
    ctx.onCleanup(() => chart.destroy());
    ctx.onCleanup(() => results.destroy());

    root.append(
      h(
        "div",
        { class: "view-head" },
        h("h2", { tabindex: "-1" }, "Job ", h("span", { class: "mono" }, id), " ", status),
        h("div", { class: "actions" }, cancel, remove),
      ),
      h("p", {}, h("a", { href: "#/jobs" }, "All jobs")),
      actionResult,
      problems,
      h(
        "div",
        { class: "cards three" },
        card("Progress", { id: "progress-card" }, progressBox),
        card("Cost", { id: "cost-card" }, costBox),
        card("Details", { id: "details-card" }, detailBox),
        card("Results", { id: "results-card", class: "card wide" }, results.element),
        card("Loss and learning rate", { id: "chart-card", class: "card wide" }, chart.figure),
        card("Log", { id: "log-card", class: "card wide" }, logs.element),
        card("Timeline", { id: "timeline-card", class: "card wide" }, timeline),
      ),
    );

    function showProgress() {
      const { value, text } = progressParts(job);
      const p = job.progress;
      const readings = [
        p.loss !== null ? `loss ${p.loss}` : null,
        p.learning_rate !== null ? `learning rate ${p.learning_rate}` : null,
        p.epoch !== null && p.epochs ? `epoch ${p.epoch} of ${p.epochs}` : null,
      ].filter(Boolean);
      clear(
        progressBox,
        bar("Job progress", value),
        h("p", { id: "job-progress-text" }, text),
        readings.length ? h("p", { id: "job-readings", class: "hint" }, readings.join(" · ")) : null,
        p.stage && p.phase === "training" ? h("p", { class: "hint", id: "job-stage" }, `Stage: ${p.stage}`) : null,
      );
    }

    function show() {
      clear(status, badge(job.status));
      document.body.dataset.jobStatus = job.status;
      const ended = TERMINAL.includes(job.status);
      cancel.hidden = ended || job.cancel_requested;
      remove.hidden = !ended;
      clear(
        problems,
        job.error ? errorBox(job.error, { id: "job-error" }) : null,
        job.notice ? h("div", { class: "message warn", id: "job-notice" }, h("p", {}, job.notice.message || JSON.stringify(job.notice)), job.notice.hint ? h("p", { class: "hint" }, job.notice.hint) : null) : null,
        job.cancel_requested && !ended ? h("p", { class: "message warn" }, "Cancel requested; waiting for Replicate to stop the job.") : null,
        job.warnings.length ? h("ul", { class: "message warn", id: "job-warnings" }, job.warnings.map((w) => h("li", {}, w))) : null,
      );
      showProgress();
      clear(costBox, costFacts(job));
      clear(detailBox, detailFacts(job));
      clear(timeline, (job.timeline || []).filter((e) => !QUIET_KINDS.has(e.kind)).map(timelineItem));
    }

    async function loadJob() {
      if (deleted) return null;
      const result = await get(path);
      if (!ctx.current() || deleted) return null;
      if (!result.ok && job && result.status !== 404) {
        // A refresh that failed (the network, a restarting server): keep the page, say so, and let
        // the next event or the live feed's catch-up try again.
        sayError(actionResult, result);
        stale = true;
        return null;
      }
      if (!result.ok && (result.status === 0 || result.status >= 500)) {
        // The first read failed for a passing reason (the network, a proxy or server restarting):
        // keep the page, say so, and try again (the live feed's catch-up and the next event do too).
        sayError(actionResult, result);
        stale = true;
        retryLater();
        return null;
      }
      if (!result.ok) {
        clear(root, h("h2", { tabindex: "-1" }, `Job ${id}`), h("div", { id: "job-missing" }));
        sayError(root.querySelector("#job-missing"), result);
        root.append(h("p", {}, h("a", { href: "#/jobs" }, "All jobs")));
        return null;
      }
      if (stale) {
        clear(actionResult);
        stale = false;
        retryPause = 1000;
      }
      const before = job ? job.status : null;
      job = result.body;
      show();
      if (before && before !== job.status && TERMINAL.includes(job.status)) {
        loadMetrics();
        logs.catchUp();
      }
      return job;
    }

    let retryPause = 1000;
    let retryTimer = null;
    ctx.onCleanup(() => clearTimeout(retryTimer));
    function retryLater() {
      clearTimeout(retryTimer);
      retryTimer = setTimeout(() => ctx.current() && loadSnapshot(), retryPause);
      retryPause = Math.min(retryPause * 2, 30_000);
    }

    // The job, then its chart, log and results, once; until the job itself has been read, every
    // refresh is this.
    let loadingSnapshot = null;
    function loadSnapshot() {
      if (snapshotLoaded) return Promise.resolve();
      if (!loadingSnapshot) {
        loadingSnapshot = (async () => {
          try {
            if (!(await loadJob())) return;
            await Promise.all([loadMetrics(), logs.load(), results.load()]);
            snapshotLoaded = true;
            for (const data of pendingLogs.splice(0)) logs.append(data.offset, data.text);
          } finally {
            loadingSnapshot = null;
          }
        })();
      }
      return loadingSnapshot;
    }

    async function loadMetrics() {
      if (deleted) return;
      const result = await get(`${path}/metrics`);
      if (result.ok && ctx.current()) chart.set(result.body.points, job && job.progress.total_steps);
    }

    const refreshJob = throttle(() => ctx.current() && (snapshotLoaded ? loadJob() : loadSnapshot()), 300);
    const refreshResults = throttle(() => ctx.current() && !deleted && results.load(), 1000);
    const refreshCost = throttle(() => ctx.current() && loadJob(), 2000);

    function onEvent(type, data) {
      if (deleted) return;
      if (!job) return type === "log" ? pendingLogs.push(data) : refreshJob();
      // No event names each file that arrives, only the first; while files arrive, any event of the
      // job (log lines come with the trainer's uploads) reads the list again, once a second at most.
      if (results.receiving && type !== "status" && type !== "event") refreshResults();
      if (type === "log") {
        if (!snapshotLoaded) pendingLogs.push(data);
        else logs.append(data.offset, data.text);
      } else if (type === "progress" && data.data) {
        const reading = data.data;
        for (const key of ["step", "total_steps", "percent", "eta_seconds", "loss", "learning_rate", "epoch", "epochs", "stage"]) {
          if (reading[key] !== null && reading[key] !== undefined) job.progress[key] = reading[key];
        }
        chart.add(reading, reading.total_steps);
        showProgress();
        refreshCost();
      } else if (type === "upload" && data.data) {
        job.progress.bytes_done = data.data.bytes_done;
        job.progress.bytes_total = data.data.bytes_total;
        if (data.data.phase) job.progress.phase = data.data.phase;
        showProgress();
      } else {
        refreshJob();
        refreshResults(); // deliveries and samples change with status and timeline events
      }
    }

    async function resync() {
      if (!snapshotLoaded) return loadSnapshot();
      await loadJob();
      if (deleted) return;
      await Promise.all([loadMetrics(), logs.catchUp(), results.load()]);
    }

    cancel.addEventListener("click", async () => {
      const ok = await confirmAction({
        title: "Cancel this job?",
        message: "Training stops at Replicate and the time used so far is still billed. A job that has not reached Replicate yet is stopped here and nothing is created.",
        confirm: "Cancel job",
      });
      if (!ok) return;
      cancel.disabled = true;
      const result = await api("POST", `${path}/cancel`);
      cancel.disabled = false;
      if (!result.ok) return sayError(actionResult, result);
      say(actionResult, "ok", result.body.message);
      loadJob();
    });

    remove.addEventListener("click", async () => {
      const ok = await confirmAction({
        title: "Delete this job?",
        message: "Its record, log and chart are removed from this tool. The prediction stays in your Replicate account, and a published model stays where it was published.",
        confirm: "Delete job",
      });
      if (!ok) return;
      // From the click on, the page reads nothing more of the job: a refresh that a late event or
      // a throttle timer starts during the delete would ask for a job that is gone (a 404).
      deleted = true;
      results.stopFollowing();
      const result = await api("DELETE", path);
      if (!result.ok) {
        deleted = false;
        return sayError(actionResult, result);
      }
      clear(
        root,
        h("h2", { tabindex: "-1" }, "Job deleted"),
        h(
          "div",
          { class: "message ok", id: "job-deleted", role: "status" },
          h("p", {}, `Deleted ${result.body.deleted} from this tool.`),
          result.body.not_deleted.length ? [h("p", {}, "Not deleted:"), h("ul", {}, result.body.not_deleted.map((n) => h("li", {}, n)))] : null,
        ),
        h("p", {}, h("a", { href: "#/jobs" }, "All jobs")),
      );
      root.querySelector("h2").focus();
    });

    ctx.onCleanup(live.subscribe(onEvent, { job: id, onResync: resync }));
    await live.ready();
    await loadSnapshot();
  },
};
