// Spend: what this tool's jobs cost in a period (the cost limit's by default), per day as a chart,
// by hardware and by environment, and a gauge against the limit. Money stays decimal strings.
import { get, withQuery } from "../api.js";
import { SpendChart } from "../chart.js";
import { card, clear, facts, field, h, sayError, select, table } from "../dom.js";
import { dateTime, money, toMicros } from "../format.js";
import { live, throttle } from "../live.js";
import { replaceQuery } from "../router.js";
import { limitFigures, limitMeter, limitState } from "./limit_parts.js";

const PERIODS = ["daily", "weekly", "monthly"];
const DAY_MS = 86_400_000;

/** Every calendar day of the period in the limit's time zone, so days without spend show as 0. */
export function daysOf(view) {
  const keyOf = new Intl.DateTimeFormat("en-CA", { timeZone: view.time_zone, year: "numeric", month: "2-digit", day: "2-digit" });
  const labelOf = new Intl.DateTimeFormat("en-US", { timeZone: view.time_zone, month: "short", day: "numeric" });
  const start = new Date(view.start).getTime();
  const end = new Date(view.end).getTime();
  const spent = new Map(view.groups.map((g) => [g.key, g.usd]));
  const days = [];
  for (let at = start + DAY_MS / 2; at < end; at += DAY_MS) {
    const key = keyOf.format(at);
    if (days.length && days[days.length - 1].key === key) continue;
    const usd = spent.get(key) ?? "0";
    days.push({ key, label: labelOf.format(at), usd, text: money(usd) });
  }
  return days;
}

function limitCard(s) {
  if (!s.enabled) {
    return h("p", { id: "spend-limit-text" }, "Cost limit: off. ", h("a", { href: "#/settings" }, "Set one in Settings"), ".");
  }
  const figures = limitFigures(s);
  const { words, kind } = limitState(s.state);
  return h(
    "div",
    { class: "gauge" },
    limitMeter("spend-gauge", s),
    h(
      "p",
      { id: "spend-limit-text", class: kind },
      `${figures.spent} of ${figures.limit} ${s.period} (${figures.share}): ${words}. ${s.action === "block" ? "Block" : "Warn"}.`,
    ),
    facts([
      ["Spent", money(s.spent_usd)],
      ["Reserved by jobs not finished", money(s.reserved_usd)],
      ["Projected", money(s.projected_usd)],
      ["Resets", dateTime(s.resets_at)],
      ["Running jobs", s.cancel_running_at_limit ? `canceled at the limit (${s.cancel_on})` : "left running at the limit"],
    ]),
    s.next ? h("p", { class: "hint" }, s.next) : null,
  );
}

export default {
  title: () => "Spend",
  async render(root, ctx) {
    const status = h("div", { id: "spend-limit" }, "Loading…");
    const totals = h("div", { id: "spend-totals" });
    const chart = new SpendChart({ id: "spend-chart" });
    ctx.onCleanup(() => chart.destroy());
    const byHardware = h("div", { id: "spend-hardware" });
    const byConfig = h("div", { id: "spend-config" });
    const error = h("div", { id: "spend-error", "aria-live": "polite" });
    const period = select({ id: "spend-period" }, [{ value: "", label: "the cost limit's period" }, ...PERIODS.map((p) => ({ value: p, label: p }))], ctx.query.get("period") || "");
    root.append(
      h("h2", { tabindex: "-1" }, "Spend"),
      h("p", { class: "hint" }, "What this tool's jobs cost: finished jobs at their recorded cost, running ones so far, and what jobs not running yet have reserved. Replicate's own balance has no public API; see replicate.com/account/billing."),
      h("form", { class: "filters single", id: "spend-filters", "aria-label": "Spend period" }, field("Period", period)),
      error,
      h(
        "div",
        { class: "cards" },
        card("Against the cost limit", { id: "spend-limit-card" }, status),
        card("This period", { id: "spend-totals-card" }, totals),
        card("Per day", { id: "spend-days-card", class: "card wide" }, chart.figure),
        card("By hardware", { id: "spend-hardware-card" }, byHardware),
        card("By environment", { id: "spend-config-card" }, byConfig),
      ),
    );

    const groups = (view, headers, id) =>
      view.groups.length
        ? table(headers, view.groups.map((g) => [g.key, money(g.usd)]), { id, label: headers[0] })
        : h("p", { class: "empty" }, "Nothing spent in this period.");

    async function load() {
      const chosen = period.value || null;
      const [limit, days, hardware, configs] = await Promise.all([
        get("api/cloud/cost-limit/status"),
        get(withQuery("api/cloud/spend", { period: chosen, group_by: "day" })),
        get(withQuery("api/cloud/spend", { period: chosen, group_by: "hardware" })),
        get(withQuery("api/cloud/spend", { period: chosen, group_by: "config" })),
      ]);
      if (!ctx.current()) return;
      const failed = [limit, days, hardware, configs].find((r) => !r.ok);
      if (failed) return sayError(error, failed);
      clear(error);
      clear(status, limitCard(limit.body));
      const d = days.body;
      clear(
        totals,
        facts(
          [
            ["Period", `${d.period}: ${dateTime(d.start)} to ${dateTime(d.end)}`],
            ["Calendar", d.time_zone],
            ["Total", h("strong", {}, money(d.total_usd)), "spend-total"],
            ["Finished jobs", money(d.committed_usd)],
            ["Running jobs", money(d.running_usd)],
            ["Reserved", money(d.reserved_usd)],
          ],
          { id: "spend-totals-facts" },
        ),
      );
      const perDay = daysOf(d);
      const top = perDay.reduce((best, day) => (toMicros(day.usd) > toMicros(best.usd) ? day : best), { usd: "0", label: "" });
      chart.set(
        perDay,
        `${perDay.length} day${perDay.length === 1 ? "" : "s"}, ${money(d.total_usd)} in all` + (top.label ? `; the most on ${top.label}: ${top.text}.` : "."),
      );
      clear(byHardware, groups(hardware.body, ["Hardware", "Spent"], "spend-hardware-table"));
      clear(byConfig, groups(configs.body, ["Environment", "Spent"], "spend-config-table"));
    }

    period.addEventListener("change", () => {
      replaceQuery("spend", { period: period.value });
      load();
    });
    const refresh = throttle(() => ctx.current() && load(), 3000);
    ctx.onCleanup(live.subscribe((type) => type === "status" && refresh(), { onResync: refresh }));
    await load();
  },
};
