"""Make one async function of a module pause after it returns, so that another task runs right
there: the interleaving a race needs, made certain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest


def pause_after(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, seconds: float = 0.3) -> None:
    """`owner.name` sleeps `seconds` after it returns (what it returned is kept)."""
    original = getattr(owner, name)

    async def paused(*args: Any, **kwargs: Any) -> Any:
        result = await original(*args, **kwargs)
        await asyncio.sleep(seconds)
        return result

    monkeypatch.setattr(owner, name, paused)
