"""How long and how much a training run will take, as a range: start-up (boot, base-model download,
caching with the NSFW scan) + steps x seconds per step x gradient accumulation + validations +
checkpoint saves. The seconds-per-step table is seeded from trainer-contract §5 and the seed's
typical costs (Flux LoRA 1000 steps: 30-60 min, $2-4 at ~$3.50/h); this installation's finished
runs replace it once there are some (the measured tqdm rate of the same model family, resolution
and hardware). Pure: the caller loads the history."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from simpletuner_cloud.domain.hardware import HardwareProfile

# Seconds per optimiser step at 1024 px, batch 1, on an L40S: (low, high). LoRA rows; a full
# fine-tune costs FULL_FACTOR more. Families not listed use the Flux row (the common case, and on the
# slow side of SDXL, so an unknown model is not underestimated).
SECONDS_PER_STEP: dict[str, tuple[float, float]] = {
    "flux": (1.2, 2.5),
    "chroma": (1.0, 2.5),
    "sdxl": (1.0, 2.2),
    "sd3": (0.8, 2.0),
    "kolors": (0.6, 1.4),
    "qwen_image": (1.5, 3.5),
    "z_image": (1.0, 1.6),
    "auraflow": (1.2, 2.8),
    "pixart_sigma": (0.6, 1.4),
    "hidream": (2.0, 4.5),
    "wan": (2.0, 8.0),
    "ltxvideo": (3.0, 9.0),
    "sana": (0.5, 1.2),
}
DEFAULT_FAMILY = "flux"
FULL_FACTOR = 3.0
# A100 80GB against L40S: bf16 throughput and memory bandwidth put it 10-30 % ahead.
GPU_FACTOR: dict[str, tuple[float, float]] = {"A100": (0.7, 0.9), "H100": (0.45, 0.6)}
STARTUP_SECONDS = (360.0, 900.0)  # boot, base model download, text/VAE caching with the NSFW scan
VALIDATION_SECONDS = (15.0, 60.0)  # one validation render
CHECKPOINT_SECONDS = (5.0, 30.0)  # one save (and its upload when publishing)
HISTORY_MARGIN = (0.9, 1.2)  # measured rates vary run to run


@dataclass(frozen=True)
class RunShape:
    """What decides the duration, read from the config and the dataset."""

    model_family: str
    full: bool
    steps: int
    resolution: int
    accumulation: int
    batch_size: int
    validations: int
    checkpoints: int

    def key(self) -> dict[str, Any]:
        return {"model_family": self.model_family, "full": self.full, "resolution": self.resolution}


@dataclass(frozen=True)
class PastRun:
    """One finished run of this installation: its measured seconds per step and start-up."""

    seconds_per_step: float
    startup_seconds: float | None = None


@dataclass(frozen=True)
class Estimate:
    seconds_low: int
    seconds_high: int
    cost_low: Decimal
    cost_high: Decimal
    usd_per_second: Decimal
    source: Literal["table", "history"]
    past_jobs: int
    seconds_per_step: tuple[float, float]
    startup_seconds: tuple[float, float]
    shape: RunShape


def run_shape(options: Mapping[str, Any], images: int, repeats: int = 0) -> RunShape:
    """Steps from `max_train_steps`, or epochs x ceil(images x (repeats + 1) / batch) / accumulation."""
    batch = max(1, _int(options.get("train_batch_size"), 1))
    accumulation = max(1, _int(options.get("gradient_accumulation_steps"), 1))
    steps = _int(options.get("max_train_steps"), 0)
    if steps <= 0:
        epochs = max(1, _int(options.get("num_train_epochs"), 1))
        per_epoch = math.ceil(max(images, 1) * (repeats + 1) / batch)
        steps = max(1, math.ceil(epochs * per_epoch / accumulation))
    validation_every = _int(options.get("validation_step_interval", options.get("validation_steps")), 0)
    validations = (
        steps // validation_every if options.get("validation_prompt") and validation_every > 0 else 0
    )
    checkpoint_every = _int(options.get("checkpoint_step_interval", options.get("checkpointing_steps")), 0)
    checkpoints = steps // checkpoint_every if checkpoint_every > 0 else 0
    return RunShape(
        model_family=str(options.get("model_family") or DEFAULT_FAMILY).lower(),
        full=str(options.get("model_type") or "lora").lower() == "full",
        steps=steps,
        resolution=max(256, _int(options.get("resolution"), 1024)),
        accumulation=accumulation,
        batch_size=batch,
        validations=validations,
        checkpoints=checkpoints + 1,  # the final save
    )


def estimate_run(shape: RunShape, hardware: HardwareProfile, history: Sequence[PastRun] = ()) -> Estimate:
    if history:
        rates = [run.seconds_per_step for run in history]
        per_step = (min(rates) * HISTORY_MARGIN[0], max(rates) * HISTORY_MARGIN[1])
        startups = [run.startup_seconds for run in history if run.startup_seconds is not None]
        startup = (min(startups), max(startups) * HISTORY_MARGIN[1]) if startups else STARTUP_SECONDS
        source: Literal["table", "history"] = "history"
    else:
        per_step = _table_rate(shape, hardware)
        startup = STARTUP_SECONDS
        source = "table"
    low = startup[0] + shape.steps * per_step[0] + shape.validations * VALIDATION_SECONDS[0]
    low += shape.checkpoints * CHECKPOINT_SECONDS[0]
    high = startup[1] + shape.steps * per_step[1] + shape.validations * VALIDATION_SECONDS[1]
    high += shape.checkpoints * CHECKPOINT_SECONDS[1]
    seconds_low, seconds_high = math.floor(low), math.ceil(high)
    rate = hardware.usd_per_second
    return Estimate(
        seconds_low=seconds_low,
        seconds_high=seconds_high,
        cost_low=(rate * seconds_low).quantize(Decimal("0.01"), rounding=ROUND_FLOOR),
        cost_high=(rate * seconds_high).quantize(Decimal("0.01"), rounding=ROUND_CEILING),
        usd_per_second=rate,
        source=source,
        past_jobs=len(history),
        seconds_per_step=(round(per_step[0], 4), round(per_step[1], 4)),
        startup_seconds=(round(startup[0], 1), round(startup[1], 1)),
        shape=shape,
    )


def projected_cost(
    *,
    accrued_seconds: float,
    step: int | None,
    total_steps: int | None,
    seconds_per_step: float | None,
    usd_per_second: Decimal,
) -> Decimal | None:
    """A running job's final cost from its measured step rate and the steps left (None until it has
    reported a rate)."""
    if not step or not total_steps or not seconds_per_step:
        return None
    remaining = max(total_steps - step, 0) * seconds_per_step
    return usd_per_second * Decimal(str(round(accrued_seconds + remaining, 3)))


def _table_rate(shape: RunShape, hardware: HardwareProfile) -> tuple[float, float]:
    low, high = SECONDS_PER_STEP.get(shape.model_family, SECONDS_PER_STEP[DEFAULT_FAMILY])
    scale = (shape.resolution / 1024) ** 2 * shape.accumulation * shape.batch_size**0.8
    if shape.full:
        scale *= FULL_FACTOR
    gpu = next((f for name, f in GPU_FACTOR.items() if name in hardware.gpu.upper()), (1.0, 1.0))
    return low * scale * gpu[0], high * scale * gpu[1]


def _int(value: Any, default: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default
