"""Hardware profiles and cost math: which GPU a job runs on, which trainer model serves it, and what
a second of it costs. Pure: the prices come from a catalogue the services layer loads from JSON."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

SECONDS_PER_HOUR = 3600


class UnknownHardware(ValueError):
    """A hardware id that is not in the catalogue."""


@dataclass(frozen=True)
class HardwareProfile:
    id: str
    name: str
    gpu: str
    vram_gb: int
    sku: str  # Replicate's exact SKU string (irregular spelling: copy, never build)
    usd_per_second: Decimal
    model: str  # the trainer model published for this hardware
    best_for: str = ""

    @property
    def usd_per_hour(self) -> Decimal:
        return self.usd_per_second * SECONDS_PER_HOUR

    def cost_for_seconds(self, seconds: float | Decimal) -> Decimal:
        return cost_for_seconds(self.usd_per_second, seconds)


def cost_for_seconds(usd_per_second: Decimal, seconds: float | Decimal) -> Decimal:
    """Replicate bills active seconds at full precision; round only for display. Negative time
    (clock skew between Replicate's timestamps and ours) costs nothing rather than refunding."""
    span = Decimal(str(seconds)) if not isinstance(seconds, Decimal) else seconds
    return usd_per_second * max(span, Decimal(0))


@dataclass(frozen=True)
class HardwareCatalogue:
    profiles: tuple[HardwareProfile, ...]
    default_id: str
    source: str = ""
    currency: str = "USD"

    def __post_init__(self) -> None:
        ids = [p.id for p in self.profiles]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate hardware ids in catalogue: {ids}")
        if self.default_id not in ids:
            raise ValueError(f"default hardware {self.default_id!r} is not one of {ids}")

    def __iter__(self) -> Iterator[HardwareProfile]:
        return iter(self.profiles)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.profiles)

    @property
    def default(self) -> HardwareProfile:
        return self.get(self.default_id)

    def get(self, hardware_id: str) -> HardwareProfile:
        """By id; else, whatever the case, by id, display name or SKU, as the guide writes them
        (`L40S`, `A100 (80GB)`) and as Replicate does (`gpu-a100-large`)."""
        for profile in self.profiles:
            if profile.id == hardware_id:
                return profile
        wanted = hardware_id.strip().casefold()
        for profile in self.profiles:
            if wanted in (profile.id.casefold(), profile.name.casefold(), profile.sku.casefold()):
                return profile
        raise UnknownHardware(f"unknown hardware {hardware_id!r}; choose one of {', '.join(self.ids)}")

    def by_sku(self, sku: str) -> HardwareProfile | None:
        return next((p for p in self.profiles if p.sku == sku), None)

    def price_per_second(self, hardware_id: str) -> Decimal:
        """Jobs keep the hardware id they ran on; an id dropped from the catalogue since then is
        priced at the default profile, so spend totals never silently ignore a job."""
        try:
            return self.get(hardware_id).usd_per_second
        except UnknownHardware:
            by_sku = self.by_sku(hardware_id)
            return (by_sku or self.default).usd_per_second


def catalogue_from_mapping(data: Mapping[str, Any]) -> HardwareCatalogue:
    """Build a catalogue from the JSON document's shape; prices are strings or numbers."""
    profiles = tuple(_profile(item) for item in _as_list(data.get("profiles")))
    if not profiles:
        raise ValueError("hardware catalogue has no profiles")
    return HardwareCatalogue(
        profiles=profiles,
        default_id=str(data.get("default") or profiles[0].id),
        source=str(data.get("source", "")),
        currency=str(data.get("currency", "USD")),
    )


def _profile(item: Mapping[str, Any]) -> HardwareProfile:
    price = Decimal(str(item["usd_per_second"]))
    if price < 0:
        raise ValueError(f"hardware {item.get('id')!r}: negative price")
    return HardwareProfile(
        id=str(item["id"]),
        name=str(item["name"]),
        gpu=str(item.get("gpu", item["name"])),
        vram_gb=int(item["vram_gb"]),
        sku=str(item["sku"]),
        usd_per_second=price,
        model=str(item["model"]),
        best_for=str(item.get("best_for", "")),
    )


def _as_list(value: Any) -> Iterable[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError("hardware catalogue: `profiles` must be a list of objects")
    return value
