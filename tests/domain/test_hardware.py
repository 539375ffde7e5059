"""Hardware profiles and cost math."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simpletuner_cloud.domain.hardware import (
    HardwareCatalogue,
    UnknownHardware,
    catalogue_from_mapping,
    cost_for_seconds,
)
from simpletuner_cloud.services.hardware_catalogue import (
    hardware_answer,
    load_hardware_catalogue,
    packaged_catalogue,
)
from simpletuner_cloud.settings import load_settings


def test_packaged_catalogue_has_the_seed_profiles() -> None:
    catalogue = packaged_catalogue()
    assert catalogue.ids == ("l40s", "a100")
    assert catalogue.default.id == "l40s"
    l40s, a100 = catalogue.get("l40s"), catalogue.get("a100")
    assert (l40s.vram_gb, l40s.sku, l40s.model) == (48, "gpu-l40s", "simpletuner/advanced-trainer")
    assert (a100.vram_gb, a100.sku, a100.model) == (80, "gpu-a100-large", "simpletuner/advanced-trainer-a100")
    assert l40s.usd_per_second == Decimal("0.000975")
    assert l40s.usd_per_hour == Decimal("3.51")
    assert a100.usd_per_hour == Decimal("5.04")


def test_cost_is_exact_and_never_negative() -> None:
    assert cost_for_seconds(Decimal("0.000975"), 600) == Decimal("0.585")
    assert cost_for_seconds(Decimal("0.0014"), Decimal("3600")) == Decimal("5.04")
    assert cost_for_seconds(Decimal("0.0014"), -5) == 0
    assert packaged_catalogue().get("a100").cost_for_seconds(1800) == Decimal("2.52")


@pytest.mark.parametrize(
    ("written", "profile"),
    [("L40S", "l40s"), (" l40s ", "l40s"), ("A100 (80GB)", "a100"), ("a100 (80gb)", "a100"),
     ("gpu-a100-large", "a100"), ("GPU-L40S", "l40s")],
)  # fmt: skip
def test_the_guides_and_replicates_names_find_the_profile(written: str, profile: str) -> None:
    assert packaged_catalogue().get(written).id == profile


def test_unknown_hardware_names_the_choices() -> None:
    with pytest.raises(UnknownHardware, match="l40s, a100"):
        packaged_catalogue().get("h100")


def test_price_of_a_dropped_profile_falls_back() -> None:
    catalogue = packaged_catalogue()
    assert catalogue.price_per_second("gpu-a100-large") == Decimal("0.0014")
    assert catalogue.price_per_second("vanished") == Decimal("0.000975")


@pytest.mark.parametrize(
    "data",
    [
        {"profiles": []},
        {"profiles": "l40s"},
        {
            "default": "x",
            "profiles": [
                {"id": "a", "name": "A", "vram_gb": 1, "sku": "s", "usd_per_second": 1, "model": "m"}
            ],
        },
    ],
)
def test_bad_catalogues_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        catalogue_from_mapping(data)


def test_duplicate_ids_are_refused() -> None:
    profile = packaged_catalogue().default
    with pytest.raises(ValueError, match="duplicate"):
        HardwareCatalogue(profiles=(profile, profile), default_id=profile.id)


def test_override_file_wins_and_reloads(state_root) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings()
    settings.cloud_dir.mkdir(parents=True, exist_ok=True)
    (settings.cloud_dir / "hardware.json").write_text(
        '{"default": "h100", "profiles": [{"id": "h100", "name": "H100", "vram_gb": 80,'
        ' "sku": "gpu-h100", "usd_per_second": "0.001525", "model": "me/trainer"}]}'
    )
    catalogue = load_hardware_catalogue(settings)
    assert catalogue.ids == ("h100",)
    assert hardware_answer(catalogue).hardware[0].usd_per_hour == 5.49


def test_broken_override_is_an_error_naming_the_file(state_root) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings()
    settings.cloud_dir.mkdir(parents=True, exist_ok=True)
    (settings.cloud_dir / "hardware.json").write_text("{nope")
    with pytest.raises(Exception, match=r"hardware\.json") as caught:
        load_hardware_catalogue(settings)
    assert getattr(caught.value, "code", None) == "config_invalid"
