"""How the receiver tells an event from a body (Replicate's deliveries do not say which they are)."""

from __future__ import annotations

import pytest

from simpletuner_cloud.services.webhook_receiver import infer_event


@pytest.mark.parametrize(
    ("body", "event"),
    [
        ({"status": "succeeded", "output": "x"}, "completed"),
        ({"status": "aborted"}, "completed"),
        ({"status": "processing", "output": "x", "logs": "a"}, "output"),
        ({"status": "processing", "logs": "a"}, "logs"),
        ({"status": "starting", "logs": ""}, "start"),
    ],
)
def test_infer_event(body: dict[str, str], event: str) -> None:
    assert infer_event(body) == event
