"""A Statuspage-v2-shaped status document (`/status/api/v2/status.json` and `summary.json`) whose
indicator and failure mode are set through the `status_page` fault."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from simpletuner_cloud.sandbox.clock import iso

router = APIRouter()

_DESCRIPTIONS = {
    "none": "All Systems Operational",
    "minor": "Partially Degraded Service",
    "major": "Partial System Outage",
    "critical": "Major System Outage",
}
_COMPONENT_STATUS = {
    "none": "operational",
    "minor": "degraded_performance",
    "major": "partial_outage",
    "critical": "major_outage",
}
_COMPONENTS = ("API", "Predictions", "Trainings", "Web")


def _page(base_url: str, now: float) -> dict[str, Any]:
    return {
        "id": "sandbox",
        "name": "Replicate (sandbox)",
        "url": f"{base_url}/status",
        "time_zone": "Etc/UTC",
        "updated_at": iso(now),
    }


def _components(indicator: str, now: float) -> list[dict[str, Any]]:
    return [
        {
            "id": f"sandbox-{name.lower()}",
            "name": name,
            "status": _COMPONENT_STATUS[indicator] if name != "Web" else "operational",
            "description": None,
            "position": position,
            "group_id": None,
            "group": False,
            "only_show_if_degraded": False,
            "showcase": True,
            "created_at": "2023-01-01T00:00:00.000Z",
            "updated_at": iso(now),
            "start_date": None,
            "page_id": "sandbox",
        }
        for position, name in enumerate(_COMPONENTS, start=1)
    ]


def _incidents(indicator: str, components: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    if indicator == "none":
        return []
    stamp = iso(now)
    affected = [c for c in components if c["status"] != "operational"]
    return [
        {
            "id": "sandbox-incident",
            "name": "Elevated error rates (simulated by the sandbox)",
            "status": "investigating",
            "impact": indicator,
            "shortlink": None,
            "created_at": stamp,
            "updated_at": stamp,
            "started_at": stamp,
            "monitoring_at": None,
            "resolved_at": None,
            "page_id": "sandbox",
            "incident_updates": [
                {
                    "id": "sandbox-update",
                    "status": "investigating",
                    "body": "We are investigating elevated error rates. (sandbox fault)",
                    "created_at": stamp,
                    "updated_at": stamp,
                    "display_at": stamp,
                    "affected_components": [
                        {
                            "code": c["id"],
                            "name": c["name"],
                            "old_status": "operational",
                            "new_status": c["status"],
                        }
                        for c in affected
                    ],
                }
            ],
            "components": affected,
        }
    ]


async def _answer(request: Request, summary: bool) -> Response:
    sandbox = request.app.state.sandbox
    fault = sandbox.faults.status_page
    if fault.mode == "timeout":
        await asyncio.sleep(sandbox.config.status_page_timeout_seconds)
    elif fault.mode == "500":
        return Response(
            "<html><body><h1>500 Internal Server Error</h1></body></html>", 500, media_type="text/html"
        )
    elif fault.mode == "html":
        return Response(
            "<!DOCTYPE html><html><body>Replicate Status</body></html>", 200, media_type="text/html"
        )
    elif fault.mode == "malformed":
        return Response('{"page": {"id": "sandbox", "status": ', 200, media_type="application/json")
    elif fault.mode == "redirect":
        return RedirectResponse(str(request.url), status_code=301)  # a loop, like a bad apex redirect
    now = sandbox.clock.now()
    indicator = fault.indicator
    body: dict[str, Any] = {
        "page": _page(sandbox.config.base_url, now),
        "status": {"indicator": indicator, "description": _DESCRIPTIONS[indicator]},
    }
    if summary:
        components = _components(indicator, now)
        body["components"] = components
        body["incidents"] = _incidents(indicator, components, now)
        body["scheduled_maintenances"] = []
    return JSONResponse(body)


@router.get("/status/api/v2/status.json")
async def status(request: Request) -> Response:
    return await _answer(request, summary=False)


@router.get("/status/api/v2/summary.json")
async def summary(request: Request) -> Response:
    return await _answer(request, summary=True)
