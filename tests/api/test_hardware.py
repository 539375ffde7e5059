"""`GET /api/cloud/hardware`: the price table, from configuration."""

from __future__ import annotations

import httpx


async def test_hardware_table(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/cloud/hardware")
    assert response.status_code == 200
    assert response.json() == {
        "default": "l40s",
        "currency": "USD",
        "source": "Replicate's public pricing page (replicate.com/pricing), snapshot 2025-2026; approximate. "
        "Override with ~/.simpletuner/cloud/hardware.json.",
        "hardware": [
            {
                "id": "l40s",
                "name": "L40S",
                "gpu": "Nvidia L40S GPU",
                "vram_gb": 48,
                "sku": "gpu-l40s",
                "usd_per_second": 0.000975,
                "usd_per_hour": 3.51,
                "model": "simpletuner/advanced-trainer",
                "best_for": "Most LoRA trainings",
                "default": True,
            },
            {
                "id": "a100",
                "name": "A100 (80GB)",
                "gpu": "Nvidia A100 (80GB) GPU",
                "vram_gb": 80,
                "sku": "gpu-a100-large",
                "usd_per_second": 0.0014,
                "usd_per_hour": 5.04,
                "model": "simpletuner/advanced-trainer-a100",
                "best_for": "Large models, full fine-tuning",
                "default": False,
            },
        ],
    }


async def test_remote_callers_need_the_admin_token(app) -> None:  # type: ignore[no-untyped-def]
    from tests.api.conftest import remote_client

    async with remote_client(app) as remote:
        assert (await remote.get("/api/cloud/hardware")).status_code == 401
