"""`static/js/chart.js` in the browser: the loss chart's step axis reads as whole steps at round
intervals, from an empty chart (no readings, no total yet) to a long run, never a step twice."""

from __future__ import annotations

from typing import Any

from tests.web.conftest import Tab

AXES = """async (cases) => {
  const { LossChart } = await import('./static/js/chart.js');
  const out = [];
  for (const [points, total] of cases) {
    const chart = new LossChart({ id: 'axis-probe' });
    document.body.append(chart.figure);
    chart.set(points.map((step) => ({ step, loss: 0.5, learning_rate: 0.0001 })), total);
    const labels = [...chart.figure.querySelectorAll("text.axis[text-anchor='middle']")];
    out.push({ text: labels.map((t) => t.textContent), x: labels.map((t) => Number(t.getAttribute('x'))) });
    chart.destroy();
    chart.figure.remove();
  }
  return out;
}"""

CASES: list[tuple[list[int], int | None, list[str]]] = [
    ([], None, ["0", "1"]),  # nothing yet: was `0 0 1 1 1`
    ([1], None, ["0", "1"]),  # one reading at step 1
    ([3], None, ["0", "1", "2", "3"]),
    ([5], None, ["0", "2", "4"]),
    ([], 20, ["0", "5", "10", "15", "20"]),
    ([50], 1000, ["0", "250", "500", "750", "1,000"]),
    ([10], 3000, ["0", "1,000", "2,000", "3,000"]),
]


def test_the_step_axis_is_whole_round_steps_without_repeats(tab: Tab) -> None:
    page: Any = tab.open("overview")
    axes = page.evaluate(AXES, [[points, total] for points, total, _ in CASES])
    assert [axis["text"] for axis in axes] == [expected for *_, expected in CASES]
    for axis in axes:
        assert axis["x"] == sorted(set(axis["x"]))  # left to right, each at its own place
    assert tab.errors == []
