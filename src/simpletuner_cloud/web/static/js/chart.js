// The loss and learning-rate chart: hand-drawn SVG, two series over the training step, loss on the
// left axis and learning rate on the right. It is drawn at the width of its box (and again when
// that changes), so text stays readable from 390 px up; points are added as progress arrives.
import { h, svg } from "./dom.js";
import { count, money, number } from "./format.js";

const HEIGHT = 240;
const MARGIN = { top: 28, right: 64, bottom: 36, left: 56 };
const SERIES = [
  { key: "loss", label: "Loss", side: "left", className: "series-loss" },
  { key: "learning_rate", label: "Learning rate", side: "right", className: "series-lr" },
];

function extent(values) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  if (!Number.isFinite(low)) return null;
  if (low === high) {
    const pad = Math.abs(low) * 0.1 || 1;
    low -= pad;
    high += pad;
  }
  return [low, high];
}

function ticks([low, high], n = 4) {
  return Array.from({ length: n + 1 }, (_, i) => low + ((high - low) * i) / n);
}

/** Steps on the x axis from 0 to `last`: whole numbers at a round interval (1, 2, 2.5 or 5 times a
 * power of ten, at least 1), about four of them, never the same step twice. */
export function stepTicks(last) {
  const rough = Math.max(last / 4, 1);
  const power = 10 ** Math.floor(Math.log10(rough));
  const interval = [1, 2, 2.5, 5, 10].map((f) => f * power).find((i) => i >= rough && Number.isInteger(i));
  const out = [];
  for (let at = 0; at <= last; at += interval) out.push(at);
  return out;
}

export class LossChart {
  /** `points`: [{step, loss, learning_rate}]; `totalSteps` fixes the x axis when known. */
  constructor({ id = "loss-chart", totalSteps = null } = {}) {
    this.points = [];
    this.totalSteps = totalSteps;
    this.id = id;
    this.figure = h("figure", { class: "chart", id });
    this.summary = h("figcaption", { class: "hint", id: `${id}-summary` });
    this.canvas = h("div", { class: "chart-canvas" });
    this.figure.append(this.canvas, this.summary);
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(this.canvas);
  }

  destroy() {
    this.observer.disconnect();
  }

  /** The series from `/metrics`, merged with readings that arrived live meanwhile. */
  set(points, totalSteps) {
    const byStep = new Map(this.points.map((p) => [p.step, p]));
    for (const p of points) byStep.set(p.step, p);
    this.points = [...byStep.values()].sort((a, b) => a.step - b.step);
    if (totalSteps) this.totalSteps = totalSteps;
    this.draw();
  }

  /** A reading from a live `progress` event; older or repeated steps are ignored. */
  add(point, totalSteps) {
    if (totalSteps) this.totalSteps = totalSteps;
    if (point.step === null || point.step === undefined) return;
    if (point.loss === null && point.learning_rate === null) return;
    const last = this.points[this.points.length - 1];
    if (last && point.step <= last.step) return;
    this.points.push({ step: point.step, loss: point.loss, learning_rate: point.learning_rate });
    this.draw();
  }

  draw() {
    const width = Math.max(280, Math.floor(this.canvas.clientWidth || 640));
    const points = this.points;
    this.figure.dataset.points = String(points.length);
    this.figure.dataset.lastStep = points.length ? String(points[points.length - 1].step) : "";
    const last = points[points.length - 1];
    this.summary.textContent = points.length
      ? `${count(points.length)} readings, steps ${count(points[0].step)} to ${count(last.step)}; latest loss ${number(last.loss)}, learning rate ${number(last.learning_rate)}.`
      : "No readings yet: the chart starts with the first training step the trainer logs.";
    const titleId = `${this.id}-title`;
    const chart = svg("svg", {
      width: String(width),
      height: String(HEIGHT),
      viewBox: `0 0 ${width} ${HEIGHT}`,
      role: "img",
      "aria-labelledby": titleId,
      "aria-describedby": this.summary.id,
    });
    chart.append(svg("title", { id: titleId }, "Loss and learning rate by training step"));
    const plot = {
      x0: MARGIN.left,
      x1: width - MARGIN.right,
      y0: HEIGHT - MARGIN.bottom,
      y1: MARGIN.top,
    };
    chart.append(svg("rect", { class: "plot", x: plot.x0, y: plot.y1, width: plot.x1 - plot.x0, height: plot.y0 - plot.y1 }));
    const steps = points.map((p) => p.step);
    const xDomain = [0, Math.max(this.totalSteps || 0, ...steps, 1)];
    const x = (step) => plot.x0 + ((step - xDomain[0]) / (xDomain[1] - xDomain[0])) * (plot.x1 - plot.x0);
    for (const tick of stepTicks(xDomain[1])) {
      const at = x(tick);
      chart.append(
        svg("line", { class: "tick", x1: at, x2: at, y1: plot.y0, y2: plot.y0 + 4 }),
        svg("text", { class: "axis", x: at, y: plot.y0 + 16, "text-anchor": "middle" }, count(tick)),
      );
    }
    chart.append(svg("text", { class: "axis-title", x: (plot.x0 + plot.x1) / 2, y: HEIGHT - 4, "text-anchor": "middle" }, "step"));
    SERIES.forEach((series, index) => {
      const values = points.map((p) => p[series.key]).filter((v) => v !== null && v !== undefined);
      const domain = extent(values);
      const left = series.side === "left";
      const axisX = left ? plot.x0 : plot.x1;
      chart.append(
        svg("text", { class: `legend ${series.className}`, x: left ? plot.x0 : plot.x1, y: 16, "text-anchor": left ? "start" : "end" }, series.label),
      );
      if (!domain) return;
      const y = (v) => plot.y0 - ((v - domain[0]) / (domain[1] - domain[0])) * (plot.y0 - plot.y1);
      for (const tick of ticks(domain)) {
        const at = y(tick);
        if (index === 0) chart.append(svg("line", { class: "grid", x1: plot.x0, x2: plot.x1, y1: at, y2: at }));
        chart.append(
          svg("text", { class: "axis", x: left ? axisX - 6 : axisX + 6, y: at + 4, "text-anchor": left ? "end" : "start" }, number(tick)),
        );
      }
      const line = points
        .filter((p) => p[series.key] !== null && p[series.key] !== undefined)
        .map((p) => `${x(p.step).toFixed(1)},${y(p[series.key]).toFixed(1)}`)
        .join(" ");
      chart.append(svg("polyline", { class: `line ${series.className}`, points: line, fill: "none" }));
    });
    this.canvas.replaceChildren(chart);
  }
}

/** Spend per day: one bar per day of the period (days without spend are drawn empty), amounts
 * as decimal strings; heights are the only place they become floating point. */
export class SpendChart {
  constructor({ id = "spend-chart" } = {}) {
    this.id = id;
    this.items = [];
    this.figure = h("figure", { class: "chart", id });
    this.canvas = h("div", { class: "chart-canvas" });
    this.summary = h("figcaption", { class: "hint", id: `${id}-summary` });
    this.figure.append(this.canvas, this.summary);
    this.observer = new ResizeObserver(() => this.draw());
    this.observer.observe(this.canvas);
  }

  destroy() {
    this.observer.disconnect();
  }

  /** `items`: [{key: "2026-12-01", label: "Dec 1", usd: "0.0123", text: "$0.0123"}]. */
  set(items, summary) {
    this.items = items;
    this.summary.textContent = summary;
    this.draw();
  }

  draw() {
    const width = Math.max(280, Math.floor(this.canvas.clientWidth || 640));
    const height = 200;
    const m = { top: 12, right: 12, bottom: 30, left: 64 };
    const values = this.items.map((i) => Number(i.usd) || 0);
    const max = Math.max(...values, 0) || 1;
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const step = plotW / Math.max(this.items.length, 1);
    const titleId = `${this.id}-title`;
    const chart = svg("svg", { width: String(width), height: String(height), viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": titleId, "aria-describedby": this.summary.id });
    chart.append(svg("title", { id: titleId }, "Spend per day"));
    for (const tick of [0, 0.5, 1]) {
      const y = m.top + plotH - tick * plotH;
      chart.append(
        svg("line", { class: "grid", x1: m.left, x2: width - m.right, y1: y, y2: y }),
        svg("text", { class: "axis", x: m.left - 6, y: y + 4, "text-anchor": "end" }, money((max * tick).toFixed(6))),
      );
    }
    const every = Math.ceil(this.items.length / Math.max(1, Math.floor(plotW / 48)));
    this.items.forEach((item, i) => {
      const value = values[i];
      const barH = (value / max) * plotH;
      const barW = Math.min(48, Math.max(1, step * 0.7));
      const x = m.left + i * step + (step - barW) / 2;
      chart.append(
        svg("rect", { class: "bar", x: x.toFixed(1), y: (m.top + plotH - barH).toFixed(1), width: barW.toFixed(1), height: barH.toFixed(1) }, svg("title", {}, `${item.label}: ${item.text}`)),
      );
      if (i % every === 0) {
        chart.append(svg("text", { class: "axis", x: (x + barW / 2).toFixed(1), y: height - 10, "text-anchor": "middle" }, item.label));
      }
    });
    this.figure.dataset.bars = String(this.items.length);
    this.canvas.replaceChildren(chart);
  }
}
