"""Training progress from the trainer's log lines (trainer-contract §1.3): step and total, percent,
ETA, stage, latest loss and learning rate, and the step/loss/lr series for a chart. Pure.

Replicate's `logs` is cumulative, so callers parse from the last complete line they parsed
(`parsed_to`): a line cut at the end of a chunk is read whole next time, never half."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

_TOTAL = re.compile(r"Total optimization steps = (\d+)")
_TQDM = re.compile(
    r"Epoch (?P<epoch>\d+)/(?P<epochs>\d+),? Steps:\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<step>\d+)/(?P<total>\d+)"
    r"\s*\[(?P<elapsed>[\d:]+)<(?P<remaining>[\d:?]+)(?:,\s*(?P<rate>[\d.?]+)\s*(?P<unit>it/s|s/it))?"
    r"(?P<postfix>[^\]]*)\]?"
)
_STEP = re.compile(
    r"Step (?P<step>\d+) of (?P<total>\d+): loss (?P<loss>[-+\d.eE]+|nan), lr (?P<lr>[-+\d.eE]+)"
    r"(?:, epoch (?P<epoch>\d+)/(?P<epochs>\d+))?"
)
_POSTFIX = re.compile(r"(step_loss|lr)=([-+\d.eE]+|nan)")
# `[STAGE] <icon> <label><progress>[: <message>]` (§1.3). A label may hold parentheses of its own
# (`VAE Caching (bucket 1.0)`) but never `: `, so the message starts at the first `: `; the progress
# is only a trailing ` (<pct>%)` or ` (<current>/<total>)`.
_STAGE = re.compile(r"^\[STAGE\] \S+ (?P<rest>.+)$")
_STAGE_PROGRESS = re.compile(r" \((?:\d+(?:\.\d+)?%|\d+/\d+)\)$")


@dataclass(frozen=True)
class MetricPoint:
    step: int
    loss: float | None
    learning_rate: float | None


@dataclass(frozen=True)
class TrainingProgress:
    step: int | None = None
    total_steps: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    stage: str | None = None
    loss: float | None = None
    learning_rate: float | None = None
    seconds_per_step: float | None = None
    eta_seconds: int | None = None
    parsed_to: int = 0  # offset in the cumulative logs after the last complete line read

    @property
    def percent(self) -> float | None:
        if self.step is None or not self.total_steps:
            return None
        return round(min(100.0, 100.0 * self.step / self.total_steps), 1)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TrainingProgress:
        if not data:
            return cls()
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in names})


def parse_logs(logs: str, previous: TrainingProgress) -> tuple[TrainingProgress, list[MetricPoint]]:
    """Read the complete lines of `logs` after `previous.parsed_to`; return the new progress and the
    metric points found (one per step, the last reading of a step wins)."""
    start = min(previous.parsed_to, len(logs))
    end = max(logs.rfind("\n"), logs.rfind("\r")) + 1
    if end <= start:
        return previous, []
    state = previous
    points: dict[int, MetricPoint] = {}
    for line in re.split(r"[\r\n]+", logs[start:end]):
        state = _read_line(line.strip(), state, points)
    return replace(state, parsed_to=end), [points[step] for step in sorted(points)]


def _read_line(line: str, state: TrainingProgress, points: dict[int, MetricPoint]) -> TrainingProgress:
    if not line:
        return state
    if found := _TOTAL.search(line):
        return replace(state, total_steps=int(found.group(1)))
    if found := _TQDM.search(line):
        step, total = int(found["step"]), int(found["total"])
        postfix = dict(_POSTFIX.findall(found["postfix"] or ""))
        loss, lr = _number(postfix.get("step_loss")), _number(postfix.get("lr"))
        rate = _number(found["rate"])
        seconds_per_step = None
        if rate:
            seconds_per_step = rate if found["unit"] == "s/it" else 1 / rate
        eta = _clock(found["remaining"])
        if step > 0 and (loss is not None or lr is not None):
            points[step] = MetricPoint(step, loss, lr)
        return replace(
            state,
            step=step,
            total_steps=total or state.total_steps,
            epoch=int(found["epoch"]),
            epochs=int(found["epochs"]),
            loss=loss if loss is not None else state.loss,
            learning_rate=lr if lr is not None else state.learning_rate,
            seconds_per_step=seconds_per_step or state.seconds_per_step,
            eta_seconds=eta,
        )
    if found := _STEP.search(line):
        step, total = int(found["step"]), int(found["total"])
        loss, lr = _number(found["loss"]), _number(found["lr"])
        points[step] = MetricPoint(step, loss, lr)
        if state.step is not None and step < state.step:
            return state  # the debug.log tail repeats older steps at the end of a run
        return replace(
            state,
            step=step,
            total_steps=total or state.total_steps,
            loss=loss,
            learning_rate=lr,
            epoch=int(found["epoch"]) if found["epoch"] else state.epoch,
            epochs=int(found["epochs"]) if found["epochs"] else state.epochs,
        )
    if found := _STAGE.match(line):
        label = _STAGE_PROGRESS.sub("", found["rest"].split(": ", 1)[0]).strip()
        return replace(state, stage=label) if label else state
    return state


def _number(text: str | None) -> float | None:
    if text is None or text in ("?", ""):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if value != value else value  # NaN is no reading


def _clock(text: str | None) -> int | None:
    if not text or "?" in text:
        return None
    seconds = 0
    for part in text.split(":"):
        if not (part.isascii() and part.isdigit()):  # str.isdigit alone takes `²`, which int() refuses
            return None
        seconds = seconds * 60 + int(part)
    return seconds
