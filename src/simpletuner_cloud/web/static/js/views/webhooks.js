// Webhooks: the flight recorder. Every delivery that reached this server, newest first: accepted,
// duplicate, ignored, rejected (with the reason), unsigned hints and self-tests; the headers it
// came with (secrets left out), and Replay for an accepted one.
import { api, get, withQuery } from "../api.js";
import { clear, field, h, say, sayError, select, table } from "../dom.js";
import { ago, bytes, count, timeNode } from "../format.js";
import { replaceQuery } from "../router.js";
import { jobHref } from "./job_parts.js";

const OUTCOMES = ["accepted", "duplicate", "ignored", "rejected", "hint", "test"];
const HEADERS = ["Received", "Outcome", "Event", "Job", "Reason", "From", "HTTP", "Details"];
const PAGE = 50;

function outcomeBadge(outcome) {
  return h("span", { class: `badge outcome-${outcome}` }, outcome);
}

function details(d, onReplay) {
  const headers = Object.entries(d.headers || {});
  const replay =
    d.outcome === "accepted" && d.body_kept && d.job_id
      ? h("button", { type: "button", class: "secondary small", "data-replay": String(d.id), onclick: () => onReplay(d) }, "Replay")
      : null;
  return h(
    "details",
    { class: "delivery" },
    h("summary", {}, `#${d.id}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Webhook id"),
      h("dd", { class: "mono" }, d.webhook_id || "—"),
      h("dt", {}, "Prediction"),
      h("dd", { class: "mono" }, d.prediction_id || "—"),
      h("dt", {}, "Body"),
      h("dd", {}, d.body_size !== null ? `${bytes(d.body_size)}${d.body_kept ? ", kept" : ""}` : "—"),
      h("dt", {}, "Latency"),
      h("dd", {}, d.latency_ms !== null ? `${count(Math.round(d.latency_ms))} ms` : "—"),
      h("dt", {}, "Peer"),
      h("dd", {}, d.peer_ip || "—"),
      d.replayed_at ? [h("dt", {}, "Replayed"), h("dd", {}, timeNode(d.replayed_at))] : null,
    ),
    headers.length ? h("ul", { class: "headers mono" }, headers.map(([k, v]) => h("li", {}, `${k}: ${v}`))) : null,
    replay,
  );
}

export default {
  title: () => "Webhooks",
  async render(root, ctx) {
    const state = { outcome: ctx.query.get("outcome") || "", job: ctx.query.get("job") || "" };
    const pages = [null]; // `before` of each page seen, for Newer
    const outcome = select({ id: "deliveries-outcome" }, [{ value: "", label: "All" }, ...OUTCOMES.map((o) => ({ value: o, label: o }))], state.outcome);
    const job = h("input", { type: "search", id: "deliveries-job", value: state.job, autocomplete: "off", spellcheck: "false" });
    const refresh = h("button", { type: "button", class: "secondary", id: "deliveries-refresh" }, "Refresh");
    const list = h("div", { id: "deliveries", "aria-live": "polite" });
    const result = h("div", { id: "replay-result", "aria-live": "polite" });
    const newer = h("button", { type: "button", class: "secondary", id: "deliveries-newer", disabled: true }, "Newer");
    const older = h("button", { type: "button", class: "secondary", id: "deliveries-older", disabled: true }, "Older");
    root.append(
      h("h2", { tabindex: "-1" }, "Webhooks"),
      h(
        "p",
        { class: "hint" },
        "Every delivery that reached this server's webhook receiver in the last 7 days. To check the way in from outside, use Test webhook in ",
        h("a", { href: "#/settings" }, "Settings"),
        ".",
      ),
      h(
        "form",
        { class: "filters", id: "deliveries-filters", role: "search", "aria-label": "Filter deliveries" },
        field("Outcome", outcome),
        field("Job id", job),
        h("div", { class: "actions" }, refresh),
      ),
      result,
      list,
      h("nav", { class: "pager", "aria-label": "Pages of deliveries" }, newer, older),
    );

    let next = null;
    async function load() {
      const before = pages[pages.length - 1];
      const answer = await get(withQuery("api/cloud/webhooks/deliveries", { outcome: state.outcome, job: state.job, before, limit: PAGE }));
      if (!ctx.current()) return;
      if (!answer.ok) return sayError(list, answer);
      const { deliveries, next_before: nextBefore } = answer.body;
      next = nextBefore;
      list.className = "";
      if (!deliveries.length) {
        clear(list, h("p", { class: "empty" }, state.outcome || state.job ? "No delivery matches these filters." : "No webhook deliveries yet. They arrive once a job runs with a webhook URL."));
      } else {
        clear(
          list,
          table(
            HEADERS,
            deliveries.map((d) => [
              timeNode(d.received_at, ago(d.received_at)),
              outcomeBadge(d.outcome),
              [d.event || "—", d.status ? h("span", { class: "hint" }, ` (${d.status})`) : null],
              d.job_id ? h("a", { href: jobHref(d.job_id), class: "mono" }, d.job_id) : "—",
              d.code || d.reason ? [d.code ? h("code", {}, d.code) : null, d.reason ? ` ${d.reason}` : null] : "—",
              d.client_ip || "—",
              d.http_status ?? "—",
              details(d, replay),
            ]),
            { id: "deliveries-table", responsive: true },
          ),
        );
      }
      newer.disabled = pages.length < 2;
      older.disabled = !next;
    }

    async function replay(d) {
      say(result, "muted", `Replaying delivery #${d.id}…`);
      const answer = await api("POST", `api/cloud/webhooks/deliveries/${d.id}/replay`);
      if (!answer.ok) return sayError(result, answer);
      const r = answer.body;
      say(
        result,
        "ok",
        `Replayed #${d.id} to job ${r.job_id}: ${r.status_changed ? `status is now ${r.status}` : `status unchanged (${r.status})`}, ${count(r.new_log_characters)} new log characters.`,
      );
      load();
    }

    function changed() {
      pages.splice(1);
      replaceQuery("webhooks", state);
      load();
    }
    outcome.addEventListener("change", () => {
      state.outcome = outcome.value;
      changed();
    });
    let typing = null;
    job.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.job = job.value.trim();
        changed();
      }, 300);
    });
    ctx.onCleanup(() => clearTimeout(typing));
    root.querySelector("#deliveries-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      state.job = job.value.trim();
      changed();
    });
    refresh.addEventListener("click", load);
    older.addEventListener("click", () => {
      pages.push(next);
      load();
    });
    newer.addEventListener("click", () => {
      pages.pop();
      load();
    });
    await load();
  },
};
