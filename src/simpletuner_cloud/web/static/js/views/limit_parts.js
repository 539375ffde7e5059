// The cost limit's gauge, shared by Overview and Spend: what each state of `cost-limit/status`
// (services/costs.py: ok, warning, exceeded) is called and coloured, and the meter.
import { h } from "../dom.js";
import { againstLimit, fraction } from "../format.js";

const STATES = {
  ok: { words: "within the limit", kind: "ok" },
  warning: { words: "near the limit", kind: "warn" },
  exceeded: { words: "limit reached", kind: "bad" },
};

/** `{words, kind}` of a limit state; one this page does not know yet is shown as it is, in amber. */
export function limitState(state) {
  return STATES[state] || { words: String(state), kind: "warn" };
}

/** The spend, the limit and the share as text that agrees with the state (see `againstLimit`). */
export function limitFigures(status) {
  const figures = againstLimit(status.committed_total_usd, status.limit_usd);
  return { ...figures, share: figures.percent === null ? "—" : `${figures.percent}%` };
}

export function limitMeter(id, status) {
  const meter = h("meter", { id, min: "0", max: "1", low: "0.8", high: "0.999", optimum: "0", "aria-label": "Spend against the cost limit" });
  meter.value = Math.min(fraction(status.committed_total_usd, status.limit_usd) ?? 0, 1);
  return meter;
}
