// Overview: is Replicate ready (which token, Validate), Replicate's status page, what this tool
// spent against the cost limit, and the active jobs, live.
import { get, withQuery } from "../api.js";
import { card, clear, externalLink, facts, h, say, sayError, table } from "../dom.js";
import { dateTime, money } from "../format.js";
import { live, throttle } from "../live.js";
import { ACTIVE, badge, costText, jobLink, progressCell } from "./job_parts.js";
import { limitFigures, limitMeter, limitState } from "./limit_parts.js";

const BASE = "api/cloud/providers/replicate";
const SOURCES = { env: "REPLICATE_API_TOKEN (environment)", saved: "the saved token", sandbox: "the sandbox" };

function readiness(p) {
  if (!p.configured) return ["Not ready: REPLICATE_API_TOKEN not set", "bad"];
  if (p.token_check === "invalid") return [`Not ready: ${p.not_ready_reason || "Invalid token"}`, "bad"];
  if (p.token_check === "unknown") return ["Ready (Replicate could not be reached to check the token)", "warn"];
  if (!p.ready) return [`Not ready: ${p.not_ready_reason || "unknown reason"}`, "bad"];
  return ["Ready", "ok"];
}

export async function loadProvider(target) {
  const result = await get("api/cloud/providers");
  if (!result.ok) return sayError(target, result);
  const p = result.body.providers.find((entry) => entry.id === "replicate");
  const [ready, kind] = readiness(p);
  clear(
    target,
    facts([
      ["Status", h("span", { class: kind }, ready), "provider-ready"],
      [
        "Token",
        p.configured ? `from ${SOURCES[p.token_source] || p.token_source}` : "not set: export REPLICATE_API_TOKEN, or save one in Settings",
        "provider-token",
      ],
      ["Trainer model", h("span", { class: "mono" }, p.model), "provider-model"],
      ["Default hardware", p.hardware, "provider-hardware"],
      ["Webhook URL", p.webhook_url ? h("span", { class: "mono" }, p.webhook_url) : "not set: jobs are followed by polling", "provider-webhook"],
    ]),
    p.warning ? h("p", { class: "message warn" }, p.warning) : null,
  );
  return p;
}

export async function validateToken(target) {
  say(target, "muted", "Checking the token with Replicate…");
  const result = await get(`${BASE}/validate`);
  if (!result.ok) return sayError(target, result);
  const { account, token_source: source, token } = result.body;
  say(
    target,
    "ok",
    `Token works: ${account.username} (${account.name || account.username}, ${account.type}).`,
    `Token ${token} from ${source}.`,
  );
}

/** The limit's gauge, from `cost-limit/status` (decimal strings; reservations of jobs not finished count). */
function limitGauge(limit) {
  if (!limit.enabled) {
    return h("p", { id: "billing-limit" }, "Cost limit: off. ", h("a", { href: "#/settings" }, "Set one in Settings"), ".");
  }
  const figures = limitFigures(limit);
  const { words, kind } = limitState(limit.state);
  return h(
    "div",
    { class: "gauge" },
    limitMeter("limit-gauge", limit),
    h(
      "p",
      { id: "billing-limit", class: kind === "ok" ? null : kind },
      `Cost limit: ${figures.spent} of ${figures.limit} ${limit.period} (${figures.share}), `,
      `${limit.action === "block" ? "Block" : "Warn"}: ${words}. Resets ${dateTime(limit.resets_at)}.`,
    ),
  );
}

export async function loadSpend(target) {
  const [billing, limit] = await Promise.all([get(`${BASE}/billing`), get("api/cloud/cost-limit/status")]);
  const failed = [billing, limit].find((r) => !r.ok);
  if (failed) return sayError(target, failed);
  const b = billing.body;
  clear(
    target,
    h(
      "p",
      { id: "billing-spend" },
      `Spent by this tool: today ${money(b.spend.day)}, this week ${money(b.spend.week)}, this month ${money(b.spend.month)}.`,
    ),
    limitGauge(limit.body),
    h("p", {}, h("a", { href: "#/spend" }, "Spend by day, hardware and environment")),
    h(
      "p",
      { id: "billing-balance", class: "hint" },
      `Balance: unknown (${b.balance_reason}). See the `,
      externalLink(b.account_url, "Replicate account page"),
      ".",
    ),
  );
}

export async function loadStatus(target) {
  const result = await get("api/cloud/system-status");
  if (!result.ok) return sayError(target, result);
  const s = result.body;
  const kind = s.indicator === "none" ? "ok" : s.indicator === "unknown" ? "muted" : "bad";
  clear(
    target,
    h("p", { class: kind }, s.description || `Status unknown: ${s.reason}`),
    s.incidents.length ? h("ul", {}, s.incidents.map((i) => h("li", {}, i.name || String(i.status || "incident")))) : null,
    h("p", { class: "hint" }, "From ", externalLink("https://replicate.statuspage.io/", "Replicate's status page"), `, checked ${dateTime(s.checked_at)}.`),
  );
}

async function loadActive(target) {
  const result = await get(withQuery("api/cloud/jobs", { status: ACTIVE, limit: 20 }));
  if (!result.ok) return sayError(target, result);
  const { jobs, total } = result.body;
  if (!jobs.length) {
    clear(target, h("p", {}, "No active jobs. ", h("a", { href: "#/submit" }, "Submit one"), " or see ", h("a", { href: "#/jobs" }, "all jobs"), "."));
    return [];
  }
  clear(
    target,
    table(
      ["Job", "Environment", "Status", "Progress", "Cost", "Hardware"],
      jobs.map((j) => [jobLink(j), j.config, badge(j.status), progressCell(j), costText(j), j.hardware]),
      { id: "active-jobs-table", responsive: true },
    ),
    total > jobs.length ? h("p", {}, h("a", { href: "#/jobs?status=active" }, `All ${total} active jobs`)) : null,
  );
  return jobs;
}

export default {
  title: () => "Overview",
  async render(root, ctx) {
    const provider = h("div", { id: "provider", "aria-live": "polite" }, "Loading…");
    const result = h("div", { id: "validate-result", class: "message", "aria-live": "polite" });
    const validate = h("button", { type: "button", id: "validate" }, "Validate");
    validate.addEventListener("click", async () => {
      validate.disabled = true;
      await validateToken(result);
      validate.disabled = false;
      await loadProvider(provider);
    });
    const status = h("div", { id: "system-status" }, "Loading…");
    const spend = h("div", { id: "spend" }, "Loading…");
    const active = h("div", { id: "active-jobs" }, "Loading…");
    root.append(
      h("h2", { tabindex: "-1" }, "Overview"),
      h(
        "div",
        { class: "cards three" },
        card("Replicate", { id: "provider-card" }, provider, h("div", { class: "actions" }, validate, h("a", { href: "#/settings" }, "Token and settings")), result),
        card("Spend", { id: "spend-card" }, spend),
        card("Replicate status", { id: "status-card" }, status),
        card("Active jobs", { id: "active-card", class: "card wide" }, active),
      ),
    );
    const refresh = throttle(async () => {
      if (!ctx.current()) return;
      await Promise.all([loadActive(active), loadSpend(spend)]);
    }, 1500);
    ctx.onCleanup(live.subscribe((type) => type !== "log" && refresh(), { onResync: refresh }));
    await live.ready();
    await Promise.all([loadProvider(provider), loadSpend(spend), loadStatus(status), loadActive(active)]);
  },
};
