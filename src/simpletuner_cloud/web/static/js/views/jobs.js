// Jobs: every job, newest first, with live status, progress, cost and hardware; filters (status,
// hardware, text) and pages (the API's cursor). Filters live in the hash, so Back and reload keep them.
import { get, withQuery } from "../api.js";
import { clear, field, h, say, sayError, select, table } from "../dom.js";
import { ago, count, timeNode } from "../format.js";
import { live, throttle } from "../live.js";
import { replaceQuery } from "../router.js";
import { ACTIVE, STATUSES, badge, costText, jobLink, progressCell } from "./job_parts.js";

const PAGE = 25;
const HEADERS = ["Job", "Environment", "Status", "Progress", "Cost", "Hardware", "Created"];

export default {
  title: () => "Jobs",
  async render(root, ctx) {
    const state = {
      status: ctx.query.get("status") || "",
      hardware: ctx.query.get("hardware") || "",
      q: ctx.query.get("q") || "",
      cursor: ctx.query.get("cursor") || "",
    };
    const previous = []; // cursors of the pages before this one, for "Newer"
    let shown = new Set();

    const statusFilter = select(
      { id: "jobs-status", name: "status" },
      [{ value: "", label: "All" }, { value: "active", label: "Active" }, ...STATUSES.map((s) => ({ value: s, label: s }))],
      state.status,
    );
    const hardwareFilter = select({ id: "jobs-hardware", name: "hardware" }, [{ value: "", label: "All" }], "");
    const search = h("input", { type: "search", id: "jobs-q", name: "q", value: state.q, autocomplete: "off", spellcheck: "false" });
    const list = h("div", { id: "jobs-list", "aria-live": "polite", "aria-busy": "true" });
    const countLine = h("p", { id: "jobs-count", class: "hint" });
    const newer = h("button", { type: "button", class: "secondary", id: "jobs-newer", disabled: true }, "Newer");
    const older = h("button", { type: "button", class: "secondary", id: "jobs-older", disabled: true }, "Older");
    const error = h("div", { id: "jobs-error", "aria-live": "polite" });
    root.append(
      h("div", { class: "view-head" }, h("h2", { tabindex: "-1" }, "Jobs"), h("a", { href: "#/submit", class: "button" }, "Submit a job")),
      h(
        "form",
        { class: "filters", id: "jobs-filters", role: "search", "aria-label": "Filter jobs" },
        field("Search", search, "Id, environment or prediction id"),
        field("Status", statusFilter),
        field("Hardware", hardwareFilter),
      ),
      error,
      countLine,
      list,
      h("nav", { class: "pager", "aria-label": "Pages of jobs" }, newer, older),
    );

    let nextCursor = null;
    async function load() {
      list.setAttribute("aria-busy", "true");
      const statuses = state.status === "active" ? ACTIVE : state.status ? [state.status] : [];
      const result = await get(
        withQuery("api/cloud/jobs", { status: statuses, hardware: state.hardware, q: state.q, cursor: state.cursor, limit: PAGE }),
      );
      list.setAttribute("aria-busy", "false");
      if (!ctx.current()) return;
      if (!result.ok) {
        sayError(error, result);
        return;
      }
      clear(error);
      const { jobs, total, next_cursor: next } = result.body;
      nextCursor = next;
      shown = new Set(jobs.map((j) => j.id));
      const first = previous.length * PAGE;
      countLine.textContent = total
        ? `${count(total)} job${total === 1 ? "" : "s"}` + (total > jobs.length ? `; showing ${count(first + 1)}–${count(first + jobs.length)}.` : ".")
        : "";
      if (!jobs.length) {
        clear(list, h("p", { class: "empty" }, state.q || state.status || state.hardware ? "No job matches these filters." : "No jobs yet. ", h("a", { href: "#/submit" }, "Submit one"), "."));
      } else {
        clear(
          list,
          table(
            HEADERS,
            jobs.map((j) => [jobLink(j), j.config, badge(j.status), progressCell(j), costText(j), j.hardware, [timeNode(j.created_at, ago(j.created_at))]]),
            { id: "jobs-table", responsive: true },
          ),
        );
      }
      newer.disabled = !state.cursor;
      older.disabled = !next;
    }

    function changed() {
      state.cursor = "";
      previous.length = 0;
      replaceQuery("jobs", { status: state.status, hardware: state.hardware, q: state.q });
      load();
    }

    statusFilter.addEventListener("change", () => {
      state.status = statusFilter.value;
      changed();
    });
    hardwareFilter.addEventListener("change", () => {
      state.hardware = hardwareFilter.value;
      changed();
    });
    let typing = null;
    search.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        state.q = search.value.trim();
        changed();
      }, 300);
    });
    root.querySelector("#jobs-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      state.q = search.value.trim();
      changed();
    });
    older.addEventListener("click", () => {
      previous.push(state.cursor);
      state.cursor = nextCursor;
      replaceQuery("jobs", state);
      load().then(() => list.scrollIntoView({ block: "start" }));
    });
    newer.addEventListener("click", () => {
      state.cursor = previous.pop() || "";
      replaceQuery("jobs", state);
      load();
    });

    const refresh = throttle(() => ctx.current() && load(), 1000);
    ctx.onCleanup(
      live.subscribe(
        (type, data) => {
          if (type === "status" || shown.has(data.job_id)) refresh();
        },
        { onResync: refresh },
      ),
    );
    ctx.onCleanup(() => clearTimeout(typing));
    await live.ready();
    const [hardware] = await Promise.all([get("api/cloud/hardware"), load()]);
    if (hardware.ok) {
      for (const item of hardware.body.hardware) hardwareFilter.append(new Option(item.name, item.id));
      hardwareFilter.value = state.hardware;
    } else {
      say(error, "bad", "The hardware list could not be read.");
    }
  },
};
