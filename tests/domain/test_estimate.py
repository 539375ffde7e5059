"""Estimates: the run's shape from the config, the table seeded from the seed's typical costs, each
hardware's own rate, learned history replacing the table, and a running job's projection."""

from __future__ import annotations

from decimal import Decimal

from simpletuner_cloud.domain.estimate import PastRun, estimate_run, projected_cost, run_shape
from simpletuner_cloud.services.hardware_catalogue import packaged_catalogue

CATALOGUE = packaged_catalogue()
L40S, A100 = CATALOGUE.get("l40s"), CATALOGUE.get("a100")
FLUX = {
    "model_family": "flux",
    "model_type": "lora",
    "max_train_steps": 1000,
    "resolution": 1024,
    "validation_prompt": "a photo",
    "validation_step_interval": 250,
    "checkpoint_step_interval": 250,
}


def overlaps(low: float, high: float, seed_low: float, seed_high: float) -> bool:
    return low <= seed_high and high >= seed_low


def test_shape_reads_steps_validations_and_checkpoints() -> None:
    shape = run_shape(FLUX, images=12)
    assert (shape.steps, shape.validations, shape.checkpoints, shape.full) == (1000, 4, 5, False)


def test_steps_from_epochs_images_repeats_batch_and_accumulation() -> None:
    options = {"num_train_epochs": 3, "train_batch_size": 2, "gradient_accumulation_steps": 2}
    assert run_shape(options, images=10, repeats=1).steps == 15  # 3 x ceil(10 x 2 / 2) / 2


def test_the_table_agrees_with_the_seed_typical_costs() -> None:
    cases = [  # (options, hardware, seed minutes low-high, seed dollars low-high)
        (FLUX, L40S, (30, 60), (2, 4)),
        ({**FLUX, "max_train_steps": 2000}, L40S, (60, 120), (4, 8)),
        ({"model_family": "sdxl", "max_train_steps": 2000}, L40S, (45, 90), (3, 6)),
        ({"model_family": "flux", "model_type": "full", "max_train_steps": 5000}, A100, (240, 720), (15, 50)),
    ]
    for options, hardware, (m_low, m_high), (d_low, d_high) in cases:
        estimate = estimate_run(run_shape(options, images=12), hardware)
        assert estimate.source == "table" and estimate.past_jobs == 0
        assert overlaps(estimate.seconds_low / 60, estimate.seconds_high / 60, m_low, m_high), options
        assert overlaps(float(estimate.cost_low), float(estimate.cost_high), d_low, d_high), options
        assert estimate.cost_low < estimate.cost_high


def test_each_hardware_is_priced_at_its_own_rate() -> None:
    shape = run_shape(FLUX, images=12)
    l40s, a100 = estimate_run(shape, L40S), estimate_run(shape, A100)
    assert l40s.usd_per_second == L40S.usd_per_second and a100.usd_per_second == A100.usd_per_second
    assert l40s.cost_high == (L40S.usd_per_second * l40s.seconds_high).quantize(
        Decimal("0.01"), rounding="ROUND_CEILING"
    )
    assert a100.seconds_high < l40s.seconds_high  # faster per step, dearer per second
    assert isinstance(a100.cost_high, Decimal)


def test_history_replaces_the_table_with_the_measured_rate() -> None:
    shape = run_shape(FLUX, images=12)
    learned = estimate_run(shape, L40S, [PastRun(0.5, 100.0), PastRun(0.6, 120.0)])
    assert (learned.source, learned.past_jobs) == ("history", 2)
    assert learned.seconds_per_step == (0.45, 0.72)  # min x 0.9, max x 1.2
    assert learned.startup_seconds == (100.0, 144.0)
    assert learned.seconds_high < estimate_run(shape, L40S).seconds_high


def test_projection_from_the_measured_step_rate() -> None:
    projected = projected_cost(
        accrued_seconds=100, step=250, total_steps=1000, seconds_per_step=2.0, usd_per_second=Decimal("0.001")
    )
    assert projected == Decimal("1.600")  # (100 + 750 x 2) s
    assert projected_cost(accrued_seconds=10, step=None, total_steps=1000, seconds_per_step=None,
                          usd_per_second=Decimal(1)) is None  # fmt: skip
